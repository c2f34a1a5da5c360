#!/usr/bin/env python3
"""Reliability of the `imgdl` program: hostile input lists, key faults end to end, and load.

One scenario per CTest test (see tests/reliability/CMakeLists.txt):
    cli_inputs_test.py --imgdl PATH --server PATH SCENARIO
Each scenario starts its own `imgdl-testserver --port 0 --port-file F` (loopback only), works in a fresh
temporary directory and exits non-zero with a message on the first failed check. Peak RSS of the imgdl
process is measured from os.wait4()'s rusage and printed as "RSS <scenario>: N MiB".

IMGDL_SANITIZER (set by CMake for ASan/TSan builds) shrinks the load test and skips the RSS bounds, which
sanitizers inflate by design. Standard library only.
"""

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

ARGS = None
SANITIZER = os.environ.get("IMGDL_SANITIZER", "")
MIB = 1024 * 1024


# check(), CheckFailed and the server live in tests/support/testlib.py, shared with the other drivers.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
import testlib  # noqa: E402
from testlib import CheckFailed, check  # noqa: E402,F401


def Server(workdir, **options):
    """The loopback test server built alongside the imgdl under test."""
    return testlib.Server(ARGS.server, workdir, **options)


class Result:
    def __init__(self, code, stdout, stderr, max_rss_kib, seconds):
        self.code = code
        self.stdout = stdout
        self.stderr = stderr
        self.max_rss_kib = max_rss_kib
        self.seconds = seconds

    @property
    def rss_mib(self):
        return self.max_rss_kib / 1024.0


def run_imgdl(workdir, args, timeout, stdin_path=None):
    """Runs imgdl with output to files (never a full pipe), reaps it with os.wait4 for its peak RSS, and
    kills it if it outlives `timeout` seconds (a hang is a failure, not a stuck test)."""
    out_path = os.path.join(workdir, "imgdl.stdout")
    err_path = os.path.join(workdir, "imgdl.stderr")
    stdin = open(stdin_path, "rb") if stdin_path else subprocess.DEVNULL
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        start = time.monotonic()
        proc = subprocess.Popen([ARGS.imgdl] + args, stdin=stdin, stdout=out, stderr=err,
                                env=dict(os.environ, NO_COLOR="1"))
        status = rusage = None
        while True:
            pid, status, rusage = os.wait4(proc.pid, os.WNOHANG)
            if pid == proc.pid:
                break
            if time.monotonic() - start > timeout:
                proc.kill()
                _, status, rusage = os.wait4(proc.pid, 0)
                proc.returncode = -9
                raise CheckFailed("imgdl did not finish within %d s (hung?)" % timeout)
            time.sleep(0.01)
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here: keep Popen from waiting again
        seconds = time.monotonic() - start
    if stdin_path:
        stdin.close()
    with open(out_path, "rb") as f:
        stdout = f.read().decode("utf-8", errors="replace")
    with open(err_path, "rb") as f:
        stderr = f.read().decode("utf-8", errors="replace")
    return Result(proc.returncode, stdout, stderr, rusage.ru_maxrss, seconds)


def write_list(path, lines, newline="\n", bom=False):
    with open(path, "wb") as f:
        if bom:
            f.write(b"\xef\xbb\xbf")
        for line in lines:
            f.write((line if isinstance(line, bytes) else line.encode()) + newline.encode())


def image_bytes_sha(path_in_dir):
    with open(path_in_dir, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def files_in(directory):
    """Every entry below `directory`, relative, recursively."""
    found = set()
    for root, dirs, files in os.walk(directory):
        for name in dirs + files:
            found.add(os.path.relpath(os.path.join(root, name), directory))
    return found


def no_part_files(directory):
    parts = [f for f in files_in(directory) if f.endswith(".part")]
    check(not parts, "a .part file was left behind", parts)


def common_args(out_dir, report=None):
    args = ["-o", out_dir, "--progress", "none", "--retries", "0", "--timeout", "60"]
    if report:
        args += ["--report", report]
    return args


def load_report(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def reference_image(server, path):
    """The exact bytes the server sends for `path`, fetched once with urllib from our own loopback server
    (the expected content of a download, independent of imgdl)."""
    import urllib.request
    with urllib.request.urlopen(server.url(path), timeout=30) as response:
        return response.read()


# ----------------------------------------------------------------------------------------------------------
# Scenarios


def scenario_invalid_lines(work):
    """Invalid lines are reported with their line numbers; every valid line still downloads; exit 1."""
    with Server(work) as server:
        out = os.path.join(work, "out")
        lines = [
            server.url("/img/first.jpg?size=3000"),       # 1
            "notaurl",                                    # 2
            "ftp://127.0.0.1/x.jpg",                      # 3
            server.url("/img/second.png?size=3000"),      # 4
            "http://exa mple.com/a.jpg",                  # 5: whitespace
            "",                                           # 6: blank, skipped silently
            "# a comment",                                # 7
            "http://127.0.0.1/a\x01b.jpg",                # 8: control character
            "http://",                                    # 9: missing host
            server.url("/img/third.gif?size=3000"),       # 10
            server.url("/img/a.jpg") + " # trailing",     # 11: '#' only starts whole-line comments
        ]
        list_file = os.path.join(work, "list.txt")
        write_list(list_file, lines)
        report = os.path.join(work, "report.json")
        r = run_imgdl(work, ["-i", list_file] + common_args(out, report), timeout=120)
        check(r.code == 1, "exit code %d, expected 1 (invalid lines count as failures)" % r.code, r.stdout, r.stderr)
        for number in (2, 3, 5, 8, 9, 11):
            check(re.search(r"^imgdl: %s:%d: skipped invalid line " % (re.escape(list_file), number), r.stderr,
                            re.M), "line %d not reported with its number" % number, r.stderr)
        check(len(re.findall(r"skipped invalid line", r.stderr)) == 6, "exactly six invalid lines", r.stderr)
        check("not a URL: notaurl" in r.stderr, "the reason is given", r.stderr)
        check("\\x01" in r.stderr and "\x01" not in r.stderr, "control bytes are escaped when shown", r.stderr)
        check(files_in(out) == {"first.jpg", "second.png", "third.gif"}, "the valid lines downloaded",
              sorted(files_in(out)))
        rep = load_report(report)
        check([e["line"] for e in rep["invalid_lines"]] == [2, 3, 5, 8, 9, 11], "report lists the lines",
              rep["invalid_lines"])
        check(rep["totals"]["invalid_lines"] == 6 and rep["totals"]["ok"] == 3, "report totals", rep["totals"])


def scenario_crlf(work):
    """CRLF line ends are read like LF: no CR reaches a URL or a name."""
    with Server(work) as server:
        out = os.path.join(work, "out")
        names = ["crlf_%d.jpg" % i for i in range(5)]
        list_file = os.path.join(work, "list.txt")
        write_list(list_file, [server.url("/img/%s?size=2000" % n) for n in names] + ["# comment", ""],
                   newline="\r\n")
        r = run_imgdl(work, ["-i", list_file] + common_args(out), timeout=120)
        check(r.code == 0, "exit code %d" % r.code, r.stdout, r.stderr)
        check(files_in(out) == set(names), "names without CR", sorted(files_in(out)))


def scenario_bom(work):
    """A UTF-8 BOM before the first URL is skipped, with LF and with CRLF, from a file and from stdin."""
    with Server(work) as server:
        for newline in ("\n", "\r\n"):
            for via_stdin in (False, True):
                out = tempfile.mkdtemp(dir=work)
                list_file = os.path.join(work, "bom.txt")
                write_list(list_file, [server.url("/img/bom_first.jpg?size=2000"),
                                       server.url("/img/bom_second.jpg?size=2000")], newline=newline, bom=True)
                source = ["-i", "-"] if via_stdin else ["-i", list_file]
                r = run_imgdl(work, source + common_args(out), timeout=120,
                              stdin_path=list_file if via_stdin else None)
                check(r.code == 0, "exit code %d (newline %r, stdin %s)" % (r.code, newline, via_stdin),
                      r.stdout, r.stderr)
                check(files_in(out) == {"bom_first.jpg", "bom_second.jpg"}, "the first URL survives the BOM",
                      sorted(files_in(out)))


def scenario_long_lines(work):
    """A line past the reader's 8192-byte limit is one invalid line (reported, not buffered whole); a URL just
    under it downloads under a name cut to 255 bytes; the next lines are read normally."""
    with Server(work) as server:
        out = os.path.join(work, "out")
        long_name = "L" * 7000
        lines = [
            server.url("/img/%s.jpg?size=2000" % long_name),     # 1: ~7 KB, valid
            "http://127.0.0.1/" + "x" * 1000000,                 # 2: 1 MB, too long
            server.url("/img/after_long.jpg?size=2000"),         # 3
            "y" * 20000,                                         # 4: too long, not even a URL
            server.url("/img/last.jpg?size=2000"),               # 5
        ]
        list_file = os.path.join(work, "list.txt")
        write_list(list_file, lines)
        report = os.path.join(work, "report.json")
        r = run_imgdl(work, ["-i", list_file] + common_args(out, report), timeout=120)
        check(r.code == 1, "exit code %d" % r.code, r.stdout, r.stderr[-2000:])
        check(re.search(r":2: skipped invalid line .*line too long \(1000017 bytes\)", r.stderr),
              "line 2 too long, with its size", r.stderr[-2000:])
        check(re.search(r":4: skipped invalid line .*line too long \(20000 bytes\)", r.stderr),
              "line 4 too long", r.stderr[-2000:])
        check(len(r.stderr) < 10000, "a long line is quoted only in part", len(r.stderr))
        expected = {"L" * 251 + ".jpg", "after_long.jpg", "last.jpg"}
        check(files_in(out) == expected, "the long URL is saved under a 255-byte name", sorted(files_in(out)))


def scenario_empty_list(work):
    """Empty lists (no bytes, only a BOM, only comments and blanks; file or stdin) end at once with nothing
    written and no failure."""
    variants = {
        "empty": b"",
        "bom-only": b"\xef\xbb\xbf",
        "comments-and-blanks": b"# nothing here\n\n   \n\t# indented\r\n",
    }
    for label, content in variants.items():
        for via_stdin in (False, True):
            out = os.path.join(work, "out-%s-%d" % (label, via_stdin))
            list_file = os.path.join(work, label + ".txt")
            with open(list_file, "wb") as f:
                f.write(content)
            source = ["-i", "-"] if via_stdin else ["-i", list_file]
            report = os.path.join(work, "report-%s-%d.json" % (label, via_stdin))
            r = run_imgdl(work, source + common_args(out, report), timeout=60,
                          stdin_path=list_file if via_stdin else None)
            check(r.code == 0, "%s (stdin %s): exit code %d" % (label, via_stdin, r.code), r.stdout, r.stderr)
            check(not os.path.exists(out) or not files_in(out), "nothing written", label)
            rep = load_report(report)
            check(rep["totals"]["urls"] == 0 and rep["results"] == [], "an empty report", rep["totals"])


def scenario_million_lines(work):
    """A 1,000,000-line list of about 120 MB: the reader goes through every line without holding the file.
    10,000 lines are URLs (200 distinct, the rest duplicates: planned, never fetched twice), 10,000 are
    invalid (each reported with its number), the rest are long comments and blank lines, with LF and CRLF
    ends. Peak RSS is printed and must stay far below the list's size. (Each URL line costs the CLI about
    2 KiB until the run ends, so a million *URL* lines is a memory question of its own: see
    docs/RELIABILITY.md.)"""
    with Server(work) as server:
        out = os.path.join(work, "out")
        list_file = os.path.join(work, "million.txt")
        distinct = [server.url("/img/m_%d.jpg?size=1000" % i) for i in range(200)]
        filler = "#" + " padding" * 30  # ~250 bytes
        total = 1000000
        with open(list_file, "w", newline="") as f:
            for n in range(1, total + 1):
                if n % 100 == 0:
                    f.write("bad line %d\n" % n)                  # 10,000 invalid lines
                elif n % 100 == 1:
                    f.write(distinct[(n // 100) % 200] + "\r\n")  # 10,000 URL lines, 200 distinct
                elif n % 2 == 0:
                    f.write("%s %d\n" % (filler, n))
                else:
                    f.write("\r\n" if n % 3 == 0 else "\n")
        size = os.path.getsize(list_file)
        report = os.path.join(work, "report.json")
        r = run_imgdl(work, ["-i", list_file, "-j", "16"] + common_args(out, report), timeout=300)
        print("RSS million_lines: %.1f MiB (list %.1f MiB, %d lines; %.1f s)" % (r.rss_mib, size / MIB, total,
                                                                               r.seconds))
        check(r.code == 1, "exit code %d (the invalid lines)" % r.code, r.stdout[-2000:], r.stderr[-2000:])
        check(files_in(out) == {"m_%d.jpg" % i for i in range(200)}, "the 200 distinct images",
              len(files_in(out)))
        check(r.stderr.count("skipped invalid line") == 10000, "every invalid line reported",
              r.stderr.count("skipped invalid line"))
        check(":1000000: skipped invalid line" in r.stderr, "the last line's number is right", r.stderr[-500:])
        rep = load_report(report)
        totals = rep["totals"]
        check(totals["urls"] == 10000 and totals["ok"] == 200 and totals["skipped"] == 9800 and
              totals["invalid_lines"] == 10000 and totals["failed"] == 0, "report totals", totals)
        if not SANITIZER:
            check(r.rss_mib < 128 and r.rss_mib * MIB < size, "peak RSS %.1f MiB: not bounded" % r.rss_mib)


def scenario_cli_faults(work):
    """Key rows of the fault matrix end to end: exit 1, one FAILED line each, the good URLs intact, no .part."""
    with Server(work) as server, Server(work, tls=True) as tls:
        out = os.path.join(work, "out")
        good = ["/img/good_a.jpg?size=5000", "/img/good_b.png?size=7000"]
        faults = {
            "404": (server.url("/status/404"), "FAILED 404: HTTP 404 Not Found"),
            "html": (server.url("/html"), "FAILED html: not an image (server sent text/html)"),
            "truncated": (server.url("/truncated/cut.jpg?size=50000&sent=20000"),
                          "FAILED cut.jpg: transfer closed with 30000 bytes remaining to read"),
            "file redirect": (server.url("/redirect-to?url=file:///etc/passwd"),
                              "FAILED redirect-to: refused a redirect to a scheme other than http or https"),
            "tls": (tls.url("/img/tls.jpg"), "FAILED tls.jpg: TLS verification failed: SSL certificate problem: "
                                             "self-signed certificate"),
        }
        urls = [server.url(good[0])] + [u for u, _ in faults.values()] + [server.url(good[1])]
        list_file = os.path.join(work, "list.txt")
        write_list(list_file, urls)
        report = os.path.join(work, "report.json")
        r = run_imgdl(work, ["-i", list_file, "-j", "4"] + common_args(out, report), timeout=120)
        check(r.code == 1, "exit code %d, expected 1" % r.code, r.stdout, r.stderr)
        for label, (_, line) in faults.items():
            check(len([l for l in r.stdout.splitlines() if l.startswith(line)]) == 1,
                  "%s: one line starting %r" % (label, line), r.stdout)
        check(r.stdout.count("FAILED") == len(faults), "one FAILED line per fault", r.stdout)
        check(files_in(out) == {"good_a.jpg", "good_b.png"}, "only the good files", sorted(files_in(out)))
        for path in good:
            name = path.split("/")[-1].split("?")[0]
            check(image_bytes_sha(os.path.join(out, name)) == hashlib.sha256(reference_image(server, path)).hexdigest(),
                  "%s is byte-identical to what the server sends" % name)
        no_part_files(out)
        rep = load_report(report)
        errors = sorted(x["error"] for x in rep["results"] if x["status"] == "failed")
        check(errors == sorted(["http_status", "not_image", "truncated", "forbidden_redirect", "tls"]),
              "error kinds in the report", errors)


def scenario_load(work):
    """10,000 URLs (10% faults: 404, 500, reset, truncated, HTML) at 128 workers: every good file is what the
    server sent (report sha256 = file sha256 = expected), every bad URL is reported and absent, bounded time
    and RSS."""
    count = 2000 if SANITIZER else 10000
    workers = 32 if SANITIZER else 128
    with Server(work, threads=160) as server:
        out = os.path.join(work, "out")
        fault_paths = [
            ("/status/404?n=%d", "http_status"),
            ("/status/500?n=%d", "http_status"),
            ("/reset-mid-body?size=4000&sent=1000&n=%d", "network"),
            ("/truncated/t%d.jpg?size=4000&sent=1000", "truncated"),
            ("/html?n=%d", "not_image"),
        ]
        urls, expected = [], {}
        for i in range(count):
            if i % 10 == 7:
                template, kind = fault_paths[(i // 10) % len(fault_paths)]
                url = server.url(template % i)
                expected[url] = ("failed", kind, None)
            else:
                ext = ("jpg", "png", "gif")[i % 3]
                name = "load_%d.%s" % (i, ext)
                url = server.url("/img/%s?size=%d" % (name, 1000 + (i % 7) * 100))
                expected[url] = ("ok", None, name)
            urls.append(url)
        list_file = os.path.join(work, "list.txt")
        write_list(list_file, urls)
        # A sample of expected bodies straight from the server (independent of imgdl), for the hash check.
        sample = [u for u in urls if expected[u][0] == "ok"][::97]
        reference = {u: hashlib.sha256(reference_image(server, u[len(server.base):])).hexdigest() for u in sample}

        report = os.path.join(work, "report.json")
        args = ["-i", list_file, "-j", str(workers), "-q"] + common_args(out, report)
        args.remove("--progress")
        args.remove("none")  # -q excludes --progress
        r = run_imgdl(work, args, timeout=500)
        print("RSS load: %.1f MiB (%d URLs, %d workers, %.1f s)" % (r.rss_mib, count, workers, r.seconds))
        check(r.code == 1, "exit code %d, expected 1" % r.code, r.stderr[-2000:])
        rep = load_report(report)
        check(len(rep["results"]) == count, "one result per URL", len(rep["results"]))
        on_disk = files_in(out)
        good_names = set()
        for res in rep["results"]:
            status, kind, name = expected[res["url"]]
            check(res["status"] == status, "status of %s: %s" % (res["url"], res["status"]), res)
            if status == "ok":
                path = os.path.join(out, name)
                check(res["path"] == path, "path", res)
                digest = image_bytes_sha(path)
                check(res["sha256"] == digest, "report sha256 = file sha256", res)
                if res["url"] in reference:
                    check(digest == reference[res["url"]], "file sha256 = the server's body", res)
                good_names.add(name)
            else:
                check(res["error"] == kind, "error kind of %s" % res["url"], res)
                check(res["sha256"] == "", "no hash for a failed URL", res)
                check(not os.path.exists(res["path"]), "a failed URL left a file", res)
        check(on_disk == good_names, "only the good files on disk", sorted(on_disk ^ good_names)[:10])
        check(r.stdout.count("FAILED") == count // 10, "one FAILED line per bad URL", r.stdout.count("FAILED"))
        no_part_files(out)
        if not SANITIZER:
            check(r.rss_mib < 256, "peak RSS %.1f MiB over 256 MiB" % r.rss_mib)


SCENARIOS = {
    "invalid_lines": scenario_invalid_lines,
    "crlf": scenario_crlf,
    "bom": scenario_bom,
    "long_lines": scenario_long_lines,
    "empty_list": scenario_empty_list,
    "million_lines": scenario_million_lines,
    "cli_faults": scenario_cli_faults,
    "load": scenario_load,
}


def main():
    global ARGS
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--imgdl", required=True)
    parser.add_argument("--server", required=True)
    parser.add_argument("scenario", choices=sorted(SCENARIOS))
    ARGS = parser.parse_args()
    work = tempfile.mkdtemp(prefix="imgdl-reliability-%s-" % ARGS.scenario)
    try:
        SCENARIOS[ARGS.scenario](work)
    except CheckFailed as e:
        print("FAIL %s: %s" % (ARGS.scenario, e), file=sys.stderr)
        print("(work directory kept: %s)" % work, file=sys.stderr)
        return 1
    shutil.rmtree(work, ignore_errors=True)
    print("PASS %s" % ARGS.scenario)
    return 0


if __name__ == "__main__":
    sys.exit(main())
