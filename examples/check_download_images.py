#!/usr/bin/env python3
"""CTest driver of examples/download_images.cpp: runs it against imgdl-testserver on a free loopback
port, in a fresh directory, and checks that it prints a line per seed image and the closing line, and
leaves exactly the five images there.

    check_download_images.py --server PATH --program PATH --workdir DIR
"""

import argparse
import os
import re
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "support"))
import testlib  # noqa: E402
from testlib import SEED_NAMES, check  # noqa: E402

DEFAULT_SIZE = 20000  # what /img serves without size=


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--server", required=True)
    parser.add_argument("--program", required=True)
    parser.add_argument("--workdir", required=True)
    args = parser.parse_args()
    shutil.rmtree(args.workdir, ignore_errors=True)
    server_dir = os.path.join(args.workdir, "server")
    run_dir = os.path.join(args.workdir, "run")
    os.makedirs(server_dir)
    os.makedirs(run_dir)
    with testlib.Server(args.server, server_dir) as server:
        # The seed's paths (/9/9d/<name>, ...) under /img, which serves any path below it.
        proc = subprocess.run([args.program, server.url("/img")], cwd=run_dir, capture_output=True, text=True,
                              timeout=60)
    out = proc.stdout
    check(proc.returncode == 0, "download_images exited %d" % proc.returncode, out, proc.stderr)
    lines = out.splitlines()
    check(len(lines) == 6, "expected five download lines and the closing line", out)
    check(sorted(lines[:5]) == sorted(name + " was downloaded..." for name in SEED_NAMES),
          "not one '<name> was downloaded...' line per seed image", out)
    check(re.fullmatch(r"It took \d+\.\d+ second\(s\) to finish\.", lines[5]), "no closing line", out)
    check(sorted(os.listdir(run_dir)) == sorted(SEED_NAMES), "not exactly the five images", os.listdir(run_dir))
    for name in SEED_NAMES:
        check(os.path.getsize(os.path.join(run_dir, name)) == DEFAULT_SIZE, name + " is not the served image")
    print(out, end="")


if __name__ == "__main__":
    try:
        main()
    except testlib.CheckFailed as failure:
        print("FAILED: %s" % failure, file=sys.stderr)
        sys.exit(1)
