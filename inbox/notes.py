"""Private notes on a conversation: seen by agents, never sent to the customer."""

from __future__ import annotations

import asyncpg

from hub.errors import NotFound
from hub.events import publish
from hub.types import JSON
from inbox.views import note_json

_NOTE_SELECT = (
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
        note = note_json(await conn.fetchrow(_NOTE_SELECT + " WHERE n.id = $1", note_id))
        await publish(
            conn, "note.created", data={"note": note}, client_id=client_id, conversation_id=conversation_id,
            actor={"id": agent["id"], "name": agent["name"]},
        )
    return note


async def list_notes(pool: asyncpg.Pool, conversation_id: int) -> list[JSON]:
    if not await pool.fetchval("SELECT 1 FROM conversations WHERE id = $1", conversation_id):
        raise NotFound(f"conversation {conversation_id} does not exist")
    rows = await pool.fetch(_NOTE_SELECT + " WHERE n.conversation_id = $1 ORDER BY n.id", conversation_id)
    return [note_json(r) for r in rows]
