#!/usr/bin/env python3
"""Per-connection turnaround seen by the server: the time from a response to that connection's next
request. A keep-alive client that is slow to send its next request shows here, whatever its wall time.

    perf record -q -e syscalls:sys_enter_sendto -e syscalls:sys_exit_recvfrom -p <server pid> -o perf.s &
    <run the client>; kill -INT %1
    perf script -i perf.s -F tid,time,event | python3 bench/turnaround.py

imgdl-testserver serves each connection on one thread, so a thread's sendto (the response) followed by
its next recvfrom (the next request) brackets one turnaround.
"""
import statistics
import sys


def main():
    last_send = {}
    gaps = []
    for line in sys.stdin:
        fields = line.split()
        if len(fields) < 3:
            continue
        tid, t, event = int(fields[0]), float(fields[1].rstrip(":")), fields[2]
        if "sendto" in event:
            last_send[tid] = t
        elif "recvfrom" in event and tid in last_send:
            gaps.append((t - last_send.pop(tid)) * 1e6)
    if not gaps:
        sys.exit("no sendto/recvfrom pairs in the input")
    gaps.sort()
    pick = lambda q: gaps[min(len(gaps) - 1, int(len(gaps) * q))]
    print(f"n={len(gaps)} turnaround us: p10 {pick(0.1):.0f} p50 {pick(0.5):.0f} p90 {pick(0.9):.0f} "
          f"mean {statistics.mean(gaps):.0f}")


if __name__ == "__main__":
    main()
