"""A TCP relay that delays every byte by a set time in each direction: the
latency of a long link, for a kernel without `tc netem` (see test_netns.py).

    python -m tests.delay_relay --delay-file F [--ready-file R] 127.0.0.1:7800=10.1.7.1:7800 [LISTEN=TO ...]

The one-way delay in milliseconds is read from F (re-read every 100 ms, 0 if
absent), so a test changes it without cutting connections. Each direction is
a bounded queue of (due time, chunk): bytes keep their order and the relay
reads no faster than it delivers."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from pathlib import Path

QUEUE_CHUNKS = 256


class Delay:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.seconds = 0.0

    async def watch(self) -> None:
        while True:
            try:
                self.seconds = max(0.0, float(self.path.read_text().strip() or 0) / 1000)
            except (OSError, ValueError):
                self.seconds = 0.0
            await asyncio.sleep(0.1)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: Delay) -> None:
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue(QUEUE_CHUNKS)

    async def take() -> None:
        while True:
            data = await reader.read(65536)
            await queue.put((loop.time() + delay.seconds, data))
            if not data:
                return

    async def give() -> None:
        while True:
            due, data = await queue.get()
            wait = due - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            if not data:
                with contextlib.suppress(OSError):
                    writer.write_eof()
                return
            writer.write(data)
            await writer.drain()

    tasks = [asyncio.create_task(take()), asyncio.create_task(give())]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
    finally:
        for t in tasks:
            t.cancel()  # one side failed (a reset): the other stops too
        writer.close()


async def _serve(listen: str, to: str, delay: Delay) -> asyncio.Server:
    to_host, to_port = to.rsplit(":", 1)

    async def handle(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        try:
            server_r, server_w = await asyncio.wait_for(asyncio.open_connection(to_host, int(to_port)), 10)
        except (OSError, TimeoutError):
            client_w.close()
            return
        await asyncio.gather(_pipe(client_r, server_w, delay), _pipe(server_r, client_w, delay))

    host, port = listen.rsplit(":", 1)
    return await asyncio.start_server(handle, host, int(port))


async def _serve_all(pairs: list[str], delay: Delay, ready: Path | None) -> None:
    watcher = asyncio.create_task(delay.watch())
    servers = [await _serve(listen, to, delay) for listen, to in (p.split("=", 1) for p in pairs)]
    if ready is not None:
        ready.write_text("listening\n")
    try:
        await asyncio.gather(*(s.serve_forever() for s in servers))
    finally:
        watcher.cancel()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--delay-file", required=True, type=Path)
    ap.add_argument("--ready-file", type=Path, help="written once every LISTEN address accepts connections")
    ap.add_argument("pairs", nargs="+", metavar="LISTEN=TO", help="relay LISTEN (host:port) to TO (host:port)")
    a = ap.parse_args()
    asyncio.run(_serve_all(a.pairs, Delay(a.delay_file), a.ready_file))


if __name__ == "__main__":
    main()
