"""How inbox rows look as JSON (API, websocket events, timeline): one place."""

from __future__ import annotations

import datetime as dt
from typing import Any

import asyncpg

from hub.types import JSON

CONVERSATION_SELECT = """
SELECT c.id, c.client_id, cl.name AS client_name, c.channel_id, ch.kind AS channel_kind,
       ch.name AS channel_name, c.subject, c.status, c.snoozed_until, c.assignee_id,
       a.name AS assignee_name, c.unread_count, c.created_at, c.last_activity_at,
       c.first_response_at, c.resolved_at,
       lm.text AS last_text, lm.direction AS last_direction, lm.created_at AS last_created_at,
       crt.team_id, crt_team.name AS team_name, greatest(coalesce(crt.priority, 0), CASE WHEN lower(cl.segment) = 'vip' OR 'vip' = ANY(cl.tags) THEN 1 ELSE 0 END) AS priority, crt_sla.clocks AS sla_clocks
FROM conversations c
JOIN clients cl ON cl.id = c.client_id
JOIN channels ch ON ch.id = c.channel_id
LEFT JOIN agents a ON a.id = c.assignee_id
LEFT JOIN LATERAL (
    SELECT m.text, m.direction, m.created_at FROM messages m
    WHERE m.conversation_id = c.id ORDER BY m.id DESC LIMIT 1
) lm ON true
LEFT JOIN conversation_routing crt ON crt.conversation_id = c.id
LEFT JOIN teams crt_team ON crt_team.id = crt.team_id
LEFT JOIN LATERAL (
    SELECT jsonb_agg(jsonb_build_object('metric', k.metric, 'started_at', k.started_at, 'due_at', k.due_at,
           'stopped_at', k.stopped_at, 'paused_at', k.paused_at, 'breached_at', k.breached_at,
           'overdue', k.stopped_at IS NULL AND k.due_at <= now()) ORDER BY k.due_at) AS clocks
    FROM sla_clocks k WHERE k.conversation_id = c.id
) crt_sla ON true
"""

MESSAGE_SELECT = """
SELECT m.id, m.conversation_id, m.channel_id, ch.kind AS channel_kind, m.direction, m.text, m.html,
       m.attachments, m.flags, m.status, m.error, m.author_agent_id, a.name AS agent_name,
       c.client_id, cl.name AS client_name, m.created_at, m.sent_at, m.edited_at, m.external_id,
       m.original_text
FROM messages m
JOIN channels ch ON ch.id = m.channel_id
JOIN conversations c ON c.id = m.conversation_id
JOIN clients cl ON cl.id = c.client_id
LEFT JOIN agents a ON a.id = m.author_agent_id
"""


def iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value else None


def conversation_json(r: asyncpg.Record) -> JSON:
    last = None
    if r["last_created_at"] is not None:
        last = {"text": r["last_text"][:200], "direction": r["last_direction"], "created_at": iso(r["last_created_at"])}
    return {
        "id": r["id"],
        "client_id": r["client_id"],
        "client": {"id": r["client_id"], "name": r["client_name"]},
        "channel": {"id": r["channel_id"], "kind": r["channel_kind"], "name": r["channel_name"]},
        "subject": r["subject"],
        "status": r["status"],
        "snoozed_until": iso(r["snoozed_until"]),
        "assignee": {"id": r["assignee_id"], "name": r["assignee_name"]} if r["assignee_id"] else None,
        "unread_count": r["unread_count"],
        "created_at": iso(r["created_at"]),
        "last_activity_at": iso(r["last_activity_at"]),
        "first_response_at": iso(r["first_response_at"]),
        "resolved_at": iso(r["resolved_at"]),
        "last_message": last,
        # Routing (routing/): the team, queue priority and the SLA clock the inbox shows.
        "team": {"id": r["team_id"], "name": r["team_name"]} if r["team_id"] else None,
        "priority": PRIORITIES[r["priority"]],
        "sla": sla_json(r["sla_clocks"]),
    }


PRIORITIES = ("normal", "high", "urgent")  # high: VIP client; urgent: an SLA was breached


def sla_json(clocks: list[JSON] | None) -> JSON | None:
    """The conversation's SLA clocks, and the one that falls due next (null: no policy applies).

    A paused clock (pending, snoozed) keeps `stopped_at` = when it paused, as before pauses existed,
    and has `paused_at` too: it resumes, with a later due time, when the conversation opens again.
    """
    if not clocks:
        return None
    running = [k for k in clocks if k["stopped_at"] is None and k["paused_at"] is None and k["breached_at"] is None]
    return {
        "due_at": min((k["due_at"] for k in running), default=None),
        "overdue": any(k["overdue"] for k in clocks),
        "paused": any(k["paused_at"] is not None for k in clocks),
        "breached": [k["metric"] for k in clocks if k["breached_at"] is not None],
        "clocks": clocks,
    }


def attachment_json(a: dict[str, Any]) -> JSON:
    return {**a, "url": f"/api/v1/blobs/{a['sha256']}"}


def message_json(r: asyncpg.Record) -> JSON:
    if r["direction"] == "in":
        author: JSON = {"type": "client", "id": r["client_id"], "name": r["client_name"]}
    elif r["author_agent_id"] is not None:
        author = {"type": "agent", "id": r["author_agent_id"], "name": r["agent_name"]}
    else:
        author = {"type": "channel", "id": None, "name": r["channel_kind"]}
    return {
        "id": r["id"],
        "conversation_id": r["conversation_id"],
        "channel_id": r["channel_id"],
        "channel": r["channel_kind"],
        "direction": r["direction"],
        "text": r["text"],
        "html": r["html"],
        "original_text": r["original_text"],
        "attachments": [attachment_json(a) for a in r["attachments"]],
        "flags": list(r["flags"]),
        "status": r["status"],
        "error": r["error"],
        "author": author,
        "created_at": iso(r["created_at"]),
        "sent_at": iso(r["sent_at"]),
        "edited_at": iso(r["edited_at"]),
    }


def note_json(r: asyncpg.Record) -> JSON:
    return {
        "id": r["id"],
        "conversation_id": r["conversation_id"],
        "client_id": r["client_id"],
        "author": {"id": r["author_agent_id"], "name": r["agent_name"]},
        "text": r["text"],
        "created_at": iso(r["created_at"]),
    }


async def fetch_conversation(conn: asyncpg.Connection | asyncpg.Pool, conversation_id: int) -> JSON | None:
    row = await conn.fetchrow(CONVERSATION_SELECT + " WHERE c.id = $1", conversation_id)
    return conversation_json(row) if row else None


async def fetch_conversations(conn: asyncpg.Connection | asyncpg.Pool, ids: list[int]) -> list[JSON]:
    """Conversations in the order of `ids` (an id that no longer exists is left out)."""
    if not ids:
        return []
    rows = {r["id"]: r for r in await conn.fetch(CONVERSATION_SELECT + " WHERE c.id = ANY($1::bigint[])", ids)}
    return [conversation_json(rows[i]) for i in ids if i in rows]


async def fetch_message(conn: asyncpg.Connection | asyncpg.Pool, message_id: int) -> JSON | None:
    row = await conn.fetchrow(MESSAGE_SELECT + " WHERE m.id = $1", message_id)
    return message_json(row) if row else None
