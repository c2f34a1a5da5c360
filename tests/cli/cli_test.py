#!/usr/bin/env python3
"""End-to-end tests of the `imgdl` program against the loopback test server.

One scenario per CTest test (see tests/cli/CMakeLists.txt):
    cli_test.py --imgdl PATH --server PATH [--expect-version X.Y.Z] [--node PATH] SCENARIO
Each scenario starts its own `imgdl-testserver --port 0` (the HTTPS ones tests/support/tls_server.js under
--node) when it needs one, works in a fresh temporary
directory and exits non-zero with a message on the first failed check. Standard library only.
"""

import argparse
import errno
import fcntl
import hashlib
import json
import os
import pty
import re
import select
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import termios
import threading
import time
import urllib.request

ANSI = re.compile(r"\x1b\[")
SGR_COLOUR = re.compile(r"\x1b\[[0-9;]*m")
CLOSING_LINE = re.compile(r"^It took \d+\.\d{3} second\(s\) to finish\.$", re.M)
RESULT_FIELDS = ["url", "path", "status", "http_status", "http_version", "bytes", "image_type", "width", "height",
                 "orientation", "sha256", "attempts", "elapsed_s", "error", "message", "index"]

ARGS = None
# Sanitizer builds (set by CMake) run slower: time bounds are multiplied by this.
SLACK = 4.0 if os.environ.get("IMGDL_SANITIZER") else 1.0


# check(), CheckFailed and the server live in tests/support/testlib.py, shared with the other drivers.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
import testlib  # noqa: E402
from testlib import SEED_NAMES, CheckFailed, check  # noqa: E402,F401


def Server(workdir, **options):
    """The loopback test server built alongside the imgdl under test."""
    return testlib.Server(ARGS.server, workdir, **options)


def run_imgdl(args, cwd, stdin_text=None, env=None, timeout=30):
    full_env = dict(os.environ)
    full_env.pop("NO_COLOR", None)
    full_env.update(env or {})
    proc = subprocess.run([ARGS.imgdl] + args, cwd=cwd, input=stdin_text.encode() if stdin_text is not None else None,
                          stdin=None if stdin_text is not None else subprocess.DEVNULL, capture_output=True,
                          env=full_env, timeout=timeout)
    return proc.returncode, proc.stdout.decode(errors="replace"), proc.stderr.decode(errors="replace")


def write_list(path, urls):
    with open(path, "w") as f:
        f.write("".join(u + "\n" for u in urls))


def output_files(directory):
    """The entries of an output directory but the run journal's `.imgdl`, sorted."""
    return sorted(name for name in os.listdir(directory) if name != ".imgdl")


def sha256_of(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def seed_urls(server, size=20000, latency_ms=None):
    query = f"?size={size}" + (f"&latency_ms={latency_ms}" if latency_ms is not None else "")
    return [server.url("/img/" + name + query) for name in SEED_NAMES]


def check_result_fields(result):
    check(list(result.keys())[:len(RESULT_FIELDS)] == RESULT_FIELDS,
          "a report result does not hold every DownloadResult field, in order", result)


def check_files_match_report(report, workdir):
    """Every ok result's file exists with the reported bytes and SHA-256."""
    for r in report["results"]:
        check_result_fields(r)
        if r["status"] != "ok":
            continue
        path = os.path.join(workdir, r["path"])
        check(os.path.isfile(path), f"missing downloaded file {r['path']}")
        check(os.path.getsize(path) == r["bytes"], f"{r['path']}: size differs from the report")
        check(sha256_of(path) == r["sha256"], f"{r['path']}: sha256 differs from the report")


def files_held_open(pid, directory):
    """The files under `directory` process `pid` has open: part files, and the unnamed (O_TMPFILE) files
    downloads are written to without resume, which /proc shows as "<directory>/#<inode> (deleted)"."""
    fd_dir = f"/proc/{pid}/fd"
    prefix = os.path.realpath(directory) + os.sep
    held = []
    try:
        fds = os.listdir(fd_dir)
    except FileNotFoundError:
        return held
    for fd in fds:
        try:
            target = os.readlink(os.path.join(fd_dir, fd))
        except OSError:
            continue
        if target.startswith(prefix):
            held.append(target)
    return held


# ----------------------------------------------------------------------------------------- scenarios

def scenario_help(tmp):
    code, out, err = run_imgdl(["--help"], tmp)
    check(code == 0, f"--help exited {code}", err)
    for needle in ["Usage: imgdl [OPTIONS] [URL...]", "Examples:", "-i,--input FILE", "--compare", "--on-exists MODE",
                   "--max-size SIZE", "--progress MODE", "Exit status:"]:
        check(needle in out, f"--help lacks {needle!r}", out)


def scenario_version(tmp):
    code, out, err = run_imgdl(["--version"], tmp)
    check(code == 0, f"--version exited {code}", err)
    m = re.fullmatch(r"imgdl (\d+\.\d+\.\d+) \(libcurl [0-9][0-9A-Za-z.\-]*\)\n", out)
    check(m is not None, "--version output is not 'imgdl X.Y.Z (libcurl V)'", out)
    if ARGS.expect_version:
        check(m.group(1) == ARGS.expect_version, f"--version says {m.group(1)}, project is {ARGS.expect_version}")


def scenario_bad_flags(tmp):
    cases = [
        (["--bogus", "http://127.0.0.1:1/a.jpg"], "--bogus"),
        (["-j", "0", "http://127.0.0.1:1/a.jpg"], "workers"),
        (["--on-exists", "maybe", "http://127.0.0.1:1/a.jpg"], "on-exists"),
        (["--max-size", "10Q", "http://127.0.0.1:1/a.jpg"], "max-size"),
        (["--progress", "fancy", "http://127.0.0.1:1/a.jpg"], "progress"),
        (["--min-size", "256", "http://127.0.0.1:1/a.jpg"], "min-size"),
        (["--max-aspect", "0.5", "http://127.0.0.1:1/a.jpg"], "max-aspect"),
        (["--max-pixels", "-1", "http://127.0.0.1:1/a.jpg"], "max-pixels"),
        (["--sequential", "--compare", "http://127.0.0.1:1/a.jpg"], "compare"),
        (["-c", "--no-clobber", "http://127.0.0.1:1/a.jpg"], "clobber"),
        ([], "no URLs"),
    ]
    for args, needle in cases:
        code, out, err = run_imgdl(args, tmp)
        check(code == 2, f"imgdl {' '.join(args)} exited {code}, expected 2", out, err)
        check(needle in err, f"imgdl {' '.join(args)}: stderr does not mention {needle!r}", err)
        check(os.listdir(tmp) == [], "a usage error created files", os.listdir(tmp))


def scenario_polite_to_hosts(tmp):
    """--per-host-rate, --unreachable-after and --no-host-pause: in --help, checked, and the report names a
    host given up on (host_unreachable) with a message saying why."""
    code, out, err = run_imgdl(["--help"], tmp)
    for needle in ["--per-host-rate N", "--unreachable-after N", "--no-host-pause", "scheme, name and port"]:
        check(needle in out, f"--help lacks {needle!r}", out)
    for args in (["--per-host-rate", "-1"], ["--per-host-rate", "fast"], ["--unreachable-after", "-2"]):
        code, out, err = run_imgdl(args + ["http://127.0.0.1:1/a.jpg"], tmp)
        check(code == 2, f"imgdl {' '.join(args)} exited {code}, expected 2", out, err)
    import socket
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        dead_port = s.getsockname()[1]  # nothing listens there once closed: connects are refused
    dead = f"http://127.0.0.1:{dead_port}"
    with Server(tmp) as server:
        urls = [dead + f"/img/d{i}.jpg" for i in range(12)] + seed_urls(server, size=2000)[:3]
        start = time.monotonic()
        code, out, err = run_imgdl(urls + ["-o", "out", "-j", "2", "--retries", "0", "--unreachable-after", "2",
                                           "--per-host-rate", "5", "--no-host-pause", "--report", "r.json"], tmp)
        took = time.monotonic() - start
    check(code == 1, f"exited {code}, expected 1", out, err)
    report = json.load(open(os.path.join(tmp, "r.json")))
    results = report["results"]
    live = [r for r in results if not r["url"].startswith(dead)]
    check(len(live) == 3 and all(r["status"] == "ok" for r in live), "the live host's URLs did not all succeed", live)
    given_up = [r for r in results if r["error"] == "host_unreachable"]
    # Two refusals in a row make the host unreachable; at most the two workers' attempts were made.
    check(len(given_up) >= 10, "the refused host's URLs were not given up on", results)
    for r in given_up:
        check(r["message"].startswith(f"host {dead} unreachable: 2 consecutive connect failures or timeouts; ")
              and r["status"] == "failed", "unexpected host_unreachable entry", r)
    check(any(r["attempts"] == 0 and r["message"].endswith("; not tried") for r in given_up),
          "no URL of the unreachable host was left untried", given_up)
    check(re.search(r"^FAILED d\d+\.jpg: host " + re.escape(dead) + r" unreachable: ", out, re.M),
          "no FAILED line names the unreachable host", out)
    check(report["totals"]["host_unreachable"] == len(given_up), "report totals", report["totals"])
    check(re.search(r"^Done: 3 ok, 0 skipped, 12 failed \(%d of them: host unreachable\) \(15 URLs\)" % len(given_up),
                    out, re.M), "the summary does not say how many URLs their host's state failed", out)
    # Three requests to the live host at 5 per second: at least 0.4 s between the first and the last.
    check(took >= 0.4, f"--per-host-rate 5 fetched 3 URLs of one host in {took:.3f} s", out)


def scenario_missing_input(tmp):
    code, out, err = run_imgdl(["-i", "no-such-list.txt", "-o", "out"], tmp)
    check(code == 2, f"exited {code}, expected 2", out, err)
    check("cannot read 'no-such-list.txt'" in err and "No such file or directory" in err,
          "no clear message for a missing input file", err)
    code, out, err = run_imgdl(["-i", ".", "-o", "out"], tmp)
    check(code == 2 and "is a directory" in err, "a directory as input is not exit 2 'is a directory'", code, err)
    check(not os.path.exists(os.path.join(tmp, "out")), "the output directory was created for nothing")


def scenario_all_ok(tmp):
    with Server(tmp) as server:
        urls = seed_urls(server, size=50000)
        write_list(os.path.join(tmp, "list.txt"), urls)
        code, out, err = run_imgdl(["-i", "list.txt", "-o", "downloads", "--report", "report.json"], tmp)
    check(code == 0, f"exited {code}, expected 0", out, err)
    for name in SEED_NAMES:
        check(re.search(r"^" + re.escape(name) + r" was downloaded \(48\.8 KiB, 1×1, in \d+\.\d\d s\)$", out, re.M),
              f"no 'was downloaded' line for {name}", out)
    check(CLOSING_LINE.search(out), "no closing 'It took N.NNN second(s) to finish.' line", out)
    check(re.search(r"^Done: 5 ok, 0 skipped, 0 failed \(5 URLs\); 244\.1 KiB in ", out, re.M), "no summary", out)
    report = json.load(open(os.path.join(tmp, "report.json")))
    check(report["exit_code"] == 0 and report["interrupted"] is False, "report exit_code/interrupted", report)
    check(report["mode"] == "pooled" and report["workers"] >= 1, "report mode/workers", report)
    # Results are in completion order; "index" is each one's position in the input.
    by_index = sorted(report["results"], key=lambda r: r["index"])
    check([r["index"] for r in by_index] == list(range(5)) and [r["url"] for r in by_index] == urls,
          "report indexes do not map the results back to the input order", report["results"])
    for r in report["results"]:
        check(r["status"] == "ok" and r["http_status"] == 200 and r["bytes"] == 50000 and r["attempts"] == 1
              and r["image_type"] == "jpeg" and r["error"] == "none" and len(r["sha256"]) == 64
              and r["elapsed_s"] > 0, "unexpected report entry", r)
    check_files_match_report(report, tmp)
    totals = report["totals"]
    check(totals["urls"] == 5 and totals["ok"] == 5 and totals["failed"] == 0 and totals["bytes"] == 250000,
          "report totals", totals)
    check(sorted(output_files(os.path.join(tmp, "downloads"))) == sorted(SEED_NAMES), "unexpected files",
          output_files(os.path.join(tmp, "downloads")))


def scenario_some_failed(tmp):
    with Server(tmp) as server:
        urls = [server.url("/img/good.jpg"), server.url("/status/404"), server.url("/html")]
        code, out, err = run_imgdl(urls + ["-o", "out", "--report", "r.json", "--retries", "0"], tmp)
    check(code == 1, f"exited {code}, expected 1", out, err)
    check(re.search(r"^FAILED 404: HTTP 404 Not Found$", out, re.M), "no FAILED line for the 404", out)
    check(re.search(r"^FAILED html: ", out, re.M), "no FAILED line for the HTML page", out)
    check(re.search(r"^good\.jpg was downloaded", out, re.M), "the good URL was not downloaded", out)
    check(re.search(r"^Done: 1 ok, 0 skipped, 2 failed \(3 URLs\)", out, re.M), "no summary", out)
    report = json.load(open(os.path.join(tmp, "r.json")))
    by_url = {r["url"]: r for r in report["results"]}
    r404 = by_url[urls[1]]
    check(r404["status"] == "failed" and r404["http_status"] == 404 and r404["error"] == "http_status"
          and r404["sha256"] == "", "404 entry", r404)
    check(by_url[urls[2]]["error"] == "not_image", "html entry", by_url[urls[2]])
    check(report["exit_code"] == 1 and report["totals"]["failed"] == 2, "report totals", report["totals"])
    check(sorted(output_files(os.path.join(tmp, "out"))) == ["good.jpg"], "only good.jpg should exist",
          output_files(os.path.join(tmp, "out")))


def scenario_skips_are_ok(tmp):
    with Server(tmp) as server:
        urls = seed_urls(server)[:2]
        code, out, err = run_imgdl(urls + ["-o", "out"], tmp)
        check(code == 0, f"first run exited {code}", out, err)
        code, out, err = run_imgdl(urls + ["-o", "out", "--no-clobber"], tmp)
    check(code == 0, f"a run where everything is skipped exited {code}, expected 0", out, err)
    check(len(re.findall(r"^\S+ skipped", out, re.M)) == 2, "expected two 'skipped' lines", out)
    check(re.search(r"^Done: 0 ok, 2 skipped, 0 failed", out, re.M), "no summary with 2 skipped", out)
    check(len(output_files(os.path.join(tmp, "out"))) == 2, "skip created new files", output_files(os.path.join(tmp, "out")))


def scenario_compare(tmp):
    with Server(tmp) as server:
        urls = seed_urls(server, size=30000, latency_ms=300)
        write_list(os.path.join(tmp, "list.txt"), urls)
        os.makedirs(os.path.join(tmp, "downloads"))
        # A file already there: the pooled copy must not replace it (default on-exists: rename).
        with open(os.path.join(tmp, "downloads", SEED_NAMES[0]), "wb") as f:
            f.write(b"mine")
        code, out, err = run_imgdl(["--compare", "-j", "5", "-i", "list.txt", "-o", "downloads", "--report", "r.json"],
                                   tmp)
    check(code == 0, f"exited {code}", out, err)
    header = re.search(r"^mode\s+workers\s+files ok\s+bytes\s+elapsed\s+files/s\s+MB/s\s+p50 file\s+p95 file\s+speedup$",
                       out, re.M)
    check(header, "no compare table header", out)
    seq = re.search(r"^sequential\s+1\s+5/5\s+146\.5 KiB\s+(\d+\.\d+) s\s+[\d.]+\s+[\d.]+\s+[\d.]+ s\s+[\d.]+ s\s+1\.00x$",
                    out, re.M)
    pooled = re.search(r"^pooled\s+5\s+5/5\s+146\.5 KiB\s+(\d+\.\d+) s\s+[\d.]+\s+[\d.]+\s+[\d.]+ s\s+[\d.]+ s\s+([\d.]+)x$",
                       out, re.M)
    # The seed's design, executor.map(download_image, urls), on as many threads as the pool has workers.
    per_url = re.search(
        r"^thread per URL\s+5\s+5/5\s+146\.5 KiB\s+(\d+\.\d+) s\s+[\d.]+\s+[\d.]+\s+[\d.]+ s\s+[\d.]+ s\s+([\d.]+)x$",
        out, re.M)
    ideal = re.search(r"^ideal pooled\s+5\s+-\s+-\s+(\d+\.\d+) s(\s+-){4}\s+([\d.]+)x$", out, re.M)
    check(seq and per_url and pooled and ideal, "compare table rows missing or malformed", out)
    rows = [line.split()[0] for line in out[header.end():].splitlines()[1:5]]
    check(rows == ["sequential", "thread", "pooled", "ideal"], "compare rows out of order", out)
    check(float(seq.group(1)) >= 1.5, "the sequential run was not sequential (5 x 300 ms)", out)
    check(float(per_url.group(1)) < float(seq.group(1)) / 2, "the thread-per-URL run did not overlap", out)
    check(float(pooled.group(1)) < float(seq.group(1)) / 2, "the pooled run was not faster", out)
    check(0.29 <= float(ideal.group(1)) < 0.9 * SLACK, "ideal pooled time should be about one file's time", out)
    check("Sequential run" in out and "Thread-per-URL run" in out and "Pooled run" in out, "no run headers", out)
    check(len(re.findall(r" was downloaded ", out)) == 15, "expected a line per file per run", out)
    report = json.load(open(os.path.join(tmp, "r.json")))
    runs = report["compare"]["runs"]
    check([r["mode"] for r in runs] == ["sequential", "thread per URL", "pooled"] and
          [r["workers"] for r in runs] == [1, 5, 5], "report compare runs", runs)
    for key in ["files_ok", "bytes", "elapsed_s", "files_per_s", "mb_per_s", "p50_s", "p95_s", "speedup"]:
        check(all(key in run for run in runs), f"compare run lacks {key}", runs)
    check(report["compare"]["ideal_pooled"]["workers"] == 5, "report ideal_pooled", report["compare"])
    check(len(report["compare"]["sequential_results"]) == 5, "report sequential_results")
    check_files_match_report(report, tmp)
    files = sorted(output_files(os.path.join(tmp, "downloads")))
    check(not any(f.startswith(".imgdl-compare") for f in files), "the scratch directory was left behind", files)
    check(open(os.path.join(tmp, "downloads", SEED_NAMES[0]), "rb").read() == b"mine", "an existing file was replaced")
    renamed = "Python_bivittatus_1701.1.jpg"
    check(sorted(files) == sorted(SEED_NAMES + [renamed]), "pooled files not kept in the output directory", files)
    check(report["results"][0]["path"] == os.path.join("downloads", renamed), "moved path not in the report",
          report["results"][0])


# A name as long as a name can be (255 bytes): its alternatives must be cut to fit.
LONG_STEM = "a" * 251


def seed_existing(directory, names):
    """`directory` holding a 4-byte file "mine" under each of `names`."""
    os.makedirs(directory)
    for name in names:
        with open(os.path.join(directory, name), "wb") as f:
            f.write(b"mine")


def directory_digests(directory):
    return {name: sha256_of(os.path.join(directory, name)) for name in output_files(directory)}


def outcomes_by_url(report):
    """{url: (status, kept file name)} from a report."""
    return {r["url"]: (r["status"], os.path.basename(r["path"])) for r in report["results"]}


def plain_and_compared(tmp, server_urls, existing, flags):
    """Runs a plain pooled imgdl and an `imgdl --compare` on the same URLs, each into its own output
    directory that already holds `existing`; returns (plain report, compare report) once both are done."""
    reports = []
    for name, extra in (("plain", []), ("compared", ["--compare"])):
        seed_existing(os.path.join(tmp, name), existing)
        code, out, err = run_imgdl(extra + flags + server_urls + ["-j", "3", "-o", name, "--report", name + ".json"],
                                   tmp)
        check(code == 0, f"the {name} run exited {code}", out, err)
        reports.append(json.load(open(os.path.join(tmp, name + ".json"))))
        files = output_files(os.path.join(tmp, name))
        check(not any(f.startswith(".imgdl-compare") for f in files), "a scratch directory was left behind", files)
    return reports


def check_compare_kept_what_a_plain_run_keeps(tmp, plain, compared):
    check(outcomes_by_url(compared) == outcomes_by_url(plain),
          "--compare kept files under other names or statuses than a plain pooled run",
          outcomes_by_url(plain), outcomes_by_url(compared))
    check(directory_digests(os.path.join(tmp, "compared")) == directory_digests(os.path.join(tmp, "plain")),
          "--compare left another output directory than a plain pooled run",
          sorted(output_files(os.path.join(tmp, "plain"))), sorted(output_files(os.path.join(tmp, "compared"))))


def scenario_compare_naming(tmp):
    with Server(tmp) as server:
        # Planned in input order: cat.jpg, cat.1.jpg and the long name. cat.jpg and the long name are
        # taken on disk, so the first URL moves on, past cat.1.jpg (planned for the second), to cat.2.jpg.
        urls = [server.url("/img/first/cat.jpg?size=1001"), server.url("/img/second/cat.jpg?size=1002"),
                server.url(f"/img/{LONG_STEM}.jpg?size=1003")]
        plain, compared = plain_and_compared(tmp, urls, ["cat.jpg", LONG_STEM + ".jpg"], [])
    expected = {urls[0]: ("ok", "cat.2.jpg"), urls[1]: ("ok", "cat.1.jpg"),
                urls[2]: ("ok", "a" * 249 + ".1.jpg")}
    check(outcomes_by_url(plain) == expected, "a plain pooled run did not name the files as planned",
          outcomes_by_url(plain))
    check_compare_kept_what_a_plain_run_keeps(tmp, plain, compared)
    for name, size in (("cat.2.jpg", 1001), ("cat.1.jpg", 1002), ("cat.jpg", 4), (LONG_STEM + ".jpg", 4)):
        check(os.path.getsize(os.path.join(tmp, "compared", name)) == size, f"{name} does not hold the expected file")
    check(compared["compare"]["runs"][0]["files_ok"] == 3, "the sequential run did not download every URL afresh",
          compared["compare"]["runs"][0])


def scenario_compare_on_exists(tmp):
    with Server(tmp) as server:
        # photo has no extension: it is saved as photo.jpg, so photo.jpg counts as its file.
        urls = [server.url("/img/cat.jpg?size=2000"), server.url("/img/photo?size=2000"),
                server.url("/img/new.jpg?size=2000")]
        cases = [
            ([], {urls[0]: ("ok", "cat.1.jpg"), urls[1]: ("ok", "photo.1.jpg"), urls[2]: ("ok", "new.jpg")}),
            (["--no-clobber"], {urls[0]: ("skipped", "cat.jpg"), urls[1]: ("skipped", "photo"),
                                urls[2]: ("ok", "new.jpg")}),
            (["-c"], {urls[0]: ("skipped", "cat.jpg"), urls[1]: ("skipped", "photo"), urls[2]: ("ok", "new.jpg")}),
            (["--on-exists", "overwrite"], {urls[0]: ("ok", "cat.jpg"), urls[1]: ("ok", "photo.jpg"),
                                            urls[2]: ("ok", "new.jpg")}),
        ]
        for flags, expected in cases:
            case_dir = os.path.join(tmp, f"case{len(os.listdir(tmp))}")
            os.makedirs(case_dir)
            plain, compared = plain_and_compared(case_dir, urls, ["cat.jpg", "photo.jpg"], flags)
            check(outcomes_by_url(plain) == expected, f"a plain pooled run with {flags} did not do as documented",
                  outcomes_by_url(plain))
            check_compare_kept_what_a_plain_run_keeps(case_dir, plain, compared)


def scenario_stdin(tmp):
    with Server(tmp) as server:
        urls = seed_urls(server)
        code, out, err = run_imgdl(["-i", "-", "-o", "out"], tmp, stdin_text="# from a pipe\n\n" + "\n".join(urls) + "\n")
    check(code == 0, f"exited {code}", out, err)
    check(sorted(output_files(os.path.join(tmp, "out"))) == sorted(SEED_NAMES), "stdin URLs not all downloaded",
          output_files(os.path.join(tmp, "out")))


def scenario_invalid_lines(tmp):
    with Server(tmp) as server:
        good = seed_urls(server)[:2]
        lines = ["# a list with mistakes", good[0], "   ", "not a url", "ftp://127.0.0.1/x.jpg",
                 "  " + good[1] + "  \t", "http://h/a.jpg # comment"]
        write_list(os.path.join(tmp, "list.txt"), lines)
        code, out, err = run_imgdl(["-i", "list.txt", "-o", "out", "--report", "r.json"], tmp)
    check(code == 1, f"a list with invalid lines exited {code}, expected 1", out, err)
    for n in (4, 5, 7):
        check(re.search(rf"^imgdl: list\.txt:{n}: skipped invalid line ", err, re.M), f"line {n} not reported", err)
    check(not re.search(r"list\.txt:(1|2|3|6):", err), "a valid, blank or comment line was reported", err)
    check(sorted(output_files(os.path.join(tmp, "out"))) == sorted(SEED_NAMES[:2]), "the valid lines were not downloaded",
          output_files(os.path.join(tmp, "out")))
    check(re.search(r"^Done: 2 ok, 0 skipped, 0 failed, 3 invalid lines \(2 URLs\)", out, re.M), "summary", out)
    report = json.load(open(os.path.join(tmp, "r.json")))
    check([e["line"] for e in report["invalid_lines"]] == [4, 5, 7], "report invalid_lines", report["invalid_lines"])
    check(report["totals"]["invalid_lines"] == 3 and report["totals"]["ok"] == 2, "report totals", report["totals"])


def scenario_piped_plain(tmp):
    with Server(tmp) as server:
        urls = seed_urls(server, latency_ms=150) + [server.url("/status/404")]
        # auto and even an explicit bars request on a pipe: colour never goes to a pipe.
        code, out, err = run_imgdl(urls + ["-o", "out"], tmp)
    check(code == 1, f"exited {code}", out, err)
    check(not ANSI.search(out) and not ANSI.search(err), "escape sequences in piped output", repr(out), repr(err))
    lines = out.splitlines()
    check(len(lines) == 8, "expected 6 file lines, the summary and the closing line", out)
    check(all(re.fullmatch(r"\S+ was downloaded \(19\.5 KiB, 1×1, in \d+\.\d\d s\)|FAILED 404: HTTP 404 Not Found", l)
              for l in lines[:6]), "unexpected per-file lines", out)
    check(CLOSING_LINE.fullmatch(lines[-1]), "the last line is not the closing line", out)


def scenario_image_checks(tmp):
    with Server(tmp) as server:
        # The test server's BMPs are 1024 pixels wide and a few high; its JPEGs 1×1.
        urls = [server.url("/img/a.jpg"), server.url("/img/wide.bmp"), server.url("/img/cut.png?cut=5000")]
        code, out, err = run_imgdl(urls + ["-o", "out", "--max-aspect", "4", "--retries", "0",
                                           "--report", "report.json"], tmp)
        check(code == 1, f"exited {code}, expected 1", out, err)
        check(re.search(r"^a\.jpg was downloaded \(19\.5 KiB, 1×1, in \d+\.\d\d s\)$", out, re.M),
              "no finished line with the image's size", out)
        check(re.search(r"^FAILED wide\.bmp: filtered: 1024x\d+ has an aspect ratio of \d+, over the limit of 4$",
                        out, re.M), "the wide image was not filtered", out)
        check("FAILED cut.png: incomplete image: PNG ends before its IEND chunk (cut at 5000 bytes)" in out,
              "the cut image was not refused as incomplete", out)
        check(sorted(output_files(os.path.join(tmp, "out"))) == ["a.jpg"], "only the whole image may be kept",
              output_files(os.path.join(tmp, "out")))
        report = json.load(open(os.path.join(tmp, "report.json")))
        by_name = {r["url"].split("/")[-1].split("?")[0]: r for r in report["results"]}
        check(by_name["a.jpg"]["width"] == 1 and by_name["a.jpg"]["format"] == "jpeg", "a.jpg's size", by_name)
        check(by_name["wide.bmp"]["error"] == "filtered" and by_name["wide.bmp"]["width"] == 1024,
              "wide.bmp's report entry", by_name["wide.bmp"])
        check(by_name["cut.png"]["error"] == "corrupt_image", "cut.png's report entry", by_name["cut.png"])

        code, out, err = run_imgdl([server.url("/img/tiny.jpg"), "-o", "out2", "--min-size", "2x2"], tmp)
        check(code == 1 and "FAILED tiny.jpg: filtered: 1x1 is smaller than the minimum 2x2" in out,
              "--min-size did not filter a 1×1 image", out, err)


def scenario_table_input(tmp):
    import gzip
    with Server(tmp) as server:
        a, b, c = (server.url(f"/img/{n}") for n in ("a.jpg", "b.png", "c.gif"))
        csv = (f'id,url,caption,lang\r\n1,{a},"a cat, ""Tom""",en\r\n2,not a url,x,fr\r\n'
               f'3,"{b}","two\nlines",de\r\n4,"{c},never closed\r\n5,{c},last,en\r\n')
        with gzip.open(os.path.join(tmp, "list.csv.gz"), "wt", newline="") as f:
            f.write(csv)
        code, out, err = run_imgdl(["-i", "list.csv.gz", "--caption-col", "caption", "--keep-cols", "lang",
                                    "-o", "out", "--report", "report.json"], tmp)
        check(code == 1, f"exited {code}, expected 1 (two bad rows)", out, err)
        check("list.csv.gz:3: skipped invalid line \"not a url\"" in err, "bad URL row not reported", err)
        check("list.csv.gz:6: skipped invalid line: unterminated quoted field" in err,
              "unterminated quote not reported with its line", err)
        check(sorted(output_files(os.path.join(tmp, "out"))) == ["a.jpg", "b.png", "c.gif"], "files",
              output_files(os.path.join(tmp, "out")))
        report = json.load(open(os.path.join(tmp, "report.json")))
        rows = sorted(report["results"], key=lambda r: r["index"])
        check([r.get("caption") for r in rows] == ['a cat, "Tom"', "two\nlines", "last"], "captions", rows)
        check([r.get("columns") for r in rows] == [{"lang": "en"}, {"lang": "de"}, {"lang": "en"}], "columns", rows)
        check([e["line"] for e in report["invalid_lines"]] == [3, 6], "invalid lines", report["invalid_lines"])
        # Rerun: the rows come back from the run journal with their captions and columns, nothing is fetched.
        before = server_hits(server)
        code, out, err = run_imgdl(["-i", "list.csv.gz", "--caption-col", "caption", "--keep-cols", "lang",
                                    "-o", "out", "--report", "rerun.json"], tmp)
        check(code == 1 and server_hits(server) == before, f"the rerun exited {code} or fetched again", out, err)
        rerun = json.load(open(os.path.join(tmp, "rerun.json")))
        check(sorted(rerun["results"], key=lambda r: r["index"]) == [dict(r, earlier_run=True) for r in rows],
              "the rerun's rows differ from the first run's", rerun["results"], rows)
        check([e["line"] for e in rerun["invalid_lines"]] == [3, 6], "the rerun's invalid lines", rerun["invalid_lines"])

        with open(os.path.join(tmp, "list.jsonl"), "w") as f:
            f.write(json.dumps({"url": a, "caption": "cat", "w": 640}) + "\n[1]\n")
        code, out, err = run_imgdl(["-i", "list.jsonl", "-o", "out2", "--json"], tmp)
        check(code == 1 and "list.jsonl:2: skipped invalid line \"[1]\": not a JSON object" in err,
              "a JSON line that is not an object", out, err)
        check(json.loads(out)["results"][0]["columns"] == {"caption": "cat", "w": "640"}, "JSON columns", out)

        code, out, err = run_imgdl(["-i", "list.csv.gz", "--url-col", "link", "-o", "out3"], tmp)
        check(code == 2, f"a missing URL column exited {code}, expected 2", out, err)
        check("no URL column 'link' in the header (its columns: id, url, caption, lang)" in err,
              "the missing column is not named", err)
        check(not os.path.exists(os.path.join(tmp, "out3")), "a usage error fetched or created files")


def scenario_webdataset(tmp):
    import tarfile
    with Server(tmp) as server:
        rows = [f"{server.url('/img/i' + str(i) + '.jpg')},cap {i},{i}" for i in range(5)]
        rows.append(f"{server.url('/status/404')},missing,5")
        with open(os.path.join(tmp, "list.csv"), "w") as f:
            f.write("url,caption,id\n" + "\n".join(rows) + "\n")
        code, out, err = run_imgdl(["-i", "list.csv", "--caption-col", "caption", "-o", "shards",
                                    "--output-format", "webdataset", "--shard-size", "4"], tmp)
    check(code == 1, f"exited {code}, expected 1 (one 404)", out, err)
    shards = os.path.join(tmp, "shards")
    check(output_files(shards) == ["00000.tar", "00000_stats.json", "00001.tar", "00001_stats.json"],
          "expected two whole shards and their stats, nothing else", os.listdir(shards))
    with tarfile.open(os.path.join(shards, "00000.tar")) as t:
        names = t.getnames()
        # Samples in completion order, each one's members together.
        check(sorted(names) == [f"00000000{i}.{e}" for i in range(4) for e in ("jpg", "json", "txt")], "shard 0", names)
        check(all(names[k].split(".")[0] == names[k - k % 3].split(".")[0] for k in range(len(names))),
              "a sample's members are not together", names)
        sample = json.loads(t.extractfile("000000002.json").read())
        check(sample["caption"] == "cap 2" and sample["id"] == "2" and sample["width"] == 1
              and len(sample["sha256"]) == 64, "a sample's JSON", sample)
        check(t.extractfile("000000002.txt").read() == b"cap 2", "a sample's caption")
    stats = json.load(open(os.path.join(shards, "00001_stats.json")))
    check(stats["ok"] == 1 and stats["failed"] == 1 and stats["errors"] == {"http_status": 1}, "stats", stats)
    check(stats["failed_rows"] == {"http_status": [1]}, "the stats do not list the failed row", stats)


def scenario_webdataset_rerun(tmp):
    # Shard numbers come from row positions: a rerun into the same directory skips the rows of every
    # shard already published (never replaces its tar) and fetches the rest; an interrupted shard is
    # not published, so its rows are fetched again.
    import tarfile
    with Server(tmp) as server:
        rows = [f"{server.url('/img/r' + str(i) + '.jpg')},cap {i}" for i in range(6)]
        with open(os.path.join(tmp, "list.csv"), "w") as f:
            f.write("url,caption\n" + "\n".join(rows) + "\n")
        args = ["-i", "list.csv", "--caption-col", "caption", "-o", "shards", "--output-format", "webdataset",
                "--shard-size", "4", "--report", "r.json"]
        shards = os.path.join(tmp, "shards")
        os.makedirs(shards)
        with open(os.path.join(shards, "00001.tar"), "wb") as f:
            f.write(b"a shard published by another run")
        code, out, err = run_imgdl(args, tmp)
        check(code == 0, f"first run exited {code}", out, err)
        check(open(os.path.join(shards, "00001.tar"), "rb").read() == b"a shard published by another run",
              "a published shard was replaced")
        report = json.load(open(os.path.join(tmp, "r.json")))
        skipped = sorted(r["index"] for r in report["results"] if r["status"] == "skipped")
        check(skipped == [4, 5], "the rows of shard 1 are not the ones skipped", skipped)
        check(all("00001.tar is already published" in r["message"] and r["attempts"] == 0
                  for r in report["results"] if r["index"] >= 4), "a published shard's row was fetched", report)
        with tarfile.open(os.path.join(shards, "00000.tar")) as t:
            check(sorted(n for n in t.getnames() if n.endswith(".jpg")) == [f"00000000{i}.jpg" for i in range(4)],
                  "shard 0", t.getnames())
        check(all(r["key"] == f"0000{r['index'] // 4}000{r['index'] % 4}" for r in report["results"]),
              "a row's sample key is not in the report", report["results"])
        check(all(r["path"] == os.path.join("shards", "00000.tar") for r in report["results"] if r["index"] < 4),
              "a sample's path is not its shard", report["results"])
        before = open(os.path.join(shards, "00000.tar"), "rb").read()
        for extra in ([], ["--no-journal"]):  # from the run journal, then from the published shards alone
            hits = server_hits(server)
            code, out, err = run_imgdl(args + extra, tmp)
            check(code == 0, f"rerun exited {code}", out, err)
            check(server_hits(server) == hits, "the rerun fetched rows of published shards", extra)
            check(open(os.path.join(shards, "00000.tar"), "rb").read() == before, "the rerun replaced shard 0")
            report = json.load(open(os.path.join(tmp, "r.json")))
            check(all(r["attempts"] == 0 or r.get("earlier_run") for r in report["results"]),
                  "a rerun fetched a row", report["results"])
        check((report["totals"]["skipped"], report["totals"]["earlier_run"]) == (6, 0),
              "without the journal, every row of a published shard is skipped", report["totals"])
    check(output_files(shards) == ["00000.tar", "00000_stats.json", "00001.tar"],
          "unexpected files in the output directory", os.listdir(shards))


def scenario_webdataset_sigint(tmp):
    # Ctrl-C before a shard is whole: nothing is published (a rerun must fetch its rows again, and it
    # would skip the rows of any shard it finds), and no .part file or scratch file is left.
    with Server(tmp) as server:
        urls = [server.url(f"/img/w{i}.jpg?size=300")
                for i in range(3)] + [server.url(f"/img/slow{i}.jpg?latency_ms=5000") for i in range(3)]
        out_dir = os.path.join(tmp, "shards")
        proc = subprocess.Popen([ARGS.imgdl, "-o", out_dir, "-j", "3", "--output-format", "webdataset",
                                 "--shard-size", "4"] + urls, cwd=tmp, stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        scratch = os.path.join(out_dir, ".imgdl-downloading")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not (os.path.isdir(scratch) and files_held_open(proc.pid, scratch)):
            check(proc.poll() is None, "imgdl ended before the slow transfers started")
            time.sleep(0.02)
        check(files_held_open(proc.pid, scratch), "no transfer started within 10 s")
        proc.send_signal(signal.SIGINT)
        try:
            out, err = proc.communicate(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise CheckFailed("imgdl did not exit within 5 s of SIGINT")
    out, err = out.decode(errors="replace"), err.decode(errors="replace")
    check(proc.returncode == 130, f"exited {proc.returncode} after SIGINT, expected 130", out, err)
    check(os.listdir(out_dir) == [], "an interrupted run left shards or files behind", os.listdir(out_dir))


def tar_members(path):
    """{member name: bytes} of a tar, and the names in order."""
    import tarfile
    with tarfile.open(path) as t:
        names = t.getnames()
        return {n: t.extractfile(n).read() for n in names}, names


def scenario_webdataset_resume(tmp):
    """WebDataset output keeps the run journal too: a rerun fetches only the rows of shards a stopped run
    left unpublished, and --retry-failed repairs published shards, adding the samples that failed
    transiently (a repair stopped midway leaves the shard as it was and is tried again)."""
    with Server(tmp, threads=16) as server:
        paths = ["/img/a0.jpg", "/status/404", "/flaky/a2.jpg", "/img/a3.jpg",  # shard 0
                 "/img/b0.jpg", "/flaky/b1.jpg", "/img/b2.jpg", "/img/b3.jpg",  # shard 1
                 "/img/c0.jpg", "/img/slow.jpg"]  # shard 2
        # b1 fails at once the first time, then answers slowly; slow.jpg always does.
        query = {"/flaky/a2.jpg": "?fails=1&size=3000", "/flaky/b1.jpg": "?fails=1&size=3000&latency_ms=3000",
                 "/img/slow.jpg": "?size=3000&latency_ms=3000"}
        rows = [f"{server.url(p + query.get(p, '?size=3000'))},cap {i}" for i, p in enumerate(paths)]
        with open(os.path.join(tmp, "list.csv"), "w") as f:
            f.write("url,caption\n" + "\n".join(rows) + "\n")
        shards = os.path.join(tmp, "shards")
        command = ["-i", "list.csv", "--caption-col", "caption", "-o", "shards", "--output-format", "webdataset",
                   "--shard-size", "4", "--retries", "0", "-j", "4", "-q"]

        # 1. Stopped while shard 2 waits for its slow row: shards 0 and 1 are published, shard 2 is not.
        proc = subprocess.Popen([ARGS.imgdl] + command + ["--report", "r1.json"], cwd=tmp,
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 20 * SLACK
        while time.monotonic() < deadline:
            check(proc.poll() is None, "imgdl ended before it was stopped")
            if os.path.isdir(shards) and {"00000.tar", "00001.tar"} <= set(os.listdir(shards)) and \
                    all(server_hits(server).get(p, 0) == 1 for p in paths[8:]):
                break
            time.sleep(0.05)
        else:
            raise CheckFailed("shards 0 and 1 were not published in time", os.listdir(shards))
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=10 * SLACK)
        check(proc.returncode == 143, f"exited {proc.returncode} after SIGTERM, expected 143", out, err)
        check(output_files(shards) == ["00000.tar", "00000_stats.json", "00001.tar", "00001_stats.json"],
              "a stopped run published shard 2, or left files", os.listdir(shards))
        stats = json.load(open(os.path.join(shards, "00000_stats.json")))
        check(stats["failed_rows"] == {"http_status": [1, 2]}, "shard 0's failed rows", stats)

        # 2. The same command: only shard 2's rows (its three done ones too: their samples were never
        # published), nothing of shards 0 and 1.
        first = server_hits(server)
        code, out, err = run_imgdl(command + ["--report", "r2.json"], tmp)
        second = server_hits(server)
        check(code == 1, f"the rerun exited {code}, expected 1 (a 404 and two 503s)", out, err)
        check(hits_since(first, second, paths) == {p: int(p in paths[8:]) for p in paths},
              "the rerun fetched other rows than those of the unpublished shard", hits_since(first, second, paths))
        report = json.load(open(os.path.join(tmp, "r2.json")))
        rows_by_index = {r["index"]: r for r in report["results"]}
        check(sorted(rows_by_index) == list(range(10)) and
              all(rows_by_index[i].get("earlier_run") is True for i in range(8)) and
              all("earlier_run" not in rows_by_index[i] for i in range(8, 10)), "the rerun's report", report["results"])
        check(rows_by_index[0]["key"] == "000000000" and rows_by_index[0]["caption"] == "cap 0" and
              rows_by_index[0]["path"] == os.path.join("shards", "00000.tar"), "an earlier row's key, caption or path",
              rows_by_index[0])
        members, _ = tar_members(os.path.join(shards, "00002.tar"))
        check(sorted(n for n in members if n.endswith(".jpg")) == [f"00002000{i}.jpg" for i in range(2)], "shard 2",
              sorted(members))
        shard0_before, names0_before = tar_members(os.path.join(shards, "00000.tar"))
        shard1_before = open(os.path.join(shards, "00001.tar"), "rb").read()

        # 3. --retry-failed, stopped while shard 1's repair waits for its slow retry: shard 0 is repaired,
        # shard 1 stays as it was.
        proc = subprocess.Popen([ARGS.imgdl] + command + ["--retry-failed", "--report", "r3.json"], cwd=tmp,
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 20 * SLACK
        while time.monotonic() < deadline:
            check(proc.poll() is None, "imgdl ended before it was stopped")
            retried = hits_since(second, server_hits(server), paths)
            stats = json.load(open(os.path.join(shards, "00000_stats.json")))
            if retried == {p: int(p in ("/flaky/a2.jpg", "/flaky/b1.jpg")) for p in paths} and \
                    stats["failed_rows"] == {"http_status": [1]}:
                break  # shard 0 is repaired, b1's retry is waiting for its answer
            time.sleep(0.05)
        else:
            raise CheckFailed("the retries did not start in time", hits_since(second, server_hits(server), paths))
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=10 * SLACK)
        check(proc.returncode == 143, f"exited {proc.returncode} after SIGTERM, expected 143", out, err)
        check(open(os.path.join(shards, "00001.tar"), "rb").read() == shard1_before,
              "a repair stopped midway changed its shard")
        shard0, names0 = tar_members(os.path.join(shards, "00000.tar"))
        check(names0[:len(names0_before)] == names0_before and all(shard0[n] == b for n, b in shard0_before.items()),
              "the repaired shard lost or changed an earlier sample", names0_before, names0)
        check(sorted(set(shard0) - set(shard0_before)) == ["000000002.jpg", "000000002.json", "000000002.txt"],
              "the repaired shard does not hold exactly the retried sample more", sorted(shard0))
        stats = json.load(open(os.path.join(shards, "00000_stats.json")))
        check((stats["count"], stats["ok"], stats["failed"], stats["errors"]) == (4, 3, 1, {"http_status": 1}) and
              stats["failed_rows"] == {"http_status": [1]}, "the repaired shard's stats", stats)
        check(output_files(shards) == ["00000.tar", "00000_stats.json", "00001.tar", "00001_stats.json",
                                       "00002.tar", "00002_stats.json"], "files left behind", os.listdir(shards))

        # 4. --retry-failed again: only shard 1's retry (its repair was dropped), which now completes.
        third = server_hits(server)
        code, out, err = run_imgdl(command + ["--retry-failed", "--report", "r4.json"], tmp)
        fourth = server_hits(server)
        check(code == 1, f"the second --retry-failed exited {code}, expected 1 (the 404)", out, err)
        check(hits_since(third, fourth, paths) == {p: int(p == "/flaky/b1.jpg") for p in paths},
              "the second --retry-failed fetched other rows than the dropped repair's", hits_since(third, fourth, paths))
        members, _ = tar_members(os.path.join(shards, "00001.tar"))
        check(sorted(members) == [f"00001000{i}.{e}" for i in range(4) for e in ("jpg", "json", "txt")],
              "shard 1 after its repair", sorted(members))
        report = json.load(open(os.path.join(tmp, "r4.json")))
        totals = report["totals"]
        check((totals["urls"], totals["ok"], totals["failed"], totals["earlier_run"]) == (10, 9, 1, 9),
              "the totals after the repairs", totals)

        # 5. Nothing left to fetch: the 404 is permanent.
        code, out, err = run_imgdl(command + ["--retry-failed"], tmp)
        check(code == 1 and hits_since(fourth, server_hits(server), paths) == {p: 0 for p in paths},
              "a rerun of a repaired list fetched something", out, err)


def scenario_json_stdout(tmp):
    with Server(tmp) as server:
        urls = seed_urls(server)[:3]
        code, out, err = run_imgdl(urls + ["-o", "out", "--json"], tmp)
    check(code == 0, f"exited {code}", out, err)
    report = json.loads(out)  # stdout holds the report and nothing else
    check(len(report["results"]) == 3 and report["totals"]["ok"] == 3, "report on stdout", report)
    check_files_match_report(report, tmp)
    check(" was downloaded " in err and CLOSING_LINE.search(err), "human output is not on stderr", err)


def scenario_sigint(tmp):
    with Server(tmp) as server:
        urls = [server.url(f"/img/slow{i}.jpg?latency_ms=5000") for i in range(6)]
        out_dir = os.path.join(tmp, "out")
        proc = subprocess.Popen([ARGS.imgdl, "-o", out_dir, "-j", "3", "--report", "r.json"] + urls, cwd=tmp,
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        # The first transfers have started once imgdl holds their files open.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not files_held_open(proc.pid, out_dir):
            check(proc.poll() is None, "imgdl ended before any transfer started")
            time.sleep(0.02)
        check(files_held_open(proc.pid, out_dir), "no transfer started within 10 s")
        sent = time.monotonic()
        proc.send_signal(signal.SIGINT)
        try:
            out, err = proc.communicate(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise CheckFailed("imgdl did not exit within 5 s of SIGINT")
        took = time.monotonic() - sent
    out, err = out.decode(errors="replace"), err.decode(errors="replace")
    check(proc.returncode == 130, f"exited {proc.returncode} after SIGINT, expected 130", out, err)
    check(took < 1.0 * SLACK, f"took {took:.2f} s to exit after SIGINT (bound {1.0 * SLACK} s: within a second)")
    # The summary so far: URLs are pulled lazily and pulling stops at Ctrl-C, so how many of the six
    # were reached depends on timing (fewer under sanitizers); every one reached is cancelled.
    summary = re.search(r"^Interrupted: 0 ok, 0 skipped, 0 failed, (\d+) cancelled \((\d+) URLs\)", out, re.M)
    check(summary and summary.group(1) == summary.group(2) and 1 <= int(summary.group(1)) <= 6,
          "no summary so far", out)
    check(CLOSING_LINE.search(out), "no closing line", out)
    left = os.listdir(out_dir) if os.path.isdir(out_dir) else []
    check(left == [], "files left after the interrupt (no final names and no .part expected)", left)
    report = json.load(open(os.path.join(tmp, "r.json")))
    check(report["interrupted"] is True and report["exit_code"] == 130, "report not marked interrupted", report)
    check(all(r["status"] == "cancelled" for r in report["results"]), "not all cancelled", report["results"])


def server_hits(server):
    """The test server's requests per path so far (its /hits route, which is left out)."""
    with urllib.request.urlopen(server.url("/hits"), timeout=10) as response:
        hits = json.loads(response.read().decode(errors="replace"))
    hits.pop("/hits", None)
    return hits


def hits_since(before, after, paths):
    return {p: after.get(p, 0) - before.get(p, 0) for p in paths}


def scenario_resume(tmp):
    """A run stopped by SIGTERM mid-list, rerun: the server's counters show the rerun fetches nothing that
    had finished and everything that had not; --retry-failed fetches only the transient failures again."""
    with Server(tmp, threads=16) as server:  # threads to spare for /hits while imgdl's connections wait
        fast = [f"/img/f{i}.jpg" for i in range(6)]
        slow = [f"/img/s{i}.jpg" for i in range(3)]
        urls = ([server.url(p + "?size=3000") for p in fast] + [server.url("/status/404"),
                server.url("/flaky/t.jpg?fails=1&size=3000")] +
                [server.url(p + "?size=3000&latency_ms=4000") for p in slow])
        write_list(os.path.join(tmp, "list.txt"), urls)
        paths = fast + ["/status/404", "/flaky/t.jpg"] + slow
        command = ["-i", "list.txt", "-o", "out", "-j", "4", "--retries", "0", "-q"]
        proc = subprocess.Popen([ARGS.imgdl] + command + ["--report", "r1.json"], cwd=tmp, stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        # Stopped once the first eight have ended and the three slow ones are waiting for their answers.
        deadline = time.monotonic() + 20 * SLACK
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise CheckFailed("imgdl ended before it was stopped: " + proc.stderr.read().decode(errors="replace"))
            hits = server_hits(server)
            out_dir = os.path.join(tmp, "out")
            if all(hits.get(p, 0) == 1 for p in paths) and os.path.isdir(out_dir) and len(output_files(out_dir)) == 6:
                break
            time.sleep(0.05)
        else:
            raise CheckFailed("the list did not reach its slow URLs in time")
        # A second run on the same output directory is refused while this one holds the journal.
        code, out, err = run_imgdl(command, tmp)
        check(code == 2 and "in use by another imgdl run" in err, f"a second run exited {code}", out, err)
        check(server_hits(server) == hits, "the refused run fetched something", hits, server_hits(server))
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=10 * SLACK)
        check(proc.returncode == 143, f"exited {proc.returncode} after SIGTERM, expected 143", out, err)
        first = server_hits(server)
        report = json.load(open(os.path.join(tmp, "r1.json")))
        check(sorted(r["status"] for r in report["results"]).count("cancelled") == 3, "the slow ones were not cancelled",
              report["results"])

        code, out, err = run_imgdl(command + ["--report", "r2.json"], tmp)
        second = server_hits(server)
        check(code == 1, f"the rerun exited {code}, expected 1 (the 404 is still a failure)", out, err)
        check(hits_since(first, second, paths) == {p: int(p in slow) for p in paths},
              "the rerun fetched something that had finished, or not everything that had not",
              hits_since(first, second, paths))
        report = json.load(open(os.path.join(tmp, "r2.json")))
        rows = {r["index"]: r for r in report["results"]}
        check(sorted(rows) == list(range(len(urls))), "the rerun's report does not cover every row", sorted(rows))
        check(all(rows[i].get("earlier_run") is True for i in range(8)) and
              all("earlier_run" not in rows[i] for i in range(8, 11)), "earlier_run marks the wrong rows", rows)
        check(rows[6]["http_status"] == 404 and rows[7]["error"] == "http_status" and rows[7]["http_status"] == 503,
              "the failures were not reported as the first run saw them", rows[6], rows[7])
        check(all(rows[i]["path"] == os.path.join("out", f"f{i}.jpg") and rows[i]["sha256"] for i in range(6)),
              "the done rows lost their paths or digests", rows)
        totals = report["totals"]
        check((totals["urls"], totals["ok"], totals["failed"], totals["earlier_run"]) == (11, 9, 2, 8),
              "the rerun's totals do not cover the whole list", totals)
        check_files_match_report(report, tmp)
        check(output_files(os.path.join(tmp, "out")) == sorted(p.split("/")[-1] for p in fast + slow),
              "files", output_files(os.path.join(tmp, "out")))

        code, out, err = run_imgdl(command + ["--retry-failed", "--report", "r3.json"], tmp)
        third = server_hits(server)
        check(code == 1, f"--retry-failed exited {code}", out, err)
        check(hits_since(second, third, paths) == {p: int(p == "/flaky/t.jpg") for p in paths},
              "--retry-failed fetched something other than the transient failure", hits_since(second, third, paths))
        report = json.load(open(os.path.join(tmp, "r3.json")))
        check((report["totals"]["ok"], report["totals"]["failed"], report["totals"]["earlier_run"]) == (10, 1, 10),
              "--retry-failed's totals", report["totals"])

        code, out, err = run_imgdl(command[:-1], tmp)  # with the summary
        check(code == 1 and hits_since(third, server_hits(server), paths) == {p: 0 for p in paths},
              "a rerun of a finished list fetched something", out, err)
        check("(11 URLs, 11 of them done by an earlier run)" in out, "the summary does not say what was done before",
              out)


def scenario_resume_refusals(tmp):
    """A changed list or option is refused before any fetch, unless --force; stdin keeps no journal."""
    with Server(tmp) as server:
        urls = [server.url(f"/img/r{i}.jpg?size=2000") for i in range(3)]
        write_list(os.path.join(tmp, "list.txt"), urls)
        command = ["-i", "list.txt", "-o", "out", "-q"]
        code, out, err = run_imgdl(command, tmp)
        check(code == 0, f"the first run exited {code}", out, err)
        before = server_hits(server)
        write_list(os.path.join(tmp, "list.txt"), urls + [server.url("/img/r3.jpg?size=2000")])
        code, out, err = run_imgdl(command, tmp)
        check(code == 2 and "the list is not the same" in err and "--force" in err,
              f"a changed list was not refused clearly (exit {code})", err)
        write_list(os.path.join(tmp, "list.txt"), urls)
        code, out, err = run_imgdl(command + ["--no-clobber"], tmp)
        check(code == 2 and "on_exists was rename, now skip" in err, f"a changed option was not refused (exit {code})",
              err)
        check(server_hits(server) == before, "a refused run fetched something", before, server_hits(server))
        code, out, err = run_imgdl(command + ["--force"], tmp)
        check(code == 0, f"--force exited {code}", out, err)
        check(hits_since(before, server_hits(server), [f"/img/r{i}.jpg" for i in range(3)]) ==
              {f"/img/r{i}.jpg": 1 for i in range(3)}, "--force did not start over", server_hits(server))
        # A list on stdin cannot be read again: no journal, and the journal's flags are usage errors.
        code, out, err = run_imgdl(["-i", "-", "-o", "piped", "-q"], tmp, stdin_text="\n".join(urls) + "\n")
        check(code == 0 and not os.path.exists(os.path.join(tmp, "piped", ".imgdl")), "stdin kept a journal", err)
        code, out, err = run_imgdl(["-i", "-", "-o", "piped", "--retry-failed"], tmp, stdin_text=urls[0] + "\n")
        check(code == 2 and "-i FILE" in err, f"--retry-failed on stdin exited {code}", err)
        # Nor does a pipe by name (as `-i <(zcat list.gz)`): reading it for a checksum would consume the list.
        fifo = os.path.join(tmp, "list.fifo")
        os.mkfifo(fifo)
        writer = threading.Thread(target=lambda: open(fifo, "w").write("\n".join(urls) + "\n"))
        writer.start()
        code, out, err = run_imgdl(["-i", fifo, "-o", "fifo_out", "--report", "fifo.json"], tmp)
        writer.join()
        check(code == 0 and len(json.load(open(os.path.join(tmp, "fifo.json")))["results"]) == 3,
              f"a list from a pipe was not read whole (exit {code})", out, err)
        check(not os.path.exists(os.path.join(tmp, "fifo_out", ".imgdl")), "a pipe kept a journal")


def scenario_memory_bounded(tmp):
    # A long list streams: memory must not grow with it (the whole list and every result used to be
    # held, ~1.2 KiB a URL). Fewer URLs under a sanitizer, whose own memory makes RSS meaningless.
    sanitizer = bool(os.environ.get("IMGDL_SANITIZER"))
    count = 2000 if sanitizer else 20000
    time_bin = "/usr/bin/time"
    check(os.access(time_bin, os.X_OK), f"{time_bin} is missing (Debian package 'time': scripts/install-deps.sh)")
    with Server(tmp) as server:
        write_list(os.path.join(tmp, "list.txt"), [server.url(f"/img/m{i}.jpg?size=200") for i in range(count)])
        proc = subprocess.run([time_bin, "-f", "%M", "-o", "rss.txt", ARGS.imgdl, "-i", "list.txt", "-o", "out",
                               "-j", "32", "-q", "--report", "r.json"], cwd=tmp, stdin=subprocess.DEVNULL,
                              capture_output=True, timeout=120)
    err = proc.stderr.decode(errors="replace")
    check(proc.returncode == 0, f"exited {proc.returncode}", err[-2000:])
    rss_kib = int(open(os.path.join(tmp, "rss.txt")).read().split()[-1])
    print(f"{count} URLs: peak RSS {rss_kib / 1024:.1f} MiB")
    if not sanitizer:
        check(rss_kib <= 64 * 1024, f"peak RSS {rss_kib / 1024:.1f} MiB for {count} URLs, bound 64 MiB")
    report = json.load(open(os.path.join(tmp, "r.json")))
    indexes = {r["index"] for r in report["results"]}
    check(len(report["results"]) == count and indexes == set(range(count)),
          f"the report does not hold {count} results with distinct indexes 0..{count - 1}",
          len(report["results"]), len(indexes))
    check(report["totals"]["ok"] == count and report["exit_code"] == 0, "report totals", report["totals"])
    check(len(output_files(os.path.join(tmp, "out"))) == count, "not every file was downloaded")
    # Rerun with the server gone: every row is done, so nothing is fetched (a fetch would fail), and every
    # row is reported from the run journal, streamed, in the same bounded memory.
    proc = subprocess.run([time_bin, "-f", "%M", "-o", "rss2.txt", ARGS.imgdl, "-i", "list.txt", "-o", "out", "-j",
                           "32", "-q", "--report", "r2.json"], cwd=tmp, stdin=subprocess.DEVNULL, capture_output=True,
                          timeout=120)
    err = proc.stderr.decode(errors="replace")
    check(proc.returncode == 0, f"the rerun exited {proc.returncode}", err[-2000:])
    rss_kib = int(open(os.path.join(tmp, "rss2.txt")).read().split()[-1])
    print(f"{count} URLs rerun from the journal: peak RSS {rss_kib / 1024:.1f} MiB")
    if not sanitizer:
        check(rss_kib <= 64 * 1024, f"peak RSS {rss_kib / 1024:.1f} MiB rerunning {count} URLs, bound 64 MiB")
    report = json.load(open(os.path.join(tmp, "r2.json")))
    check(len(report["results"]) == count and {r["index"] for r in report["results"]} == set(range(count)) and
          all(r["earlier_run"] for r in report["results"]), "the rerun's report does not hold every row from the journal")
    check(report["totals"]["earlier_run"] == count and report["totals"]["ok"] == count, "rerun totals",
          report["totals"])


def run_in_pty(args, cwd, env_extra, columns=100, rows=30, timeout=30):
    """Runs imgdl with stdout and stderr on a pseudo-terminal; returns (exit code, everything it wrote)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
    env = dict(os.environ)
    env.pop("NO_COLOR", None)
    env.pop("COLUMNS", None)
    env["TERM"] = "xterm"
    env.update(env_extra)
    proc = subprocess.Popen([ARGS.imgdl] + args, cwd=cwd, stdin=subprocess.DEVNULL, stdout=slave, stderr=slave,
                            env=env, start_new_session=True)
    os.close(slave)
    chunks = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.2)
        if ready:
            try:
                data = os.read(master, 65536)
            except OSError as e:  # EIO: every writer closed the terminal
                if e.errno != errno.EIO:
                    raise
                break
            if not data:
                break
            chunks.append(data)
        elif proc.poll() is not None:
            break
    os.close(master)
    try:
        code = proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise CheckFailed("imgdl did not finish under the pseudo-terminal")
    return code, b"".join(chunks).decode(errors="replace")


ERASE = re.compile(r"\r\x1b\[(\d+)A\x1b\[J")


def pty_urls(server):
    # Bodies dripping for ~1 s so several frames get drawn; one size unknown (chunked).
    urls = [server.url(f"/drip?size=30000&bytes_per_sec=30000&n={i}") for i in range(3)]
    return urls + [server.url("/img/chunked.jpg?size=20000&chunked=1&latency_ms=400")]


def scenario_pty_bars(tmp):
    with Server(tmp) as server:
        code, text = run_in_pty(pty_urls(server) + ["-o", "out"], tmp, {})
    check(code == 0, f"exited {code}", text)
    erases = list(ERASE.finditer(text))
    check(len(erases) >= 5, "expected several redraws (cursor up + erase) of the live area", repr(text[:3000]))
    check(re.search(r"drip\s+\[[^\]]*\]\s+[\d.]+ (B|KiB)/29\.3 KiB\s+\d+%", SGR_COLOUR.sub("", text)),
          "no per-transfer bar with bytes/total and percent", repr(text[:3000]))
    check(re.search(r"Total \[[^\]]*\] \d/4 files", SGR_COLOUR.sub("", text)), "no overall bar", repr(text[:3000]))
    check(SGR_COLOUR.search(text), "no colour on a terminal without NO_COLOR", repr(text[:2000]))
    # The area is gone at the end: after the last erase only finished lines, the summary and the closing line.
    tail = SGR_COLOUR.sub("", text[erases[-1].end():])
    check("Total [" not in tail and "/29.3 KiB" not in tail, "the live area was not cleared at the end", repr(tail))
    check(re.search(r"^Done: 4 ok", tail, re.M) and CLOSING_LINE.search(tail.replace("\r", "")),
          "no summary after the live area", repr(tail))
    check(len(text.replace("\r", "").split("Total [")) - 1 <= 10 * 3 + 5,
          "the live area was redrawn more than 10 times a second")


def scenario_no_color(tmp):
    with Server(tmp) as server:
        code, text = run_in_pty(pty_urls(server) + [server.url("/status/404"), "-o", "out"], tmp, {"NO_COLOR": "1"})
    check(code == 1, f"exited {code}", text)
    check(ERASE.search(text), "no live bars on a terminal with NO_COLOR (cursor movement is still expected)",
          repr(text[:2000]))
    check(not SGR_COLOUR.search(text), "colour codes despite NO_COLOR", repr(text[:2000]))
    check("FAILED 404: HTTP 404 Not Found" in text, "no FAILED line", repr(text))


# ----------------------------------------------------------------------------- HTTPS (tls_server.js)

def tls_servers(tmp, *kinds):
    """TlsServers for (cert, h1) pairs, sharing one fresh set of certificates; needs --node."""
    check(ARGS.node, "this scenario needs --node (Node.js runs the TLS test server)")
    certs = testlib.make_certs(os.path.join(tmp, "certs"))
    return certs, [testlib.TlsServer(ARGS.node, certs, cert=cert, h1=h1) for cert, h1 in kinds]


def scenario_tls_untrusted(tmp):
    certs, (server,) = tls_servers(tmp, ("good", False))
    with server:
        url = server.url("/img/untrusted.jpg")
        code, out, err = run_imgdl([url, "-o", "out", "--report", "r.json", "--retries", "0"], tmp)
    check(code == 1, f"exited {code}, expected 1", out, err)
    line = re.search(r"^FAILED untrusted\.jpg: TLS verification failed: .*$", out, re.M)
    check(line, "no FAILED line naming the TLS failure", out)
    check("--cacert FILE" in line.group(0) and "--insecure" in line.group(0),
          "the failure should name the flags that fix it", line.group(0))
    check("DownloadOptions" not in out + err, "the CLI should not show library option names", out)
    result = json.load(open(os.path.join(tmp, "r.json")))["results"][0]
    check(result["error"] == "tls" and "--cacert FILE" in result["message"] and "--insecure" in result["message"],
          "the report's entry", result)
    check(result["http_version"] == "", "no response, no HTTP version", result)
    check(not output_files(os.path.join(tmp, "out")), "nothing should be written", output_files(os.path.join(tmp, "out")))


def scenario_tls_cacert(tmp):
    certs, (h2, h1) = tls_servers(tmp, ("good", False), ("good", True))
    with h2, h1:
        urls = [h2.url("/img/over_h2.jpg"), h1.url("/img/over_h1.jpg"), h2.url("/br/decoded.jpg?size=200000")]
        code, out, err = run_imgdl(urls + ["-o", "out", "--report", "r.json", "--cacert",
                                           os.path.join(certs, "ca.pem")], tmp)
        h2_stats, h1_stats = h2.stats(), h1.stats()
        limited = run_imgdl([urls[2], "-o", "limited", "--report", "limited.json", "--max-size", "100K",
                             "--cacert", os.path.join(certs, "ca.pem")], tmp)
    check(code == 0, f"exited {code}, expected 0", out, err)
    report = json.load(open(os.path.join(tmp, "r.json")))
    check_files_match_report(report, tmp)
    by_url = {r["url"]: r for r in report["results"]}
    check(by_url[urls[0]]["http_version"] == "2", "h2 where offered", by_url[urls[0]])
    check(by_url[urls[1]]["http_version"] == "1.1", "HTTP/1.1 where h2 is not offered", by_url[urls[1]])
    check(h2_stats["requests_h2"] == 2 and h1_stats["requests_h1"] == 1, "the servers' protocol counts",
          h2_stats, h1_stats)
    for name, path, size in [("over_h2.jpg", "/img/over_h2.jpg", 20000), ("over_h1.jpg", "/img/over_h1.jpg", 20000),
                             ("decoded.jpg", "/br/decoded.jpg", 200000)]:
        with open(os.path.join(tmp, "out", name), "rb") as f:
            check(f.read() == testlib.tls_image_bytes(path, size), f"{name}: content differs from the server's")
    # The brotli body is a few KB on the wire but 200000 bytes decoded: over a 100K limit.
    code, out, err = limited
    check(code == 1, f"--max-size run exited {code}, expected 1", out, err)
    result = json.load(open(os.path.join(tmp, "limited.json")))["results"][0]
    check(result["error"] == "too_large", "--max-size counts decoded bytes", result)


def scenario_tls_bad_certs(tmp):
    certs, servers = tls_servers(tmp, ("other", False), ("expired", False), ("self", False))
    try:
        urls = [s.url("/img/%s.jpg" % cert) for s, cert in zip(servers, ["other", "expired", "self"])]
        ca = ["--cacert", os.path.join(certs, "ca.pem")]
        refused = run_imgdl(urls + ["-o", "refused", "--report", "refused.json", "--retries", "0"] + ca, tmp)
        accepted = run_imgdl(urls + ["-o", "accepted", "--report", "accepted.json", "--insecure"], tmp)
    finally:
        for s in servers:
            s.stop()
    code, out, err = refused
    check(code == 1, f"exited {code} without --insecure, expected 1", out, err)
    for r in json.load(open(os.path.join(tmp, "refused.json")))["results"]:
        check(r["status"] == "failed" and r["error"] == "tls", "a bad certificate must fail as tls", r)
    check(not output_files(os.path.join(tmp, "refused")), "nothing should be written")
    code, out, err = accepted
    check(code == 0, f"exited {code} with --insecure, expected 0", out, err)
    report = json.load(open(os.path.join(tmp, "accepted.json")))
    check_files_match_report(report, tmp)
    check(all(r["status"] == "ok" and r["http_version"] == "2" for r in report["results"]),
          "--insecure accepts them", report["results"])


def comparable_report(report):
    """A report without what differs between two runs of one list: timings, and the results' order."""
    results = [{k: v for k, v in r.items() if k != "elapsed_s"} for r in sorted(report["results"],
                                                                                  key=lambda r: r["index"])]
    totals = {k: v for k, v in report["totals"].items() if k not in ("elapsed_s", "bytes_per_s")}
    return {"results": results, "invalid_lines": report["invalid_lines"], "totals": totals,
            "interrupted": report["interrupted"], "exit_code": report["exit_code"]}


def files_with_digests(directory):
    """Each file of an output directory (not the run journal's .imgdl) with its SHA-256."""
    return {name: sha256_of(os.path.join(directory, name)) for name in sorted(os.listdir(directory))
            if name != ".imgdl"}


def scenario_shard_bad_values(tmp):
    """Bad --shard values are usage errors (exit 2) before anything is fetched: the URL's host would
    refuse the connection, which would be exit 1."""
    env = {k: "" for k in ("SLURM_ARRAY_TASK_ID", "OMPI_COMM_WORLD_RANK", "PMI_RANK", "SLURM_PROCID",
                           "JOB_COMPLETION_INDEX")}
    cases = [
        (["--shard", "4/4"], "shard 4 is not below the shard count 4 (shards are numbered from 0: 0/4 to 3/4)"),
        (["--shard", "0/0"], "the shard count must be at least 1"),
        (["--shard", "1of4"], "not K/N, auto or auto/N"),
        (["--shard", "-1/4"], "not K/N, auto or auto/N"),
        (["--shard", "auto"], "no shard in the environment"),
        (["--shard", "0/2", "--shard-block", "0"], "--shard-block"),
        (["--shard-block", "10"], "--shard-block needs --shard"),
        (["--shard", "0/2", "--compare"], "--shard does not combine with --compare"),
        (["--shard", "0/2", "--output-format", "webdataset", "--shard-size", "3000"],
         "--shard-block 10000 is not a multiple of --shard-size 3000"),
    ]
    for args, message in cases:
        code, out, err = run_imgdl(args + ["http://127.0.0.1:1/a.jpg", "-o", "out"], tmp, env=env)
        check(code == 2, f"imgdl {' '.join(args)} exited {code}, expected 2", out, err)
        check(message in err, f"imgdl {' '.join(args)}: no clear message ({message!r})", err)
        check(not os.path.exists(os.path.join(tmp, "out")), f"imgdl {' '.join(args)} created the output directory")
    code, out, err = run_imgdl(["--shard", "auto", "http://127.0.0.1:1/a.jpg", "-o", "out"], tmp,
                               env=dict(env, JOB_COMPLETION_INDEX="1"))
    check(code == 2 and "use --shard auto/N" in err, "a Kubernetes index without N is not refused clearly", err)


def scenario_shard_split_and_merge(tmp):
    """Three shards of a list (invalid lines, comments, a 404 among the images), blocks of 2 URLs, each
    with its report; `imgdl merge` joins them into the report a single run writes, and the files are
    the single run's."""
    with Server(tmp) as server:
        lines = [server.url(f"/img/p{i:02d}.jpg?size={500 + 11 * i}") for i in range(13)]
        lines[4] = server.url("/status/404")
        lines.insert(6, "ftp://nope/x.jpg")
        lines.insert(2, "# comment")
        lines.insert(9, "")
        lines.append("also not a url")
        for d in ("one", "many"):
            os.makedirs(os.path.join(tmp, d))
            write_list(os.path.join(tmp, d, "list.txt"), lines)
        common = ["-i", "list.txt", "-o", "out", "-q", "--retries", "0"]
        code, out, err = run_imgdl(common + ["--report", "report.json"], os.path.join(tmp, "one"))
        check(code == 1, f"the single run exited {code}, expected 1", out, err)
        many = os.path.join(tmp, "many")
        for k in range(3):
            code, out, err = run_imgdl(common + ["--shard", f"{k}/3", "--shard-block", "2", "--report",
                                                 f"shard-{k}.json"], many)
            check(code in (0, 1), f"shard {k}/3 exited {code}", out, err)
            report = json.load(open(os.path.join(many, f"shard-{k}.json")))
            check(report["shard"] == {"index": k, "count": 3, "block_size": 2}, "a shard's report names its shard",
                  report.get("shard"))
            # Positions are the whole list's: shard k holds blocks k, k + 3, ... of 2 positions.
            check(all((r["index"] // 2) % 3 == k for r in report["results"]), f"shard {k}'s positions",
                  [r["index"] for r in report["results"]])
        shard_reports = [f"shard-{k}.json" for k in range(3)]
        code, out, err = run_imgdl(["merge"] + shard_reports + ["--report", "report.json"], many)
    check(code == 1, f"imgdl merge exited {code}, expected the single run's 1", out, err)
    expected = comparable_report(json.load(open(os.path.join(tmp, "one", "report.json"))))
    merged = json.load(open(os.path.join(many, "report.json")))
    check([r["index"] for r in merged["results"]] == list(range(13)), "merged results are not in input order",
          [r["index"] for r in merged["results"]])
    check("shard" not in merged, "the merged report still names a shard", merged.get("shard"))
    check(comparable_report(merged) == expected, "the merged report differs from the single run's",
          json.dumps(comparable_report(merged))[:3000], json.dumps(expected)[:3000])
    check(expected["totals"]["invalid_lines"] == 2 and expected["totals"]["failed"] == 1, "the list's totals",
          expected["totals"])
    check(files_with_digests(os.path.join(many, "out")) == files_with_digests(os.path.join(tmp, "one", "out")),
          "the shards' files are not the single run's (names and sha256)")
    # A sort buffer far smaller than the reports spills sorted runs to disk and merges them: same report.
    code, out, err = run_imgdl(["merge", "--sort-buffer", "1K"] + shard_reports + ["--report", "small.json"], many)
    check(code == 1, f"imgdl merge --sort-buffer 1K exited {code}", out, err)
    check(comparable_report(json.load(open(os.path.join(many, "small.json")))) == expected,
          "a merge sorted on disk differs")
    # On stdout, and in any order of its arguments.
    code, out, err = run_imgdl(["merge"] + shard_reports[::-1], many)
    check(code == 1 and comparable_report(json.loads(out)) == expected, "a merge on stdout differs", err)


def scenario_shard_webdataset(tmp):
    """WebDataset shards written by two processes (blocks of 4 URLs, tars of 2 samples) are numbered
    globally and never collide: together they are the single run's tars."""
    import tarfile
    with Server(tmp) as server:
        urls = [server.url(f"/img/w{i}.jpg?size={300 + i}") for i in range(11)]
        for d in ("one", "many"):
            os.makedirs(os.path.join(tmp, d))
            write_list(os.path.join(tmp, d, "list.txt"), urls)
        common = ["-i", "list.txt", "-o", "out", "-q", "--output-format", "webdataset", "--shard-size", "2"]
        code, out, err = run_imgdl(common, os.path.join(tmp, "one"))
        check(code == 0, f"the single run exited {code}", out, err)
        for k in range(2):
            code, out, err = run_imgdl(common + ["--shard", f"{k}/2", "--shard-block", "4"], os.path.join(tmp, "many"))
            check(code == 0, f"shard {k}/2 exited {code}", out, err)
    one, many = os.path.join(tmp, "one", "out"), os.path.join(tmp, "many", "out")
    check(sorted(os.listdir(many)) == sorted(os.listdir(one)), "the two processes' tars are not the single run's",
          sorted(os.listdir(many)), sorted(os.listdir(one)))
    for name in sorted(os.listdir(one)):
        if name.endswith(".tar"):
            with tarfile.open(os.path.join(one, name)) as a, tarfile.open(os.path.join(many, name)) as b:
                check(sorted(a.getnames()) == sorted(b.getnames()), f"{name} holds other samples",
                      a.getnames(), b.getnames())


def scenario_merge_refusals(tmp):
    """imgdl merge refuses, with exit 2 and no merged file, what cannot make one run's report."""
    def shard_report(name, k, n, indexes, block=1):
        results = [{"url": f"http://h/{i}.jpg", "path": f"out/{i}.jpg", "status": "ok", "bytes": 1, "error": "none",
                    "index": i} for i in indexes]
        report = {"imgdl_version": "0", "mode": "pooled", "workers": 1, "output_dir": "out",
                  "results": results, "invalid_lines": [], "totals": {"elapsed_s": 1.0}, "interrupted": False,
                  "exit_code": 0}
        if k is not None:
            report["shard"] = {"index": k, "count": n, "block_size": block}
        with open(os.path.join(tmp, name), "w") as f:
            json.dump(report, f)
    shard_report("a.json", 0, 2, [0, 2, 4])
    shard_report("b.json", 1, 2, [1, 3])
    shard_report("a3.json", 0, 3, [0, 3])
    shard_report("whole.json", None, None, [0, 1, 2])
    shard_report("wrong.json", 1, 2, [1, 2])
    shard_report("other.json", None, None, [2, 5])
    with open(os.path.join(tmp, "cut.json"), "w") as f:
        f.write(open(os.path.join(tmp, "a.json")).read()[:60])
    with open(os.path.join(tmp, "list.json"), "w") as f:
        f.write("[1, 2]")
    cases = [
        (["missing.json", "b.json"], "cannot read 'missing.json': No such file or directory"),
        (["cut.json", "b.json"], "cut.json: not an imgdl report (not valid JSON"),
        (["list.json"], "list.json: not an imgdl report"),
        (["a.json"], "shard(s) 1 of 2 missing"),
        (["a.json", "a.json", "b.json"], "a.json and a.json are both shard 0/2: overlapping shards"),
        (["a.json", "a3.json", "b.json"], "not shards of one split"),
        (["a.json", "whole.json"], "whole.json is a whole run's report"),
        (["a.json", "wrong.json"], "wrong.json: result 2 is not in its shard 1/2"),
        (["whole.json", "other.json"], "result 2 is in both whole.json and other.json: overlapping reports"),
        ([], "REPORT is required"),
    ]
    for args, message in cases:
        code, out, err = run_imgdl(["merge"] + args + ["--report", "merged.json"], tmp)
        check(code == 2, f"imgdl merge {' '.join(args)} exited {code}, expected 2", out, err)
        check(message in err, f"imgdl merge {' '.join(args)}: no clear message ({message!r})", err)
        check(not os.path.exists(os.path.join(tmp, "merged.json")) and
              not os.path.exists(os.path.join(tmp, "merged.json.part")),
              f"imgdl merge {' '.join(args)} left a merged report")
    code, out, err = run_imgdl(["merge", "a.json", "b.json", "--report", "merged.json"], tmp)
    merged = json.load(open(os.path.join(tmp, "merged.json")))
    check(code == 0 and [r["index"] for r in merged["results"]] == [0, 1, 2, 3, 4] and merged["totals"]["ok"] == 5
          and merged["totals"]["bytes"] == 5, "two complementary shards do not merge", code, err, merged)
    code, out, err = run_imgdl(["merge", "--help"], tmp)
    check(code == 0 and "--report FILE" in out and "--sort-buffer SIZE" in out, "imgdl merge --help", out)
    # 1,200 results sorted in 1 KiB of memory: hundreds of runs on disk, merged into one every 64; the
    # same report as a merge in memory.
    shard_report("big0.json", 0, 2, [i for i in range(1200) if i % 2 == 0][::-1])
    shard_report("big1.json", 1, 2, [i for i in range(1200) if i % 2 == 1][::-1])
    code, out, err = run_imgdl(["merge", "big0.json", "big1.json", "--report", "in_memory.json"], tmp)
    check(code == 0, f"imgdl merge of 1,200 results exited {code}", err)
    code, out, err = run_imgdl(["merge", "--sort-buffer", "1K", "big0.json", "big1.json", "--report", "on_disk.json"],
                               tmp)
    check(code == 0, f"imgdl merge --sort-buffer 1K of 1,200 results exited {code}", err)
    in_memory = json.load(open(os.path.join(tmp, "in_memory.json")))
    check([r["index"] for r in in_memory["results"]] == list(range(1200)), "1,200 results out of order")
    check(open(os.path.join(tmp, "on_disk.json")).read() == open(os.path.join(tmp, "in_memory.json")).read(),
          "a merge sorted on disk in many runs differs from one in memory")


SCENARIOS = {
    "resume": scenario_resume,
    "resume_refusals": scenario_resume_refusals,
    "webdataset_resume": scenario_webdataset_resume,
    "help": scenario_help,
    "version": scenario_version,
    "bad_flags": scenario_bad_flags,
    "missing_input": scenario_missing_input,
    "all_ok": scenario_all_ok,
    "some_failed": scenario_some_failed,
    "skips_are_ok": scenario_skips_are_ok,
    "compare": scenario_compare,
    "compare_naming": scenario_compare_naming,
    "compare_on_exists": scenario_compare_on_exists,
    "stdin": scenario_stdin,
    "invalid_lines": scenario_invalid_lines,
    "piped_plain": scenario_piped_plain,
    "json_stdout": scenario_json_stdout,
    "image_checks": scenario_image_checks,
    "table_input": scenario_table_input,
    "webdataset": scenario_webdataset,
    "webdataset_rerun": scenario_webdataset_rerun,
    "webdataset_sigint": scenario_webdataset_sigint,
    "sigint": scenario_sigint,
    "pty_bars": scenario_pty_bars,
    "no_color": scenario_no_color,
    "memory_bounded": scenario_memory_bounded,
    "polite_to_hosts": scenario_polite_to_hosts,
    "tls_untrusted": scenario_tls_untrusted,
    "tls_cacert": scenario_tls_cacert,
    "tls_bad_certs": scenario_tls_bad_certs,
    "shard_bad_values": scenario_shard_bad_values,
    "shard_split_and_merge": scenario_shard_split_and_merge,
    "shard_webdataset": scenario_shard_webdataset,
    "merge_refusals": scenario_merge_refusals,
}


def main():
    global ARGS
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--imgdl", required=True)
    parser.add_argument("--server", required=True)
    parser.add_argument("--expect-version")
    parser.add_argument("--node", help="Node.js, for the HTTPS scenarios' server (tests/support/tls_server.js)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    parser.add_argument("scenario", choices=sorted(SCENARIOS) + ["all"])
    ARGS = parser.parse_args()
    ARGS.imgdl = os.path.abspath(ARGS.imgdl)
    ARGS.server = os.path.abspath(ARGS.server)
    names = sorted(SCENARIOS) if ARGS.scenario == "all" else [ARGS.scenario]
    failed = 0
    for name in names:
        tmp = tempfile.mkdtemp(prefix=f"imgdl-cli-{name}-")
        start = time.monotonic()
        passed = False
        try:
            SCENARIOS[name](tmp)
            passed = True
            print(f"PASS {name} ({time.monotonic() - start:.2f} s)")
        except CheckFailed as e:
            failed += 1
            print(f"FAIL {name}: {e}\n(work dir kept: {tmp})")
        finally:
            if passed and not ARGS.keep:
                shutil.rmtree(tmp, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
