"""SLA clocks: when each promise to a customer falls due, and what happens when one is broken.

Three clocks per conversation, each from the policy that fits it best (team
and client segment, see routing/policies.py), counted in the policy's business
hours:
- first_response: from the conversation's start to the first agent reply;
- next_response: from the first customer message after an agent reply to the next agent reply
  (a new waiting period restarts it);
- resolution: from the conversation's start until it is resolved.

Clocks are recomputed from the conversation's rows (idempotent, so every hub
process may do it) when its events arrive. A clock past due is breached once:
the process that locks its row marks it, records the breach, raises the
conversation's priority to urgent and publishes `sla.breached`, all in one
transaction.
"""

from __future__ import annotations

import datetime as dt
import logging

import asyncpg

from hub.events import publish
from hub.types import JSON
from inbox.views import fetch_conversation
from routing.policies import METRICS, load_policies, pick

log = logging.getLogger(__name__)

URGENT = 2

_STATE = """
SELECT c.id, c.status, c.created_at, c.first_response_at, c.resolved_at, cl.segment, cl.tags, r.team_id,
       lr.created_at AS last_reply_at, w.at AS waiting_since
FROM conversations c
JOIN clients cl ON cl.id = c.client_id
LEFT JOIN conversation_routing r ON r.conversation_id = c.id
LEFT JOIN LATERAL (
    SELECT m.id, m.created_at FROM messages m
    WHERE m.conversation_id = c.id AND m.direction = 'out' AND m.author_agent_id IS NOT NULL
    ORDER BY m.id DESC LIMIT 1
) lr ON true
LEFT JOIN LATERAL (
    SELECT min(m.created_at) AS at FROM messages m
    WHERE m.conversation_id = c.id AND m.direction = 'in' AND m.id > coalesce(lr.id, 0)
) w ON true
WHERE c.id = ANY($1::bigint[])
"""

# Upsert a clock; RETURNING only when something changed, so one process announces it.
_UPSERT = """
INSERT INTO sla_clocks (conversation_id, metric, policy_id, started_at, due_at, stopped_at)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (conversation_id, metric) DO UPDATE SET
    policy_id = EXCLUDED.policy_id, due_at = EXCLUDED.due_at, started_at = EXCLUDED.started_at,
    stopped_at = CASE WHEN EXCLUDED.stopped_at IS NULL THEN NULL
                      ELSE coalesce(sla_clocks.stopped_at, EXCLUDED.stopped_at) END,
    breached_at = CASE WHEN sla_clocks.started_at = EXCLUDED.started_at THEN sla_clocks.breached_at END
WHERE (sla_clocks.policy_id, sla_clocks.started_at, sla_clocks.due_at, sla_clocks.stopped_at IS NULL)
      IS DISTINCT FROM (EXCLUDED.policy_id, EXCLUDED.started_at, EXCLUDED.due_at, EXCLUDED.stopped_at IS NULL)
RETURNING conversation_id
"""


def _clock(
    metric: str, r: asyncpg.Record, now: dt.datetime
) -> tuple[dt.datetime, dt.datetime | None] | None:
    """(started_at, stopped_at) of a metric's clock for this conversation state, or None: no clock."""
    if metric == "first_response":
        return r["created_at"], r["first_response_at"]
    if metric == "resolution":
        return r["created_at"], (r["resolved_at"] or now) if r["status"] == "resolved" else None
    if r["first_response_at"] is None:
        return None  # the first wait is the first_response clock's
    if r["waiting_since"] is None:
        return None
    return r["waiting_since"], None


async def update_clocks(pool: asyncpg.Pool, conversation_ids: list[int]) -> list[int]:
    """Recompute the clocks of these conversations; returns those whose clocks changed."""
    if not conversation_ids:
        return []
    policies = await load_policies(pool)
    if not policies:  # the common case without regulations: one query
        rows = await pool.fetch(
            "UPDATE sla_clocks SET stopped_at = now() WHERE conversation_id = ANY($1::bigint[]) AND stopped_at IS NULL"
            " RETURNING conversation_id",
            conversation_ids,
        )
        return sorted({r["conversation_id"] for r in rows})
    changed: set[int] = set()
    async with pool.acquire() as conn, conn.transaction():
        now: dt.datetime = await conn.fetchval("SELECT now()")
        rows = await conn.fetch(_STATE, conversation_ids)
        for r in rows:
            policy = pick(policies, team_id=r["team_id"], segment=r["segment"], tags=list(r["tags"]))
            for metric in METRICS:
                span = _clock(metric, r, now) if policy is not None else None
                due = policy.due(metric, span[0]) if policy is not None and span is not None else None
                if policy is None or span is None or due is None:
                    # No clock now: a running one stops (an answered wait, a policy removed).
                    stop_at = r["last_reply_at"] if metric == "next_response" and r["last_reply_at"] else now
                    done = await conn.fetchval(
                        "UPDATE sla_clocks SET stopped_at = $3 WHERE conversation_id = $1 AND metric = $2"
                        " AND stopped_at IS NULL RETURNING conversation_id",
                        r["id"], metric, stop_at,
                    )
                    if done:
                        changed.add(r["id"])
                    continue
                if await conn.fetchval(_UPSERT, r["id"], metric, policy.id, span[0], due, span[1]):
                    changed.add(r["id"])
    return sorted(changed)


async def announce(pool: asyncpg.Pool, conversation_ids: list[int]) -> None:
    """Tell the inbox a conversation's clock changed (its JSON carries the clock)."""
    for cid in conversation_ids:
        async with pool.acquire() as conn, conn.transaction():
            conv = await fetch_conversation(conn, cid)
            if conv is not None:
                await publish(conn, "conversation.updated", data={"conversation": conv, "reason": "sla"},
                              client_id=conv["client_id"], conversation_id=cid)


_DUE = """
SELECT k.conversation_id, k.metric, k.policy_id, k.started_at, k.due_at, c.client_id, c.assignee_id, r.team_id,
       CASE k.metric
         WHEN 'first_response' THEN c.first_response_at IS NULL
         WHEN 'resolution' THEN c.status <> 'resolved'
         ELSE NOT EXISTS (SELECT 1 FROM messages m WHERE m.conversation_id = k.conversation_id AND m.direction = 'out'
                          AND m.author_agent_id IS NOT NULL AND m.created_at >= k.started_at)
       END AS running
FROM sla_clocks k
JOIN conversations c ON c.id = k.conversation_id
LEFT JOIN conversation_routing r ON r.conversation_id = k.conversation_id
WHERE k.stopped_at IS NULL AND k.breached_at IS NULL AND k.due_at <= now()
ORDER BY k.due_at
LIMIT 100
FOR UPDATE OF k SKIP LOCKED
"""


async def escalate_breaches(pool: asyncpg.Pool) -> list[JSON]:
    """Breach every clock past due that still runs, once each; returns the sla.breached payloads."""
    breached: list[JSON] = []
    async with pool.acquire() as conn, conn.transaction():
        for k in await conn.fetch(_DUE):
            if not k["running"]:
                # The clock stopped but its conversation's event has not been routed yet.
                await conn.execute(
                    "UPDATE sla_clocks SET stopped_at = now() WHERE conversation_id = $1 AND metric = $2",
                    k["conversation_id"], k["metric"],
                )
                continue
            await conn.execute(
                "UPDATE sla_clocks SET breached_at = now() WHERE conversation_id = $1 AND metric = $2",
                k["conversation_id"], k["metric"],
            )
            inserted = await conn.fetchval(
                "INSERT INTO sla_breaches (conversation_id, metric, policy_id, team_id, assignee_id, started_at, due_at)"
                " VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING RETURNING id",
                k["conversation_id"], k["metric"], k["policy_id"], k["team_id"], k["assignee_id"],
                k["started_at"], k["due_at"],
            )
            if inserted is None:
                continue
            await conn.execute(
                "INSERT INTO conversation_routing (conversation_id, team_id, queued_at, priority)"
                " SELECT id, NULL, created_at, $2 FROM conversations WHERE id = $1"
                " ON CONFLICT (conversation_id) DO UPDATE SET priority = greatest(conversation_routing.priority, $2)",
                k["conversation_id"], URGENT,
            )
            data = await _breach_data(conn, k)
            await publish(conn, "sla.breached", data=data, client_id=k["client_id"], conversation_id=k["conversation_id"])
            breached.append(data)
    for b in breached:
        log.info("SLA breached: conversation %s, %s", b["conversation"]["id"], b["metric"])
    return breached


async def _breach_data(conn: asyncpg.Connection, k: asyncpg.Record) -> JSON:
    conv = await fetch_conversation(conn, k["conversation_id"])
    policy = await conn.fetchrow("SELECT id, name FROM sla_policies WHERE id = $1", k["policy_id"])
    team = await conn.fetchrow("SELECT id, name FROM teams WHERE id = $1", k["team_id"])
    # Who should hear about it: the team's managers (all managers when the conversation has no team).
    managers = await conn.fetch(
        "SELECT a.id, a.name FROM agents a WHERE a.role IN ('manager', 'admin') AND NOT a.disabled"
        " AND ($1::bigint IS NULL OR a.id IN (SELECT agent_id FROM team_members WHERE team_id = $1)"
        "      OR NOT EXISTS (SELECT 1 FROM team_members tm JOIN agents m ON m.id = tm.agent_id"
        "                     WHERE tm.team_id = $1 AND m.role IN ('manager', 'admin')))"
        " ORDER BY a.id",
        k["team_id"],
    )
    return {
        "conversation": conv,
        "metric": k["metric"],
        "started_at": k["started_at"].isoformat(),
        "due_at": k["due_at"].isoformat(),
        "policy": dict(policy) if policy else None,
        "team": dict(team) if team else None,
        "assignee_id": k["assignee_id"],
        "notify": [dict(m) for m in managers],
    }


async def breaches(pool: asyncpg.Pool, *, start: dt.datetime, end: dt.datetime) -> list[JSON]:
    rows = await pool.fetch(
        "SELECT b.id, b.conversation_id, b.metric, p.name AS policy, t.name AS team, a.name AS assignee,"
        " cl.segment, b.started_at, b.due_at, b.breached_at"
        " FROM sla_breaches b JOIN conversations c ON c.id = b.conversation_id JOIN clients cl ON cl.id = c.client_id"
        " LEFT JOIN sla_policies p ON p.id = b.policy_id LEFT JOIN teams t ON t.id = b.team_id"
        " LEFT JOIN agents a ON a.id = b.assignee_id"
        " WHERE b.breached_at >= $1 AND b.breached_at < $2 ORDER BY b.breached_at, b.id",
        start,
        end,
    )
    return [
        {
            **{k: r[k] for k in ("id", "conversation_id", "metric", "policy", "team", "assignee", "segment")},
            **{k: r[k].isoformat() for k in ("started_at", "due_at", "breached_at")},
        }
        for r in rows
    ]
