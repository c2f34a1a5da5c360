#!/usr/bin/env python3
"""The seed's program (ThreadPoolExecutor + urlopen), as the seed wrote it, for bench/harness.py.

Changes from the seed, only what benchmarking needs: the URL list comes from the file argv[1] (one URL
a line) instead of five Wikimedia URLs, files go into the directory argv[2] (default: the current
directory), argv[3] optionally sets max_workers (default: the executor's own default, as in the seed),
and a query string is cut from the file name (the seed's URLs had none). The per-file print is kept.

    python3 bench/seed_download.py LIST [DIR [WORKERS]]
"""

from concurrent.futures import ThreadPoolExecutor
from urllib.request import urlopen
from urllib.parse import urlsplit
import time
import os
import sys


def download_image(url):
    image_data = None
    with urlopen(url) as f:
        image_data = f.read()

    if not image_data:
        raise Exception(f"Error: could not download the image from {url}")

    filename = os.path.basename(urlsplit(url).path)
    with open(filename, 'wb') as image_file:
        image_file.write(image_data)
        print(f'{filename} was downloaded...')


start = time.perf_counter()

with open(sys.argv[1]) as url_file:
    urls = [line.strip() for line in url_file if line.strip()]
if len(sys.argv) > 2:
    os.chdir(sys.argv[2])
max_workers = int(sys.argv[3]) if len(sys.argv) > 3 else None

with ThreadPoolExecutor(max_workers=max_workers) as executor:
    executor.map(download_image, urls)

finish = time.perf_counter()

print(f'It took {finish-start} second(s) to finish.')
