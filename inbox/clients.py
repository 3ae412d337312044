"""Client cards: one per person across channels; the newest of everything, the rest a page at a time."""

from __future__ import annotations

import asyncpg

from hub.errors import NotFound, OmnihubError
from hub.events import TIMELINE_TYPES, event_json, publish
from hub.types import JSON
from inbox import audit, merge, suggestions
from inbox.conversations import BadCursor, decode_cursor, encode_cursor
from inbox.notes import NOTE_SELECT
from inbox.views import fetch_conversations, iso, note_json

NOTES_LIMIT = 200
# The card holds the newest of each; the rest page through client_conversations, client_identities
# and client_timeline, so that a card costs the same for a client with years of history.
CARD_CONVERSATIONS = 50
CARD_IDENTITIES = 50
CARD_TIMELINE = 100
# The card also shows undone merges (hub.events.TIMELINE_TYPES is the shared list; this adds to it).
CARD_TIMELINE_TYPES = (*TIMELINE_TYPES, *(t for t in ("client.merged", "client.unmerged") if t not in TIMELINE_TYPES))

# The person's first touch is the earliest among this card and the cards merged into it,
# worked out on reading so that merges and undos in any order never lose or misplace it.
FIRST_TOUCH = (
    "(WITH RECURSIVE family (id, ft) AS ("
    "   SELECT clients.id, clients.first_touch"
    "   UNION ALL SELECT x.id, x.first_touch FROM clients x JOIN family ON x.merged_into = family.id)"
    " SELECT family.ft FROM family WHERE family.ft <> '{}'"
    " ORDER BY (family.ft ->> 'at')::timestamptz NULLS LAST, family.id LIMIT 1) AS first_touch"
)
CLIENT_COLUMNS = f"id, name, email, phone, segment, tags, custom_fields, {FIRST_TOUCH}, created_at"
EDITABLE = ("name", "email", "phone", "segment", "tags", "custom_fields")
MAX_CUSTOM_FIELDS = 50


def client_json(r: asyncpg.Record) -> JSON:
    return {
        "id": r["id"], "name": r["name"], "email": r["email"], "phone": r["phone"],
        "segment": r["segment"], "tags": list(r["tags"]), "custom_fields": r["custom_fields"],
        "first_touch": r["first_touch"] or {}, "created_at": iso(r["created_at"]),
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
    identities, identities_cursor = await _identities_page(pool, client_id, CARD_IDENTITIES, None)
    identities_total = await pool.fetchval("SELECT count(*) FROM identities WHERE client_id = $1", client_id)
    conversations, conversations_cursor, conversations_total = await _conversations_page(
        pool, client_id, CARD_CONVERSATIONS, None, with_total=True
    )
    events, timeline_cursor = await _timeline_page(pool, client_id, CARD_TIMELINE, None)
    notes = await pool.fetch(
        f"SELECT * FROM ({NOTE_SELECT} WHERE n.client_id = $1 ORDER BY n.id DESC LIMIT $2) n ORDER BY id",
        client_id,
        NOTES_LIMIT,
    )
    return {
        **client_json(row),
        "identities": identities,
        "identities_total": identities_total,
        "identities_next_cursor": identities_cursor,
        "conversations": conversations,
        "conversations_total": conversations_total,
        "conversations_next_cursor": conversations_cursor,
        "timeline": events[::-1],  # oldest first, as the card always had it
        "timeline_next_cursor": timeline_cursor,
        "notes": [note_json(n) for n in notes],
        "merges": await merge.merges_of(pool, client_id),
    }


async def survivor_id(pool: asyncpg.Pool, client_id: int) -> int:
    """The card a client id stands for now (itself, or the card it was merged into); NotFound if none."""
    survivor = await pool.fetchval(
        "WITH RECURSIVE up (id, merged_into) AS (SELECT id, merged_into FROM clients WHERE id = $1"
        " UNION ALL SELECT x.id, x.merged_into FROM clients x JOIN up ON x.id = up.merged_into)"
        " SELECT id FROM up WHERE merged_into IS NULL",
        client_id,
    )
    if survivor is None:
        raise NotFound(f"client {client_id} does not exist")
    return int(survivor)


async def client_conversations(
    pool: asyncpg.Pool, client_id: int, *, limit: int = 50, cursor: str | None = None
) -> tuple[list[JSON], str | None]:
    """A client's conversations, newest first (the card shows the first page; this pages on)."""
    survivor = await survivor_id(pool, client_id)
    items, next_cursor, _ = await _conversations_page(pool, survivor, limit, cursor, with_total=False)
    return items, next_cursor


async def client_identities(
    pool: asyncpg.Pool, client_id: int, *, limit: int = 50, cursor: str | None = None
) -> tuple[list[JSON], str | None]:
    """A client's identities, newest first (the card shows the first page; this pages on)."""
    return await _identities_page(pool, await survivor_id(pool, client_id), limit, cursor)


async def client_timeline(
    pool: asyncpg.Pool, client_id: int, *, limit: int = 50, cursor: str | None = None
) -> tuple[list[JSON], str | None]:
    """A client's timeline, newest event first (the card shows the newest; this pages on to older ones)."""
    return await _timeline_page(pool, await survivor_id(pool, client_id), limit, cursor)


def _before(cursor: str | None) -> int | None:
    """The id a page continues below (cursors of the id-ordered pages here are one id)."""
    if not cursor:
        return None
    (value,) = decode_cursor(cursor, 1)
    if not value.isdigit() or int(value) >= 2**63:
        raise BadCursor("cursor is not one this server gave out")
    return int(value)


def _cut(rows: list[asyncpg.Record], limit: int) -> tuple[list[asyncpg.Record], str | None]:
    """Rows fetched with LIMIT limit + 1, newest first: the page and the cursor after its last row."""
    return rows[:limit], (encode_cursor(rows[limit - 1]["id"]) if len(rows) > limit else None)


async def _identities_page(
    pool: asyncpg.Pool, client_id: int, limit: int, cursor: str | None
) -> tuple[list[JSON], str | None]:
    before = _before(cursor)
    rows, next_cursor = _cut(await pool.fetch(
        "SELECT i.id, i.external_id, i.display_name, i.username, ch.id AS channel_id, ch.kind, ch.name AS channel_name"
        " FROM identities i JOIN channels ch ON ch.id = i.channel_id"
        f" WHERE i.client_id = $1 AND i.id < $2 ORDER BY i.id DESC LIMIT {int(limit) + 1}",
        client_id, before if before is not None else 2**63 - 1,
    ), limit)
    items: list[JSON] = [
        {
            "id": i["id"],
            "channel": {"id": i["channel_id"], "kind": i["kind"], "name": i["channel_name"]},
            "external_id": i["external_id"],
            "display_name": i["display_name"],
            "username": i["username"],
        }
        for i in rows
    ]
    return items, next_cursor


async def _timeline_page(
    pool: asyncpg.Pool, client_id: int, limit: int, cursor: str | None
) -> tuple[list[JSON], str | None]:
    """Events newest first, by id (unique, so equal timestamps never split or repeat across pages)."""
    before = _before(cursor)
    rows, next_cursor = _cut(await pool.fetch(
        "SELECT id, type, client_id, conversation_id, actor_agent_id, payload, created_at FROM events"
        f" WHERE client_id = $1 AND type = ANY($2::text[]) AND id < $3 ORDER BY id DESC LIMIT {int(limit) + 1}",
        client_id, list(CARD_TIMELINE_TYPES), before if before is not None else 2**63 - 1,
    ), limit)
    return [event_json(e) for e in rows], next_cursor


async def _conversations_page(
    pool: asyncpg.Pool, client_id: int, limit: int, cursor: str | None, *, with_total: bool
) -> tuple[list[JSON], str | None, int | None]:
    before = _before(cursor)
    # Page on conversations_client_idx alone, then decorate the page (inbox.views): a client with
    # thousands of conversations costs the same as one with fifty.
    row = await pool.fetchrow(
        "SELECT (SELECT array_agg(id ORDER BY id DESC) FROM (SELECT id FROM conversations WHERE client_id = $1"
        f"  {'' if before is None else 'AND id < $2'} ORDER BY id DESC LIMIT {int(limit) + 1}) p) AS ids"
        + (", (SELECT count(*) FROM conversations WHERE client_id = $1) AS total" if with_total else ", NULL AS total"),
        *([client_id] if before is None else [client_id, before]),
    )
    ids: list[int] = row["ids"] or []
    next_cursor = encode_cursor(ids[limit - 1]) if len(ids) > limit else None
    return await fetch_conversations(pool, ids[:limit]), next_cursor, row["total"]


def _custom_fields(value: object, current: JSON) -> JSON:
    """A JSON merge patch of the card's custom fields: a key set to null is removed."""
    if not isinstance(value, dict):
        raise OmnihubError("custom_fields must be an object of field name → string, number or boolean")
    fields = dict(current)
    for key, v in value.items():
        if not key.strip() or len(key) > 100:
            raise OmnihubError("a custom field's name must be 1-100 characters")
        if v is None:
            fields.pop(key, None)
        elif (isinstance(v, str) and len(v) <= 2000) or isinstance(v, bool | int | float):
            fields[key] = v
        else:
            raise OmnihubError(f"custom field {key!r} must be a string (up to 2000 characters), number, boolean or null")
    if len(fields) > MAX_CUSTOM_FIELDS:
        raise OmnihubError(f"a card holds at most {MAX_CUSTOM_FIELDS} custom fields")
    return fields


async def update_client(pool: asyncpg.Pool, *, client_id: int, changes: JSON, agent: JSON) -> JSON:
    unknown = set(changes) - set(EDITABLE)
    if unknown:
        raise OmnihubError(f"unknown client fields: {', '.join(sorted(unknown))}")
    fields = dict(changes)
    if not all(isinstance(v, str) for k, v in fields.items() if k in ("name", "email", "phone", "segment")):
        raise OmnihubError("name, email, phone and segment must be strings")
    tags = fields.get("tags", [])
    if not isinstance(tags, list) or not all(isinstance(t, str) and t.strip() for t in tags):
        raise OmnihubError("tags must be a list of non-empty strings")
    async with pool.acquire() as conn, conn.transaction():
        current = await conn.fetchrow(
            "SELECT custom_fields FROM clients WHERE id = $1 AND merged_into IS NULL FOR NO KEY UPDATE", client_id
        )
        if current is None:
            raise NotFound(f"client {client_id} does not exist")
        if "custom_fields" in fields:
            fields["custom_fields"] = _custom_fields(fields["custom_fields"], current["custom_fields"])
        if fields:
            sets = ", ".join(f"{k} = ${i + 2}" for i, k in enumerate(fields))
            await conn.execute(f"UPDATE clients SET {sets}, updated_at = now() WHERE id = $1", client_id, *fields.values())
            await publish(
                conn, "client.updated", data={"changes": fields}, client_id=client_id,
                actor={"id": agent["id"], "name": agent["name"]},
            )
            await audit.record(conn, agent=agent, action=audit.CLIENT_UPDATE, client_id=client_id, details={"changes": fields})
            if "name" in fields or "phone" in fields:
                await suggestions.for_client(conn, client_id)
    return await client_card(pool, client_id)


async def merge_clients(pool: asyncpg.Pool, *, client_id: int, other_id: int, agent: JSON | None) -> JSON:
    """Fold `other_id` into `client_id` (either card may survive: the caller chooses); the survivor's card."""
    await merge.merge_clients(pool, survivor_id=client_id, merged_id=other_id, agent=agent)
    return await client_card(pool, client_id)
