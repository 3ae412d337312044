"""Private notes on a conversation: seen by agents, never sent to the customer."""

from __future__ import annotations

import asyncpg

from hub.errors import NotFound
from hub.events import publish
from hub.types import JSON
from inbox.views import note_json

NOTE_SELECT = (
    "SELECT n.id, n.conversation_id, n.client_id, n.author_agent_id, a.name AS agent_name, n.text, n.created_at"
    " FROM notes n JOIN agents a ON a.id = n.author_agent_id"
)


async def add_note(pool: asyncpg.Pool, *, conversation_id: int, agent: JSON, text: str) -> JSON:
    async with pool.acquire() as conn, conn.transaction():
        client_id = await conn.fetchval("SELECT client_id FROM conversations WHERE id = $1", conversation_id)
        if client_id is None:
            raise NotFound(f"conversation {conversation_id} does not exist")
        note_id = await conn.fetchval(
            "INSERT INTO notes (conversation_id, client_id, author_agent_id, text) VALUES ($1, $2, $3, $4) RETURNING id",
            conversation_id,
            client_id,
            agent["id"],
            text,
        )
        note = note_json(await conn.fetchrow(NOTE_SELECT + " WHERE n.id = $1", note_id))
        await publish(
            conn, "note.created", data={"note": note}, client_id=client_id, conversation_id=conversation_id,
            actor={"id": agent["id"], "name": agent["name"]},
        )
    return note


async def list_notes(pool: asyncpg.Pool, conversation_id: int) -> list[JSON]:
    if not await pool.fetchval("SELECT 1 FROM conversations WHERE id = $1", conversation_id):
        raise NotFound(f"conversation {conversation_id} does not exist")
    rows = await pool.fetch(NOTE_SELECT + " WHERE n.conversation_id = $1 ORDER BY n.id", conversation_id)
    return [note_json(r) for r in rows]


async def add_client_note(pool: asyncpg.Pool, *, client_id: int, agent: JSON, text: str) -> JSON:
    """A note on the client card itself (no conversation): e.g. "prefers calls after 18:00"."""
    async with pool.acquire() as conn, conn.transaction():
        live = await conn.fetchval("SELECT client_root($1)", client_id)
        if live is None:
            raise NotFound(f"client {client_id} does not exist")
        note_id = await conn.fetchval(
            "INSERT INTO notes (conversation_id, client_id, author_agent_id, text) VALUES (NULL, $1, $2, $3) RETURNING id",
            live,
            agent["id"],
            text,
        )
        note = note_json(await conn.fetchrow(NOTE_SELECT + " WHERE n.id = $1", note_id))
        await publish(
            conn, "note.created", data={"note": note}, client_id=live, actor={"id": agent["id"], "name": agent["name"]}
        )
    return note


async def list_client_notes(pool: asyncpg.Pool, client_id: int) -> list[JSON]:
    """Every note about the client: on the card and on their conversations, oldest first."""
    live = await pool.fetchval("SELECT client_root($1)", client_id)
    if live is None:
        raise NotFound(f"client {client_id} does not exist")
    rows = await pool.fetch(NOTE_SELECT + " WHERE n.client_id = $1 ORDER BY n.id", live)
    return [note_json(r) for r in rows]
