#!/usr/bin/env python3
"""Downloader benchmark: imgdl (pooled, sequential, the library directly) against curl --parallel,
wget2, aria2c and the seed's Python program, all fetching from imgdl-testserver on 127.0.0.1.

Driven by bench/run.sh, which builds the Release targets first; see bench/README.md. Standard library
only. Every run downloads into a fresh temporary directory, whose file count and total size are checked
(and every tool's exit status), so a tool that silently fails is reported as failed, never as fast.
Tools run round-robin within a repetition, in an order rotated every repetition, so drift hits them all
alike; tables show medians over the successful repetitions.

    python3 bench/harness.py --build-dir build/bench-rel [--scenario NAME ...] [--reps N] [--quick]
"""

import argparse
import datetime
import json
import math
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

import tls_server  # bench/tls_server.py, beside this file

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Debian's interpreter, not a pyenv/virtualenv shim: a shim costs ~1 s of start-up per run.
PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
DEFAULT_WORKERS = min(32, (os.cpu_count() or 1) + 4)  # Python's ThreadPoolExecutor default
PEERS = ("curl", "wget2", "aria2c", "seed-python")
HTTPS_TOOLS = ("imgdl", "curl", "wget2", "aria2c")
MiB = 1024 * 1024

# The seed's five Wikimedia files, served with sizes in the range of its JPEGs.
SEED_FILES = (
    ("Python_bivittatus_1701.jpg", 180_000),
    ("Python_Regius.jpg", 95_000),
    ("Baby_carpet_python_caudal_luring.jpg", 420_000),
    ("Rock_python_pratik.JPG", 260_000),
    ("Dulip_Wilpattu_Python1.jpg", 60_000),
)

# name -> parameters; "quick" overrides for the smoke run. workers None = every tool's default
# (imgdl and the seed use Python's min(32, cpus + 4); peers get that same number explicitly).
SCENARIOS = {
    "seed": dict(
        desc="the seed's 5 images (60-420 KB), 1 s latency, default workers: sequential vs pooled",
        files=SEED_FILES, latency_ms=1000, workers=None, reps=5,
        tools=("imgdl", "imgdl-seq", "library", "library-seq") + PEERS,
        quick=dict(latency_ms=300, reps=2),
    ),
    "many-small": dict(
        desc="2,000 x 20 KB, 20 ms latency, 64 workers",
        n=2000, size=20_000, latency_ms=20, workers=64, reps=5,
        tools=("imgdl", "library") + PEERS,
        quick=dict(n=300, reps=2),
    ),
    "large": dict(
        desc="8 x 50 MiB, no latency, 8 workers (throughput, peak RSS)",
        n=8, size=50 * MiB, latency_ms=0, workers=8, reps=5,
        tools=("imgdl", "library") + PEERS,
        quick=dict(n=4, size=8 * MiB, reps=2),
    ),
    "long": dict(
        desc="100,000 x 1 KiB, no latency, 64 workers (peak RSS vs list length)",
        n=100_000, size=1024, latency_ms=0, workers=64, reps=3,
        tools=("imgdl", "library"), fastest_peers=2,
        quick=dict(n=5000, reps=2),
    ),
    "executor": dict(desc="the executor's empty-task throughput (bench/executor_bench)", quick=dict()),
    # HTTPS against nginx (bench/tls_server.py): ECDSA P-256 certificate from a CA the bench makes.
    # `https`: proto h1 = a port without h2, h2 = ALPN offers h2; hosts = distinct loopback addresses,
    # URLs in host rotation (0 = 127.0.0.1 alone); rtt_ms = round trip added by the delaying proxy.
    "https-small-h1": dict(
        desc="HTTPS, HTTP/1.1 only, 2,000 x 20 KB from one host, 64 workers",
        n=2000, size=20_000, latency_ms=0, workers=64, reps=5, https=dict(proto="h1", hosts=0, rtt_ms=0),
        tools=HTTPS_TOOLS, quick=dict(n=300, reps=2),
    ),
    "https-small-h2": dict(
        desc="HTTPS, h2 offered, 2,000 x 20 KB from one host, 64 workers",
        n=2000, size=20_000, latency_ms=0, workers=64, reps=5, https=dict(proto="h2", hosts=0, rtt_ms=0),
        tools=HTTPS_TOOLS, quick=dict(n=300, reps=2),
    ),
    "https-large-h2": dict(
        desc="HTTPS, h2 offered, 8 x 20 MB from one host, 8 workers",
        n=8, size=20_000_000, latency_ms=0, workers=8, reps=5, https=dict(proto="h2", hosts=0, rtt_ms=0),
        tools=HTTPS_TOOLS, quick=dict(n=4, size=4_000_000, reps=2),
    ),
    "https-hosts": dict(
        desc="HTTPS, h2 offered, 500 hosts (127.0.x.y), 2,000 x 20 KB in host rotation, 64 workers",
        n=2000, size=20_000, latency_ms=0, workers=64, reps=5, https=dict(proto="h2", hosts=500, rtt_ms=0),
        tools=HTTPS_TOOLS, quick=dict(n=400, https=dict(proto="h2", hosts=100, rtt_ms=0), reps=2),
    ),
    "https-hosts-rtt": dict(
        desc="HTTPS, h2 offered, 500 hosts, 2,000 x 20 KB in host rotation, 64 workers, +20 ms round trip "
             "(delaying proxy)",
        n=2000, size=20_000, latency_ms=0, workers=64, reps=5, https=dict(proto="h2", hosts=500, rtt_ms=20),
        tools=HTTPS_TOOLS, quick=dict(n=400, https=dict(proto="h2", hosts=100, rtt_ms=20), reps=2),
    ),
    "https-hosts-bundle": dict(
        desc="HTTPS, h2 offered, 200 hosts, 400 x 20 KB in host rotation, 64 workers, trusting a system-sized "
             "CA file (the system bundle plus the bench's CA, as a real run trusts the system's CAs)",
        n=400, size=20_000, latency_ms=0, workers=64, reps=3,
        https=dict(proto="h2", hosts=200, rtt_ms=0, system_bundle=True),
        tools=HTTPS_TOOLS, quick=dict(n=100, https=dict(proto="h2", hosts=50, rtt_ms=0, system_bundle=True), reps=2),
    ),
}
# The HTTPS scenarios run only when named (`--scenario https` names them all): they need nginx.
ORDER = ("seed", "many-small", "large", "long", "executor")
HTTPS_ORDER = ("https-small-h1", "https-small-h2", "https-large-h2", "https-hosts", "https-hosts-rtt",
               "https-hosts-bundle")
# Peers for "long" when many-small did not run in the same invocation (its two fastest, measured).
LONG_DEFAULT_PEERS = ("curl", "wget2")


def log(msg):
    print(msg, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------- server


class Server:
    """imgdl-testserver on 127.0.0.1 (never another address), stopped with SIGTERM."""

    def __init__(self, binary, workdir, threads):
        port_file = os.path.join(workdir, "server.port")
        self.log = open(os.path.join(workdir, "server.log"), "wb")
        self.proc = subprocess.Popen(
            [binary, "--host", "127.0.0.1", "--port", "0", "--port-file", port_file, "--threads", str(threads)],
            stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"imgdl-testserver exited with status {self.proc.returncode}")
            try:
                with open(port_file) as f:
                    text = f.read().strip()
                if text:
                    self.port = int(text)
                    break
            except FileNotFoundError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("imgdl-testserver did not start")
            time.sleep(0.02)
        self.base = f"http://127.0.0.1:{self.port}"

    def url(self, name, size, latency_ms):
        q = f"?size={size}" + (f"&latency_ms={latency_ms}" if latency_ms else "")
        return f"{self.base}/img/{name}{q}"

    def content_length(self, url):
        req = urllib.request.Request(url.replace("latency_ms=", "x_latency_ms="), method="HEAD")
        with urllib.request.urlopen(req) as r:
            return int(r.headers["Content-Length"])

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


# ----------------------------------------------------------------------------------------------- tools


BASELINE = "@before"  # suffix of the baseline build's tools (--baseline-build)


class Tools:
    def __init__(self, build_dir, baseline_dir=None):
        self.imgdl = os.path.join(build_dir, "app", "imgdl")
        self.library = os.path.join(build_dir, "bench", "library_bench")
        self.baseline = Tools(baseline_dir) if baseline_dir else None
        self.executor_bench = os.path.join(build_dir, "bench", "executor_bench")
        self.server = os.path.join(build_dir, "tests", "support", "imgdl-testserver")
        self.seed = os.path.join(ROOT, "bench", "seed_download.py")
        self.which = {t: shutil.which(t) for t in ("curl", "wget2", "aria2c")}

    def available(self, tool):
        if tool.endswith(BASELINE):
            return self.baseline is not None and self.baseline.available(tool[: -len(BASELINE)])
        if tool.startswith("imgdl"):
            return os.access(self.imgdl, os.X_OK)
        if tool.startswith("library"):
            return os.access(self.library, os.X_OK)
        if tool == "seed-python":
            return os.access(PYTHON, os.X_OK)
        return self.which.get(tool) is not None

    def command(self, tool, lists, out, workers, cafile=None):
        """argv and cwd for one run; `lists` holds the URL list in plain and curl-config form; `cafile`
        the CA to trust over HTTPS."""
        if tool.endswith(BASELINE):
            return self.baseline.command(tool[: -len(BASELINE)], lists, out, workers, cafile)
        argv, cwd = self._command(tool, lists, out, workers)
        if cafile:
            flag = {"imgdl": ["--cacert", cafile], "curl": ["--cacert", cafile],
                    "wget2": [f"--ca-certificate={cafile}"], "aria2c": [f"--ca-certificate={cafile}"]}
            argv[1:1] = flag[tool]
        return argv, cwd

    def _command(self, tool, lists, out, workers):
        w = workers or DEFAULT_WORKERS
        j = [] if workers is None else ["-j", str(workers)]
        if tool == "imgdl":
            return [self.imgdl, "-i", lists["plain"], "-o", out, "-q"] + j, None
        if tool == "imgdl-seq":
            return [self.imgdl, "-i", lists["plain"], "-o", out, "-q", "--sequential"], None
        if tool == "library":
            return [self.library, lists["plain"], out] + j, None
        if tool == "library-seq":
            return [self.library, lists["plain"], out, "--sequential"], None
        if tool == "curl":
            return [self.which["curl"], "-sS", "--fail", "-Z", "--parallel-immediate", "--parallel-max", str(w),
                    "--remote-name-all", "--output-dir", out, "-K", lists["curl"]], None
        if tool == "wget2":
            # Files keep the query string in their names: wget2 1.99's --cut-file-get-vars creates
            # directories and drops files.
            return [self.which["wget2"], "-q", "--no-robots", f"--max-threads={w}",
                    "-P", out, "-i", lists["plain"]], None
        if tool == "aria2c":
            # One connection per file (-x1 -s1), W files at once; no preallocation (imgdl does none).
            return [self.which["aria2c"], "-q", "-j", str(w), "-x1", "-s1", "--max-connection-per-server=1",
                    "--allow-overwrite=true", "--auto-file-renaming=false", "--file-allocation=none",
                    "--console-log-level=warn", "--summary-interval=0", "--deferred-input=true",
                    "-d", out, "-i", lists["plain"]], None
        if tool == "seed-python":
            return [PYTHON, self.seed, lists["plain"], out] + ([] if workers is None else [str(workers)]), out
        raise ValueError(tool)

    def versions(self):
        out = {}
        for name, argv in (("curl", ["curl", "--version"]), ("wget2", ["wget2", "--version"]),
                           ("aria2c", ["aria2c", "--version"]), ("python", [PYTHON, "--version"]),
                           ("imgdl", [self.imgdl, "--version"])):
            try:
                text = subprocess.run(argv, capture_output=True, text=True, timeout=10).stdout
                out[name] = text.strip().splitlines()[0] if text.strip() else "?"
            except (OSError, subprocess.SubprocessError):
                out[name] = None
        return out


TIME = "/usr/bin/time" if os.access("/usr/bin/time", os.X_OK) else None


def run_measured(argv, cwd, log_prefix, timeout_s):
    """Runs argv; returns (exit status, wall seconds, peak RSS KiB, CPU seconds user+sys).

    Peak RSS: Linux carries ru_maxrss across exec(), so a child forked from this ~20 MiB Python process
    would report at least 20 MiB whatever it execs. GNU time (about 2 MiB) therefore forks the tool and
    reports its ru_maxrss (from wait4's rusage) with %M; os.wait4() on the tool directly is the fallback."""
    rss_file = log_prefix + ".rss"
    if TIME:
        argv = [TIME, "-f", "%M %U %S", "-o", rss_file, "--"] + argv
    with open(log_prefix + ".out", "wb") as out, open(log_prefix + ".err", "wb") as err:
        start = time.perf_counter()
        proc = subprocess.Popen(argv, cwd=cwd, stdout=out, stderr=err, stdin=subprocess.DEVNULL)
        timer = threading.Timer(timeout_s, proc.kill)
        timer.start()
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        timer.cancel()
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped by wait4; keep Popen consistent
    rss = usage.ru_maxrss
    cpu = usage.ru_utime + usage.ru_stime
    if TIME:
        try:
            with open(rss_file) as f:
                # "Command exited with non-zero status N" may precede the line.
                fields = f.read().strip().splitlines()[-1].split()
            rss, cpu = int(fields[0]), float(fields[1]) + float(fields[2])
        except (OSError, ValueError, IndexError):
            rss = 0
    return proc.returncode, wall, rss, cpu


def scan(directory):
    files = 0
    total = 0
    with os.scandir(directory) as it:
        for entry in it:
            if entry.is_file(follow_symlinks=False):
                files += 1
                total += entry.stat(follow_symlinks=False).st_size
            else:
                files += 1_000_000_000  # anything but a regular file is wrong
    return files, total


# ------------------------------------------------------------------------------------------ bandwidth


def measure_bandwidth(server, curl, workdir, quick):
    """Loopback bandwidth from imgdl-testserver: one large body to /dev/null with curl (best of 3), and 4
    parallel bodies with curl -Z; the larger figure is the bound's bandwidth (an optimistic bound)."""
    if not curl:
        return None
    size = (64 if quick else 256) * MiB
    single = []
    for i in range(3):
        r = subprocess.run([curl, "-sS", "--fail", "-o", "/dev/null", "-w", "%{size_download} %{time_total}",
                            server.url(f"bw_{i}.jpg", size, 0)], capture_output=True, text=True, check=True)
        got, secs = r.stdout.split()
        single.append(int(got) / float(secs))
    cfg = os.path.join(workdir, "bw.curl")
    par = 4
    with open(cfg, "w") as f:
        for i in range(par):
            f.write(f'url = "{server.url(f"bwp_{i}.jpg", size // par * 2, 0)}"\noutput = "/dev/null"\n')
    parallel = []
    for _ in range(2):
        start = time.perf_counter()
        subprocess.run([curl, "-sS", "--fail", "-Z", "--parallel-immediate", "-K", cfg], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # 7.88 shows its -Z meter despite -s
        parallel.append(size // par * 2 * par / (time.perf_counter() - start))
    return dict(single_stream_Bps=max(single), parallel4_Bps=max(parallel), Bps=max(max(single), max(parallel)))


# ------------------------------------------------------------------------------------------- scenarios


def build_https_lists(nginx, sc, workdir, name, proxy_port=None):
    """URLs for an HTTPS scenario: host i % hosts for URL i (or 127.0.0.1), through the proxy if any."""
    https = sc["https"]
    port = proxy_port or (nginx.h1_port if https["proto"] == "h1" else nginx.h2_port)
    addrs = nginx.hosts[: https["hosts"]] if https["hosts"] else ["127.0.0.1"]
    urls = [f"https://{addrs[i % len(addrs)]}:{port}/img/{name}_{i}.jpg?size={sc['size']}" for i in range(sc["n"])]
    plain = os.path.join(workdir, f"{name}.list")
    with open(plain, "w") as f:
        f.writelines(u + "\n" for u in urls)
    curl_cfg = os.path.join(workdir, f"{name}.curl")
    with open(curl_cfg, "w") as f:
        f.writelines(f'url = "{u}"\n' for u in urls)
    return dict(plain=plain, curl=curl_cfg), len(urls), sc["n"] * sc["size"]


def build_lists(server, sc, workdir, name):
    if "files" in sc:
        items = [(fname, size) for fname, size in sc["files"]]
    else:
        items = [(f"{name}_{i}.jpg", sc["size"]) for i in range(sc["n"])]
    urls = [server.url(fname, size, sc["latency_ms"]) for fname, size in items]
    lengths = {}
    expected_bytes = 0
    for (fname, size), url in zip(items, urls):
        if size not in lengths:
            lengths[size] = server.content_length(url)
        expected_bytes += lengths[size]
    plain = os.path.join(workdir, f"{name}.list")
    with open(plain, "w") as f:
        f.writelines(u + "\n" for u in urls)
    curl_cfg = os.path.join(workdir, f"{name}.curl")
    with open(curl_cfg, "w") as f:
        f.writelines(f'url = "{u}"\n' for u in urls)
    return dict(plain=plain, curl=curl_cfg), len(urls), expected_bytes


def summarize(runs, n, total_bytes, ideal):
    good = [r for r in runs if r["ok"]]
    s = dict(runs=runs, ok_runs=len(good), reps=len(runs))
    if good:
        wall = statistics.median(r["wall_s"] for r in good)
        s.update(wall_s=wall, wall_min_s=min(r["wall_s"] for r in good), wall_max_s=max(r["wall_s"] for r in good),
                 files_per_s=n / wall, mb_per_s=total_bytes / 1e6 / wall,
                 rss_mib=statistics.median(r["rss_kib"] for r in good) / 1024,
                 rss_max_mib=max(r["rss_kib"] for r in good) / 1024,
                 cpu_s=statistics.median(r["cpu_s"] for r in good),
                 x_ideal=wall / ideal if ideal else None)
        if all("tls" in r for r in good):
            s["tls"] = {k: statistics.median(r["tls"][k] for r in good)
                        for k in ("connections", "full", "resumed", "requests")}
            s["tls"]["protocols"] = good[-1]["tls"]["protocols"]
    return s


def run_scenario(name, sc, server, tools, workdir, download_root, reps, bandwidth, tool_filter, prior,
                 nginx=None, proxy_port=None):
    if "https" in sc:
        lists, n, total_bytes = build_https_lists(nginx, sc, workdir, name, proxy_port)
    else:
        lists, n, total_bytes = build_lists(server, sc, workdir, name)
    cafile = None
    if "https" in sc:
        cafile = nginx.system_bundle() if sc["https"].get("system_bundle") else nginx.cafile
    workers = sc["workers"]
    w = workers or DEFAULT_WORKERS
    latency = (sc["latency_ms"] + sc.get("https", {}).get("rtt_ms", 0)) / 1000
    bps = bandwidth["Bps"] if bandwidth else None
    ideal = math.ceil(n / w) * latency + (total_bytes / bps if bps else 0)

    wanted = list(sc["tools"])
    if sc.get("fastest_peers"):
        ranked = prior.get("many-small", {}).get("peer_ranking") or list(LONG_DEFAULT_PEERS)
        wanted += [p for p in ranked if p != "seed-python"][: sc["fastest_peers"]]
    if tool_filter:
        wanted = [t for t in wanted if t in tool_filter]
    if tools.baseline:  # the same build's tools from the baseline, interleaved with everything else
        wanted += [t + BASELINE for t in wanted if t.startswith(("imgdl", "library"))]
    skipped = [t for t in wanted if not tools.available(t)]
    active = [t for t in wanted if t not in skipped]
    for t in skipped:
        log(f"  {t}: not installed, skipped")

    log(f"== {name}: {sc['desc']}; N={n}, {total_bytes / 1e6:.1f} MB, W={w}, ideal {ideal:.3f} s, "
        f"{reps} reps, tools {', '.join(active)}")
    timeout = max(120.0, 30 * ideal + 60)
    load_start = list(os.getloadavg())  # other work on the machine shows up here
    runs = {t: [] for t in active}
    for rep in range(reps):
        k = rep % len(active)
        order = active[k:] + active[:k]
        for tool in order:
            out = tempfile.mkdtemp(prefix=f"{name}-{tool}-", dir=download_root)
            argv, cwd = tools.command(tool, lists, out, workers, cafile)
            prefix = os.path.join(workdir, f"{name}-{tool}-r{rep}")
            log_at = nginx.log_offset() if cafile else None
            status, wall, rss, cpu = run_measured(argv, cwd, prefix, timeout)
            tls = nginx.handshakes_since(log_at) if cafile else None
            files, got_bytes = scan(out)
            problems = []
            if status != 0:
                problems.append(f"exit status {status}")
            if files != n:
                problems.append(f"{files} files, expected {n}")
            if got_bytes != total_bytes:
                problems.append(f"{got_bytes} bytes, expected {total_bytes}")
            run = dict(rep=rep, wall_s=wall, rss_kib=rss, cpu_s=cpu, exit=status, files=files, bytes=got_bytes,
                       ok=not problems)
            if tls:
                run["tls"] = tls
            if problems:
                run["problems"] = problems
                with open(prefix + ".err", errors="replace") as f:
                    run["stderr_tail"] = f.read()[-400:]
            runs[tool].append(run)
            shutil.rmtree(out)
            log(f"  rep {rep + 1}/{reps} {tool:12s} {wall:8.3f} s  {rss / 1024:7.1f} MiB  cpu {cpu:6.2f} s"
                + (f"  conns {tls['connections']} (full {tls['full']}, resumed {tls['resumed']})" if tls else "")
                + ("" if not problems else "  FAILED: " + "; ".join(problems)))

    result = dict(desc=sc["desc"], n=n, bytes=total_bytes, workers=w, latency_ms=sc["latency_ms"], reps=reps,
                  https=sc.get("https"),
                  bandwidth=bandwidth, ideal_s=ideal, skipped_tools=skipped, loadavg_start=load_start,
                  loadavg_end=list(os.getloadavg()),
                  tools={t: summarize(runs[t], n, total_bytes, ideal) for t in active})
    # A peer that lost a file in any repetition is not a bar to meet.
    peers = {t: s["wall_s"] for t, s in result["tools"].items() if t in PEERS and s["ok_runs"] == s["reps"]}
    result["peer_ranking"] = sorted(peers, key=peers.get)
    fastest = result["peer_ranking"][0] if peers else None
    result["fastest_peer"] = fastest
    for t, s in result["tools"].items():
        s["x_fastest_peer"] = s["wall_s"] / peers[fastest] if fastest and "wall_s" in s else None
    return result


def run_executor_bench(tools, quick):
    if not os.access(tools.executor_bench, os.X_OK):
        log("  executor_bench not built, skipped")
        return None
    extra = ["--tasks", "20000", "--repeats", "1"] if quick else []
    log("== executor: " + " ".join([tools.executor_bench] + extra))
    text = subprocess.run([tools.executor_bench] + extra, capture_output=True, text=True, check=True).stdout
    data = subprocess.run([tools.executor_bench, "--json"] + extra, capture_output=True, text=True,
                          check=True).stdout
    try:
        parsed = json.loads(data)
    except ValueError:
        parsed = data
    return dict(command=" ".join(["executor_bench"] + extra), table=text.rstrip("\n"), json=parsed)


# ------------------------------------------------------------------------------------------- reporting


def fmt(v, spec):
    return "-" if v is None else format(v, spec)


def table(name, res):
    head = (f"{name}: {res['desc']} (N={res['n']}, {res['bytes'] / 1e6:.1f} MB, W={res['workers']}, "
            f"ideal bound {res['ideal_s']:.3f} s, medians of {res['reps']} reps; 1-min load average "
            f"{res['loadavg_start'][0]:.1f} at start, {res['loadavg_end'][0]:.1f} at end)")
    if res.get("https"):
        return https_table(name, res, head)
    rows = ["| tool | ok runs | wall s (median) | min-max s | files/s | MB/s | peak RSS MiB | CPU s | x ideal "
            "| x fastest peer |",
            "|---|---|---|---|---|---|---|---|---|---|"]
    for t, s in sorted(res["tools"].items(), key=lambda kv: kv[1].get("wall_s", float("inf"))):
        mark = " (fastest peer)" if t == res["fastest_peer"] else ""
        if "wall_s" not in s:
            rows.append(f"| {t} | 0/{s['reps']} | FAILED | | | | | | | |")
            continue
        rows.append(f"| {t}{mark} | {s['ok_runs']}/{s['reps']} | {s['wall_s']:.3f} | "
                    f"{s['wall_min_s']:.3f}-{s['wall_max_s']:.3f} | {s['files_per_s']:,.0f} | {s['mb_per_s']:,.1f} | "
                    f"{s['rss_mib']:.1f} | {s['cpu_s']:.2f} | {fmt(s['x_ideal'], '.2f')} | "
                    f"{fmt(s['x_fastest_peer'], '.2f')} |")
    return head + "\n\n" + "\n".join(rows)


def https_table(name, res, head):
    """Wall, CPU, RSS and the server's count of connections and TLS handshakes (medians)."""
    hosts = res["https"]["hosts"] or 1
    rows = ["| tool | ok runs | wall s (median) | min-max s | CPU s | peak RSS MiB | connections | full handshakes "
            "| resumed | protocol | x fastest peer (wall) | x curl (CPU) |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    curl_cpu = res["tools"].get("curl", {}).get("cpu_s")
    for t, s in sorted(res["tools"].items(), key=lambda kv: kv[1].get("wall_s", float("inf"))):
        mark = " (fastest peer)" if t == res["fastest_peer"] else ""
        if "wall_s" not in s:
            rows.append(f"| {t} | 0/{s['reps']} | FAILED | | | | | | | | | |")
            continue
        tls = s.get("tls", {})
        protos = ", ".join(sorted(tls.get("protocols", {})))
        rows.append(f"| {t}{mark} | {s['ok_runs']}/{s['reps']} | {s['wall_s']:.3f} | "
                    f"{s['wall_min_s']:.3f}-{s['wall_max_s']:.3f} | {s['cpu_s']:.2f} | {s['rss_mib']:.1f} | "
                    f"{tls.get('connections', 0):.0f} | {tls.get('full', 0):.0f} | {tls.get('resumed', 0):.0f} | "
                    f"{protos} | {fmt(s['x_fastest_peer'], '.2f')} | "
                    f"{fmt(s['cpu_s'] / curl_cpu if curl_cpu else None, '.2f')} |")
    return (head + f"; {hosts} host(s), round trip added {res['https']['rtt_ms']} ms\n\n" + "\n".join(rows))


def targets(results):
    out = []

    def add(what, ok, measured):
        out.append(dict(target=what, met=ok, measured=measured))

    def wall(sc, tool):
        return results.get(sc, {}).get("tools", {}).get(tool, {}).get("wall_s")

    for sc, res in results.items():
        if sc == "executor" or not res or "tools" not in res:
            continue
        s = res["tools"].get("imgdl", {})
        if s.get("x_fastest_peer") is not None:
            add(f"{sc}: imgdl pooled <= fastest peer ({res['fastest_peer']})", s["x_fastest_peer"] <= 1.0,
                f"{s['wall_s']:.3f} s vs {wall(sc, res['fastest_peer']):.3f} s = x{s['x_fastest_peer']:.2f}")
    for sc, res in results.items():
        if not res or not res.get("https") or "imgdl" not in res.get("tools", {}):
            continue
        s = res["tools"]["imgdl"]
        lost = s["reps"] - s["ok_runs"]
        add(f"{sc}: imgdl never loses a file", lost == 0, f"{s['ok_runs']}/{s['reps']} runs complete")
        hosts = res["https"]["hosts"]
        if hosts and "tls" in s:
            add(f"{sc}: imgdl TLS handshakes <= hosts ({hosts})", s["tls"]["full"] + s["tls"]["resumed"] <= hosts,
                f"{s['tls']['full']:.0f} full + {s['tls']['resumed']:.0f} resumed")
        curl = res["tools"].get("curl", {})
        if hosts and curl.get("cpu_s") and "cpu_s" in s:
            add(f"{sc}: imgdl CPU <= curl's", s["cpu_s"] <= curl["cpu_s"],
                f"{s['cpu_s']:.2f} vs {curl['cpu_s']:.2f} CPU-s = x{s['cpu_s'] / curl['cpu_s']:.2f}")
    if wall("many-small", "imgdl"):
        x = results["many-small"]["tools"]["imgdl"]["x_ideal"]
        add("many-small: imgdl <= 1.3 x ideal bound", x <= 1.3,
            f"{wall('many-small', 'imgdl'):.3f} s vs {results['many-small']['ideal_s']:.3f} s = x{x:.2f}")
    if wall("large", "imgdl"):
        r = results["large"]["tools"]["imgdl"]["rss_max_mib"]
        add("large: imgdl peak RSS <= 16 MiB", r <= 16, f"{r:.1f} MiB (max over reps)")
    if wall("long", "imgdl"):
        r = results["long"]["tools"]["imgdl"]["rss_max_mib"]
        add("long: imgdl peak RSS <= 64 MiB", r <= 64, f"{r:.1f} MiB (max over reps)")
    if wall("seed", "imgdl"):
        p = wall("seed", "imgdl")
        add("seed: imgdl pooled <= 1.1 s", p <= 1.1, f"{p:.3f} s")
        q = wall("seed", "imgdl-seq")
        if q:
            add("seed: speedup over sequential >= 4.5", q / p >= 4.5, f"{q:.3f} s / {p:.3f} s = {q / p:.2f}")
    return out


def machine():
    model = "?"
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines():
            if line.startswith("Model name"):
                model = line.split(":", 1)[1].strip()
    except OSError:
        pass
    try:
        rev = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain"], capture_output=True,
                               text=True).stdout.strip()
        rev += "+dirty" if dirty else ""
    except OSError:
        rev = "?"
    return dict(nproc=os.cpu_count(), cpu=model, kernel=platform.release(), git=rev)


# ------------------------------------------------------------------------------------------------ main


def default_download_root():
    """tmpfs keeps the disk out of the measurement: on a virtual disk, creating 100,000 small files costs
    more than fetching them over loopback, and it costs every tool alike."""
    shm = "/dev/shm"
    try:
        st = os.statvfs(shm)
        if os.access(shm, os.W_OK) and st.f_bavail * st.f_frsize >= 4 * 1024 * MiB:
            return shm
    except OSError:
        pass
    return tempfile.gettempdir()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build-dir", default=os.path.join(ROOT, "build", "bench-rel"))
    ap.add_argument("--scenario", action="append", choices=ORDER + HTTPS_ORDER + ("all", "https"),
                    help="run only this scenario (repeatable; default all plain-HTTP ones; `https` = every "
                    "HTTPS one, which need nginx)")
    ap.add_argument("--reps", type=int, help="repetitions per scenario (default: 5; long 3; quick 2)")
    ap.add_argument("--quick", action="store_true", help="smoke run with small N (about a minute)")
    ap.add_argument("--tools", help="comma-separated subset of tools, e.g. imgdl,library,curl")
    ap.add_argument("--json-out", help="default bench/results-<date>[-quick].json")
    ap.add_argument("--server-threads", type=int, default=256)
    ap.add_argument("--baseline-build", help="a second build dir (e.g. the commit before a change): its imgdl "
                    "and library runs are interleaved with this build's as imgdl@before, library@before")
    ap.add_argument("--keep-logs", action="store_true", help="keep the work dir (lists, tool output)")
    ap.add_argument("--download-root", help="where the per-run download dirs go (default: /dev/shm when it "
                    "is a writable tmpfs with 4 GiB free, else the system temp dir)")
    args = ap.parse_args()
    download_root = args.download_root or default_download_root()

    names = [s for s in ORDER if not args.scenario or "all" in args.scenario or s in args.scenario]
    names += [s for s in HTTPS_ORDER if args.scenario and ("https" in args.scenario or s in args.scenario)]
    tools = Tools(os.path.abspath(args.build_dir),
                  os.path.abspath(args.baseline_build) if args.baseline_build else None)
    if not os.access(tools.server, os.X_OK):
        sys.exit(f"harness: {tools.server} not built (run bench/run.sh)")
    tool_filter = set(args.tools.split(",")) if args.tools else None

    now = datetime.datetime.now()
    report = dict(date=now.isoformat(timespec="seconds"), command=" ".join(["bench/run.sh"] + sys.argv[1:]),
                  quick=args.quick, machine=machine(), versions=tools.versions(), python=PYTHON,
                  default_workers=DEFAULT_WORKERS, scenarios={})
    workdir = tempfile.mkdtemp(prefix="imgdl-bench-")
    report["download_root"] = download_root = tempfile.mkdtemp(prefix="imgdl-bench-dl-", dir=download_root)
    server = Server(tools.server, workdir, args.server_threads)
    log(f"imgdl-testserver on {server.base}; work dir {workdir}")
    nginx = None
    try:
        https_names = [nm for nm in names if "https" in SCENARIOS[nm]]
        if https_names:
            scs = [dict(SCENARIOS[nm], **(SCENARIOS[nm]["quick"] if args.quick else {})) for nm in https_names]
            nginx = tls_server.Nginx(workdir, tls_server.host_addresses(max(sc["https"]["hosts"] for sc in scs)))
            for size in sorted({sc["size"] for sc in scs}):  # the test server's JPEG-like bodies
                with urllib.request.urlopen(server.url("body.jpg", size, 0)) as r:
                    nginx.add_body(size, r.read())
            log(f"nginx on 127.0.0.1:{nginx.h1_port} (HTTP/1.1) and :{nginx.h2_port} (h2 offered, "
                f"{len(nginx.hosts)} more hosts)")
            report["nginx"] = subprocess.run([nginx.binary, "-v"], capture_output=True, text=True).stderr.strip()
        for name in names:
            sc = dict(SCENARIOS[name])
            if args.quick:
                sc.update(sc["quick"])
            if name == "executor":
                report["scenarios"][name] = run_executor_bench(tools, args.quick)
                continue
            reps = args.reps or sc["reps"]
            bw = None if "https" in sc and sc["size"] < MiB else measure_bandwidth(
                server, tools.which["curl"], workdir, args.quick)
            if bw:
                log(f"  loopback bandwidth: single stream {bw['single_stream_Bps'] / 1e6:.0f} MB/s, "
                    f"4 streams {bw['parallel4_Bps'] / 1e6:.0f} MB/s")
            proxy = None
            if sc.get("https", {}).get("rtt_ms"):
                https = sc["https"]
                addrs = nginx.hosts[: https["hosts"]] if https["hosts"] else ["127.0.0.1"]
                proxy = tls_server.DelayProxy(workdir, addrs, nginx.h1_port if https["proto"] == "h1"
                                              else nginx.h2_port, https["rtt_ms"] / 2, PYTHON)
            try:
                report["scenarios"][name] = run_scenario(name, sc, server, tools, workdir, download_root, reps, bw,
                                                         tool_filter, report["scenarios"], nginx,
                                                         proxy.port if proxy else None)
            finally:
                if proxy:
                    proxy.stop()
    finally:
        if nginx:
            nginx.stop()
        server.stop()
        shutil.rmtree(download_root, ignore_errors=True)
        if not args.keep_logs:
            shutil.rmtree(workdir, ignore_errors=True)

    report["targets"] = targets(report["scenarios"])
    m = report["machine"]
    print(f"\nimgdl downloader benchmark, {report['date']}, {m['nproc']} x {m['cpu']}, kernel {m['kernel']}, "
          f"git {m['git']}{' (QUICK: smaller N, targets not meaningful)' if args.quick else ''}\n")
    for name, res in report["scenarios"].items():
        if name == "executor":
            if res:
                print(f"executor: {res['command']}\n\n```\n{res['table']}\n```\n")
            continue
        bw = res["bandwidth"]
        print(table(name, res))
        if bw:
            print(f"\nloopback bandwidth (curl to /dev/null): {bw['single_stream_Bps'] / 1e6:.0f} MB/s single stream, "
                  f"{bw['parallel4_Bps'] / 1e6:.0f} MB/s 4 streams; bound uses {bw['Bps'] / 1e6:.0f} MB/s")
        print()
    print("Targets:")
    for t in report["targets"]:
        print(f"  [{'met' if t['met'] else 'MISSED'}] {t['target']}: {t['measured']}")

    out = args.json_out or os.path.join(ROOT, "bench",
                                        f"results-{now:%Y-%m-%d}{'-quick' if args.quick else ''}.json")
    with open(out, "w") as f:
        json.dump(report, f, indent=1)
    print(f"\nJSON: {os.path.relpath(out, os.getcwd())}")
    failed = [f"{sc}/{t}" for sc, r in report["scenarios"].items() if r and "tools" in r
              for t, s in r["tools"].items() if s["ok_runs"] < s["reps"]]
    if failed:
        print("runs that failed verification: " + ", ".join(failed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
