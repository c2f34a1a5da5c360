"""Shared by the Python test drivers (tests/cli, tests/reliability): check() and the loopback server.

Standard library only.
"""

import json
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


SUPPORT_DIR = os.path.dirname(os.path.abspath(__file__))


def make_certs(directory):
    """The certificates of make_certs.py (ca.pem; good, other, expired, self) in `directory`, made now."""
    os.makedirs(directory, mode=0o700, exist_ok=True)
    proc = subprocess.run([sys.executable, os.path.join(SUPPORT_DIR, "make_certs.py"), directory],
                          capture_output=True)
    if proc.returncode != 0:
        raise CheckFailed("make_certs.py failed (is python3-cryptography installed?): " +
                          proc.stderr.decode(errors="replace"))
    return directory


def tls_image_bytes(path, size):
    """The body tls_server.js serves for an image path ("/img/a.jpg") and size."""
    head = bytes([0xff, 0xd8, 0xff, 0xc0, 0x00, 0x0b, 0x08, 0x00, 0x01, 0x00, 0x01, 0x01, 0x01, 0x11, 0x00,
                  0xff, 0xda, 0x00, 0x08, 0x01, 0x01, 0x00, 0x00, 0x3f, 0x00])  # a whole 1x1 JPEG's headers
    size = max(size, len(head) + 2)
    seed = sum(path.encode()) % 251
    middle = bytes((i * 131 + seed) % 251 for i in range(len(head), size - 2))
    return head + middle + b"\xff\xd9"


class TlsServer:
    """tls_server.js (HTTPS, h2 with HTTP/1.1 fallback, or HTTP/1.1 only with h1=True) under Node, presenting
    the `cert` leaf ("good", "other", "expired", "self") from a make_certs() directory."""

    def __init__(self, node, certs, cert="good", h1=False, startup_timeout=30):
        cmd = [node, os.path.join(SUPPORT_DIR, "tls_server.js"), "--cert", os.path.join(certs, cert + ".pem"),
               "--key", os.path.join(certs, cert + ".key")]
        if h1:
            cmd.append("--h1")
        # Its stdin is its command channel: it exits when that closes, whatever happens to this process.
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        if not line:
            raise CheckFailed("tls_server.js exited early (exit %s)" % self.proc.wait(timeout=startup_timeout))
        self.port = json.loads(line)["port"]
        self.base = "https://127.0.0.1:%d" % self.port

    def url(self, path):
        return self.base + path

    def stats(self):
        self.proc.stdin.write("stats\n")
        self.proc.stdin.flush()
        return json.loads(self.proc.stdout.readline())

    def stop(self):
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc.stdout.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
