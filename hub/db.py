"""Connecting to PostgreSQL: the pool every module shares, and its codecs."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg

from hub.errors import ConfigError

Pool = asyncpg.Pool
Connection = asyncpg.Connection
Record = asyncpg.Record


async def _init_connection(conn: asyncpg.Connection) -> None:
    for typename in ("json", "jsonb"):
        await conn.set_type_codec(typename, encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


async def _reset_connection(conn: asyncpg.Connection) -> None:
    """Nothing to reset: pool connections hold no session state (LISTEN and advisory locks use
    their own connections). asyncpg still rolls back an open transaction; this skips its default
    reset query, a round trip on every release."""


async def connect(url: str) -> asyncpg.Connection:
    """A dedicated connection (LISTEN, advisory locks), with the same codecs as the pool."""
    try:
        conn = await asyncpg.connect(url)
    except (OSError, asyncpg.PostgresError) as e:
        raise ConfigError(f"cannot connect to the database ({_reason(e)}); check OMNIHUB_DATABASE_URL") from None
    await _init_connection(conn)
    return conn


async def create_pool(url: str, *, min_size: int = 2, max_size: int = 20) -> asyncpg.Pool:
    try:
        pool = await asyncpg.create_pool(
            url, min_size=min_size, max_size=max_size, init=_init_connection, reset=_reset_connection
        )
    except (OSError, asyncpg.PostgresError) as e:
        raise ConfigError(f"cannot connect to the database ({_reason(e)}); check OMNIHUB_DATABASE_URL") from None
    assert pool is not None
    return pool


@asynccontextmanager
async def open_pool(url: str, **kwargs: Any) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(url, **kwargs)
    try:
        yield pool
    finally:
        await pool.close()


def _reason(e: BaseException) -> str:
    text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    return text
