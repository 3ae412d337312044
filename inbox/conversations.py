"""Reading conversations and changing their state."""

from __future__ import annotations

import base64
import datetime as dt

import asyncpg

from hub.errors import NotFound, OmnihubError
from hub.events import publish
from hub.types import CONVERSATION_STATUSES, JSON
from inbox import audit
from inbox.views import MESSAGE_SELECT, fetch_conversation, fetch_conversations, message_json


class BadCursor(OmnihubError):
    pass


def encode_cursor(*parts: object) -> str:
    return base64.urlsafe_b64encode("|".join(str(p) for p in parts).encode()).decode()


def decode_cursor(cursor: str, n: int) -> list[str]:
    try:
        parts = base64.urlsafe_b64decode(cursor.encode()).decode().split("|")
    except (ValueError, UnicodeDecodeError):
        raise BadCursor("cursor is not one this server gave out") from None
    if len(parts) != n:
        raise BadCursor("cursor is not one this server gave out")
    return parts


async def list_conversations(
    pool: asyncpg.Pool,
    *,
    status: str | None = None,
    channel: str | None = None,
    assignee: int | str | None = None,  # agent id, "none", or None (anyone)
    q: str | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> tuple[list[JSON], str | None]:
    where: list[str] = []
    args: list[object] = []

    def arg(value: object) -> str:
        args.append(value)
        return f"${len(args)}"

    if status:
        if status not in CONVERSATION_STATUSES:
            raise OmnihubError(f"status must be one of {', '.join(CONVERSATION_STATUSES)}")
        where.append(f"c.status = {arg(status)}")
    if channel:
        if channel.isdigit():
            where.append(f"c.channel_id = {arg(int(channel))}")
        else:
            where.append(f"c.channel_id IN (SELECT id FROM channels WHERE kind = {arg(channel)})")
    if assignee == "none":
        where.append("c.assignee_id IS NULL")
    elif isinstance(assignee, int):
        where.append(f"c.assignee_id = {arg(assignee)}")
    if cursor:
        ts, cid = decode_cursor(cursor, 2)
        try:
            where.append(f"(c.last_activity_at, c.id) < ({arg(dt.datetime.fromisoformat(ts))}, {arg(int(cid))})")
        except ValueError:
            raise BadCursor("cursor is not one this server gave out") from None
    # Page first, decorate second: the page is chosen on `conversations` alone (cheap to plan,
    # walks conversations_activity_idx or a filter's index), then only its rows get the client,
    # channel, agent, last message, team and SLA clocks (one statement text for every filter,
    # so each connection soon reuses a cached plan). The LIMIT is a literal: a plan that sees
    # it walks the index instead of sorting everything that matches.
    if q:
        rows = await _text_page(pool, q, where, args, limit + 1)
    else:
        rows = await pool.fetch(_PAGE.format(where=_and(where), limit=int(limit) + 1), *args)
    items = await fetch_conversations(pool, [r["id"] for r in rows[:limit]])
    next_cursor = None
    if len(rows) > limit:
        # From the page's own values: a conversation touched since then still pages consistently.
        last = rows[limit - 1]
        next_cursor = encode_cursor(last["last_activity_at"].isoformat(), last["id"])
    return items, next_cursor


_PAGE = "SELECT c.id, c.last_activity_at FROM conversations c{where} ORDER BY c.last_activity_at DESC, c.id DESC LIMIT {limit}"
_TSQUERY = "(websearch_to_tsquery('english', {p}) || websearch_to_tsquery('russian', {p}))"
WALK = 300  # the newest conversations checked one by one before deciding how common `q` is
COMMON = 8  # matches among those WALK that make walking on cheaper than the indexes
INDEX_CAP = 20_000  # message (or client) hits taken from an index; beyond this, walking on is cheaper


def _and(where: list[str]) -> str:
    return " WHERE " + " AND ".join(where) if where else ""


async def _text_page(pool: asyncpg.Pool, q: str, where: list[str], args: list[object], n: int) -> list[asyncpg.Record]:
    """The first `n` conversations (after the filters in `where`) whose messages match `q` (stemmed, Russian
    and English) or whose client's name contains it.

    Two ways to find them, and which is cheap depends on how common `q` is, which the planner
    cannot tell (its estimate for "parcel tracking" and for "order 4217" is the same; one has
    650 k hits in 10 M messages, the other 43): checking conversations newest first costs
    ~0.04 ms each and stops at a full page, but never stops for a rare word; the full-text
    index costs in proportion to its hits (~0.5 s for a word in every tenth message). So:
    check the newest WALK one by one; a full page, or every conversation seen, is the answer;
    COMMON or more matches mean the word is common enough to walk on; fewer, and the index
    lists the conversations (unless it has more than INDEX_CAP hits: then walk on after all).
    """
    k = len(args)
    # Per conversation: scalar subqueries, not EXISTS (which PostgreSQL may turn into one hash of
    # every hit), and ts_match_vq / texticlike, not @@ / ILIKE (which it may answer with an
    # index scan of every hit, once per conversation).
    by_text = (
        "(SELECT true FROM messages m WHERE m.conversation_id = c.id"
        f" AND ts_match_vq(m.search, {_TSQUERY.format(p=f'${k + 1}')}) LIMIT 1)"
    )
    by_name = f"(SELECT true FROM clients cl WHERE cl.id = c.client_id AND texticlike(cl.name, '%' || ${k + 1} || '%'))"
    walk = f"({by_text} OR {by_name})"
    newest = _PAGE.format(where=_and(where), limit=WALK).replace("c.id, c.last_activity_at", "c.*", 1)
    rows: list[asyncpg.Record] = await pool.fetch(
        f"SELECT c.id, c.last_activity_at FROM ({newest}) c WHERE {walk}"
        f" ORDER BY c.last_activity_at DESC, c.id DESC LIMIT {n}",
        *args, q,
    )
    if len(rows) >= n:
        return rows
    if len(rows) < COMMON:
        if await pool.fetchval(f"SELECT count(*) FROM ({newest}) c", *args) < WALK:
            return rows  # every conversation was checked
        found = await pool.fetchrow(
            "SELECT m.hits, m.ids,"
            " (SELECT array_agg(id) FROM (SELECT id FROM clients WHERE name ILIKE '%' || $1 || '%' LIMIT $2) cl) AS names"
            " FROM (SELECT count(*) AS hits, array_agg(DISTINCT conversation_id) AS ids FROM (SELECT conversation_id"
            f"   FROM messages WHERE search @@ {_TSQUERY.format(p='$1')} LIMIT $2) x) m",
            q, INDEX_CAP + 1,
        )
        if found["hits"] <= INDEX_CAP and len(found["names"] or []) <= INDEX_CAP:
            listed = f"(c.id = ANY(${k + 1}::bigint[]) OR c.client_id = ANY(${k + 2}::bigint[]))"
            rows = await pool.fetch(
                _PAGE.format(where=_and([*where, listed]), limit=n), *args, found["ids"] or [], found["names"] or []
            )
            return rows
    rows = await pool.fetch(_PAGE.format(where=_and([*where, walk]), limit=n), *args, q)
    return rows


async def get_conversation(pool: asyncpg.Pool, conversation_id: int) -> JSON:
    conv = await fetch_conversation(pool, conversation_id)
    if conv is None:
        raise NotFound(f"conversation {conversation_id} does not exist")
    return conv


async def list_messages(
    pool: asyncpg.Pool,
    conversation_id: int,
    *,
    limit: int = 50,
    cursor: str | None = None,
    agent: JSON | None = None,
    newest_first: bool = False,
) -> tuple[list[JSON], str | None]:
    """One page of the thread: oldest first, or newest first (a long thread opens at its end)."""
    conv = await get_conversation(pool, conversation_id)
    # The cursor is the last id of the previous page; the next page starts past it.
    edge = 2**63 - 1 if newest_first else 0
    if cursor:
        (value,) = decode_cursor(cursor, 1)
        if not value.isdigit():
            raise BadCursor("cursor is not one this server gave out")
        edge = int(value)
    where = "m.id < $2 ORDER BY m.id DESC" if newest_first else "m.id > $2 ORDER BY m.id"
    rows = await pool.fetch(
        MESSAGE_SELECT + f" WHERE m.conversation_id = $1 AND {where} LIMIT $3",
        conversation_id,
        edge,
        limit + 1,
    )
    items = [message_json(r) for r in rows[:limit]]
    next_cursor = encode_cursor(rows[limit - 1]["id"]) if len(rows) > limit else None
    if cursor is None:  # opening the conversation, not paging through it
        await audit.record(pool, agent=agent, action=audit.READ, conversation_id=conversation_id, client_id=conv["client_id"])
    return items, next_cursor


async def set_status(
    pool: asyncpg.Pool, *, conversation_id: int, status: str, agent: JSON, snoozed_until: dt.datetime | None = None
) -> JSON:
    if status not in CONVERSATION_STATUSES:
        raise OmnihubError(f"status must be one of {', '.join(CONVERSATION_STATUSES)}")
    if status == "snoozed" and snoozed_until is None:
        raise OmnihubError("snoozing needs snoozed_until (an ISO 8601 time)")
    if status != "snoozed":
        snoozed_until = None
    async with pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(
            "UPDATE conversations SET status = $2, snoozed_until = $3,"
            " resolved_at = CASE WHEN $2 = 'resolved' THEN now() ELSE NULL END"
            " WHERE id = $1 RETURNING client_id, (SELECT status FROM conversations WHERE id = $1) AS previous",
            conversation_id,
            status,
            snoozed_until,
        )
        if row is None:
            raise NotFound(f"conversation {conversation_id} does not exist")
        conv = await fetch_conversation(conn, conversation_id)
        await publish(
            conn, "conversation.status",
            data={"conversation": conv, "from": row["previous"], "to": status},
            client_id=row["client_id"], conversation_id=conversation_id, actor={"id": agent["id"], "name": agent["name"]},
        )
        await audit.record(
            conn, agent=agent, action=audit.STATUS, conversation_id=conversation_id, client_id=row["client_id"],
            details={"from": row["previous"], "to": status},
        )
    assert conv is not None
    return conv


async def mark_read(pool: asyncpg.Pool, *, conversation_id: int) -> JSON:
    async with pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(
            "UPDATE conversations SET unread_count = 0 WHERE id = $1"
            " RETURNING client_id, (SELECT unread_count FROM conversations WHERE id = $1) AS previous",
            conversation_id,
        )
        if row is None:
            raise NotFound(f"conversation {conversation_id} does not exist")
        conv = await fetch_conversation(conn, conversation_id)
        if row["previous"]:
            await publish(
                conn, "conversation.updated", data={"conversation": conv},
                client_id=row["client_id"], conversation_id=conversation_id,
            )
    assert conv is not None
    return conv


async def wake_snoozed(pool: asyncpg.Pool) -> int:
    """Reopen conversations whose snooze ran out; returns how many."""
    async with pool.acquire() as conn, conn.transaction():
        rows = await conn.fetch(
            "UPDATE conversations SET status = 'open', snoozed_until = NULL"
            " WHERE status = 'snoozed' AND snoozed_until <= now() RETURNING id, client_id"
        )
        for r in rows:
            conv = await fetch_conversation(conn, r["id"])
            await publish(
                conn, "conversation.status", data={"conversation": conv, "from": "snoozed", "to": "open"},
                client_id=r["client_id"], conversation_id=r["id"],
            )
    return len(rows)
