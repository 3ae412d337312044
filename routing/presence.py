"""Agent presence (online / away / offline), agreed on by every hub process.

Each open `/ws/agent` socket is a row in `agent_connections`, written by the
process that holds it and touched by that process's heartbeat. An agent is
online while a live connection says so, away while live connections all say
away. With no live connection left the agent keeps their status for the grace
time (a train tunnel, a laptop lid, a proxy restart) and only then goes
offline; a process that dies stops its heartbeat, and its rows go stale.

Going offline past the grace time can return the agent's waiting conversations
to the queue (routing_settings.return_on_offline); exactly one process makes
that transition, because the UPDATE that makes it re-checks the status.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from typing import Literal

import asyncpg

from hub.events import publish_ephemeral
from hub.types import JSON
from routing.assign import assign_in

log = logging.getLogger(__name__)

Status = Literal["online", "away", "offline"]
HEARTBEAT_SECONDS = 5.0
# A connection whose process has not touched it for this long is gone.
STALE_SECONDS = 3 * HEARTBEAT_SECONDS
PRESENCE_EVENT = "agent.presence"

_LIVE = f"heartbeat_at > now() - interval '{STALE_SECONDS} seconds'"
# An agent routing may hand work to right now: online, and a socket of theirs is open (not
# within the grace time after losing it, when they keep their conversations but see nothing new).
CONNECTED_SQL = (
    "EXISTS (SELECT 1 FROM agent_connections ac WHERE ac.agent_id = ra.agent_id AND ac.status = 'online'"
    f" AND ac.{_LIVE})"
)


async def _derive(conn: asyncpg.Connection, agent_id: int) -> Status | None:
    """The status live connections give the agent, or None when none is live."""
    statuses = {r["status"] for r in await conn.fetch(
        f"SELECT status FROM agent_connections WHERE agent_id = $1 AND {_LIVE}", agent_id
    )}
    if "online" in statuses:
        return "online"
    if "away" in statuses:
        return "away"
    return None


async def _settle(conn: asyncpg.Connection, agent_id: int, *, touch: bool = True) -> JSON | None:
    """Bring the agent's row in line with their live connections; the change, if any.

    Call inside a transaction. `touch` marks the agent as seen now (a socket
    just opened or closed); a dead process's connections don't.
    """
    await conn.execute(
        "INSERT INTO routing_agents (agent_id) VALUES ($1) ON CONFLICT (agent_id) DO NOTHING", agent_id
    )
    current = await conn.fetchval("SELECT status FROM routing_agents WHERE agent_id = $1 FOR UPDATE", agent_id)
    derived = await _derive(conn, agent_id)
    if derived is None or derived == current:
        if touch:
            await conn.execute("UPDATE routing_agents SET last_seen_at = now() WHERE agent_id = $1", agent_id)
        return None
    await conn.execute(
        "UPDATE routing_agents SET status = $2, status_changed_at = now(), last_seen_at = now() WHERE agent_id = $1",
        agent_id,
        derived,
    )
    return {"type": PRESENCE_EVENT, "agent_id": agent_id, "status": derived}


class Presence:
    """This process's share of presence: its connections and their heartbeat."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        self.process_id = uuid.uuid4().hex
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._heartbeat(), name="presence-heartbeat")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        with contextlib.suppress(Exception):
            rows = await self._pool.fetch(
                "DELETE FROM agent_connections WHERE process_id = $1 RETURNING agent_id", self.process_id
            )
            for agent_id in {r["agent_id"] for r in rows}:
                await self._after_close(agent_id)

    async def connect(self, agent_id: int) -> int:
        async with self._pool.acquire() as conn, conn.transaction():
            conn_id: int = await conn.fetchval(
                "INSERT INTO agent_connections (agent_id, process_id) VALUES ($1, $2) RETURNING id",
                agent_id,
                self.process_id,
            )
            change = await _settle(conn, agent_id)
        await self._announce(change)
        return conn_id

    async def set_status(self, connection_id: int, status: Status) -> None:
        if status == "offline":
            raise ValueError("a connected agent is online or away")
        async with self._pool.acquire() as conn, conn.transaction():
            agent_id = await conn.fetchval(
                "UPDATE agent_connections SET status = $2, heartbeat_at = now() WHERE id = $1 RETURNING agent_id",
                connection_id,
                status,
            )
            if agent_id is None:
                return
            change = await _settle(conn, agent_id)
        await self._announce(change)

    async def disconnect(self, connection_id: int) -> None:
        agent_id = await self._pool.fetchval(
            "DELETE FROM agent_connections WHERE id = $1 RETURNING agent_id", connection_id
        )
        if agent_id is not None:
            await self._after_close(agent_id)

    async def _after_close(self, agent_id: int) -> None:
        # Other live connections may change the status (the online tab closed,
        # an away tab remains); with none left, the grace time starts now.
        async with self._pool.acquire() as conn, conn.transaction():
            change = await _settle(conn, agent_id)
        await self._announce(change)

    async def _announce(self, change: JSON | None) -> None:
        if change is not None:
            await publish_ephemeral(self._pool, change)

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(HEARTBEAT_SECONDS)
            try:
                await self._pool.execute(
                    "WITH touched AS (UPDATE agent_connections SET heartbeat_at = now() WHERE process_id = $1"
                    " RETURNING agent_id)"
                    " UPDATE routing_agents SET last_seen_at = now() WHERE agent_id IN (SELECT agent_id FROM touched)",
                    self.process_id,
                )
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as e:
                log.warning("presence heartbeat failed (%s)", e)


async def sweep(pool: asyncpg.Pool) -> list[JSON]:
    """Forget dead processes' connections and take agents past the grace time offline.

    Returns the presence changes (already announced). Safe to run in every process at once.
    """
    changes: list[JSON] = []
    stale = await pool.fetch(f"DELETE FROM agent_connections WHERE NOT ({_LIVE}) RETURNING agent_id")
    for agent_id in {r["agent_id"] for r in stale}:
        async with pool.acquire() as conn, conn.transaction():
            change = await _settle(conn, agent_id, touch=False)
        if change:
            changes.append(change)
    async with pool.acquire() as conn, conn.transaction():
        settings = await conn.fetchrow("SELECT offline_grace_seconds, return_on_offline FROM routing_settings")
        gone = await conn.fetch(
            "UPDATE routing_agents ra SET status = 'offline', status_changed_at = now()"
            " WHERE status <> 'offline' AND last_seen_at < now() - make_interval(secs => $1)"
            f" AND NOT EXISTS (SELECT 1 FROM agent_connections ac WHERE ac.agent_id = ra.agent_id AND {_LIVE})"
            " RETURNING agent_id",
            settings["offline_grace_seconds"],
        )
        for r in gone:
            changes.append({"type": PRESENCE_EVENT, "agent_id": r["agent_id"], "status": "offline"})
            if settings["return_on_offline"]:
                await return_waiting(conn, r["agent_id"])
    for change in changes:
        await publish_ephemeral(pool, change)
    return changes


async def return_waiting(conn: asyncpg.Connection, agent_id: int) -> int:
    """Put an agent's open conversations back in the queue (they keep their place)."""
    ids = await conn.fetch(
        "SELECT id FROM conversations WHERE assignee_id = $1 AND status = 'open' ORDER BY id FOR UPDATE", agent_id
    )
    for r in ids:
        await assign_in(conn, conversation_id=r["id"], agent_id=None, actor=None, reason="agent offline")
    if ids:
        log.info("agent %s went offline: %d conversation(s) back in the queue", agent_id, len(ids))
    return len(ids)


async def presence_list(pool: asyncpg.Pool) -> list[JSON]:
    rows = await pool.fetch(
        "SELECT a.id, a.name, a.role, coalesce(ra.status, 'offline') AS status, ra.last_seen_at, ra.status_changed_at,"
        " coalesce(ra.capacity, s.default_capacity) AS capacity, ra.capacity IS NULL AS default_capacity,"
        " (SELECT count(*) FROM conversations c WHERE c.assignee_id = a.id AND c.status IN ('open', 'pending')) AS load,"
        " coalesce((SELECT array_agg(tm.team_id ORDER BY tm.team_id) FROM team_members tm WHERE tm.agent_id = a.id),"
        "  '{}') AS team_ids"
        " FROM agents a CROSS JOIN routing_settings s LEFT JOIN routing_agents ra ON ra.agent_id = a.id"
        " WHERE NOT a.disabled ORDER BY a.name, a.id"
    )
    return [
        {
            "agent": {"id": r["id"], "name": r["name"], "role": r["role"]},
            "status": r["status"],
            "last_seen_at": r["last_seen_at"].isoformat() if r["last_seen_at"] else None,
            "status_changed_at": r["status_changed_at"].isoformat() if r["status_changed_at"] else None,
            "capacity": r["capacity"],
            "open_conversations": r["load"],
            "team_ids": list(r["team_ids"]),
        }
        for r in rows
    ]
