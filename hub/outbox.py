"""The outbox dispatcher: delivers queued replies through their channel.

Rows are claimed with a lease (FOR UPDATE SKIP LOCKED), so several hub
processes share the work and a process that dies mid-send leaves its rows to be
retried when the lease runs out. The network call happens outside any
transaction. Outcomes: sent; retry later (channel's retry-after, or exponential
backoff for temporary failures); failed with a reason the agent sees.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable
from typing import Any

import asyncpg

from hub.errors import DeliveryError, PermanentFailure, RetryAfter
from hub.events import publish
from hub.listen import Listener
from hub.types import Attachment, BlobStore, Connector, OutboundMessage
from inbox.reply import OUTBOX_CHANNEL
from inbox.views import fetch_message

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 8
LEASE_SECONDS = 60
BACKOFF_BASE = 1.0
BACKOFF_MAX = 300.0

ConnectorFor = Callable[[int], Any]  # channel id -> awaitable Connector


def backoff(attempt: int) -> float:
    """Seconds before attempt `attempt + 1`: 1, 2, 4 … capped, with jitter so retries don't align."""
    delay: float = min(BACKOFF_MAX, BACKOFF_BASE * 2 ** (attempt - 1))
    return delay * random.uniform(0.8, 1.2)


class OutboxDispatcher:
    def __init__(self, pool: asyncpg.Pool, listener: Listener, connector_for: ConnectorFor, blobs: BlobStore) -> None:
        self._pool = pool
        self._connector_for = connector_for
        self._blobs = blobs
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        listener.on(OUTBOX_CHANNEL, lambda _p: self._wake.set())

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="outbox")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            try:
                while await self.dispatch_once():
                    pass
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as e:
                log.warning("outbox cannot reach the database (%s)", e)
            with contextlib.suppress(TimeoutError):
                due = await self._next_due()  # before creating the wait(): a cancel here must not leak it
                await asyncio.wait_for(self._wake.wait(), timeout=due)
            self._wake.clear()

    async def _next_due(self) -> float:
        try:
            seconds = await self._pool.fetchval(
                "SELECT extract(epoch FROM min(greatest(next_attempt_at, coalesce(locked_until, next_attempt_at))) - now())"
                " FROM outbox"
            )
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
            return 1.0
        if seconds is None:
            return 5.0
        return float(min(max(seconds, 0.01), 5.0))

    async def dispatch_once(self, limit: int = 50) -> bool:
        """Claim due rows and deliver them; True if the batch was full."""
        rows = await self._pool.fetch(
            "UPDATE outbox SET locked_until = now() + make_interval(secs => $2), attempts = attempts + 1"
            " WHERE id IN (SELECT id FROM outbox WHERE next_attempt_at <= now()"
            "   AND (locked_until IS NULL OR locked_until < now())"
            "   ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED)"
            " RETURNING id, message_id, channel_id, attempts",
            limit,
            LEASE_SECONDS,
        )
        if not rows:
            return False
        # Replies in one conversation go out in order; conversations in parallel.
        by_conversation: dict[int, list[asyncpg.Record]] = {}
        details = await self._load([r["message_id"] for r in rows])
        for r in sorted(rows, key=lambda r: r["id"]):
            d = details.get(r["message_id"])
            if d is None:
                continue
            by_conversation.setdefault(d["conversation_id"], []).append(r)
        await asyncio.gather(*(self._deliver_in_order(rs, details) for rs in by_conversation.values()))
        return len(rows) == limit

    async def _deliver_in_order(self, rows: list[asyncpg.Record], details: dict[int, asyncpg.Record]) -> None:
        for r in rows:
            await self._deliver(r, details[r["message_id"]])

    async def _load(self, message_ids: list[int]) -> dict[int, asyncpg.Record]:
        rows = await self._pool.fetch(
            "SELECT m.id, m.conversation_id, m.channel_id, m.text, m.attachments, c.subject, c.client_id,"
            " i.external_id AS recipient,"
            " ARRAY(SELECT x.external_id FROM messages x WHERE x.conversation_id = m.conversation_id"
            "       AND x.external_id IS NOT NULL AND x.id < m.id ORDER BY x.id) AS refs"
            " FROM messages m JOIN conversations c ON c.id = m.conversation_id"
            " JOIN identities i ON i.id = c.identity_id WHERE m.id = ANY($1::bigint[])",
            message_ids,
        )
        return {r["id"]: r for r in rows}

    async def _deliver(self, row: asyncpg.Record, d: asyncpg.Record) -> None:
        refs = tuple(d["refs"])
        out = OutboundMessage(
            message_id=d["id"],
            channel_id=d["channel_id"],
            conversation_id=d["conversation_id"],
            recipient=d["recipient"],
            text=d["text"],
            attachments=tuple(Attachment(**a) for a in d["attachments"]),
            subject=d["subject"],
            thread_refs=refs,
            reply_to_external_id=refs[-1] if refs else "",
            attempt=row["attempts"],
        )
        try:
            connector: Connector = await self._connector_for(d["channel_id"])
            result = await connector.send(out, self._blobs)
        except RetryAfter as e:
            log.info("message %s: channel asks to wait %.1fs", d["id"], e.seconds)
            await self._later(row, d, e.reason, e.seconds)
        except PermanentFailure as e:
            await self._fail(row, d, e.reason)
        except DeliveryError as e:
            await self._retry_or_fail(row, d, e.reason)
        except Exception as e:
            log.exception("message %s: unexpected error from the connector", d["id"])
            await self._retry_or_fail(row, d, f"{type(e).__name__}: {e}")
        else:
            await self._sent(row, d, result.external_id, result.status)

    async def _retry_or_fail(self, row: asyncpg.Record, d: asyncpg.Record, reason: str) -> None:
        if row["attempts"] >= MAX_ATTEMPTS:
            await self._fail(row, d, f"{reason} (gave up after {row['attempts']} attempts)")
        else:
            await self._later(row, d, reason, backoff(row["attempts"]))

    async def _later(self, row: asyncpg.Record, d: asyncpg.Record, reason: str, seconds: float) -> None:
        await self._pool.execute(
            "UPDATE outbox SET next_attempt_at = now() + make_interval(secs => $2), locked_until = NULL,"
            " last_error = $3 WHERE id = $1",
            row["id"],
            seconds,
            reason,
        )

    async def _sent(self, row: asyncpg.Record, d: asyncpg.Record, external_id: str, status: str) -> None:
        async with self._pool.acquire() as conn, conn.transaction():
            try:
                async with conn.transaction():
                    await conn.execute(
                        "UPDATE messages SET status = $2, external_id = $3, sent_at = now(), error = '' WHERE id = $1",
                        d["id"], status, external_id or None,
                    )
            except asyncpg.UniqueViolationError:
                # The channel reused an id we already hold (an echo): keep the message, drop the id.
                log.warning("message %s: external id %r already stored", d["id"], external_id)
                await conn.execute(
                    "UPDATE messages SET status = $2, sent_at = now(), error = '' WHERE id = $1", d["id"], status
                )
            await conn.execute("DELETE FROM outbox WHERE id = $1", row["id"])
            await self._publish_status(conn, d, "message.status")

    async def _fail(self, row: asyncpg.Record, d: asyncpg.Record, reason: str) -> None:
        log.warning("message %s failed: %s", d["id"], reason)
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute("UPDATE messages SET status = 'failed', error = $2 WHERE id = $1", d["id"], reason)
            await conn.execute("DELETE FROM outbox WHERE id = $1", row["id"])
            await self._publish_status(conn, d, "message.status")
            await publish(
                conn, "message.failed", data={"message_id": d["id"], "reason": reason},
                client_id=d["client_id"], conversation_id=d["conversation_id"],
            )

    async def _publish_status(self, conn: asyncpg.Connection, d: asyncpg.Record, type: str) -> None:
        message = await fetch_message(conn, d["id"])
        await publish(conn, type, data={"message": message}, client_id=d["client_id"], conversation_id=d["conversation_id"])
