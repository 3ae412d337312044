"""Merge suggestions: weak evidence that two cards are one person, for an agent to confirm.

Strong evidence (an e-mail or phone the person gave us) links a new identity
at ingest, silently. Weaker evidence only suggests: the same name and phone on
two cards, or an e-mail address typed into a chat message that belongs to
another card. A suggestion names two client ids; the cards it shows are where
those ids lead now (`client_root`), so it survives other merges. A pair is
suggested once per reason: a dismissed suggestion stays dismissed.
"""

from __future__ import annotations

import re

import asyncpg

from hub.errors import Conflict, NotFound, OmnihubError
from hub.types import JSON
from inbox import audit
from inbox.conversations import BadCursor, decode_cursor, encode_cursor
from inbox.merge import merge_in
from inbox.views import iso

SAME_NAME_AND_PHONE = "same_name_and_phone"
EMAIL_IN_MESSAGE = "email_in_message"

_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_MAX_EMAILS = 10

_SELECT = """
SELECT s.id, s.reason, s.evidence, s.status, s.merge_id, s.decided_by, d.name AS decided_by_name, s.decided_at,
       s.created_at, r.a, ca.name AS a_name, ca.email AS a_email, ca.phone AS a_phone,
       r.b, cb.name AS b_name, cb.email AS b_email, cb.phone AS b_phone
FROM merge_suggestions s
CROSS JOIN LATERAL (SELECT client_root(s.client_id) AS a, client_root(s.other_id) AS b) r
JOIN clients ca ON ca.id = r.a
JOIN clients cb ON cb.id = r.b
LEFT JOIN agents d ON d.id = s.decided_by
"""


def suggestion_json(r: asyncpg.Record) -> JSON:
    return {
        "id": r["id"],
        "reason": r["reason"],
        "evidence": r["evidence"],
        "status": r["status"],
        "clients": [
            {"id": r[side], "name": r[f"{side}_name"], "email": r[f"{side}_email"], "phone": r[f"{side}_phone"]}
            for side in ("a", "b")
        ],
        "merge_id": r["merge_id"],
        "decided_by": {"id": r["decided_by"], "name": r["decided_by_name"]} if r["decided_by"] is not None else None,
        "decided_at": iso(r["decided_at"]),
        "created_at": iso(r["created_at"]),
    }


async def _suggest(conn: asyncpg.Connection, a: int, b: int, reason: str, evidence: JSON) -> None:
    await conn.execute(
        "INSERT INTO merge_suggestions (client_id, other_id, reason, evidence)"
        " VALUES (least($1::bigint, $2::bigint), greatest($1::bigint, $2::bigint), $3, $4)"
        " ON CONFLICT (client_id, other_id, reason) DO NOTHING",
        a,
        b,
        reason,
        evidence,
    )


async def from_message(conn: asyncpg.Connection, *, client_id: int, message_id: int, text: str) -> None:
    """An inbound message that mentions another card's e-mail address (ingest transaction)."""
    if "@" not in text:
        return
    emails = sorted({e.lower().rstrip(".") for e in _EMAIL.findall(text[:20_000])})[:_MAX_EMAILS]
    if not emails:
        return
    rows = await conn.fetch(
        "SELECT id, lower(email) AS email FROM clients WHERE lower(email) = ANY($1::text[]) AND email <> ''"
        " AND merged_into IS NULL AND id <> $2",
        emails,
        client_id,
    )
    for r in rows:
        await _suggest(
            conn, client_id, r["id"], EMAIL_IN_MESSAGE,
            {"message_id": message_id, "email": r["email"], "written_by_client_id": client_id},
        )


async def for_client(conn: asyncpg.Connection, client_id: int) -> None:
    """Other live cards with this card's name and phone (after the name or phone changed)."""
    rows = await conn.fetch(
        "SELECT o.id, o.phone FROM clients c JOIN clients o"
        " ON lower(btrim(o.name)) = lower(btrim(c.name)) AND phone_key(o.phone) = phone_key(c.phone)"
        " AND o.phone <> '' AND o.id <> c.id AND o.merged_into IS NULL"
        " WHERE c.id = $1 AND c.merged_into IS NULL AND btrim(c.name) <> '' AND length(phone_key(c.phone)) >= 6",
        client_id,
    )
    for r in rows:
        await _suggest(conn, client_id, r["id"], SAME_NAME_AND_PHONE, {"phone": r["phone"]})


async def list_suggestions(
    pool: asyncpg.Pool, *, client_id: int | None = None, limit: int = 50, cursor: str | None = None
) -> tuple[list[JSON], str | None]:
    """Pending suggestions whose two cards are still two cards, oldest first; for one card or all."""
    args: list[object] = []
    where = "s.status = 'pending' AND r.a <> r.b"
    if cursor:
        (value,) = decode_cursor(cursor, 1)
        if not value.isdigit():
            raise BadCursor("cursor is not one this server gave out")
        args.append(int(value))
        where += f" AND s.id > ${len(args)}"
    prefix = ""
    if client_id is not None:
        # The card and every card merged into it (their ids may be the ones a suggestion names).
        args.append(client_id)
        prefix = (
            f"WITH RECURSIVE family (id) AS (SELECT ${len(args)}::bigint"
            " UNION SELECT c.id FROM clients c JOIN family f ON c.merged_into = f.id) "
        )
        where += " AND (s.client_id IN (SELECT id FROM family) OR s.other_id IN (SELECT id FROM family))"
        where += f" AND ${len(args)} IN (r.a, r.b)"
    args.append(limit + 1)
    rows = await pool.fetch(f"{prefix}{_SELECT} WHERE {where} ORDER BY s.id LIMIT ${len(args)}", *args)
    items = [suggestion_json(r) for r in rows[:limit]]
    return items, (encode_cursor(rows[limit - 1]["id"]) if len(rows) > limit else None)


async def _pending(conn: asyncpg.Connection, suggestion_id: int) -> asyncpg.Record:
    row = await conn.fetchrow(
        "SELECT id, status, client_root(client_id) AS a, client_root(other_id) AS b FROM merge_suggestions"
        " WHERE id = $1 FOR UPDATE",
        suggestion_id,
    )
    if row is None:
        raise NotFound(f"merge suggestion {suggestion_id} does not exist")
    if row["status"] != "pending":
        raise Conflict(f"merge suggestion {suggestion_id} is already {row['status']}")
    return row


async def confirm(pool: asyncpg.Pool, *, suggestion_id: int, survivor_id: int | None, agent: JSON) -> int:
    """Merge the two cards (the older one survives unless the agent chose); returns the survivor's id."""
    async with pool.acquire() as conn, conn.transaction():
        row = await _pending(conn, suggestion_id)
        a, b = row["a"], row["b"]
        if a == b:
            raise Conflict(f"the two cards of suggestion {suggestion_id} are already one card ({a})")
        if survivor_id is None:
            survivor_id = min(a, b)
        elif survivor_id not in (a, b):
            raise OmnihubError(f"survivor_id must be {a} or {b}, the two cards of this suggestion")
        merged_id = b if survivor_id == a else a
        merge_id = await merge_in(conn, survivor_id=survivor_id, merged_id=merged_id, agent=agent)
        await conn.execute(
            "UPDATE merge_suggestions SET status = 'confirmed', merge_id = $2, decided_by = $3, decided_at = now()"
            " WHERE id = $1",
            suggestion_id,
            merge_id,
            agent["id"],
        )
    return survivor_id


async def dismiss(pool: asyncpg.Pool, *, suggestion_id: int, agent: JSON) -> JSON:
    async with pool.acquire() as conn, conn.transaction():
        row = await _pending(conn, suggestion_id)
        await conn.execute(
            "UPDATE merge_suggestions SET status = 'dismissed', decided_by = $2, decided_at = now() WHERE id = $1",
            suggestion_id,
            agent["id"],
        )
        await audit.record(
            conn, agent=agent, action=audit.SUGGESTION_DISMISS, client_id=row["a"],
            details={"suggestion_id": suggestion_id, "other_client_id": row["b"]},
        )
        found = await conn.fetchrow(_SELECT + " WHERE s.id = $1", suggestion_id)
    return suggestion_json(found)
