"""Migrations: an empty database gets the whole schema; an older one upgrades in place and keeps its data."""

from __future__ import annotations

import asyncpg

from hub import db
from hub.migrate import applied_versions, load_migrations, migrate
from tests.conftest import with_database


async def fresh_db(pg_server_url: str, name: str) -> str:
    admin = await asyncpg.connect(pg_server_url)
    await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    await admin.execute(f"CREATE DATABASE {name}")
    await admin.close()
    return with_database(pg_server_url, name)


async def drop_db(pg_server_url: str, name: str) -> None:
    admin = await asyncpg.connect(pg_server_url)
    await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    await admin.close()


async def test_empty_database_gets_every_migration_once(pg_server_url: str) -> None:
    url = await fresh_db(pg_server_url, "omnihub_mig_empty")
    try:
        conn = await db.connect(url)
        done = await migrate(conn)
        assert [m.version for m in done] == [m.version for m in load_migrations()]
        assert await migrate(conn) == []  # a second run has nothing to do
        assert await applied_versions(conn) == {m.version for m in load_migrations()}
        tables = {r["tablename"] for r in await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
        assert {"agents", "channels", "clients", "identities", "conversations", "messages", "notes", "events", "outbox",
                "channel_cursors", "blobs", "sessions", "raw_inbound"} <= tables
        await conn.close()
    finally:
        await drop_db(pg_server_url, "omnihub_mig_empty")


async def test_previous_schema_upgrades_and_keeps_its_data(pg_server_url: str) -> None:
    latest = load_migrations()[-1].version
    url = await fresh_db(pg_server_url, "omnihub_mig_old")
    try:
        conn = await db.connect(url)
        await migrate(conn, target=latest - 1)
        await conn.execute("INSERT INTO clients (name, email) VALUES ('Old Client', 'old@example.com')")
        done = await migrate(conn)
        assert [m.version for m in done] == [latest]
        row = await conn.fetchrow("SELECT * FROM clients")
        assert row["name"] == "Old Client" and row["email"] == "old@example.com"
        assert row["tags"] == [] and row["segment"] == ""
        await conn.close()
    finally:
        await drop_db(pg_server_url, "omnihub_mig_old")


def test_migrations_are_numbered_in_order() -> None:
    versions = [m.version for m in load_migrations()]
    assert versions == list(range(1, len(versions) + 1))
    assert all(m.sql.strip() for m in load_migrations())
