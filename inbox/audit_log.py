"""Reading the audit log (managers and admins)."""

from __future__ import annotations

import datetime as dt

import asyncpg

from hub.types import JSON
from inbox.conversations import BadCursor, decode_cursor, encode_cursor
from inbox.views import iso


def audit_json(r: asyncpg.Record) -> JSON:
    return {
        "id": r["id"],
        "agent": {"id": r["agent_id"], "name": r["agent_name"]} if r["agent_id"] is not None else None,
        "action": r["action"],
        "conversation_id": r["conversation_id"],
        "client_id": r["client_id"],
        "details": r["details"],
        "created_at": iso(r["created_at"]),
    }


async def list_entries(
    pool: asyncpg.Pool,
    *,
    agent_id: int | None = None,
    action: str | None = None,
    conversation_id: int | None = None,
    client_id: int | None = None,
    start: dt.datetime | None = None,
    end: dt.datetime | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> tuple[list[JSON], str | None]:
    """Newest first."""
    where: list[str] = []
    args: list[object] = []

    def arg(value: object) -> str:
        args.append(value)
        return f"${len(args)}"

    if agent_id is not None:
        where.append(f"l.agent_id = {arg(agent_id)}")
    if action:
        where.append(f"l.action = {arg(action)}")
    if conversation_id is not None:
        where.append(f"l.conversation_id = {arg(conversation_id)}")
    if client_id is not None:
        where.append(f"l.client_id = {arg(client_id)}")
    if start is not None:
        where.append(f"l.created_at >= {arg(start)}")
    if end is not None:
        where.append(f"l.created_at < {arg(end)}")
    if cursor:
        (value,) = decode_cursor(cursor, 1)
        if not value.isdigit():
            raise BadCursor("cursor is not one this server gave out")
        where.append(f"l.id < {arg(int(value))}")
    sql = (
        "SELECT l.id, l.agent_id, a.name AS agent_name, l.action, l.conversation_id, l.client_id, l.details,"
        " l.created_at FROM audit_log l LEFT JOIN agents a ON a.id = l.agent_id"
    )
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += f" ORDER BY l.id DESC LIMIT {arg(limit + 1)}"
    rows = await pool.fetch(sql, *args)
    items = [audit_json(r) for r in rows[:limit]]
    return items, (encode_cursor(rows[limit - 1]["id"]) if len(rows) > limit else None)
