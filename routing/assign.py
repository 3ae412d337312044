"""Who handles a conversation: the one way an assignee changes (by hand or by routing)."""

from __future__ import annotations

import asyncpg

from hub.errors import NotFound
from hub.events import publish
from hub.types import JSON
from inbox import audit
from inbox.views import fetch_conversation


async def assign(pool: asyncpg.Pool, *, conversation_id: int, agent_id: int | None, actor: JSON) -> JSON:
    """Assign by hand (an agent taking over, a manager reassigning); capacity does not apply."""
    async with pool.acquire() as conn, conn.transaction():
        return await assign_in(conn, conversation_id=conversation_id, agent_id=agent_id, actor=actor)


async def assign_in(
    conn: asyncpg.Connection,
    *,
    conversation_id: int,
    agent_id: int | None,
    actor: JSON | None,
    reason: str = "manual",
) -> JSON:
    """The assignment's body, for callers that hold a transaction (routing: actor None, reason "auto")."""
    if agent_id is not None and not await conn.fetchval(
        "SELECT 1 FROM agents WHERE id = $1 AND NOT disabled", agent_id
    ):
        raise NotFound(f"agent {agent_id} does not exist")
    row = await conn.fetchrow(
        "UPDATE conversations SET assignee_id = $2 WHERE id = $1"
        " RETURNING client_id, (SELECT assignee_id FROM conversations WHERE id = $1) AS previous",
        conversation_id,
        agent_id,
    )
    if row is None:
        raise NotFound(f"conversation {conversation_id} does not exist")
    conv = await fetch_conversation(conn, conversation_id)
    assert conv is not None
    data: JSON = {"conversation": conv, "from_agent_id": row["previous"], "to_agent_id": agent_id}
    if reason != "manual":
        data["reason"] = reason
    await publish(
        conn, "conversation.assigned", data=data,
        client_id=row["client_id"], conversation_id=conversation_id,
        actor={"id": actor["id"], "name": actor["name"]} if actor else None,
    )
    await audit.record(  # routing's own assignments (actor None) are in the event log, not the audit log
        conn, agent=actor, action=audit.ASSIGN, conversation_id=conversation_id, client_id=row["client_id"],
        details={"from_agent_id": row["previous"], "to_agent_id": agent_id},
    )
    return conv
