"""One hub process's moving parts, started and stopped together."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg

from hub import db
from hub.blobs import PgBlobStore
from hub.config import Config
from hub.events import EventFanout
from hub.listen import Listener
from hub.migrate import migrate
from hub.outbox import OutboxDispatcher
from hub.supervisor import Supervisor
from inbox.conversations import wake_snoozed
from routing.loop import Routing

log = logging.getLogger(__name__)


@dataclass
class Hub:
    config: Config
    database_url: str
    pool: asyncpg.Pool
    listener: Listener
    fanout: EventFanout
    blobs: PgBlobStore
    supervisor: Supervisor
    outbox: OutboxDispatcher
    routing: Routing  # presence, queue, auto-assignment, SLA clocks (routing/loop.py)


HOUSEKEEPING_SECONDS = 10.0


async def housekeeping(pool: asyncpg.Pool) -> None:
    """Time-driven state changes: snoozes that ran out, expired sessions."""
    while True:
        try:
            woken = await wake_snoozed(pool)
            if woken:
                log.info("reopened %d snoozed conversation(s)", woken)
            await pool.execute("DELETE FROM sessions WHERE expires_at < now()")
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as e:
            log.warning("housekeeping cannot reach the database (%s)", e)
        await asyncio.sleep(HOUSEKEEPING_SECONDS)


@contextlib.asynccontextmanager
async def running_hub(config: Config, database_url: str, *, connectors: bool = True) -> AsyncIterator[Hub]:
    """Migrate, then run event fan-out, outbox dispatcher and connector supervisor until exit."""
    conn = await db.connect(database_url)
    try:
        applied = await migrate(conn)
    finally:
        await conn.close()
    for m in applied:
        log.info("applied migration %s: %s", m.version, m.title)
    pool = await db.create_pool(database_url)
    listener = Listener(database_url)
    fanout = EventFanout(pool, listener)
    blobs = PgBlobStore(pool, config.max_attachment_bytes)
    supervisor = Supervisor(pool, database_url, blobs, poll_inbound=connectors)
    outbox = OutboxDispatcher(pool, listener, supervisor.connector_for, blobs)
    hub = Hub(config, database_url, pool, listener, fanout, blobs, supervisor, outbox, Routing(pool, fanout))
    chores: asyncio.Task[None] | None = None
    try:
        await listener.start()
        await fanout.start()
        await outbox.start()
        await supervisor.start()
        chores = asyncio.create_task(housekeeping(pool), name="housekeeping")
        await hub.routing.start()
        yield hub
    finally:
        if chores is not None:
            chores.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await chores
        await hub.routing.stop()
        await supervisor.stop()
        await outbox.stop()
        await fanout.stop()
        await listener.stop()
        await pool.close()
