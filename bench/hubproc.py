"""`python -m bench.hubproc URL PORT`: one hub process (fan-out, outbox, web server) for a benchmark to drive.

Connector polling is off (the bench channels have no servers behind them).
Prints `READY <pid>` once uvicorn listens, then serves until stdin closes, so
the benchmark measures this process alone (RSS, CPU) and its clients live
elsewhere.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import tempfile
from pathlib import Path

import uvicorn

from bench.common import raise_fd_limit
from hub.config import Config
from hub.runtime import running_hub
from web.app import create_app


async def serve(url: str, port: int) -> None:
    with tempfile.TemporaryDirectory(prefix="omnihub-bench-") as tmp:
        cfg = Config(database_url=url, data_dir=Path(tmp), host="127.0.0.1", port=port, secret="bench-secret")
        async with running_hub(cfg, url, connectors=False) as hub:
            app = create_app(hub)
            server = uvicorn.Server(
                uvicorn.Config(
                    app, host="127.0.0.1", port=port, ws="websockets-sansio", lifespan="off",
                    log_level="warning", backlog=4096, timeout_keep_alive=60,
                )
            )
            task = asyncio.create_task(server.serve())
            while not server.started:
                if task.done():
                    task.result()
                await asyncio.sleep(0.01)
            import os

            print(f"READY {os.getpid()}", flush=True)
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(None, sys.stdin.read)  # until the benchmark closes our stdin
            server.should_exit = True
            await task


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="hub: %(levelname)s %(name)s: %(message)s")
    raise_fd_limit(65536)
    asyncio.run(serve(sys.argv[1], int(sys.argv[2])))


if __name__ == "__main__":
    main()
