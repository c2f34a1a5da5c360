#!/usr/bin/env python3
"""Writes the reports N shards of a list of M URLs would write, for measuring `imgdl merge`.

    bench/shard_reports.py M N BLOCK DIR    ->  DIR/shard-0.json ... DIR/shard-(N-1).json

Every result is ok (~330 bytes of JSON, as imgdl writes them); each report's results are in a
completion order (input order with a local shuffle of ~200 positions), as a pooled run writes them.
Standard library only; deterministic.
"""
import json
import random
import sys


def main():
    urls, shards, block, directory = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    rng = random.Random(1)
    for k in range(shards):
        positions = [i for i in range(urls) if (i // block) % shards == k]
        positions.sort(key=lambda i: i + rng.random() * 200)
        with open(f"{directory}/shard-{k}.json", "w") as f:
            f.write('{\n  "imgdl_version": "0.1.0",\n  "mode": "pooled",\n  "workers": 32,\n  "output_dir": "out",\n')
            f.write(f'  "shard": {{"index": {k}, "count": {shards}, "block_size": {block}}},\n  "results": [')
            for n, i in enumerate(positions):
                r = {"url": f"http://example.com/images/{i:09d}/picture.jpg", "path": f"out/picture.{i}.jpg",
                     "status": "ok", "http_status": 200, "http_version": "1.1", "bytes": 40000 + i % 1000,
                     "image_type": "jpeg", "width": 640, "height": 480, "orientation": 0, "sha256": "%064x" % i,
                     "attempts": 1, "elapsed_s": 0.0123, "error": "none", "message": "", "index": i,
                     "format": "jpeg"}
                f.write(("\n    " if n == 0 else ",\n    ") + json.dumps(r, separators=(",", ":")))
            f.write('\n  ],\n  "invalid_lines": [],\n  "totals": {"urls": %d, "elapsed_s": 10.0},\n'
                    '  "interrupted": false,\n  "exit_code": 0\n}\n' % len(positions))


if __name__ == "__main__":
    main()
