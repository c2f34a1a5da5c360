#!/usr/bin/env python3
"""Reliability of the `imgdl` program: hostile input lists, the whole fault matrix end to end, and load.

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
    """Every entry below `directory`, relative, recursively, but the run journal's `.imgdl`."""
    found = set()
    for root, dirs, files in os.walk(directory):
        if root == directory:
            dirs[:] = [d for d in dirs if d != ".imgdl"]
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


# --- The fault matrix through the CLI --------------------------------------------------------------------
# Every row of tests/faults_test.cpp, run through the `imgdl` program. Rows that need the same options and
# the same exit code share one run (each result is per URL, so they cannot mask each other; running them
# side by side also proves a fault stays confined to its URL), always with two good URLs of their own.

HANG_BOUND = 180 if SANITIZER else 60       # a whole run: only catches hangs
ROW_BOUND = 45.0 if SANITIZER else 15.0     # one URL's elapsed_s in the report, as the library's max_elapsed
STALL_TIMEOUT = "2" if SANITIZER else "1"   # --timeout for the stall and drip rows


class FaultRow:
    """One row of the matrix. `kind` None means the URL must succeed (`ok_name`, bytes from `reference`)."""

    def __init__(self, label, url, kind=None, message="", attempts=1, http_status=None, args=(), ok_name=None,
                 reference=None, min_seconds=0.0):
        self.label = label
        self.url = url
        self.kind = kind
        self.message = message
        self.attempts = attempts
        self.http_status = http_status
        self.args = tuple(args)
        self.ok_name = ok_name
        self.reference = reference  # () -> the bytes the server sends, fetched with urllib after the run
        self.min_seconds = min_seconds

    @property
    def exit_code(self):
        return 0 if self.kind is None else 1


def fetch(url, context=None):
    """(body, headers) of `url` from our own loopback server, with urllib: the expected content of a
    download, independent of imgdl."""
    import urllib.error
    import urllib.request
    try:
        with urllib.request.urlopen(url, timeout=30, context=context) as response:
            return response.read(), response.headers
    except (urllib.error.URLError, OSError) as e:
        raise CheckFailed("fetching the reference bytes of %s: %s" % (url, e))


def free_port():
    """A loopback port that was free a moment ago: nothing listens there now."""
    import socket
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fault_rows(server, tls, ca_file):
    """The rows of tests/faults_test.cpp, in its order, as CLI rows. --retries 1 everywhere, as the library's
    retries = 1: attempts 2 means the fault is retried."""
    import gzip
    import ssl
    rows = []

    def body(path):
        return lambda: fetch(server.url(path))[0]

    # Redirect chains of every code land the image; loops, long chains and non-http targets fail.
    for code in (301, 302, 303, 307, 308):
        rows.append(FaultRow("3 redirects with %d" % code, server.url("/redirect/3?code=%d" % code),
                             http_status=200, ok_name="3.jpg", reference=body("/img/redirected.jpg")))
    rows.append(FaultRow("a redirect loop", server.url("/redirect-loop"), "too_many_redirects",
                         "more than 10 redirects: Maximum (10) redirects followed"))
    # The CLI has no --max-redirects: over the default limit of 10 instead of over a lowered one.
    rows.append(FaultRow("a chain longer than the redirect limit", server.url("/redirect/12"),
                         "too_many_redirects", "more than 10 redirects: Maximum (10) redirects followed"))
    for target, scheme in (("file:///etc/passwd", "file"), ("ftp://127.0.0.1/x.jpg", "ftp"),
                           ("gopher://127.0.0.1/x", "gopher")):
        rows.append(FaultRow("a redirect to " + target, server.url("/redirect-to?url=" + target),
                             "forbidden_redirect",
                             "refused a redirect to a scheme other than http or https: Protocol \"%s\"" % scheme))

    # 4xx and 5xx fail with their status line; only 408, 429 and 5xx gateway errors are retried.
    for code, phrase, retried in (
            (400, "Bad Request", False), (401, "Unauthorized", False), (403, "Forbidden", False),
            (404, "Not Found", False), (405, "Method Not Allowed", False), (408, "Request Timeout", True),
            (410, "Gone", False), (418, "I'm a teapot", False), (451, "Unavailable For Legal Reasons", False),
            (500, "Internal Server Error", True), (501, "Not Implemented", False), (502, "Bad Gateway", True),
            (503, "Service Unavailable", True), (504, "Gateway Timeout", True),
            (599, "Internal Server Error", False), (300, "Multiple Choice", False), (304, "Not Modified", False)):
        rows.append(FaultRow("HTTP %d" % code, server.url("/status/%d" % code), "http_status",
                             "HTTP %d %s" % (code, phrase), attempts=2 if retried else 1, http_status=code))

    # 429 and 503 with Retry-After are waited for, then recover (exit 0). The flaky routes count attempts per
    # path, so the reference is fetched after the run, when the failure is used up.
    flaky429 = server.url("/flaky/ra429.jpg?fails=1&code=429&retry_after=1&size=7000")
    flaky503 = server.url("/flaky/ra503.png?fails=1&code=503&retry_after=2&retry_after_date=1&size=7000")
    rows.append(FaultRow("429 with Retry-After: 1", flaky429, attempts=2, http_status=200, ok_name="ra429.jpg",
                         reference=lambda: fetch(flaky429)[0], min_seconds=1.0))
    rows.append(FaultRow("503 with Retry-After as an HTTP date", flaky503, attempts=2, http_status=200,
                         ok_name="ra503.png", reference=lambda: fetch(flaky503)[0],
                         min_seconds=0.5))  # whole-second precision: 2 s ahead is 1-2 s away

    # Transport faults: refused, reset, short and cut bodies fail as their kinds and are retried.
    dead_port = free_port()
    rows.append(FaultRow("connection refused", "http://127.0.0.1:%d/img/x.jpg" % dead_port, "connect",
                         "Failed to connect to 127.0.0.1 port %d" % dead_port, attempts=2, http_status=0))
    rows.append(FaultRow("reset before the headers", server.url("/reset-before-headers"), "network",
                         "Connection reset by peer", attempts=2, http_status=0))
    rows.append(FaultRow("reset mid-body", server.url("/reset-mid-body?size=50000&sent=20000"), "network",
                         "Connection reset by peer", attempts=2, http_status=200))
    rows.append(FaultRow("a body shorter than its Content-Length",
                         server.url("/truncated/t.jpg?size=50000&sent=20000"), "truncated",
                         "transfer closed with 30000 bytes remaining to read", attempts=2, http_status=200))
    rows.append(FaultRow("a chunked body cut before its last chunk", server.url("/chunked-cut?sent=10000"),
                         "truncated", "transfer closed with outstanding read data remaining", attempts=2,
                         http_status=200))

    # Stalls and drips. The CLI has no low-speed option (the library's default, 1 byte/s over 30 s, is too
    # slow for a test), so each row ends at --timeout: the library's whole-transfer and low-speed variants of
    # a stall are one CLI row.
    timeout = ("--timeout", STALL_TIMEOUT)
    rows.append(FaultRow("a stall before the headers", server.url("/stall-headers?ms=20000"), "timeout",
                         "Operation timed out after", attempts=2, args=timeout))
    rows.append(FaultRow("a stall mid-body", server.url("/stall-body?size=50000&sent=20000&ms=20000"),
                         "timeout", "Operation timed out after", attempts=2, args=timeout))
    rows.append(FaultRow("a slow drip", server.url("/drip?size=100000&bytes_per_sec=300"), "timeout",
                         "Operation timed out after", attempts=2, http_status=200, args=timeout))

    # --max-size refuses a large Content-Length before the body and cuts an unbounded one.
    limit = ("--max-size", "10000")
    rows.append(FaultRow("Content-Length over --max-size", server.url("/img/big.jpg?size=5000000"), "too_large",
                         "larger than the 9.8 KiB limit (5000000 bytes)", http_status=200, args=limit))
    rows.append(FaultRow("an unbounded body without Content-Length", server.url("/unbounded"), "too_large",
                         "larger than the 9.8 KiB limit (", http_status=200, args=limit))
    rows.append(FaultRow("a gzip body that inflates past --max-size", server.url("/gzip/bomb.svg?size=12000&force=1"),
                         "too_large", "larger than the 9.8 KiB limit (", http_status=200, args=limit))

    # Bodies: HTML and empty 200s fail; a wrong Content-Type and gzip are accepted.
    rows.append(FaultRow("HTML with 200", server.url("/html"), "not_image", "not an image (server sent text/html)",
                         http_status=200))
    rows.append(FaultRow("an empty 200", server.url("/empty"), "empty",
                         "the server sent an empty body: could not download the image", http_status=200))
    rows.append(FaultRow("a 204 No Content", server.url("/status/204"), "empty",
                         "the server sent an empty body: could not download the image", http_status=204))
    wrong = server.url("/img/wrong.png?size=8000&content_type=text/plain")

    def wrong_reference():
        data, headers = fetch(wrong)
        check(headers.get_content_type() == "text/plain", "the server sends Content-Type text/plain",
              headers.get("Content-Type"))
        return data

    rows.append(FaultRow("image bytes with Content-Type text/plain", wrong, http_status=200, ok_name="wrong.png",
                         reference=wrong_reference))
    gzipped = server.url("/gzip/z.jpg?size=30000&force=1")

    def gzip_reference():
        data, headers = fetch(gzipped)  # urllib does not decode: the raw gzip body
        check(headers.get("Content-Encoding") == "gzip", "the server sends gzip", headers.get("Content-Encoding"))
        return gzip.decompress(data)

    rows.append(FaultRow("gzip Content-Encoding", gzipped, http_status=200, ok_name="z.jpg",
                         reference=gzip_reference))

    # HTTPS with a self-signed certificate: refused by default, trusted with --cacert, --insecure on request.
    tls_url = tls.url("/img/tls.jpg")

    def tls_reference():
        return fetch(tls_url, ssl.create_default_context(cafile=ca_file))[0]

    rows.append(FaultRow("self-signed, default options", tls_url, "tls",
                         "TLS verification failed: SSL certificate problem: self-signed certificate (trust the "
                         "server's CA with --cacert FILE, or skip verification with --insecure)", http_status=0))
    rows.append(FaultRow("self-signed, trusted through --cacert", tls_url, http_status=200, ok_name="tls.jpg",
                         args=("--cacert", ca_file), reference=tls_reference))
    rows.append(FaultRow("self-signed, --insecure", tls_url, http_status=200, ok_name="tls.jpg",
                         args=("--insecure",), reference=tls_reference))
    return rows


def plan_fault_runs(rows):
    """Packs rows into runs: one run shares options and exit code, and never two successful rows with the same
    file name (they would be renamed) nor the same URL (a duplicate is skipped, not fetched)."""
    runs = []  # [(args, exit_code, [rows])]
    for row in rows:
        for args, code, members in runs:
            if (args == row.args and code == row.exit_code and all(m.url != row.url for m in members) and
                    (row.ok_name is None or all(m.ok_name != row.ok_name for m in members))):
                members.append(row)
                break
        else:
            runs.append((row.args, row.exit_code, [row]))
    return runs


def run_fault_batch(work, server, number, args, exit_code, rows):
    """One imgdl run of `rows` between two good URLs; checks every row, the neighbours and the directory."""
    out = os.path.join(work, "out%d" % number)
    good = [("/img/good%d_a.jpg?size=6000" % number, "good%d_a.jpg" % number),
            ("/img/good%d_b.png?size=9000" % number, "good%d_b.png" % number)]
    urls = [server.url(good[0][0])] + [row.url for row in rows] + [server.url(good[1][0])]
    report = os.path.join(work, "report%d.json" % number)
    cmd = (list(urls) + ["-o", out, "--progress", "none", "--retries", "1", "-j", str(len(urls)),
                         "--report", report] + list(args))
    labels = [row.label for row in rows]
    r = run_imgdl(work, cmd, timeout=HANG_BOUND)
    where = "run %d (%s; %s)" % (number, " ".join(args) or "default options", ", ".join(labels))
    check(r.code == exit_code, "%s: exit code %d, expected %d" % (where, r.code, exit_code), r.stdout, r.stderr)
    rep = load_report(report)
    by_url = {res["url"]: res for res in rep["results"]}
    check(len(rep["results"]) == len(urls) and set(by_url) == set(urls), "%s: one result per URL" % where,
          sorted(by_url))

    expected_files = {name for _, name in good}
    for path, name in good:
        res = by_url[server.url(path)]
        check(res["status"] == "ok" and res["path"] == os.path.join(out, name),
              "%s: the good URL %s is unaffected" % (where, name), res)
        digest = hashlib.sha256(fetch(server.url(path))[0]).hexdigest()
        check(res["sha256"] == digest == image_bytes_sha(res["path"]),
              "%s: %s is byte-identical to what the server sends" % (where, name), res)

    failed_lines = [l for l in r.stdout.splitlines() if l.startswith("FAILED ")]
    for row in rows:
        res = by_url[row.url]
        what = "%s [%s]" % (row.label, row.url)
        check(res["elapsed_s"] < ROW_BOUND, "%s: took %.1f s" % (what, res["elapsed_s"]), res)
        check(res["elapsed_s"] >= row.min_seconds, "%s: the Retry-After was not waited for" % what, res)
        check(res["attempts"] == row.attempts, "%s: %d attempts, expected %d" % (what, res["attempts"],
                                                                                 row.attempts), res)
        if row.http_status is not None:
            check(res["http_status"] == row.http_status, "%s: HTTP status" % what, res)
        if row.kind is None:
            check(res["status"] == "ok" and res["error"] == "none", "%s: expected ok" % what, res)
            path = os.path.join(out, row.ok_name)
            check(res["path"] == path, "%s: saved as %s" % (what, row.ok_name), res)
            expected = row.reference()
            check(res["bytes"] == len(expected), "%s: byte count" % what, res)
            check(res["sha256"] == image_bytes_sha(path) == hashlib.sha256(expected).hexdigest(),
                  "%s: the file is byte-identical to what the server sends" % what, res)
            expected_files.add(row.ok_name)
        else:
            check(res["status"] == "failed" and res["error"] == row.kind,
                  "%s: expected failed/%s, got %s/%s" % (what, row.kind, res["status"], res["error"]), res)
            check(row.message in res["message"], "%s: message lacks %r" % (what, row.message), res)
            check(res["sha256"] == "" and not os.path.exists(res["path"]), "%s: a final file was left" % what, res)
            line = "FAILED %s: %s" % (os.path.basename(res["path"]), res["message"])
            check(failed_lines.count(line) == 1, "%s: one %r line" % (what, line), r.stdout)
    check(len(failed_lines) == sum(1 for row in rows if row.kind), "%s: one FAILED line per failed row" % where,
          r.stdout)
    check(files_in(out) == expected_files, "%s: only the good files (and the ok rows')" % where,
          sorted(files_in(out)), sorted(expected_files))
    no_part_files(out)
    return r.seconds


def scenario_cli_fault_matrix(work):
    """Every row of the library's fault matrix through the CLI (see fault_rows): for each row the report's
    error kind and message (or the exact bytes when it succeeds), the attempt count, the exit code, two good
    URLs of the same run byte-identical, no final file for a failed URL, no .part, bounded time."""
    with Server(work, threads=128) as server, Server(work, tls=True) as tls:
        import ssl
        # The self-signed certificate, taken off the connection (testlib discards the server's stdout, which names
        # its CA file): it is its own CA.
        ca_file = os.path.join(work, "ca.pem")
        with open(ca_file, "w") as f:
            f.write(ssl.get_server_certificate(("127.0.0.1", tls.port)))
        rows = fault_rows(server, tls, ca_file)
        runs = plan_fault_runs(rows)
        start = time.monotonic()
        for number, (args, exit_code, members) in enumerate(runs):
            seconds = run_fault_batch(work, server, number, args, exit_code, members)
            print("run %d: %d rows, exit %d, %.1f s (%s)" % (number, len(members), exit_code, seconds,
                                                            " ".join(args) or "default options"))
        print("fault matrix: %d rows in %d runs, %.1f s" % (len(rows), len(runs), time.monotonic() - start))


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
    "cli_fault_matrix": scenario_cli_fault_matrix,
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
