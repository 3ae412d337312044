"""SLA clocks: when each promise to a customer falls due, and what happens when one is broken.

Three clocks per conversation, each from the policy that fits it best (team
and client segment, see routing/policies.py), counted in the policy's business
hours:
- first_response: from the customer's first message to the first agent reply after it;
- next_response: from the first customer message after an agent reply to the next agent reply
  (a new waiting period restarts it);
- resolution: from the customer's first message until the conversation is resolved.

A clock stops counting while the conversation waits on the customer (pending),
is snoozed or is resolved (the stretches are in conversation_pauses), and
resumes with the business time it had left when the conversation opens again.
Machine mail (auto-replies, bounces) starts no clock.

Clocks are recomputed from the conversation's rows (idempotent, so every hub
process may do it) when its events arrive. A clock past due is breached once:
the process that locks its row marks it, records the breach, raises the
conversation's priority to urgent and publishes `sla.breached`, all in one
transaction.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

import asyncpg

from hub.events import publish
from hub.types import JSON
from inbox.views import fetch_conversation
from routing.business_hours import Pause
from routing.policies import METRICS, load_policies, pick

log = logging.getLogger(__name__)

URGENT = 2

# A customer's message, not a machine's (inbox/ingest.py keeps those without reopening anything).
BY_CUSTOMER = "m.direction = 'in' AND NOT m.flags && ARRAY['auto_reply', 'bounce']"
BY_AGENT = "m.direction = 'out' AND m.author_agent_id IS NOT NULL"

_STATE = f"""
SELECT c.id, c.status, cl.segment, cl.tags, r.team_id, fi.at AS first_in, fr.at AS first_reply,
       lr.created_at AS last_reply_at, w.at AS waiting_since
FROM conversations c
JOIN clients cl ON cl.id = c.client_id
LEFT JOIN conversation_routing r ON r.conversation_id = c.id
LEFT JOIN LATERAL (
    SELECT min(m.created_at) AS at FROM messages m WHERE m.conversation_id = c.id AND {BY_CUSTOMER}
) fi ON true
LEFT JOIN LATERAL (
    SELECT min(m.created_at) AS at FROM messages m
    WHERE m.conversation_id = c.id AND {BY_AGENT} AND m.created_at >= fi.at
) fr ON true
LEFT JOIN LATERAL (
    SELECT m.id, m.created_at FROM messages m
    WHERE m.conversation_id = c.id AND {BY_AGENT}
    ORDER BY m.id DESC LIMIT 1
) lr ON true
LEFT JOIN LATERAL (
    SELECT min(m.created_at) AS at FROM messages m
    WHERE m.conversation_id = c.id AND {BY_CUSTOMER} AND m.id > coalesce(lr.id, 0)
) w ON true
WHERE c.id = ANY($1::bigint[])
"""

_PAUSES = """
SELECT conversation_id, status, started_at, ended_at FROM conversation_pauses
WHERE conversation_id = ANY($1::bigint[]) ORDER BY conversation_id, started_at, id
"""

# Upsert a clock; RETURNING only when something changed, so one process announces it.
# A new start (a new waiting period) is a new clock that may breach again.
_UPSERT = """
INSERT INTO sla_clocks (conversation_id, metric, policy_id, started_at, due_at, stopped_at, paused_at)
VALUES ($1, $2, $3, $4, $5, $6, $7)
ON CONFLICT (conversation_id, metric) DO UPDATE SET
    policy_id = EXCLUDED.policy_id, due_at = EXCLUDED.due_at, started_at = EXCLUDED.started_at,
    stopped_at = EXCLUDED.stopped_at, paused_at = EXCLUDED.paused_at,
    breached_at = CASE WHEN sla_clocks.started_at = EXCLUDED.started_at THEN sla_clocks.breached_at END
WHERE (sla_clocks.policy_id, sla_clocks.started_at, sla_clocks.due_at, sla_clocks.stopped_at, sla_clocks.paused_at)
      IS DISTINCT FROM (EXCLUDED.policy_id, EXCLUDED.started_at, EXCLUDED.due_at, EXCLUDED.stopped_at, EXCLUDED.paused_at)
RETURNING conversation_id
"""

# No clock any more (an answered wait, a policy removed): a running or paused one stops.
_STOP = """
UPDATE sla_clocks SET stopped_at = CASE WHEN paused_at IS NULL THEN $3 ELSE stopped_at END, paused_at = NULL
WHERE conversation_id = ANY($1::bigint[]) AND metric = ANY($2::text[]) AND (stopped_at IS NULL OR paused_at IS NOT NULL)
RETURNING conversation_id
"""


@dataclass(frozen=True)
class Stretch:
    """A time the conversation spent pending, snoozed or resolved (until None: it still is)."""

    status: str
    since: dt.datetime
    until: dt.datetime | None


def _span(metric: str, r: asyncpg.Record) -> tuple[dt.datetime, dt.datetime | None] | None:
    """(started, answered) of a metric's clock for this conversation state, or None: no clock."""
    if r["first_in"] is None:
        return None  # nobody is waiting on us yet
    if metric == "first_response":
        return r["first_in"], r["first_reply"]
    if metric == "resolution":
        return r["first_in"], None
    if r["first_reply"] is None or r["waiting_since"] is None:
        return None  # the first wait is the first_response clock's; or nobody waits
    return r["waiting_since"], None


def clock_state(
    started: dt.datetime, answered: dt.datetime | None, stretches: list[Stretch]
) -> tuple[list[Pause], dt.datetime | None, dt.datetime | None]:
    """(pauses that count, stopped_at, paused_at) of a clock started then.

    An answer stops it for good; resolving stops it until the conversation is reopened; pending
    and snoozed pause it. Pauses after the answer don't count, one open at the answer ends there.
    """
    pauses: list[Pause] = []
    for p in stretches:
        if answered is not None and p.since >= answered:
            continue
        until = p.until if answered is None or (p.until is not None and p.until < answered) else answered
        pauses.append((p.since, until))
    if answered is not None:
        return pauses, answered, None
    current = next((p for p in stretches if p.until is None), None)
    if current is None:
        return pauses, None, None
    since = max(current.since, started)
    return pauses, since, (None if current.status == "resolved" else since)


async def update_clocks(pool: asyncpg.Pool, conversation_ids: list[int]) -> list[int]:
    """Recompute the clocks of these conversations; returns those whose clocks changed."""
    if not conversation_ids:
        return []
    policies = await load_policies(pool)
    if not policies:  # the common case without regulations: one query
        rows = await pool.fetch(_STOP, conversation_ids, list(METRICS), dt.datetime.now(dt.UTC))
        return sorted({r["conversation_id"] for r in rows})
    changed: set[int] = set()
    async with pool.acquire() as conn, conn.transaction():
        now: dt.datetime = await conn.fetchval("SELECT now()")
        rows = await conn.fetch(_STATE, conversation_ids)
        stretches: dict[int, list[Stretch]] = {}
        for p in await conn.fetch(_PAUSES, conversation_ids):
            stretches.setdefault(p["conversation_id"], []).append(Stretch(p["status"], p["started_at"], p["ended_at"]))
        for r in rows:
            policy = pick(policies, team_id=r["team_id"], segment=r["segment"], tags=list(r["tags"]))
            for metric in METRICS:
                span = _span(metric, r) if policy is not None else None
                due = None
                if policy is not None and span is not None:
                    pauses, stopped, paused = clock_state(span[0], span[1], stretches.get(r["id"], []))
                    due = policy.due(metric, span[0], pauses)
                if policy is None or span is None or due is None:
                    stop_at = r["last_reply_at"] if metric == "next_response" and r["last_reply_at"] else now
                    if await conn.fetchval(_STOP, [r["id"]], [metric], stop_at):
                        changed.add(r["id"])
                    continue
                if await conn.fetchval(_UPSERT, r["id"], metric, policy.id, span[0], due, stopped, paused):
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


_DUE = f"""
SELECT k.conversation_id, k.metric, k.policy_id, k.started_at, k.due_at, c.client_id, c.assignee_id, r.team_id,
       c.status = 'open' AND (k.metric = 'resolution' OR NOT EXISTS (
           SELECT 1 FROM messages m WHERE m.conversation_id = k.conversation_id AND {BY_AGENT}
           AND m.created_at >= k.started_at)) AS running
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
    stale: set[int] = set()
    async with pool.acquire() as conn, conn.transaction():
        for k in await conn.fetch(_DUE):
            if not k["running"]:
                # Answered, paused or resolved, but that event has not been routed yet: no breach,
                # and the clock is recomputed (below, once these row locks are released).
                stale.add(k["conversation_id"])
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
    if stale:
        await announce(pool, await update_clocks(pool, sorted(stale)))
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
        "SELECT b.id, b.conversation_id, cl.name AS client, b.metric, p.name AS policy, t.name AS team,"
        " a.name AS assignee, cl.segment, b.started_at, b.due_at, b.breached_at"
        " FROM sla_breaches b JOIN conversations c ON c.id = b.conversation_id JOIN clients cl ON cl.id = c.client_id"
        " LEFT JOIN sla_policies p ON p.id = b.policy_id LEFT JOIN teams t ON t.id = b.team_id"
        " LEFT JOIN agents a ON a.id = b.assignee_id"
        " WHERE b.breached_at >= $1 AND b.breached_at < $2 ORDER BY b.breached_at, b.id",
        start,
        end,
    )
    return [
        {
            **{k: r[k] for k in ("id", "conversation_id", "client", "metric", "policy", "team", "assignee", "segment")},
            **{k: r[k].isoformat() for k in ("started_at", "due_at", "breached_at")},
        }
        for r in rows
    ]
