"""One LISTEN connection per process, shared by everyone who waits on NOTIFY.

A pool connection can't LISTEN (it is UNLISTENed on release), so this holds a
dedicated one and reconnects with backoff after the database goes away. After
a reconnect every callback is called once: NOTIFYs sent while we were gone are
lost, and listeners catch up by reading tables.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

import asyncpg

from hub import db

log = logging.getLogger(__name__)

Callback = Callable[[str], None]


class Listener:
    def __init__(self, database_url: str) -> None:
        self._url = database_url
        self._callbacks: dict[str, list[Callback]] = {}
        self._conn: asyncpg.Connection | None = None
        self._task: asyncio.Task[None] | None = None
        self._lost = asyncio.Event()
        self.connected = asyncio.Event()

    def on(self, channel: str, callback: Callback) -> None:
        """Register before `start`."""
        self._callbacks.setdefault(channel, []).append(callback)

    async def start(self) -> None:
        await self._connect()
        self._task = asyncio.create_task(self._watch(), name="listener")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._conn and not self._conn.is_closed():
            await self._conn.close()

    async def _connect(self) -> None:
        conn = await db.connect(self._url)
        conn.add_termination_listener(lambda _c: self._lost.set())
        for channel in self._callbacks:
            await conn.add_listener(channel, self._dispatch)
        self._conn = conn
        self._lost.clear()
        self.connected.set()

    def _dispatch(self, _conn: object, _pid: int, channel: str, payload: str) -> None:
        for cb in self._callbacks.get(channel, ()):
            try:
                cb(payload)
            except Exception:
                log.exception("listener callback for %s failed", channel)

    async def _watch(self) -> None:
        delay = 0.2
        while True:
            await self._wait_lost()
            self.connected.clear()
            log.warning("LISTEN connection lost; reconnecting")
            while True:
                await asyncio.sleep(delay)
                try:
                    await self._connect()
                except Exception as e:
                    delay = min(delay * 2, 5.0)
                    log.warning("reconnect failed (%s); next try in %.1fs", e, delay)
                    continue
                delay = 0.2
                log.info("LISTEN connection restored")
                for callbacks in self._callbacks.values():
                    for cb in callbacks:
                        cb("")
                break

    async def _wait_lost(self) -> None:
        # A termination listener fires on a clean close; a silently dead socket
        # is only found by using it, hence the periodic probe.
        while not self._lost.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._lost.wait(), timeout=5.0)
                return
            conn = self._conn
            if conn is None or conn.is_closed():
                return
            try:
                await asyncio.wait_for(conn.fetchval("SELECT 1"), timeout=5.0)
            except Exception:
                with contextlib.suppress(Exception):
                    conn.terminate()
                return
