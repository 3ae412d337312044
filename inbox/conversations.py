"""Reading conversations and changing their state."""

from __future__ import annotations

import base64
import datetime as dt
from collections.abc import Callable

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
    if q:
        where.append(await _text_match(pool, q, arg))
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
    rows = await pool.fetch(
        "SELECT c.id, c.last_activity_at FROM conversations c"
        + (" WHERE " + " AND ".join(where) if where else "")
        + f" ORDER BY c.last_activity_at DESC, c.id DESC LIMIT {int(limit) + 1}",
        *args,
    )
    items = await fetch_conversations(pool, [r["id"] for r in rows[:limit]])
    next_cursor = None
    if len(rows) > limit:
        # From the page's own values: a conversation touched since then still pages consistently.
        last = rows[limit - 1]
        next_cursor = encode_cursor(last["last_activity_at"].isoformat(), last["id"])
    return items, next_cursor


SEARCH_PROBE = 500
_TSQUERY = "(websearch_to_tsquery('english', {p}) || websearch_to_tsquery('russian', {p}))"


async def _text_match(pool: asyncpg.Pool, q: str, arg: Callable[[object], str]) -> str:
    """A filter for conversations whose messages match `q` (stemmed, Russian and English) or whose client's name does.

    A rare term is looked up once in the full-text index and the list filtered by the ids found;
    a common one is checked per conversation while walking the newest first, which stops as
    soon as a page is full. (One `IN (subquery) OR …` does neither well on millions of rows.)
    """
    row = await pool.fetchrow(
        "SELECT m.hits, m.conversations,"
        " (SELECT array_agg(id) FROM (SELECT id FROM clients WHERE name ILIKE '%' || $1 || '%' LIMIT $2) c) AS clients"
        " FROM (SELECT count(*) AS hits, array_agg(DISTINCT conversation_id) AS conversations FROM"
        f"   (SELECT conversation_id FROM messages WHERE search @@ {_TSQUERY.format(p='$1')} LIMIT $2) x) m",
        q,
        SEARCH_PROBE + 1,
    )
    if row["hits"] <= SEARCH_PROBE:
        messages = f"c.id = ANY({arg(row['conversations'] or [])}::bigint[])"
    else:
        p = arg(q)
        messages = f"EXISTS (SELECT 1 FROM messages m WHERE m.conversation_id = c.id AND m.search @@ {_TSQUERY.format(p=p)})"
    found_clients = row["clients"] or []
    if len(found_clients) <= SEARCH_PROBE:
        names = f"c.client_id = ANY({arg(found_clients)}::bigint[])"
    else:
        names = f"EXISTS (SELECT 1 FROM clients cl WHERE cl.id = c.client_id AND cl.name ILIKE '%' || {arg(q)} || '%')"
    return f"({messages} OR {names})"


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
