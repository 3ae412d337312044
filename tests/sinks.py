"""In-memory stand-ins for a connector's sink and blob store, for testing a connector alone.

They behave like inbox ingest where a connector can tell: a message is kept
once per external id and its cursor moves with it. Tests of the whole path
use the real hub (tests/conftest.py) instead.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from hub.types import Attachment, Cursor, InboundMessage, IngestResult


class MemoryBlobs:
    def __init__(self) -> None:
        self.data: dict[str, bytes] = {}

    async def put(self, data: bytes, *, filename: str, content_type: str, kind: str = "file") -> Attachment:
        digest = hashlib.sha256(data).hexdigest()
        self.data[digest] = data
        return Attachment(sha256=digest, filename=filename, content_type=content_type, size=len(data), kind=kind)

    async def get(self, sha256: str) -> bytes | None:
        return self.data.get(sha256)


class SinkCrash(Exception):
    pass


class MemorySink:
    def __init__(self) -> None:
        self.messages: dict[str, InboundMessage] = {}
        self.ingested: list[InboundMessage] = []  # every call, duplicates included
        self.edits: list[InboundMessage] = []  # edits of messages already held (ingest updates those)
        self.cursors: dict[str, str] = {}
        self.raw: list[tuple[str, str, Mapping[str, Any]]] = []  # (kind, reason, payload)
        self.events: list[tuple[str, str, Mapping[str, Any]]] = []  # (external id, type, data)
        self.crash_on_ingest: int | None = None  # raise SinkCrash on the Nth ingest call, storing nothing
        self._blobs = MemoryBlobs()

    @property
    def blobs(self) -> MemoryBlobs:
        return self._blobs

    @property
    def ingest_calls(self) -> int:
        return len(self.ingested)

    def ingested_ids(self) -> list[str]:
        return [m.external_id for m in self.ingested]

    def texts(self) -> list[str]:
        return [m.text for m in self.messages.values()]

    async def ingest(self, message: InboundMessage) -> IngestResult:
        if self.crash_on_ingest is not None and len(self.ingested) + 1 >= self.crash_on_ingest:
            self.crash_on_ingest = None
            raise SinkCrash("database went away")
        self.ingested.append(message)
        created = message.external_id not in self.messages
        if not created and "edited" in message.flags:
            self.edits.append(message)
        self.messages.setdefault(message.external_id, message)
        if message.cursor:
            self.cursors[message.cursor.key] = message.cursor.value
        return IngestResult(message_id=len(self.messages), conversation_id=1, client_id=1, created=created)

    async def cursor(self, key: str) -> str | None:
        return self.cursors.get(key)

    async def set_cursor(self, cursor: Cursor) -> None:
        self.cursors[cursor.key] = cursor.value

    async def record_raw(
        self, *, kind: str, reason: str, payload: Mapping[str, Any], cursor: Cursor | None = None
    ) -> None:
        self.raw.append((kind, reason, payload))
        if cursor:
            self.cursors[cursor.key] = cursor.value

    async def record_event(self, *, external_id: str, type: str, data: Mapping[str, Any]) -> None:
        self.events.append((external_id, type, data))
