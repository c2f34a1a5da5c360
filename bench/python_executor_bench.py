#!/usr/bin/env python3
"""Python's concurrent.futures.ThreadPoolExecutor measured like bench/executor_bench.cpp.

Submits N empty tasks in a batch, then calls result() on each; median of R runs for 1, 4 and 16
workers. With --cpp PATH it also runs the C++ executor_bench (--json) and prints imgdl's figures
beside Python's (executor_bench's own table compares imgdl with BS::thread_pool and Boost.Asio).

    python3 bench/python_executor_bench.py [--tasks N] [--repeats R] [--cpp build/exec-rel/bench/executor_bench]
"""

import argparse
import json
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

WORKERS = (1, 4, 16)


def noop():
    pass


def batch_rate(executor, tasks):
    start = time.perf_counter()
    futures = [executor.submit(noop) for _ in range(tasks)]
    for f in futures:
        f.result()
    return tasks / (time.perf_counter() - start)


def measure(tasks, repeats):
    rates = {}
    for workers in WORKERS:
        with ThreadPoolExecutor(max_workers=workers) as executor:
            batch_rate(executor, min(tasks, 10_000))  # warm-up: start the threads
            rates[workers] = statistics.median(batch_rate(executor, tasks) for _ in range(repeats))
    return rates


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=100_000, help="tasks per run (default 100,000)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--cpp", help="path to executor_bench, to run it and compare")
    parser.add_argument("--cpp-tasks", type=int, default=1_000_000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    python = measure(args.tasks, args.repeats)
    cpp = None
    if args.cpp:
        out = subprocess.run(
            [args.cpp, "--json", "--tasks", str(args.cpp_tasks), "--repeats", str(args.repeats)],
            check=True, capture_output=True, text=True).stdout
        cpp = json.loads(out)

    if args.json:
        print(json.dumps({"python": {"tasks": args.tasks, "repeats": args.repeats, "rates": python}, "cpp": cpp}))
        return

    print(f"Empty tasks, submit a batch then result() each, median of {args.repeats} runs (tasks/s)")
    header = f"{'workers':<8} {'Python TPE':>12}"
    if cpp:
        header += f" {'imgdl':>12} {'imgdl/Python':>13}"
    print(header)
    # executor_bench measures its peers too; this script compares Python with imgdl only.
    imgdl = next(t for t in cpp["tools"] if t["name"] == "imgdl") if cpp else None
    cpp_rates = {r["workers"]: r["batch_tasks_per_s"] for r in imgdl["results"]} if cpp else {}
    for workers in WORKERS:
        line = f"{workers:<8} {python[workers]:>12,.0f}"
        if cpp:
            line += f" {cpp_rates[workers]:>12,.0f} {cpp_rates[workers] / python[workers]:>12.1f}x"
        print(line)
    print(f"Python: N = {args.tasks:,} per run" + (f"; imgdl: N = {cpp['tasks']:,} per run" if cpp else ""))
    if cpp:
        print(f"imgdl heap bytes per pending task: {imgdl['bytes_per_pending_task']:.1f}")
    print(f"Python {sys.version.split()[0]}")


if __name__ == "__main__":
    main()
