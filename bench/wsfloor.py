"""`python -m bench.wsfloor PORT`: the floor for fan-out — a bare `websockets` server that broadcasts.

No app, no auth, no database: it holds connections and, when one sends
`broadcast <text>`, sends `<text>` to every connection. Prints `READY <pid>`;
exits when stdin closes.
"""

from __future__ import annotations

import asyncio
import os
import sys

from websockets.asyncio.server import ServerConnection, broadcast, serve

from bench.common import raise_fd_limit

CONNECTIONS: set[ServerConnection] = set()


async def handler(ws: ServerConnection) -> None:
    CONNECTIONS.add(ws)
    try:
        async for msg in ws:
            if isinstance(msg, str) and msg.startswith("broadcast "):
                broadcast(CONNECTIONS, msg[len("broadcast "):])
    finally:
        CONNECTIONS.discard(ws)


async def main_async(port: int) -> None:
    async with serve(handler, "127.0.0.1", port, backlog=4096, ping_interval=None, compression=None):
        print(f"READY {os.getpid()}", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)


def main() -> None:
    raise_fd_limit(65536)
    asyncio.run(main_async(int(sys.argv[1])))


if __name__ == "__main__":
    main()
