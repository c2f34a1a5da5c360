"""Shared by the Python test drivers (tests/cli, tests/reliability): check() and the loopback server.

Standard library only.
"""

import os
import subprocess
import sys
import time


class CheckFailed(Exception):
    pass


# The seed program's five Wikimedia basenames, which the local test server serves.
SEED_NAMES = [
    "Python_bivittatus_1701.jpg",
    "Python_Regius.jpg",
    "Baby_carpet_python_caudal_luring.jpg",
    "Rock_python_pratik.JPG",
    "Dulip_Wilpattu_Python1.jpg",
]


def check(condition, message, *details):
    """Raises CheckFailed with `message` and each detail on its own line when `condition` is false."""
    if not condition:
        text = message
        for d in details:
            text += "\n--- " + (d if isinstance(d, str) else repr(d))
        raise CheckFailed(text)


class Server:
    """imgdl-testserver on a free loopback port; stopped by stop() or at the end of a `with` block."""

    def __init__(self, binary, workdir, latency_ms=0, tls=False, threads=None, startup_timeout=30):
        port_file = os.path.join(workdir, "server%s.port" % ("-tls" if tls else ""))
        cmd = [binary, "--port", "0", "--port-file", port_file, "--latency-ms", str(latency_ms)]
        if tls:
            cmd.append("--tls")
        if threads:
            cmd += ["--threads", str(threads)]
        # stderr goes to a file: a pipe nobody reads could fill, and if the server dies mid-test (a
        # sanitizer report, a crash) its last words are printed when the test ends.
        self.log_path = os.path.join(workdir, "server%s.log" % ("-tls" if tls else ""))
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=self.log)
        deadline = time.monotonic() + startup_timeout
        while time.monotonic() < deadline:
            if os.path.exists(port_file) and open(port_file).read().strip():
                break
            if self.proc.poll() is not None:
                raise CheckFailed("imgdl-testserver exited early: " + self.server_log())
            time.sleep(0.02)
        else:
            raise CheckFailed("imgdl-testserver did not write its port file")
        self.port = int(open(port_file).read().strip())
        self.base = "%s://127.0.0.1:%d" % ("https" if tls else "http", self.port)

    def url(self, path):
        return self.base + path

    def server_log(self):
        with open(self.log_path, "rb") as f:
            return f.read()[-4000:].decode(errors="replace")

    def stop(self):
        if self.proc.poll() is not None:
            if self.proc.returncode != 0 and not self.log.closed:
                print("imgdl-testserver died during the test (exit %d):\n%s" % (self.proc.returncode, self.server_log()),
                      file=sys.stderr)
        else:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
