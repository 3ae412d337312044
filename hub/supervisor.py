"""The connector supervisor: runs each channel's inbound loop in exactly one process.

For every enabled channel a task tries to take a Postgres advisory lock keyed
by the channel id, on a connection of its own. The holder runs the connector's
inbound loop and restarts it with backoff when it crashes, recording the error
on the channel (shown by `omnihub channel list` and the API). If the holder
dies, PostgreSQL drops its session and the lock; another process's next try
takes over.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import asyncpg

from connectors.registry import CONNECTORS
from connectors.registry import connector_for as make_connector
from hub import channels, db
from hub.blobs import PgBlobStore
from hub.types import ChannelAccount, Connector
from inbox.sink import ChannelSink

log = logging.getLogger(__name__)

LOCK_NAMESPACE = 0x6F6D6E68  # "omnh": first key of pg_try_advisory_lock(int, int)
RESCAN_SECONDS = 3.0
RESTART_MAX_SECONDS = 60.0


class Supervisor:
    def __init__(self, pool: asyncpg.Pool, database_url: str, blobs: PgBlobStore, *, poll_inbound: bool = True) -> None:
        self._pool = pool
        self._url = database_url
        self._blobs = blobs
        self._poll_inbound = poll_inbound
        self._holders: dict[int, asyncio.Task[None]] = {}
        self._senders: dict[int, Connector] = {}
        self._senders_lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self.running: set[int] = set()  # channels whose inbound loop runs in this process

    async def start(self) -> None:
        if self._poll_inbound:
            self._task = asyncio.create_task(self._scan_forever(), name="supervisor")

    async def stop(self) -> None:
        tasks = [t for t in [self._task, *self._holders.values()] if t]
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t
        for c in self._senders.values():
            with contextlib.suppress(Exception):
                await c.close()
        self._senders.clear()

    async def connector_for(self, channel_id: int) -> Connector:
        """The connector that sends for a channel (one per channel per process)."""
        connector = self._senders.get(channel_id)
        if connector is not None:
            return connector
        # Replies of many conversations ask at once; all must share one instance (and its rate limits).
        async with self._senders_lock:
            connector = self._senders.get(channel_id)
            if connector is None:
                account = await channels.get_account(self._pool, channel_id)
                if account is None:
                    raise LookupError(f"channel {channel_id} does not exist")
                await CONNECTORS.load(account.kind)
                connector = make_connector(account)
                self._senders[channel_id] = connector
        return connector

    async def _scan_forever(self) -> None:
        while True:
            try:
                accounts = await channels.enabled_accounts(self._pool)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as e:
                log.warning("supervisor cannot read channels (%s)", e)
                accounts = []
            wanted = {a.id for a in accounts}
            for a in accounts:
                if a.id not in self._holders:
                    self._holders[a.id] = asyncio.create_task(self._hold(a), name=f"channel-{a.id}")
            for channel_id in list(self._holders):
                if channel_id not in wanted:  # disabled or removed
                    self._holders.pop(channel_id).cancel()
            await asyncio.sleep(RESCAN_SECONDS)

    async def _hold(self, account: ChannelAccount) -> None:
        """Take the channel's lock (waiting while another process holds it), then run its loop."""
        while True:
            conn: asyncpg.Connection | None = None
            try:
                conn = await db.connect(self._url)
                got = await conn.fetchval("SELECT pg_try_advisory_lock($1, $2)", LOCK_NAMESPACE, account.id)
                if got:
                    log.info("channel %s (%s): this process polls it", account.id, account.name)
                    self.running.add(account.id)
                    await self._run_while_locked(account, conn)
            except asyncio.CancelledError:
                raise
            except Exception as e:
                log.warning("channel %s: lock connection failed (%s)", account.id, e)
            finally:
                self.running.discard(account.id)
                if conn is not None:
                    with contextlib.suppress(Exception):
                        await asyncio.shield(conn.close(timeout=2))
            await asyncio.sleep(RESCAN_SECONDS)

    async def _run_while_locked(self, account: ChannelAccount, conn: asyncpg.Connection) -> None:
        loop = asyncio.create_task(self._run_with_restarts(account), name=f"inbound-{account.id}")
        try:
            # Losing the lock connection means losing the lock: stop polling at once.
            while not loop.done():
                await asyncio.wait({loop}, timeout=5.0)
                if not loop.done():
                    await asyncio.wait_for(conn.fetchval("SELECT 1"), timeout=5.0)
        finally:
            loop.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await loop

    async def _run_with_restarts(self, account: ChannelAccount) -> None:
        delay = 1.0
        sink = ChannelSink(self._pool, account.id, self._blobs)
        while True:
            connector: Connector | None = None
            try:
                await CONNECTORS.load(account.kind)  # a heavy library is imported off the event loop
                connector = make_connector(account)  # a bad stored setting is a crash to record, too
                await connector.run(sink)
                log.warning("channel %s inbound loop returned; restarting it", account.id)
            except asyncio.CancelledError:
                raise
            except Exception as e:
                reason = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
                log.error("channel %s inbound loop crashed: %s; restarting in %.0fs", account.id, reason, delay)
                with contextlib.suppress(Exception):
                    await channels.record_error(self._pool, account.id, reason)
            finally:
                if connector is not None:
                    with contextlib.suppress(Exception):
                        await connector.close()
            await asyncio.sleep(delay)
            delay = min(delay * 2, RESTART_MAX_SECONDS)
