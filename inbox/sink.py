"""What a connector's inbound loop talks to: ingest, cursors, raw input, channel events."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import asyncpg

from hub.blobs import PgBlobStore
from hub.events import publish
from hub.types import Cursor, InboundMessage, IngestResult
from inbox import ingest as _ingest


class ChannelSink:
    def __init__(self, pool: asyncpg.Pool, channel_id: int, blobs: PgBlobStore) -> None:
        self._pool = pool
        self.channel_id = channel_id
        self._blobs = blobs

    @property
    def blobs(self) -> PgBlobStore:
        return self._blobs

    async def ingest(self, message: InboundMessage) -> IngestResult:
        self._check(message)
        return await _ingest.ingest(self._pool, message)

    async def ingest_many(self, messages: Sequence[InboundMessage]) -> list[IngestResult]:
        """A page of updates in one transaction; on a failure, the ones before it are stored (inbox.ingest.ingest_many)."""
        for message in messages:
            self._check(message)
        return await _ingest.ingest_many(self._pool, messages)

    def _check(self, message: InboundMessage) -> None:
        if message.channel_id != self.channel_id:
            raise ValueError(f"message for channel {message.channel_id} handed to channel {self.channel_id}'s sink")

    async def cursor(self, key: str) -> str | None:
        value: str | None = await self._pool.fetchval(
            "SELECT value FROM channel_cursors WHERE channel_id = $1 AND key = $2", self.channel_id, key
        )
        return value

    async def set_cursor(self, cursor: Cursor) -> None:
        async with self._pool.acquire() as conn:
            await _ingest.advance_cursor(conn, self.channel_id, cursor)

    async def record_raw(
        self, *, kind: str, reason: str, payload: Mapping[str, Any], cursor: Cursor | None = None
    ) -> None:
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "INSERT INTO raw_inbound (channel_id, kind, reason, payload) VALUES ($1, $2, $3, $4)",
                self.channel_id,
                kind,
                reason,
                dict(payload),
            )
            await _ingest.advance_cursor(conn, self.channel_id, cursor)

    async def record_event(self, *, external_id: str, type: str, data: Mapping[str, Any]) -> None:
        async with self._pool.acquire() as conn, conn.transaction():
            client_id = await conn.fetchval(
                "SELECT client_id FROM identities WHERE channel_id = $1 AND external_id = $2",
                self.channel_id,
                external_id,
            )
            if client_id is None:
                await conn.execute(
                    "INSERT INTO raw_inbound (channel_id, kind, reason, payload) VALUES ($1, $2, $3, $4)",
                    self.channel_id,
                    type,
                    "event about a sender we have never seen",
                    {"external_id": external_id, **data},
                )
                return
            await publish(
                conn, "channel.event", data={"event": type, "channel_id": self.channel_id, **data}, client_id=client_id
            )
