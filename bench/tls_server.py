"""The HTTPS side of the downloader benchmark: a private ECDSA CA and one server certificate whose IP
SANs cover every benchmark host (127.0.0.1 and 127.0.x.y), nginx serving fixed bodies over TLS from a
temporary directory (one port speaking HTTP/1.1 only, one offering h2 by ALPN), the TLS handshakes
counted from nginx's access log, and the delaying proxy (delay_proxy.py) for the latency scenarios.

Every address is on loopback; nginx runs from its own prefix directory with its own config, logs and
pid file, and never touches the system's. Used by harness.py."""

import collections
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SYSTEM_BUNDLES = ("/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt")


def host_addresses(count):
    """127.0.1.1, 127.0.1.2, ... 127.0.1.250, 127.0.2.1, ...: `count` distinct loopback hosts."""
    return [f"127.0.{1 + i // 250}.{1 + i % 250}" for i in range(count)]


def make_certificates(directory, addresses):
    """ca.pem (trust anchor) and server.pem/server.key (P-256, signed by the CA, IP SANs for all
    `addresses` and 127.0.0.1), with the openssl CLI."""
    def run(*argv):
        subprocess.run(["openssl", *argv], check=True, capture_output=True, cwd=directory)

    run("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "ca.key")
    run("req", "-x509", "-new", "-key", "ca.key", "-sha256", "-days", "2", "-subj", "/CN=imgdl bench CA",
        "-out", "ca.pem")
    run("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "server.key")
    run("req", "-new", "-key", "server.key", "-subj", "/CN=127.0.0.1", "-out", "server.csr")
    sans = ",".join(f"IP:{a}" for a in ["127.0.0.1"] + list(addresses))
    with open(os.path.join(directory, "ext.cnf"), "w") as f:
        f.write(f"subjectAltName={sans}\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\n"
                "extendedKeyUsage=serverAuth\n")
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-days", "2",
        "-sha256", "-extfile", "ext.cnf", "-out", "server.pem")
    return os.path.join(directory, "ca.pem")


def free_port(addr="127.0.0.1"):
    with socket.socket() as s:
        s.bind((addr, 0))
        return s.getsockname()[1]


class Nginx:
    """nginx on loopback from `workdir`/nginx: `h1_port` on 127.0.0.1 speaks HTTP/1.1 only, `h2_port`
    offers h2 and HTTP/1.1 on 127.0.0.1 and on every address of `hosts`. GET /img/NAME?size=N serves the
    body file body_N (put there by add_body). Keep-alive for 120 s and 100,000 requests, TLS 1.3 with
    session tickets and a shared session cache, so a client that keeps its connections or resumes its
    sessions can."""

    def __init__(self, workdir, hosts, workers=2):
        self.binary = shutil.which("nginx") or "/usr/sbin/nginx"
        if not os.access(self.binary, os.X_OK):
            raise RuntimeError("nginx not installed (scripts/install-deps.sh bench)")
        self.dir = os.path.join(workdir, "nginx")
        self.www = os.path.join(self.dir, "www")
        os.makedirs(self.www)
        self.hosts = list(hosts)
        self.cafile = make_certificates(self.dir, self.hosts)
        # nginx's workers drop to `nobody` when started by root: they must be able to read the bodies.
        for d in (workdir, self.dir, self.www):
            os.chmod(d, 0o755)
        self.log_path = os.path.join(self.dir, "access.log")
        for attempt in range(5):
            self.h1_port, self.h2_port = free_port(), free_port()
            if self._start(workers):
                return
        raise RuntimeError(f"nginx did not start: {self._error_tail()}")

    def _start(self, workers):
        d = self.dir
        listens_h2 = "".join(f"    listen {a}:{self.h2_port} ssl http2;\n" for a in ["127.0.0.1"] + self.hosts)
        common = f"""    root {self.www};
    location /img/ {{ try_files /body_$arg_size =404; }}
"""
        conf = f"""worker_processes {workers};
pid {d}/nginx.pid;
error_log {d}/error.log warn;
worker_rlimit_nofile 16384;
events {{ worker_connections 8192; }}
http {{
  log_format handshakes '$pid $connection $ssl_session_reused $connection_requests $server_protocol $status';
  access_log {self.log_path} handshakes;
  client_body_temp_path {d}/body; proxy_temp_path {d}/proxy; fastcgi_temp_path {d}/fastcgi;
  uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;
  types {{ image/jpeg jpg; }}
  default_type image/jpeg;
  sendfile on;
  tcp_nopush on;
  keepalive_timeout 120s;
  keepalive_requests 100000;
  ssl_certificate {d}/server.pem;
  ssl_certificate_key {d}/server.key;
  ssl_protocols TLSv1.2 TLSv1.3;
  ssl_session_cache shared:SSL:32m;
  ssl_session_timeout 1h;
  server {{
    listen 127.0.0.1:{self.h1_port} ssl;
{common}  }}
  server {{
{listens_h2}{common}  }}
}}
"""
        self.conf = os.path.join(d, "nginx.conf")
        with open(self.conf, "w") as f:
            f.write(conf)
        open(self.log_path, "w").close()
        self.proc = subprocess.Popen([self.binary, "-p", d, "-c", self.conf, "-e", f"{d}/error.log",
                                      "-g", "daemon off;"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False  # most likely a port taken between free_port() and bind: try others
            try:
                with socket.create_connection(("127.0.0.1", self.h2_port), timeout=1):
                    with socket.create_connection(("127.0.0.1", self.h1_port), timeout=1):
                        return True
            except OSError:
                time.sleep(0.05)
        self.stop()
        return False

    def _error_tail(self):
        try:
            with open(os.path.join(self.dir, "error.log")) as f:
                return f.read()[-600:]
        except OSError:
            return "?"

    def system_bundle(self):
        """A CA file as large as a real run's: the system's CA bundle followed by the bench's CA."""
        path = os.path.join(self.dir, "system-plus-bench-ca.pem")
        if not os.path.exists(path):
            system = next((f for f in SYSTEM_BUNDLES if os.path.exists(f)), None)
            if not system:
                raise RuntimeError("no system CA bundle found (ca-certificates)")
            with open(path, "wb") as out:
                for f in (system, self.cafile):
                    with open(f, "rb") as src:
                        out.write(src.read().rstrip(b"\n") + b"\n")
        return path

    def add_body(self, size, data):
        with open(os.path.join(self.www, f"body_{size}"), "wb") as f:
            f.write(data)
        os.chmod(os.path.join(self.www, f"body_{size}"), 0o644)

    def log_offset(self):
        return os.path.getsize(self.log_path)

    def handshakes_since(self, offset):
        """Connections that made requests since `offset` of the access log, split into full TLS
        handshakes and resumed sessions, and the requests by protocol. A connection that never made a
        request is not in the log and not counted."""
        with open(self.log_path) as f:
            f.seek(offset)
            lines = f.read().splitlines()
        conns = {}
        protocols = collections.Counter()
        for line in lines:
            fields = line.split()
            if len(fields) < 6:
                continue
            pid, conn, reused, _, proto, _ = fields[:6]
            conns[(pid, conn)] = reused
            protocols[proto] += 1
        resumed = sum(1 for r in conns.values() if r == "r")
        return dict(connections=len(conns), full=len(conns) - resumed, resumed=resumed, requests=len(lines),
                    protocols=dict(protocols))

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # fast shutdown of master and workers
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class DelayProxy:
    """delay_proxy.py on every address of `addrs`, forwarding to `target_port` on the same address, each
    direction delayed by `one_way_ms`."""

    def __init__(self, workdir, addrs, target_port, one_way_ms, python=sys.executable):
        port_file = os.path.join(workdir, f"proxy-{target_port}.port")
        self.log = open(os.path.join(workdir, f"proxy-{target_port}.log"), "wb")
        self.proc = subprocess.Popen([python, os.path.join(HERE, "delay_proxy.py"), "--delay-ms", str(one_way_ms),
                                      "--target-port", str(target_port), "--port-file", port_file] + list(addrs),
                                     stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"delay_proxy exited with status {self.proc.returncode}")
            try:
                with open(port_file) as f:
                    text = f.read().strip()
                if text:
                    self.port = int(text)
                    return
            except FileNotFoundError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("delay_proxy did not start")
            time.sleep(0.05)

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()
