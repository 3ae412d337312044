"""Where the database spends a benchmark: pg_stat_activity sampled every few milliseconds.

A cheap stand-in for pg_stat_statements (which needs a server restart to load):
each sample counts the bench database's backends by state and wait event, so
"IO:WALSync 40 %" says commits wait on the disk and "Lock:object" says they
queue for the NOTIFY lock.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import AsyncIterator

import asyncpg

from bench.common import JSONDict


class WaitSampler:
    def __init__(self, admin_url: str, database: str, interval: float = 0.01) -> None:
        self._url = admin_url
        self._db = database
        self._interval = interval
        self.counts: collections.Counter[str] = collections.Counter()
        self.samples = 0

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[WaitSampler]:
        conn = await asyncpg.connect(self._url)
        stop = asyncio.Event()

        async def loop() -> None:
            while not stop.is_set():
                rows = await conn.fetch(
                    "SELECT state, wait_event_type, wait_event FROM pg_stat_activity"
                    " WHERE datname = $1 AND backend_type = 'client backend' AND pid <> pg_backend_pid()",
                    self._db,
                )
                self.samples += 1
                for r in rows:
                    if r["state"] == "idle":
                        continue
                    if r["state"] == "idle in transaction":
                        key = "idle in transaction (waiting for the client)"
                    elif r["wait_event_type"]:
                        key = f"{r['wait_event_type']}:{r['wait_event']}"
                    else:
                        key = "CPU (running)"
                    self.counts[key] += 1
                await asyncio.sleep(self._interval)

        task = asyncio.create_task(loop())
        try:
            yield self
        finally:
            stop.set()
            await task
            await conn.close()

    def report(self, top: int = 8) -> JSONDict:
        """Average busy backends per state: 'IO:WALSync': 3.1 means three backends waited there on average."""
        n = max(1, self.samples)
        return {k: round(v / n, 2) for k, v in self.counts.most_common(top)}
