"""Channel accounts: stored configuration of each connected channel."""

from __future__ import annotations

from typing import Any

import asyncpg

from hub.errors import Conflict
from hub.types import JSON, ChannelAccount

_PUBLIC_COLUMNS = "id, kind, name, settings, enabled, last_error, last_error_at, created_at"


async def add_channel(
    pool: asyncpg.Pool | asyncpg.Connection, *, kind: str, name: str, settings: JSON, secrets: JSON
) -> int:
    try:
        channel_id: int = await pool.fetchval(
            "INSERT INTO channels (kind, name, settings, secrets) VALUES ($1, $2, $3, $4) RETURNING id",
            kind,
            name,
            settings,
            secrets,
        )
    except asyncpg.UniqueViolationError:
        raise Conflict(f"a channel named {name!r} exists already; pick another --name") from None
    return channel_id


def account_from_row(row: asyncpg.Record) -> ChannelAccount:
    return ChannelAccount(
        id=row["id"], kind=row["kind"], name=row["name"], settings=row["settings"], secrets=row["secrets"]
    )


async def get_account(pool: asyncpg.Pool | asyncpg.Connection, channel_id: int) -> ChannelAccount | None:
    row = await pool.fetchrow("SELECT id, kind, name, settings, secrets FROM channels WHERE id = $1", channel_id)
    return account_from_row(row) if row else None


async def enabled_accounts(pool: asyncpg.Pool) -> list[ChannelAccount]:
    rows = await pool.fetch("SELECT id, kind, name, settings, secrets FROM channels WHERE enabled ORDER BY id")
    return [account_from_row(r) for r in rows]


def channel_json(row: asyncpg.Record) -> JSON:
    """A channel as the API and CLI show it: never its secrets."""
    return {
        "id": row["id"],
        "kind": row["kind"],
        "name": row["name"],
        "settings": row["settings"],
        "enabled": row["enabled"],
        "last_error": row["last_error"],
        "last_error_at": row["last_error_at"].isoformat() if row["last_error_at"] else None,
    }


async def list_channels(pool: asyncpg.Pool) -> list[JSON]:
    rows = await pool.fetch(f"SELECT {_PUBLIC_COLUMNS} FROM channels ORDER BY id")
    return [channel_json(r) for r in rows]


async def record_error(pool: asyncpg.Pool, channel_id: int, error: str | None) -> None:
    await pool.execute(
        "UPDATE channels SET last_error = $2, last_error_at = CASE WHEN $2::text IS NULL THEN last_error_at ELSE now() END"
        " WHERE id = $1",
        channel_id,
        error,
    )


async def update_settings(pool: asyncpg.Pool, channel_id: int, settings: dict[str, Any]) -> None:
    await pool.execute("UPDATE channels SET settings = settings || $2 WHERE id = $1", channel_id, settings)
