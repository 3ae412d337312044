"""Merging two client cards, recorded so that the merge can be undone.

A merge moves the other card's identities, conversations, notes and timeline
events to the surviving card (the caller chooses which card survives) and
records every row it moved in `client_merge_moves`. An undo moves exactly those
rows back, together with what has grown on them since (a new conversation of a
moved identity, its notes and events), from the card they live on now — the
survivor, or whatever card the survivor has itself been merged into since.
Nothing is copied or deleted, so no history is lost either way.

Lock order matches ingest (an identity, then its client), so a merge and a
message from one of the people involved wait for each other instead of
deadlocking.
"""

from __future__ import annotations

from typing import Any

import asyncpg

from hub.errors import Conflict, NotFound
from hub.events import publish
from hub.types import JSON
from inbox import audit
from inbox.views import iso

# (kind recorded in client_merge_moves, table whose client_id moves)
MOVES = (("identity", "identities"), ("conversation", "conversations"), ("note", "notes"), ("event", "events"))
CARD_FIELDS = ("name", "email", "phone", "segment", "tags", "custom_fields")
_CLIENT = "id, merged_into, created_at, " + ", ".join(CARD_FIELDS)

MERGE_SELECT = """
SELECT m.id, m.survivor_id, s.name AS survivor_name, m.merged_id, o.name AS merged_name,
       m.merged_by, mb.name AS merged_by_name, m.merged_at, m.undone_by, ub.name AS undone_by_name, m.undone_at,
       (SELECT jsonb_object_agg(kind, n) FROM (
            SELECT kind, count(*) AS n FROM client_merge_moves WHERE merge_id = m.id GROUP BY kind) k) AS moved
FROM client_merges m
JOIN clients s ON s.id = m.survivor_id
JOIN clients o ON o.id = m.merged_id
LEFT JOIN agents mb ON mb.id = m.merged_by
LEFT JOIN agents ub ON ub.id = m.undone_by
"""


def merge_json(r: asyncpg.Record) -> JSON:
    moved = r["moved"] or {}
    return {
        "id": r["id"],
        "survivor": {"id": r["survivor_id"], "name": r["survivor_name"]},
        "merged": {"id": r["merged_id"], "name": r["merged_name"]},
        "merged_by": {"id": r["merged_by"], "name": r["merged_by_name"]} if r["merged_by"] is not None else None,
        "merged_at": iso(r["merged_at"]),
        "undone_by": {"id": r["undone_by"], "name": r["undone_by_name"]} if r["undone_by"] is not None else None,
        "undone_at": iso(r["undone_at"]),
        "moved": {kind: int(moved.get(kind, 0)) for kind, _table in MOVES},
    }


async def fetch_merge(conn: asyncpg.Connection | asyncpg.Pool, merge_id: int) -> JSON:
    row = await conn.fetchrow(MERGE_SELECT + " WHERE m.id = $1", merge_id)
    if row is None:
        raise NotFound(f"merge {merge_id} does not exist")
    return merge_json(row)


async def merges_of(conn: asyncpg.Connection | asyncpg.Pool, client_id: int, limit: int = 50) -> list[JSON]:
    rows = await conn.fetch(
        MERGE_SELECT + " WHERE m.survivor_id = $1 OR m.merged_id = $1 ORDER BY m.id DESC LIMIT $2", client_id, limit
    )
    return [merge_json(r) for r in rows]


def _actor(agent: JSON | None) -> JSON | None:
    return {"id": agent["id"], "name": agent["name"]} if agent else None


def _combined(survivor: asyncpg.Record, other: asyncpg.Record) -> dict[str, Any]:
    """The survivor's card fields after the merge: its own values win, the other card fills gaps."""
    new: dict[str, Any] = {}
    for field in ("name", "email", "phone", "segment"):
        if not survivor[field] and other[field]:
            new[field] = other[field]
    tags = list(survivor["tags"]) + [t for t in other["tags"] if t not in survivor["tags"]]
    if tags != list(survivor["tags"]):
        new["tags"] = tags
    fields = {**other["custom_fields"], **survivor["custom_fields"]}
    if fields != survivor["custom_fields"]:
        new["custom_fields"] = fields
    return new  # first_touch stays: the card shows the earliest of its family's (inbox.clients)


async def _set_fields(conn: asyncpg.Connection, client_id: int, values: dict[str, Any]) -> None:
    if not values:
        return
    sets = ", ".join(f"{k} = ${i + 2}" for i, k in enumerate(values))
    await conn.execute(f"UPDATE clients SET {sets}, updated_at = now() WHERE id = $1", client_id, *values.values())


async def merge_in(conn: asyncpg.Connection, *, survivor_id: int, merged_id: int, agent: JSON | None) -> int:
    """Fold `merged_id` into `survivor_id` inside the caller's transaction; returns the merge's id."""
    if survivor_id == merged_id:
        raise Conflict("a client cannot be merged into itself")
    pair = [survivor_id, merged_id]
    await conn.execute("SELECT 1 FROM identities WHERE client_id = ANY($1::bigint[]) ORDER BY id FOR UPDATE", pair)
    rows = await conn.fetch(
        f"SELECT {_CLIENT} FROM clients WHERE id = ANY($1::bigint[]) ORDER BY id FOR NO KEY UPDATE", pair
    )
    found = {r["id"]: r for r in rows}
    for cid in pair:
        if cid not in found:
            raise NotFound(f"client {cid} does not exist")
        if found[cid]["merged_into"] is not None:
            raise Conflict(f"client {cid} was merged into client {found[cid]['merged_into']}; merge that card instead")
    survivor, other = found[survivor_id], found[merged_id]
    merge_id: int = await conn.fetchval(
        "INSERT INTO client_merges (survivor_id, merged_id, merged_by) VALUES ($1, $2, $3) RETURNING id",
        survivor_id,
        merged_id,
        agent["id"] if agent else None,
    )
    for kind, table in MOVES:
        await conn.execute(
            f"WITH moved AS (UPDATE {table} SET client_id = $1 WHERE client_id = $2 RETURNING id)"
            " INSERT INTO client_merge_moves (merge_id, kind, row_id) SELECT $3, $4, id FROM moved",
            survivor_id,
            merged_id,
            merge_id,
            kind,
        )
    after = _combined(survivor, other)
    await _set_fields(conn, survivor_id, after)
    await conn.execute("UPDATE clients SET merged_into = $1, updated_at = now() WHERE id = $2", survivor_id, merged_id)
    await conn.execute(
        "UPDATE client_merges SET survivor_before = $2, survivor_after = $3 WHERE id = $1",
        merge_id,
        {k: survivor[k] for k in after},
        after,
    )
    await conn.execute(
        "UPDATE merge_suggestions SET status = 'confirmed', merge_id = $3, decided_by = $4, decided_at = now()"
        " WHERE client_id = least($1::bigint, $2::bigint) AND other_id = greatest($1::bigint, $2::bigint)"
        " AND status = 'pending'",
        survivor_id,
        merged_id,
        merge_id,
        agent["id"] if agent else None,
    )
    await publish(
        conn, "client.merged",
        data={"merge_id": merge_id, "merged_client_id": merged_id, "merged_name": other["name"]},
        client_id=survivor_id, actor=_actor(agent),
    )
    await audit.record(
        conn, agent=agent, action=audit.MERGE, client_id=survivor_id,
        details={"merge_id": merge_id, "merged_client_id": merged_id},
    )
    return merge_id


async def undo_in(conn: asyncpg.Connection, *, merge_id: int, agent: JSON | None) -> int:
    """Undo a merge inside the caller's transaction; returns the restored client's id."""
    m = await conn.fetchrow(
        "SELECT survivor_id, merged_id, survivor_after, survivor_before, undone_at FROM client_merges"
        " WHERE id = $1 FOR UPDATE",
        merge_id,
    )
    if m is None:
        raise NotFound(f"merge {merge_id} does not exist")
    if m["undone_at"] is not None:
        raise Conflict(f"merge {merge_id} was already undone")
    survivor_id: int = m["survivor_id"]
    merged_id: int = m["merged_id"]
    root: int = await conn.fetchval("SELECT client_root($1)", survivor_id)
    await conn.execute("SELECT 1 FROM identities WHERE client_id = $1 ORDER BY id FOR UPDATE", root)
    rows = await conn.fetch(
        "SELECT id, merged_into FROM clients WHERE id = ANY($1::bigint[]) ORDER BY id FOR NO KEY UPDATE",
        sorted({root, survivor_id, merged_id}),
    )
    state = {r["id"]: r["merged_into"] for r in rows}
    if state.get(root) is not None:
        raise Conflict(f"client {root} was merged meanwhile; try again")
    if state.get(merged_id) != survivor_id:
        raise Conflict(f"client {merged_id} is not merged by merge {merge_id}")  # schema allows nothing else

    def recorded(kind: str) -> str:
        return f"SELECT row_id FROM client_merge_moves WHERE merge_id = $3 AND kind = '{kind}'"

    identities = [
        r["id"] for r in await conn.fetch(
            f"UPDATE identities SET client_id = $1 WHERE client_id = $2 AND id IN ({recorded('identity')}) RETURNING id",
            merged_id, root, merge_id,
        )
    ]
    conversations = [
        r["id"] for r in await conn.fetch(
            "UPDATE conversations SET client_id = $1 WHERE client_id = $2"
            f" AND (id IN ({recorded('conversation')}) OR identity_id = ANY($4::bigint[])) RETURNING id",
            merged_id, root, merge_id, identities,
        )
    ]
    for kind, table in MOVES[2:]:
        moved = [
            r["id"] for r in await conn.fetch(
                f"UPDATE {table} SET client_id = $1 WHERE client_id = $2"
                f" AND (id IN ({recorded(kind)}) OR conversation_id = ANY($4::bigint[])) RETURNING id",
                merged_id, root, merge_id, conversations,
            )
        ]
        await conn.execute(
            "DELETE FROM client_merge_moves WHERE kind = $1 AND row_id = ANY($2::bigint[]) AND merge_id > $3",
            kind, moved, merge_id,
        )
    # Rows this undo took back leave the records of later merges that carried them
    # along: those merges no longer hold them (a new merge would record them anew).
    for kind, ids in (("identity", identities), ("conversation", conversations)):
        await conn.execute(
            "DELETE FROM client_merge_moves WHERE kind = $1 AND row_id = ANY($2::bigint[]) AND merge_id > $3",
            kind, ids, merge_id,
        )
    current = await conn.fetchrow(f"SELECT {_CLIENT} FROM clients WHERE id = $1", survivor_id)
    await _set_fields(conn, survivor_id, _fields_without(current, m["survivor_before"], m["survivor_after"]))
    await conn.execute("UPDATE clients SET merged_into = NULL, updated_at = now() WHERE id = $1", merged_id)
    await conn.execute(
        "UPDATE client_merges SET undone_by = $2, undone_at = now() WHERE id = $1", merge_id, agent["id"] if agent else None
    )
    # Undoing says "these are two people": the suggestion that led here is settled as dismissed.
    await conn.execute(
        "UPDATE merge_suggestions SET status = 'dismissed', decided_by = $2, decided_at = now() WHERE merge_id = $1",
        merge_id,
        agent["id"] if agent else None,
    )
    names = await conn.fetchrow(
        "SELECT (SELECT name FROM clients WHERE id = $1) AS survivor, (SELECT name FROM clients WHERE id = $2) AS merged",
        root, merged_id,
    )
    data = {
        "merge_id": merge_id, "survivor_id": root, "survivor_name": names["survivor"],
        "restored_client_id": merged_id, "restored_name": names["merged"],
    }
    for client_id in (root, merged_id):
        await publish(conn, "client.unmerged", data=data, client_id=client_id, actor=_actor(agent))
    await audit.record(conn, agent=agent, action=audit.UNMERGE, client_id=merged_id, details=data)
    return merged_id


def _fields_without(current: asyncpg.Record, before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """The survivor's card fields without what the merge brought, keeping what changed since.

    Tags and custom fields lose exactly the entries the merge added; a field the
    merge filled goes back to what it was if it still holds the filled value.
    """
    values: dict[str, Any] = {}
    for field, was in before.items():
        brought, now = after[field], current[field]
        if field == "tags":
            new_tags = set(brought) - set(was)
            kept = [t for t in now if t not in new_tags]
            if kept != list(now):
                values[field] = kept
        elif field == "custom_fields":
            new_fields = {k: v for k, v in brought.items() if k not in was}
            left = {k: v for k, v in now.items() if not (k in new_fields and new_fields[k] == v)}
            if left != now:
                values[field] = left
        elif now == brought:
            values[field] = was
    return values


async def merge_clients(pool: asyncpg.Pool, *, survivor_id: int, merged_id: int, agent: JSON | None) -> int:
    async with pool.acquire() as conn, conn.transaction():
        return await merge_in(conn, survivor_id=survivor_id, merged_id=merged_id, agent=agent)


async def undo_merge(pool: asyncpg.Pool, *, merge_id: int, agent: JSON | None) -> JSON:
    async with pool.acquire() as conn, conn.transaction():
        await undo_in(conn, merge_id=merge_id, agent=agent)
        return await fetch_merge(conn, merge_id)
