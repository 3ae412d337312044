"""The queue and auto-assignment: round-robin over online agents, within capacity.

A conversation waits in the queue while it is open and nobody has it. Each
team with auto-assignment on hands its queue, VIP and escalated first, then
longest-waiting first, to its online members with an open inbox in turn (the member whose last
turn is oldest goes next), never past an agent's capacity (open + pending
conversations).

Several hub processes run this at once. One assignment is one transaction
that locks the conversation row and then the chosen agent's routing row, both
with SKIP LOCKED: a conversation another process is assigning is skipped,
and an agent's load is counted while we hold their lock, so two processes
can't both fill the same last slot.
"""

from __future__ import annotations

import asyncpg

from hub.errors import NotFound
from hub.types import JSON
from inbox.views import CONVERSATION_SELECT, conversation_json
from routing.assign import assign_in
from routing.presence import CONNECTED_SQL

# A VIP client: segment or tag "vip" on the card.
VIP_SQL = "(lower(cl.segment) = 'vip' OR 'vip' = ANY(cl.tags))"
# Queue order: escalated and VIP first, then who has waited longest.
QUEUE_ORDER = f"greatest(r.priority, CASE WHEN {VIP_SQL} THEN 1 ELSE 0 END) DESC, r.queued_at, c.id"
LOAD_STATUSES = "('open', 'pending')"
BATCH = 200


async def enqueue(conn: asyncpg.Connection | asyncpg.Pool, conversation_ids: list[int]) -> None:
    """Give new conversations their routing row: the channel's team, queued since they began.

    VIP is not stored: it is read from the client card whenever the queue is ordered.
    """
    await conn.execute(
        "INSERT INTO conversation_routing (conversation_id, team_id, queued_at)"
        " SELECT c.id, tc.team_id, c.created_at FROM conversations c"
        " LEFT JOIN team_channels tc ON tc.channel_id = c.channel_id"
        " WHERE c.id = ANY($1::bigint[]) ON CONFLICT (conversation_id) DO NOTHING",
        conversation_ids,
    )


async def enqueue_missing(pool: asyncpg.Pool, limit: int = 1000) -> list[int]:
    """Catch up on open conversations that arrived while no hub process was routing."""
    rows = await pool.fetch(
        "SELECT c.id FROM conversations c WHERE c.status <> 'resolved'"
        " AND NOT EXISTS (SELECT 1 FROM conversation_routing r WHERE r.conversation_id = c.id) ORDER BY c.id LIMIT $1",
        limit,
    )
    ids = [r["id"] for r in rows]
    if ids:
        await enqueue(pool, ids)
    return ids


async def queue(pool: asyncpg.Pool, *, team: int | str | None = None, limit: int = 50, offset: int = 0) -> list[JSON]:
    """Waiting conversations in the order they will be handed out (team: id, "none" or None for all)."""
    where = "c.assignee_id IS NULL AND c.status = 'open'"
    args: list[object] = [limit, offset]
    if team == "none":
        where += " AND r.team_id IS NULL"
    elif isinstance(team, int):
        args.append(team)
        where += " AND r.team_id = $3"
    return await _queue_rows(pool, where, args)


async def _queue_rows(pool: asyncpg.Pool, where: str, args: list[object]) -> list[JSON]:
    order = QUEUE_ORDER.replace("r.priority", "coalesce(r.priority, 0)").replace(
        "r.queued_at", "coalesce(r.queued_at, c.created_at)"
    )
    ids = await pool.fetch(
        f"SELECT c.id, {VIP_SQL} AS vip, coalesce(r.queued_at, c.created_at) AS waiting_since"
        " FROM conversations c JOIN clients cl ON cl.id = c.client_id"
        " LEFT JOIN conversation_routing r ON r.conversation_id = c.id"
        f" WHERE {where} ORDER BY {order} LIMIT $1 OFFSET $2",
        *args,
    )
    if not ids:
        return []
    convs = {
        r["id"]: conversation_json(r)
        for r in await pool.fetch(CONVERSATION_SELECT + " WHERE c.id = ANY($1::bigint[])", [r["id"] for r in ids])
    }
    offset = args[1]
    assert isinstance(offset, int)
    return [
        {
            "position": offset + i + 1,
            "vip": r["vip"],
            "waiting_since": r["waiting_since"].isoformat(),
            "conversation": convs[r["id"]],
        }
        for i, r in enumerate(ids)
        if r["id"] in convs
    ]


async def _teams_with_room(pool: asyncpg.Pool) -> list[int]:
    rows = await pool.fetch(
        "SELECT DISTINCT tm.team_id FROM team_members tm"
        " JOIN teams t ON t.id = tm.team_id AND t.auto_assign"
        " JOIN routing_agents ra ON ra.agent_id = tm.agent_id AND ra.status = 'online'"
        " JOIN agents a ON a.id = tm.agent_id AND NOT a.disabled"
        " CROSS JOIN routing_settings s"
        f" WHERE {CONNECTED_SQL} AND coalesce(ra.capacity, s.default_capacity) >"
        f" (SELECT count(*) FROM conversations c WHERE c.assignee_id = tm.agent_id AND c.status IN {LOAD_STATUSES})"
    )
    return [r["team_id"] for r in rows]


async def assign_waiting(pool: asyncpg.Pool) -> int:
    """Hand out as much of the queue as online agents have room for; returns how many were assigned."""
    assigned = 0
    while True:
        teams = await _teams_with_room(pool)
        if not teams:
            return assigned
        candidates = await pool.fetch(
            "SELECT c.id, r.team_id FROM conversations c JOIN conversation_routing r ON r.conversation_id = c.id"
            " JOIN clients cl ON cl.id = c.client_id"
            " WHERE c.assignee_id IS NULL AND c.status = 'open' AND r.team_id = ANY($1::bigint[])"
            f" ORDER BY {QUEUE_ORDER} LIMIT $2",
            teams,
            BATCH,
        )
        if not candidates:
            return assigned
        full: set[int] = set()
        progress = 0
        for cand in candidates:
            if cand["team_id"] in full:
                continue
            outcome = await _assign_one(pool, cand["id"], cand["team_id"])
            if outcome == "assigned":
                progress += 1
            elif outcome == "team full":
                full.add(cand["team_id"])
        assigned += progress
        if progress == 0:
            return assigned


async def _assign_one(pool: asyncpg.Pool, conversation_id: int, team_id: int) -> str:
    async with pool.acquire() as conn, conn.transaction():
        locked = await conn.fetchval(
            "SELECT c.id FROM conversations c JOIN conversation_routing r ON r.conversation_id = c.id"
            " WHERE c.id = $1 AND c.assignee_id IS NULL AND c.status = 'open' AND r.team_id = $2"
            " FOR UPDATE OF c SKIP LOCKED",
            conversation_id,
            team_id,
        )
        if locked is None:
            return "gone"  # taken, closed or being assigned elsewhere
        agents = await conn.fetch(
            "SELECT ra.agent_id FROM team_members tm JOIN routing_agents ra ON ra.agent_id = tm.agent_id"
            " JOIN agents a ON a.id = tm.agent_id AND NOT a.disabled"
            f" WHERE tm.team_id = $1 AND ra.status = 'online' AND {CONNECTED_SQL}"
            " ORDER BY ra.last_turn, ra.agent_id FOR UPDATE OF ra SKIP LOCKED",
            team_id,
        )
        if not agents:
            return "team full"
        # Counted after the locks are ours: every earlier assignment to these agents has committed.
        rooms = await conn.fetch(
            "SELECT ra.agent_id, coalesce(ra.capacity, s.default_capacity)"
            f" - (SELECT count(*) FROM conversations c WHERE c.assignee_id = ra.agent_id AND c.status IN {LOAD_STATUSES})"
            " AS room FROM routing_agents ra CROSS JOIN routing_settings s WHERE ra.agent_id = ANY($1::bigint[])",
            [a["agent_id"] for a in agents],
        )
        room = {r["agent_id"]: r["room"] for r in rooms}
        chosen = next((a["agent_id"] for a in agents if room.get(a["agent_id"], 0) > 0), None)
        if chosen is None:
            return "team full"
        await conn.execute(
            "UPDATE routing_agents SET last_turn = nextval('routing_turn_seq') WHERE agent_id = $1", chosen
        )
        await assign_in(conn, conversation_id=conversation_id, agent_id=chosen, actor=None, reason="auto")
        return "assigned"


async def take(pool: asyncpg.Pool, *, conversation_id: int, agent: JSON) -> JSON:
    """Manual takeover: the calling agent takes the conversation, from the queue or from a colleague."""
    async with pool.acquire() as conn, conn.transaction():
        if await conn.fetchval("SELECT 1 FROM conversations WHERE id = $1 FOR UPDATE", conversation_id) is None:
            raise NotFound(f"conversation {conversation_id} does not exist")
        return await assign_in(conn, conversation_id=conversation_id, agent_id=agent["id"], actor=agent, reason="takeover")
