"""Client cards: one per person across channels, with the whole timeline."""

from __future__ import annotations

import asyncpg

from hub.errors import Conflict, NotFound, OmnihubError
from hub.events import TIMELINE_TYPES, event_json, publish
from hub.types import JSON
from inbox.conversations import decode_cursor, encode_cursor
from inbox.views import CONVERSATION_SELECT, conversation_json, iso

TIMELINE_LIMIT = 500


CLIENT_COLUMNS = "id, name, email, phone, segment, tags, created_at"
EDITABLE = ("name", "email", "phone", "segment", "tags")


def client_json(r: asyncpg.Record) -> JSON:
    return {
        "id": r["id"], "name": r["name"], "email": r["email"], "phone": r["phone"],
        "segment": r["segment"], "tags": list(r["tags"]), "created_at": iso(r["created_at"]),
    }


async def list_clients(
    pool: asyncpg.Pool, *, q: str | None = None, limit: int = 50, cursor: str | None = None
) -> tuple[list[JSON], str | None]:
    after = 0
    if cursor:
        (value,) = decode_cursor(cursor, 1)
        after = int(value) if value.isdigit() else 0
    args: list[object] = [after, limit + 1]
    where = "merged_into IS NULL AND id > $1"
    if q:
        args.append(q)
        where += " AND (name ILIKE '%' || $3 || '%' OR email ILIKE '%' || $3 || '%' OR phone LIKE '%' || $3 || '%')"
    rows = await pool.fetch(
        f"SELECT {CLIENT_COLUMNS} FROM clients WHERE {where} ORDER BY id LIMIT $2", *args
    )
    items = [client_json(r) for r in rows[:limit]]
    return items, (encode_cursor(rows[limit - 1]["id"]) if len(rows) > limit else None)


async def client_card(pool: asyncpg.Pool, client_id: int) -> JSON:
    row = await pool.fetchrow(
        f"SELECT {CLIENT_COLUMNS}, merged_into FROM clients WHERE id = $1", client_id
    )
    if row is None:
        raise NotFound(f"client {client_id} does not exist")
    if row["merged_into"] is not None:
        return await client_card(pool, row["merged_into"])
    identities = await pool.fetch(
        "SELECT i.id, i.external_id, i.display_name, i.username, ch.id AS channel_id, ch.kind, ch.name AS channel_name"
        " FROM identities i JOIN channels ch ON ch.id = i.channel_id WHERE i.client_id = $1 ORDER BY i.id",
        client_id,
    )
    conversations = await pool.fetch(CONVERSATION_SELECT + " WHERE c.client_id = $1 ORDER BY c.id DESC", client_id)
    events = await pool.fetch(
        "SELECT id, type, client_id, conversation_id, actor_agent_id, payload, created_at FROM ("
        "  SELECT * FROM events WHERE client_id = $1 AND type = ANY($2::text[]) ORDER BY id DESC LIMIT $3"
        ") e ORDER BY id",
        client_id,
        list(TIMELINE_TYPES),
        TIMELINE_LIMIT,
    )
    return {
        **client_json(row),
        "identities": [
            {
                "id": i["id"],
                "channel": {"id": i["channel_id"], "kind": i["kind"], "name": i["channel_name"]},
                "external_id": i["external_id"],
                "display_name": i["display_name"],
                "username": i["username"],
            }
            for i in identities
        ],
        "conversations": [conversation_json(c) for c in conversations],
        "timeline": [event_json(e) for e in events],
    }


async def update_client(pool: asyncpg.Pool, *, client_id: int, changes: JSON, agent: JSON) -> JSON:
    fields = {k: v for k, v in changes.items() if k in EDITABLE}
    unknown = set(changes) - set(EDITABLE)
    if unknown:
        raise OmnihubError(f"unknown client fields: {', '.join(sorted(unknown))}")
    if not all(isinstance(v, str) for k, v in fields.items() if k != "tags"):
        raise OmnihubError("name, email, phone and segment must be strings")
    tags = fields.get("tags", [])
    if not isinstance(tags, list) or not all(isinstance(t, str) and t.strip() for t in tags):
        raise OmnihubError("tags must be a list of non-empty strings")
    async with pool.acquire() as conn, conn.transaction():
        sets = ", ".join(f"{k} = ${i + 2}" for i, k in enumerate(fields))
        if sets:
            found = await conn.fetchval(
                f"UPDATE clients SET {sets}, updated_at = now() WHERE id = $1 AND merged_into IS NULL RETURNING id",
                client_id,
                *fields.values(),
            )
            if found is None:
                raise NotFound(f"client {client_id} does not exist")
            await publish(
                conn, "client.updated", data={"changes": fields}, client_id=client_id,
                actor={"id": agent["id"], "name": agent["name"]},
            )
    return await client_card(pool, client_id)


async def merge_clients(pool: asyncpg.Pool, *, client_id: int, other_id: int, agent: JSON | None) -> JSON:
    """Fold `other_id` into `client_id`: its identities, conversations, notes and timeline move over."""
    if client_id == other_id:
        raise Conflict("a client cannot be merged into itself")
    async with pool.acquire() as conn, conn.transaction():
        rows = await conn.fetch(
            "SELECT id, merged_into FROM clients WHERE id = ANY($1::bigint[]) ORDER BY id FOR UPDATE",
            [client_id, other_id],
        )
        found = {r["id"]: r for r in rows}
        for cid in (client_id, other_id):
            if cid not in found or found[cid]["merged_into"] is not None:
                raise NotFound(f"client {cid} does not exist")
        for table in ("identities", "conversations", "notes", "events"):
            await conn.execute(f"UPDATE {table} SET client_id = $1 WHERE client_id = $2", client_id, other_id)
        await conn.execute(
            "UPDATE clients SET merged_into = $1, updated_at = now() WHERE id = $2", client_id, other_id
        )
        await conn.execute(
            "UPDATE clients SET updated_at = now(),"
            " email = CASE WHEN email = '' THEN (SELECT email FROM clients WHERE id = $2) ELSE email END,"
            " phone = CASE WHEN phone = '' THEN (SELECT phone FROM clients WHERE id = $2) ELSE phone END"
            " WHERE id = $1",
            client_id,
            other_id,
        )
        await publish(
            conn, "client.merged", data={"merged_client_id": other_id}, client_id=client_id,
            actor={"id": agent["id"], "name": agent["name"]} if agent else None,
        )
    return await client_card(pool, client_id)
