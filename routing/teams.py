"""Teams: who they are, which channels they serve, who is in them."""

from __future__ import annotations

from typing import Any

import asyncpg

from hub.errors import Conflict, NotFound, OmnihubError
from hub.types import JSON

TEAM_SELECT = """
SELECT t.id, t.name, t.auto_assign, t.created_at,
       coalesce((SELECT jsonb_agg(jsonb_build_object('id', a.id, 'name', a.name, 'role', a.role) ORDER BY a.name, a.id)
                 FROM team_members tm JOIN agents a ON a.id = tm.agent_id WHERE tm.team_id = t.id), '[]') AS members,
       coalesce((SELECT jsonb_agg(jsonb_build_object('id', ch.id, 'kind', ch.kind, 'name', ch.name) ORDER BY ch.id)
                 FROM team_channels tc JOIN channels ch ON ch.id = tc.channel_id WHERE tc.team_id = t.id), '[]') AS channels
FROM teams t
"""


def team_json(r: asyncpg.Record) -> JSON:
    return {
        "id": r["id"],
        "name": r["name"],
        "auto_assign": r["auto_assign"],
        "members": r["members"],
        "channels": r["channels"],
        "created_at": r["created_at"].isoformat(),
    }


async def list_teams(pool: asyncpg.Pool) -> list[JSON]:
    return [team_json(r) for r in await pool.fetch(TEAM_SELECT + " ORDER BY t.name, t.id")]


async def get_team(conn: asyncpg.Pool | asyncpg.Connection, team_id: int) -> JSON:
    row = await conn.fetchrow(TEAM_SELECT + " WHERE t.id = $1", team_id)
    if row is None:
        raise NotFound(f"team {team_id} does not exist")
    return team_json(row)


def _ids(value: Any, name: str) -> list[int]:
    if not isinstance(value, list) or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        raise OmnihubError(f"{name} must be a list of ids")
    return sorted(set(value))


async def create_team(pool: asyncpg.Pool, *, name: str, auto_assign: bool = True) -> JSON:
    try:
        team_id = await pool.fetchval(
            "INSERT INTO teams (name, auto_assign) VALUES ($1, $2) RETURNING id", name.strip(), auto_assign
        )
    except asyncpg.UniqueViolationError:
        raise Conflict(f"a team named {name!r} exists already") from None
    return await get_team(pool, team_id)


async def update_team(pool: asyncpg.Pool, *, team_id: int, changes: dict[str, Any]) -> JSON:
    """Rename, switch auto-assignment, replace the member list or the channel list."""
    unknown = set(changes) - {"name", "auto_assign", "agent_ids", "channel_ids"}
    if unknown:
        raise OmnihubError(f"unknown team fields: {', '.join(sorted(unknown))}")
    async with pool.acquire() as conn, conn.transaction():
        if not await conn.fetchval("SELECT 1 FROM teams WHERE id = $1 FOR UPDATE", team_id):
            raise NotFound(f"team {team_id} does not exist")
        if "name" in changes:
            name = changes["name"]
            if not isinstance(name, str) or not name.strip():
                raise OmnihubError("name must be a non-empty string")
            try:
                await conn.execute("UPDATE teams SET name = $2 WHERE id = $1", team_id, name.strip())
            except asyncpg.UniqueViolationError:
                raise Conflict(f"a team named {name!r} exists already") from None
        if "auto_assign" in changes:
            if not isinstance(changes["auto_assign"], bool):
                raise OmnihubError("auto_assign must be true or false")
            await conn.execute("UPDATE teams SET auto_assign = $2 WHERE id = $1", team_id, changes["auto_assign"])
        if "agent_ids" in changes:
            agent_ids = _ids(changes["agent_ids"], "agent_ids")
            found = await conn.fetchval("SELECT count(*) FROM agents WHERE id = ANY($1::bigint[])", agent_ids)
            if found != len(agent_ids):
                raise NotFound("some of agent_ids are not agents")
            await conn.execute("DELETE FROM team_members WHERE team_id = $1", team_id)
            await conn.executemany(
                "INSERT INTO team_members (team_id, agent_id) VALUES ($1, $2)", [(team_id, a) for a in agent_ids]
            )
        if "channel_ids" in changes:
            channel_ids = _ids(changes["channel_ids"], "channel_ids")
            found = await conn.fetchval("SELECT count(*) FROM channels WHERE id = ANY($1::bigint[])", channel_ids)
            if found != len(channel_ids):
                raise NotFound("some of channel_ids are not channels")
            await conn.execute(
                "DELETE FROM team_channels WHERE team_id = $1 AND channel_id <> ALL($2::bigint[])", team_id, channel_ids
            )
            # A channel serves one team: mapping it here moves it from any other.
            await conn.execute(
                "INSERT INTO team_channels (channel_id, team_id) SELECT unnest($2::bigint[]), $1"
                " ON CONFLICT (channel_id) DO UPDATE SET team_id = EXCLUDED.team_id",
                team_id,
                channel_ids,
            )
            # Conversations still waiting in the queue follow their channel.
            await conn.execute(
                "UPDATE conversation_routing r SET team_id = tc.team_id FROM conversations c, team_channels tc"
                " WHERE c.id = r.conversation_id AND tc.channel_id = c.channel_id AND c.assignee_id IS NULL"
                " AND c.status = 'open' AND r.team_id IS DISTINCT FROM tc.team_id"
            )
        return await get_team(conn, team_id)


async def delete_team(pool: asyncpg.Pool, *, team_id: int) -> None:
    if await pool.fetchval("DELETE FROM teams WHERE id = $1 RETURNING id", team_id) is None:
        raise NotFound(f"team {team_id} does not exist")
