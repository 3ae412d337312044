"""Attachment storage keyed by sha256: a table, so every hub process sees every file."""

from __future__ import annotations

import hashlib

import asyncpg

from hub.errors import OmnihubError
from hub.types import Attachment


class BlobTooLarge(OmnihubError):
    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"file of {size} bytes is over the {limit} byte limit")
        self.size = size
        self.limit = limit


class PgBlobStore:
    def __init__(self, pool: asyncpg.Pool, max_size: int) -> None:
        self._pool = pool
        self.max_size = max_size

    async def put(self, data: bytes, *, filename: str, content_type: str, kind: str = "file") -> Attachment:
        if len(data) > self.max_size:
            raise BlobTooLarge(len(data), self.max_size)
        digest = hashlib.sha256(data).hexdigest()
        await self._pool.execute(
            "INSERT INTO blobs (sha256, size, content_type, data) VALUES ($1, $2, $3, $4)"
            " ON CONFLICT (sha256) DO NOTHING",
            digest,
            len(data),
            content_type,
            data,
        )
        return Attachment(sha256=digest, filename=filename, content_type=content_type, size=len(data), kind=kind)

    async def get(self, sha256: str) -> bytes | None:
        data: bytes | None = await self._pool.fetchval("SELECT data FROM blobs WHERE sha256 = $1", sha256)
        return data

    async def content_type(self, sha256: str) -> str | None:
        value: str | None = await self._pool.fetchval("SELECT content_type FROM blobs WHERE sha256 = $1", sha256)
        return value
