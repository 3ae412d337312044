"""History search for managers: full text over messages and notes, with filters.

Both tables carry a generated `search` tsvector (english || russian, GIN
indexed); a query is parsed with `websearch_to_tsquery` in both configurations
and either may match, so "заказы" finds "заказов" and "parcel" finds
"parcels". Hits come newest first and page by (created_at, kind, id).
Highlights are computed for the returned page only: ts_headline reparses the
text, which is the expensive part of a search.
"""

from __future__ import annotations

import datetime as dt
import html
from dataclasses import dataclass

import asyncpg

from hub.errors import OmnihubError
from hub.types import CONVERSATION_STATUSES, JSON
from inbox.conversations import BadCursor, decode_cursor, encode_cursor
from inbox.views import iso

EXPORT_LIMIT = 10_000
MAX_QUERY = 500
_MARK_START, _MARK_STOP = "\x02", "\x03"  # never in stored text's words; turned into <mark> after escaping
_HEADLINE_OPTIONS = (
    f"StartSel={_MARK_START}, StopSel={_MARK_STOP}, MaxWords=20, MinWords=6, MaxFragments=2,"
    ' FragmentDelimiter=" … "'
)
_TSQUERY = "(websearch_to_tsquery('english', $1) || websearch_to_tsquery('russian', $1))"


@dataclass(frozen=True)
class SearchFilters:
    q: str
    channel: str | None = None  # a channel id or kind
    agent_id: int | None = None  # wrote it, or the conversation is assigned to them
    tag: str | None = None  # the client's tag
    start: dt.datetime | None = None
    end: dt.datetime | None = None
    status: str | None = None  # the conversation's status

    def check(self) -> None:
        if not self.q.strip():
            raise OmnihubError("q is required: the words to search for")
        if len(self.q) > MAX_QUERY:
            raise OmnihubError(f"q is longer than {MAX_QUERY} characters")
        if self.status and self.status not in CONVERSATION_STATUSES:
            raise OmnihubError(f"status must be one of {', '.join(CONVERSATION_STATUSES)}")

    def as_json(self) -> JSON:
        return {
            "q": self.q, "channel": self.channel, "agent": self.agent_id, "tag": self.tag,
            "from": iso(self.start), "to": iso(self.end), "status": self.status,
        }


def _branches(f: SearchFilters, args: list[object], after: tuple[dt.datetime, str, int] | None) -> str:
    """The messages branch and the notes branch of the hit list, each with the filters applied."""

    def arg(value: object) -> str:
        args.append(value)
        return f"${len(args)}"

    msg = [f"m.search @@ {_TSQUERY}"]
    note = [f"n.search @@ {_TSQUERY}"]
    if f.channel:
        if f.channel.isdigit():
            p = arg(int(f.channel))
            msg.append(f"m.channel_id = {p}")
            note.append(f"c.channel_id = {p}")
        else:
            p = arg(f.channel)
            msg.append(f"m.channel_id IN (SELECT id FROM channels WHERE kind = {p})")
            note.append(f"c.channel_id IN (SELECT id FROM channels WHERE kind = {p})")
    if f.agent_id is not None:
        p = arg(f.agent_id)
        msg.append(f"(m.author_agent_id = {p} OR c.assignee_id = {p})")
        note.append(f"(n.author_agent_id = {p} OR c.assignee_id = {p})")
    if f.tag:
        p = arg(f.tag)
        msg.append(f"EXISTS (SELECT 1 FROM clients cl WHERE cl.id = c.client_id AND cl.tags @> ARRAY[{p}]::text[])")
        note.append(f"EXISTS (SELECT 1 FROM clients cl WHERE cl.id = n.client_id AND cl.tags @> ARRAY[{p}]::text[])")
    if f.start is not None:
        p = arg(f.start)
        msg.append(f"m.created_at >= {p}")
        note.append(f"n.created_at >= {p}")
    if f.end is not None:
        p = arg(f.end)
        msg.append(f"m.created_at < {p}")
        note.append(f"n.created_at < {p}")
    if f.status:
        p = arg(f.status)
        msg.append(f"c.status = {p}")
        note.append(f"c.status = {p}")
    if after is not None:
        ts, kind, rid = arg(after[0]), arg(after[1]), arg(after[2])
        msg.append(f"(m.created_at, 'message'::text, m.id) < ({ts}, {kind}::text, {rid})")
        note.append(f"(n.created_at, 'note'::text, n.id) < ({ts}, {kind}::text, {rid})")
    return (
        "SELECT 'message'::text AS kind, m.id, m.conversation_id, c.client_id, m.channel_id, m.direction,"
        " m.author_agent_id, m.text, m.created_at"
        " FROM messages m JOIN conversations c ON c.id = m.conversation_id"
        f" WHERE {' AND '.join(msg)}"
        " UNION ALL "
        "SELECT 'note'::text, n.id, n.conversation_id, n.client_id, c.channel_id, NULL, n.author_agent_id, n.text,"
        " n.created_at"
        " FROM notes n LEFT JOIN conversations c ON c.id = n.conversation_id"
        f" WHERE {' AND '.join(note)}"
    )


def _hit_json(r: asyncpg.Record, *, with_text: bool) -> JSON:
    if r["kind"] == "note":
        author: JSON = {"type": "agent", "id": r["author_agent_id"], "name": r["agent_name"]}
    elif r["direction"] == "in":
        author = {"type": "client", "id": r["client_id"], "name": r["client_name"]}
    elif r["author_agent_id"] is not None:
        author = {"type": "agent", "id": r["author_agent_id"], "name": r["agent_name"]}
    else:
        author = {"type": "channel", "id": None, "name": r["channel_kind"]}
    hit: JSON = {
        "kind": r["kind"],
        "id": r["id"],
        "conversation_id": r["conversation_id"],
        "client": {"id": r["client_id"], "name": r["client_name"]},
        "channel": (
            {"id": r["channel_id"], "kind": r["channel_kind"], "name": r["channel_name"]}
            if r["channel_id"] is not None else None
        ),
        "conversation_status": r["conversation_status"],
        "direction": r["direction"],
        "author": author,
        "created_at": iso(r["created_at"]),
    }
    if with_text:
        hit["text"] = r["text"]
    else:
        escaped = html.escape(r["headline"], quote=False)
        hit["headline"] = escaped.replace(_MARK_START, "<mark>").replace(_MARK_STOP, "</mark>")
    return hit


async def search(
    pool: asyncpg.Pool, f: SearchFilters, *, limit: int = 50, cursor: str | None = None, export: bool = False
) -> tuple[list[JSON], str | None]:
    """One page of hits, newest first; `export` returns full text instead of highlights."""
    f.check()
    after = None
    if cursor:
        ts, kind, rid = decode_cursor(cursor, 3)
        try:
            after = (dt.datetime.fromisoformat(ts), kind, int(rid))
        except ValueError:
            raise BadCursor("cursor is not one this server gave out") from None
    args: list[object] = [f.q]
    hits = _branches(f, args, after)
    args.append(limit + 1)
    limit_arg = f"${len(args)}"
    headline = "''"
    if not export:
        args.append(_HEADLINE_OPTIONS)
        headline = f"ts_headline('russian', left(h.text, 20000), {_TSQUERY}, ${len(args)})"
    rows = await pool.fetch(
        f"WITH hits AS ({hits} ORDER BY created_at DESC, kind DESC, id DESC LIMIT {limit_arg})"
        " SELECT h.*, cl.name AS client_name, ch.kind AS channel_kind, ch.name AS channel_name,"
        f" a.name AS agent_name, c.status AS conversation_status, {headline} AS headline"
        " FROM hits h JOIN clients cl ON cl.id = h.client_id"
        " LEFT JOIN channels ch ON ch.id = h.channel_id"
        " LEFT JOIN agents a ON a.id = h.author_agent_id"
        " LEFT JOIN conversations c ON c.id = h.conversation_id"
        " ORDER BY h.created_at DESC, h.kind DESC, h.id DESC",
        *args,
    )
    items = [_hit_json(r, with_text=export) for r in rows[:limit]]
    next_cursor = None
    if len(rows) > limit:
        last = rows[limit - 1]
        next_cursor = encode_cursor(last["created_at"].isoformat(), last["kind"], last["id"])
    return items, next_cursor
