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


class _Args:
    """Numbered parameters for one statement."""

    def __init__(self, *first: object) -> None:
        self.values: list[object] = list(first)

    def __call__(self, value: object) -> str:
        self.values.append(value)
        return f"${len(self.values)}"


def _channel(f: SearchFilters, arg: _Args, column: str) -> str:
    if f.channel and f.channel.isdigit():
        return f"{column} = {arg(int(f.channel))}"
    return f"{column} IN (SELECT id FROM channels WHERE kind = {arg(f.channel)})"


def _message_filters(
    f: SearchFilters, arg: _Args, after: tuple[dt.datetime, str, int] | None, *, conversation: bool = True
) -> tuple[list[str], list[str]]:
    """The filters on a message alone (`m`), and (unless not wanted) those that need its conversation (`c`)."""
    own: list[str] = []
    conv: list[str] = []
    if f.channel:
        own.append(_channel(f, arg, "m.channel_id"))
    if f.start is not None:
        own.append(f"m.created_at >= {arg(f.start)}")
    if f.end is not None:
        own.append(f"m.created_at < {arg(f.end)}")
    if after is not None:
        # (created_at, kind, id) < after, for kind 'message': 'message' < 'note'
        if after[1] == "message":
            own.append(f"(m.created_at, m.id) < ({arg(after[0])}, {arg(after[2])})")
        else:  # after a note: messages of the same time come next ('message' < 'note')
            own.append(f"m.created_at {'<=' if after[1] > 'message' else '<'} {arg(after[0])}")
    if not conversation:
        return own, conv
    if f.agent_id is not None:
        p = arg(f.agent_id)
        conv.append(f"(m.author_agent_id = {p} OR c.assignee_id = {p})")
    if f.tag:
        conv.append(f"EXISTS (SELECT 1 FROM clients cl WHERE cl.id = c.client_id AND cl.tags @> ARRAY[{arg(f.tag)}]::text[])")
    if f.status:
        conv.append(f"c.status = {arg(f.status)}")
    return own, conv


def _note_hits(f: SearchFilters, arg: _Args, after: tuple[dt.datetime, str, int] | None) -> str:
    """The notes that match, with the filters applied (notes are few: the full-text index answers)."""
    note = [f"n.search @@ {_TSQUERY}"]
    if f.channel:
        note.append(_channel(f, arg, "c.channel_id"))
    if f.agent_id is not None:
        p = arg(f.agent_id)
        note.append(f"(n.author_agent_id = {p} OR c.assignee_id = {p})")
    if f.tag:
        note.append(f"EXISTS (SELECT 1 FROM clients cl WHERE cl.id = n.client_id AND cl.tags @> ARRAY[{arg(f.tag)}]::text[])")
    if f.start is not None:
        note.append(f"n.created_at >= {arg(f.start)}")
    if f.end is not None:
        note.append(f"n.created_at < {arg(f.end)}")
    if f.status:
        note.append(f"c.status = {arg(f.status)}")
    if after is not None:
        ts, kind, rid = arg(after[0]), arg(after[1]), arg(after[2])
        note.append(f"(n.created_at, 'note'::text, n.id) < ({ts}, {kind}::text, {rid})")
    return (
        "SELECT 'note'::text AS kind, n.id, n.created_at FROM notes n LEFT JOIN conversations c ON c.id = n.conversation_id"
        f" WHERE {' AND '.join(note)}"
    )


# How the messages that match are found newest first (the same plan as inbox.conversations' q=):
# the newest WALK messages are checked one by one (ts_match_vq, not @@, so that no plan answers
# it with the full-text index once per row); a full page, or every message seen, is the answer;
# COMMON or more matches mean the words are common enough to walk on in time order; fewer, and
# the full-text index lists the matches (up to INDEX_CAP; more, and walking on is cheaper).
WALK = 2000
COMMON = 8
INDEX_CAP = 20_000


async def _message_hits(
    pool: asyncpg.Pool, f: SearchFilters, after: tuple[dt.datetime, str, int] | None, n: int
) -> list[asyncpg.Record]:
    arg = _Args(f.q)
    own, conv = _message_filters(f, arg, after)
    by_text = f"ts_match_vq(m.search, {_TSQUERY})"
    order = " ORDER BY m.created_at DESC, m.id DESC"
    where_own = f" WHERE {' AND '.join(own)}" if own else ""
    newest = f"SELECT m.id, m.conversation_id, m.created_at, m.search, m.author_agent_id FROM messages m{where_own}{order}"
    join = " JOIN conversations c ON c.id = m.conversation_id" if conv else ""
    rows: list[asyncpg.Record] = await pool.fetch(
        f"SELECT m.id, m.created_at FROM ({newest} LIMIT {WALK}) m{join}"
        f" WHERE {' AND '.join([*conv, by_text])}{order} LIMIT {n}",
        *arg.values,
    )
    if len(rows) >= n:
        return rows
    every = " AND ".join([*own, *conv, by_text])
    walk_on = f"SELECT m.id, m.created_at FROM messages m{join} WHERE {every}{order} LIMIT {n}"
    if len(rows) >= COMMON:
        rows = await pool.fetch(walk_on, *arg.values)
        return rows
    count_arg = _Args()
    count_own, _ = _message_filters(f, count_arg, after, conversation=False)
    where_count = f" WHERE {' AND '.join(count_own)}" if count_own else ""
    seen = await pool.fetchval(f"SELECT count(*) FROM (SELECT 1 FROM messages m{where_count} LIMIT {WALK}) m", *count_arg.values)
    if seen < WALK:
        return rows  # every message was checked
    found = await pool.fetchrow(
        f"SELECT count(*) AS hits, array_agg(id) AS ids FROM (SELECT id FROM messages WHERE search @@ {_TSQUERY} LIMIT $2) m",
        f.q, INDEX_CAP + 1,
    )
    if found["hits"] > INDEX_CAP:
        rows = await pool.fetch(walk_on, *arg.values)
        return rows
    listed = " AND ".join([*own, *conv, f"m.id = ANY({arg(found['ids'] or [])}::bigint[])", by_text])
    rows = await pool.fetch(
        f"SELECT m.id, m.created_at FROM messages m{join} WHERE {listed}{order} LIMIT {n}",
        *arg.values,
    )
    return rows


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
    n = limit + 1
    messages = await _message_hits(pool, f, after, n)
    note_args = _Args(f.q)
    notes = await pool.fetch(
        f"{_note_hits(f, note_args, after)} ORDER BY n.created_at DESC, n.id DESC LIMIT {n}", *note_args.values
    )
    page = sorted(
        [(r["created_at"], "message", r["id"]) for r in messages] + [(r["created_at"], "note", r["id"]) for r in notes],
        reverse=True,
    )[:n]
    args: list[object] = [[i for _, kind, i in page if kind == "message"], [i for _, kind, i in page if kind == "note"]]
    headline = "''"
    if not export:
        args += [f.q, _HEADLINE_OPTIONS]
        headline = f"ts_headline('russian', left(h.text, 20000), {_TSQUERY.replace('$1', '$3')}, $4)"
    # Only the page's rows are read whole and highlighted.
    rows = await pool.fetch(
        "WITH hits AS ("
        "SELECT 'message'::text AS kind, m.id, m.conversation_id, c.client_id, m.channel_id, m.direction,"
        " m.author_agent_id, m.text, m.created_at"
        " FROM messages m JOIN conversations c ON c.id = m.conversation_id WHERE m.id = ANY($1::bigint[])"
        " UNION ALL "
        "SELECT 'note'::text, n.id, n.conversation_id, n.client_id, c.channel_id, NULL, n.author_agent_id, n.text,"
        " n.created_at"
        " FROM notes n LEFT JOIN conversations c ON c.id = n.conversation_id WHERE n.id = ANY($2::bigint[]))"
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
