"""The reply path: an agent's message and its outbox row, committed together."""

from __future__ import annotations

import asyncpg

from hub.errors import Conflict, NotFound
from hub.events import publish
from hub.types import JSON, Attachment
from inbox import audit
from inbox.views import fetch_conversation, fetch_message

OUTBOX_CHANNEL = "omnihub_outbox"


async def send_reply(
    pool: asyncpg.Pool, *, conversation_id: int, agent: JSON, text: str, attachments: tuple[Attachment, ...] = ()
) -> JSON:
    """Queue a reply through the conversation's channel; the dispatcher delivers it."""
    async with pool.acquire() as conn, conn.transaction():
        conv = await conn.fetchrow(
            "SELECT id, client_id, channel_id FROM conversations WHERE id = $1 FOR UPDATE", conversation_id
        )
        if conv is None:
            raise NotFound(f"conversation {conversation_id} does not exist")
        message_id = await conn.fetchval(
            "INSERT INTO messages (conversation_id, channel_id, direction, author_agent_id, text, attachments, status)"
            " VALUES ($1, $2, 'out', $3, $4, $5, 'queued') RETURNING id",
            conversation_id,
            conv["channel_id"],
            agent["id"],
            text,
            [a.as_json() for a in attachments],
        )
        await conn.execute(
            "INSERT INTO outbox (message_id, channel_id) VALUES ($1, $2)", message_id, conv["channel_id"]
        )
        await conn.execute(
            "UPDATE conversations SET last_activity_at = now(), unread_count = 0,"
            " first_response_at = coalesce(first_response_at, now()) WHERE id = $1",
            conversation_id,
        )
        message = await fetch_message(conn, message_id)
        assert message is not None
        conversation = await fetch_conversation(conn, conversation_id)
        await publish(
            conn, "message.created", data={"message": message, "conversation": conversation},
            client_id=conv["client_id"], conversation_id=conversation_id, actor=_actor(agent),
        )
        await audit.record(
            conn, agent=agent, action=audit.REPLY, conversation_id=conversation_id, client_id=conv["client_id"],
            details={"message_id": message_id},
        )
        await conn.execute("SELECT pg_notify($1, '')", OUTBOX_CHANNEL)
    return message


async def retry_message(pool: asyncpg.Pool, *, message_id: int, agent: JSON) -> JSON:
    """Queue a failed reply again."""
    async with pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(
            "SELECT m.id, m.status, m.direction, m.channel_id, m.conversation_id, c.client_id FROM messages m"
            " JOIN conversations c ON c.id = m.conversation_id WHERE m.id = $1 FOR UPDATE OF m",
            message_id,
        )
        if row is None or row["direction"] != "out":
            raise NotFound(f"reply {message_id} does not exist")
        if row["status"] != "failed":
            raise Conflict(f"reply {message_id} is {row['status']}, only a failed reply can be retried")
        await conn.execute("UPDATE messages SET status = 'queued', error = '' WHERE id = $1", message_id)
        await conn.execute(
            "INSERT INTO outbox (message_id, channel_id) VALUES ($1, $2)", message_id, row["channel_id"]
        )
        message = await fetch_message(conn, message_id)
        assert message is not None
        await publish(
            conn, "message.status", data={"message": message},
            client_id=row["client_id"], conversation_id=row["conversation_id"], actor=_actor(agent),
        )
        await audit.record(
            conn, agent=agent, action=audit.RETRY, conversation_id=row["conversation_id"], client_id=row["client_id"],
            details={"message_id": message_id},
        )
        await conn.execute("SELECT pg_notify($1, '')", OUTBOX_CHANNEL)
    return message


def _actor(agent: JSON) -> JSON:
    return {"id": agent["id"], "name": agent["name"]}
