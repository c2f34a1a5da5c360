#!/usr/bin/env python3
"""A TCP proxy on loopback that delays every chunk by a fixed one-way time in each direction, so a
connection through it sees that much more round-trip time (2 x delay). For the HTTPS benchmark's
latency scenarios: no network namespace or root needed.

    delay_proxy.py --delay-ms D --target-port P --port-file F ADDR [ADDR ...]

Listens on ADDR:port for every ADDR (one port for all, chosen free on the first address and written to
F once every listener is up) and forwards each connection to the same ADDR on --target-port. Loopback
addresses only. Standard library only; stops on SIGTERM.
"""

import argparse
import asyncio
import ipaddress
import os
import signal
import socket
import sys


async def pipe(reader, writer, delay):
    """Copies reader to writer, each chunk leaving `delay` seconds after it arrived, in order."""
    loop = asyncio.get_running_loop()
    queue = asyncio.Queue()

    async def receive():
        try:
            while True:
                data = await reader.read(65536)
                await queue.put((loop.time() + delay, data))
                if not data:
                    return
        except (ConnectionError, OSError):
            await queue.put((loop.time() + delay, b""))

    receiver = asyncio.ensure_future(receive())
    try:
        while True:
            due, data = await queue.get()
            wait = due - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            if not data:
                if writer.can_write_eof():
                    writer.write_eof()
                return
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        receiver.cancel()


async def handle(client_reader, client_writer, target_port, delay):
    addr = client_writer.get_extra_info("sockname")[0]
    try:
        server_reader, server_writer = await asyncio.open_connection(addr, target_port)
    except OSError:
        client_writer.close()
        return
    for w in (client_writer, server_writer):
        w.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    await asyncio.gather(pipe(client_reader, server_writer, delay), pipe(server_reader, client_writer, delay))
    for w in (client_writer, server_writer):
        w.close()


async def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--delay-ms", type=float, required=True, help="one-way delay per direction")
    ap.add_argument("--target-port", type=int, required=True)
    ap.add_argument("--port-file", required=True)
    ap.add_argument("addrs", nargs="+")
    args = ap.parse_args()
    for a in args.addrs:
        if not ipaddress.ip_address(a).is_loopback:
            sys.exit(f"delay_proxy: {a} is not a loopback address")
    delay = args.delay_ms / 1000
    cb = lambda r, w: handle(r, w, args.target_port, delay)  # noqa: E731
    first = await asyncio.start_server(cb, args.addrs[0], 0, backlog=1024)
    port = first.sockets[0].getsockname()[1]
    servers = [first] + [await asyncio.start_server(cb, a, port, backlog=1024) for a in args.addrs[1:]]
    with open(args.port_file + ".tmp", "w") as f:
        f.write(f"{port}\n")
    os.replace(args.port_file + ".tmp", args.port_file)  # whole, for the reader polling it
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    for s in servers:
        s.close()


if __name__ == "__main__":
    asyncio.run(main())
