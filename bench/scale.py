#!/usr/bin/env python3
"""Long lists: imgdl's peak RSS and rate on lists of millions of distinct URLs, and a CSV -> WebDataset
run against the same CSV run as plain files. Against nginx on 127.0.0.1 (scripts/install-deps.sh bench),
which answers 404 to /missing/... and serves one tiny PNG for any /img/... path. Standard library only.

    python3 bench/scale.py --build-dir build/bench-rel memory --n 1000000 [--output-format webdataset]
    python3 bench/scale.py --build-dir build/bench-rel csv-vs-files --n 20000 --reps 7

`memory` runs once under /usr/bin/time (peak RSS is the largest resident size of the process); `csv-vs-files`
alternates the two runs (A B A B ..., the order swapped every pair), each into a fresh directory removed
outside the timing, and prints medians and the median of the pairwise ratios. Lists are written to
--workdir once and reused.
"""

import argparse
import os
import shutil
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import zlib

MiB = 1024 * 1024


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tiny_png(total=1024):
    """A whole 1x1 PNG padded with a tEXt chunk to about `total` bytes: passes imgdl's image checks."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    ihdr = chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0))
    idat = chunk(b"IDAT", zlib.compress(b"\x00\x80"))
    iend = chunk(b"IEND", b"")
    pad = max(0, total - 8 - len(ihdr) - len(idat) - len(iend) - 12 - 8)
    text = chunk(b"tEXt", b"Comment\x00" + b"x" * pad)
    return b"\x89PNG\r\n\x1a\n" + ihdr + text + idat + iend


class Nginx:
    """nginx on 127.0.0.1 from its own prefix directory: 404 for /missing/*, the tiny PNG for /img/*."""

    def __init__(self, workdir, workers=1, port=0):
        self.dir = os.path.join(workdir, "nginx")
        os.makedirs(self.dir, exist_ok=True)
        for d in (workdir, self.dir):
            os.chmod(d, 0o755)  # nginx's workers drop to `nobody` when started by root
        with open(os.path.join(self.dir, "tiny.png"), "wb") as f:
            f.write(tiny_png())
        binary = shutil.which("nginx") or "/usr/sbin/nginx"
        d = self.dir
        for _ in range(5):
            self.port = port or free_port()
            conf = f"""worker_processes {workers};
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  client_body_temp_path {d}/body; proxy_temp_path {d}/proxy; fastcgi_temp_path {d}/fastcgi;
  uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;
  default_type image/png;
  keepalive_timeout 120s;
  keepalive_requests 100000000;
  server {{
    listen 127.0.0.1:{self.port};
    root {d};
    location /missing/ {{ return 404; }}
    location /img/ {{ try_files /tiny.png =404; }}
  }}
}}
"""
            with open(os.path.join(d, "nginx.conf"), "w") as f:
                f.write(conf)
            self.proc = subprocess.Popen([binary, "-p", d, "-c", f"{d}/nginx.conf", "-e", f"{d}/error.log",
                                          "-g", "daemon off;"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and self.proc.poll() is None:
                try:
                    with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                        return
                except OSError:
                    time.sleep(0.05)
            self.stop()
        raise RuntimeError("nginx did not start")

    def url(self, path):
        return f"http://127.0.0.1:{self.port}{path}"

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)


def write_list(path, n, make_line, header=None):
    if os.path.exists(path):
        return path
    tmp = path + ".tmp"
    with open(tmp, "w", buffering=1 << 20) as f:
        if header:
            f.write(header + "\n")
        for i in range(n):
            f.write(make_line(i))
    os.rename(tmp, path)
    return path


def sample_process(time_pid, list_path):
    """(list file offset, VmHWM KiB, VmRSS KiB) of the imgdl that /usr/bin/time `time_pid` runs."""
    try:
        with open(f"/proc/{time_pid}/task/{time_pid}/children") as f:
            pid = int(f.read().split()[0])
        status = dict(line.split(":", 1) for line in open(f"/proc/{pid}/status"))
        hwm, rss = (int(status[k].split()[0]) for k in ("VmHWM", "VmRSS"))
        pos = 0
        for fd in os.listdir(f"/proc/{pid}/fd"):
            if os.readlink(f"/proc/{pid}/fd/{fd}") == list_path:
                with open(f"/proc/{pid}/fdinfo/{fd}") as f:
                    pos = int(f.readline().split()[1])
        return pos, hwm, rss
    except (OSError, IndexError, ValueError, KeyError):
        return None


def memory(args, server):
    # Distinct URLs, distinct names: every URL costs the planner a name and the run a result.
    if args.unreachable:
        # A port nothing listens on: after --unreachable-after (5) refused connections the host is given
        # up on and every later URL fails at once, without a request, yet is still read, planned,
        # scheduled, finished and reported: the whole program's per-URL path but the transfer, fast.
        base = f"http://127.0.0.1:{free_port()}/"
        path = write_list(os.path.join(args.workdir, f"unreachable-{args.n}.txt"), args.n,
                          lambda i: f"{base}u{i}.jpg\n")
    else:
        base = server.url("/missing/")
        path = write_list(os.path.join(args.workdir, f"missing-{args.n}-{server.port}.txt"), args.n,
                          lambda i: f"{base}u{i}.jpg\n")
    out = tempfile.mkdtemp(prefix="out-", dir=args.workdir)
    argv = [os.path.join(args.build_dir, "app", "imgdl"), "-i", path, "-o", out, "-q", "-j", str(args.workers)]
    if args.output_format == "webdataset":
        argv += ["--output-format", "webdataset", "--shard-size", str(args.shard_size)]
    if args.report:
        argv += ["--report", os.path.join(out, "..", "report-" + os.path.basename(out) + ".json")]
    rss_file = out + ".time"
    log(f"memory: {args.n:,} URLs ({'unreachable host' if args.unreachable else '404'}), {args.output_format}, -j {args.workers}; load {os.getloadavg()}")
    start = time.monotonic()
    proc = subprocess.Popen(["/usr/bin/time", "-f", "%M %e %U %S", "-o", rss_file] + argv,
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    line_bytes = os.path.getsize(path) / args.n
    # Samples while it runs: how far into the list it has read (the list's file offset, from fdinfo),
    # and its peak and current RSS, so the curve shows whether memory grows with the URLs taken in.
    next_sample = start + args.sample_s
    stderr = b""
    while proc.poll() is None:
        try:
            stderr += proc.communicate(timeout=max(0.1, next_sample - time.monotonic()))[1] or b""
        except subprocess.TimeoutExpired:
            pass
        if proc.poll() is not None:
            break
        next_sample += args.sample_s
        sample = sample_process(proc.pid, path)
        if sample:
            pos, hwm, rss = sample
            print(f"  t={time.monotonic() - start:7.0f} s  read ~{pos / line_bytes:11,.0f} URLs  peak RSS {hwm / 1024:6.1f} MiB"
                  f"  RSS {rss / 1024:6.1f} MiB  load {os.getloadavg()[0]:.1f}", flush=True)
    wall = time.monotonic() - start
    proc.stderr = None
    rss_kib, elapsed, user, sys_s = open(rss_file).read().split()[-4:]
    print(f"N={args.n} mode={args.output_format} exit={proc.returncode} peak_rss_mib={int(rss_kib) / 1024:.1f} "
          f"wall_s={float(elapsed):.1f} urls_per_s={args.n / float(elapsed):.0f} cpu_s={float(user) + float(sys_s):.1f} "
          f"load_end={os.getloadavg()[0]:.2f}")
    if proc.returncode not in (0, 1):
        print(stderr.decode(errors="replace")[-2000:])
    shutil.rmtree(out, ignore_errors=True)
    del wall


def csv_vs_files(args, server):
    base = server.url("/img/")
    csv = write_list(os.path.join(args.workdir, f"img-{args.n}-{server.port}.csv"), args.n,
                     lambda i: f"{base}p{i}.png,caption {i},{i}\n", header="url,caption,id")
    imgdl = os.path.join(args.build_dir, "app", "imgdl")
    common = ["-i", csv, "--caption-col", "caption", "-q", "-j", str(args.workers)]
    runs = {
        "webdataset": common + ["--output-format", "webdataset", "--shard-size", str(args.shard_size)],
        "files": common,
    }
    if args.report:
        for name in runs:
            runs[name] = runs[name] + ["--report", "REPORT"]
    times = {name: [] for name in runs}
    cpus = {name: [] for name in runs}
    ratios = []
    cpu_ratios = []
    log(f"csv-vs-files: {args.n:,} rows, 1 KiB PNGs, -j {args.workers}, {args.reps} pairs; load {os.getloadavg()}")
    loads = [os.getloadavg()[0]]
    for rep in range(args.reps + 1):  # the first pair warms the page cache and is not counted
        order = list(runs) if rep % 2 == 0 else list(reversed(runs))
        pair = {}
        for name in order:
            out = tempfile.mkdtemp(prefix=f"{name}-", dir=args.workdir)
            argv = [imgdl] + [a if a != "REPORT" else out + ".json" for a in runs[name]] + ["-o", out]
            start = time.monotonic()
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL)
            _, status, usage = os.wait4(proc.pid, 0)
            wall = time.monotonic() - start
            proc.returncode = os.waitstatus_to_exitcode(status)
            if proc.returncode != 0:
                raise RuntimeError(f"{name} exited {proc.returncode}")
            cpu = usage.ru_utime + usage.ru_stime
            shutil.rmtree(out)
            if os.path.exists(out + ".json"):
                os.remove(out + ".json")
            pair[name] = wall
            pair[name + "-cpu"] = cpu
            log(f"  pair {rep} {name:10s} {wall:7.3f} s  cpu {cpu:6.3f} s")
        loads.append(os.getloadavg()[0])
        if rep > 0:
            for name in runs:
                times[name].append(pair[name])
                cpus[name].append(pair[name + "-cpu"])
            ratios.append(pair["webdataset"] / pair["files"])
            cpu_ratios.append(pair["webdataset-cpu"] / pair["files-cpu"])
    for name, t in times.items():
        print(f"{name:10s} median {statistics.median(t):.3f} s  min {min(t):.3f}  max {max(t):.3f}  "
              f"rows/s {args.n / statistics.median(t):.0f}  cpu median {statistics.median(cpus[name]):.3f} s "
              f"(min {min(cpus[name]):.3f}, max {max(cpus[name]):.3f})")
    print(f"webdataset/files CPU: median of pairwise ratios {statistics.median(cpu_ratios):.3f} "
          f"(min {min(cpu_ratios):.3f}, max {max(cpu_ratios):.3f})")
    print(f"webdataset/files: median of pairwise ratios {statistics.median(ratios):.3f} "
          f"(min {min(ratios):.3f}, max {max(ratios):.3f}); load average {min(loads):.2f}-{max(loads):.2f}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build-dir", required=True)
    ap.add_argument("--workdir", default=os.path.join(tempfile.gettempdir(), "imgdl-scale"))
    ap.add_argument("--workers", type=int, default=64)
    ap.add_argument("--shard-size", type=int, default=10000)
    ap.add_argument("--port", type=int, default=0, help="nginx's port (default: a free one); lists name it")
    ap.add_argument("--report", action="store_true", help="write a JSON report too (and so digests)")
    sub = ap.add_subparsers(dest="what", required=True)
    m = sub.add_parser("memory")
    m.add_argument("--n", type=int, required=True)
    m.add_argument("--output-format", choices=("files", "webdataset"), default="files")
    m.add_argument("--unreachable", action="store_true", help="URLs to a closed port instead of 404s")
    m.add_argument("--sample-s", type=float, default=30, help="seconds between samples of RSS and progress")
    c = sub.add_parser("csv-vs-files")
    c.add_argument("--n", type=int, default=20000)
    c.add_argument("--reps", type=int, default=7)
    args = ap.parse_args()
    args.build_dir = os.path.abspath(args.build_dir)
    os.makedirs(args.workdir, exist_ok=True)
    server = Nginx(args.workdir, port=args.port)
    try:
        (memory if args.what == "memory" else csv_vs_files)(args, server)
    finally:
        server.stop()


if __name__ == "__main__":
    main()
