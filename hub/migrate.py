"""Versioned migrations read from schema.sql.

schema.sql is a list of sections, each starting "-- migration N: title". A
database records what it has applied in `schema_migrations`; `migrate` applies
the rest in order, each in its own transaction, under an advisory lock so two
hub processes starting together don't race.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import asyncpg

SCHEMA_PATH = Path(__file__).resolve().parent.parent / "schema.sql"
_HEADER = re.compile(r"^-- migration (\d+): (.+)$", re.MULTILINE)
_LOCK_KEY = 0x6F6D6E69  # "omni"


@dataclass(frozen=True)
class Migration:
    version: int
    title: str
    sql: str


def load_migrations(text: str | None = None) -> list[Migration]:
    if text is None:
        text = SCHEMA_PATH.read_text(encoding="utf-8")
    headers = list(_HEADER.finditer(text))
    migrations = []
    for i, m in enumerate(headers):
        end = headers[i + 1].start() if i + 1 < len(headers) else len(text)
        migrations.append(Migration(int(m.group(1)), m.group(2).strip(), text[m.end() : end]))
    versions = [m.version for m in migrations]
    if versions != list(range(1, len(versions) + 1)):
        raise RuntimeError(f"schema.sql migrations must be numbered 1..N in order, found {versions}")
    return migrations


async def applied_versions(conn: asyncpg.Connection) -> set[int]:
    exists = await conn.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL")
    if not exists:
        return set()
    rows = await conn.fetch("SELECT version FROM schema_migrations")
    return {r["version"] for r in rows}


async def migrate(conn: asyncpg.Connection, *, target: int | None = None) -> list[Migration]:
    """Apply pending migrations (up to `target`); return those applied."""
    done: list[Migration] = []
    await conn.execute("SELECT pg_advisory_lock($1)", _LOCK_KEY)
    try:
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version integer PRIMARY KEY, title text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        applied = await applied_versions(conn)
        for m in load_migrations():
            if m.version in applied or (target is not None and m.version > target):
                continue
            async with conn.transaction():
                await conn.execute(m.sql)
                await conn.execute(
                    "INSERT INTO schema_migrations (version, title) VALUES ($1, $2)", m.version, m.title
                )
            done.append(m)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK_KEY)
    return done
