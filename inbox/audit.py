"""The audit log: which agent read, replied, reassigned, merged or exported what.

`record` is called inside the transaction of the action it describes, so an
entry exists exactly when the action committed. Reads and exports have no
transaction of their own: their entry is written as the data is handed out.
"""

from __future__ import annotations

import asyncpg

from hub.types import JSON

# What the log records (the `action` column).
READ = "conversation.read"
REPLY = "message.reply"
RETRY = "message.retry"
ASSIGN = "conversation.assign"
STATUS = "conversation.status"
CLIENT_UPDATE = "client.update"
MERGE = "client.merge"
UNMERGE = "client.unmerge"
SUGGESTION_DISMISS = "suggestion.dismiss"
SEARCH = "history.search"
EXPORT = "history.export"

ACTIONS = (READ, REPLY, RETRY, ASSIGN, STATUS, CLIENT_UPDATE, MERGE, UNMERGE, SUGGESTION_DISMISS, SEARCH, EXPORT)


async def record(
    conn: asyncpg.Connection | asyncpg.Pool,
    *,
    agent: JSON | None,
    action: str,
    conversation_id: int | None = None,
    client_id: int | None = None,
    details: JSON | None = None,
) -> None:
    if agent is None:  # an automatic action (no person to hold to account); the event log has it
        return
    await conn.execute(
        "INSERT INTO audit_log (agent_id, action, conversation_id, client_id, details) VALUES ($1, $2, $3, $4, $5)",
        agent["id"],
        action,
        conversation_id,
        client_id,
        details or {},
    )
