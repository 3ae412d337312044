"""Transcripts: a conversation, a client's whole history or a search result as JSON, CSV or plain text.

A transcript holds messages and private notes in the order they were written.
CSV cells that a spreadsheet would run as a formula (=, +, -, @ first) get a
leading apostrophe: the text is the customer's, the spreadsheet is the manager's.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable

import asyncpg

from hub.errors import NotFound
from hub.types import JSON
from inbox.notes import NOTE_SELECT
from inbox.views import CONVERSATION_SELECT, MESSAGE_SELECT, conversation_json, message_json, note_json

FORMATS = ("json", "csv", "txt")
CONVERSATION_COLUMNS = [
    "conversation_id", "channel", "kind", "id", "created_at", "direction", "author_type", "author_name",
    "status", "text", "attachments",
]
SEARCH_COLUMNS = [
    "kind", "id", "conversation_id", "client_id", "client_name", "channel", "conversation_status", "direction",
    "author_type", "author_name", "created_at", "text",
]


def _item_from_message(m: JSON) -> JSON:
    return {
        "kind": "message", "id": m["id"], "created_at": m["created_at"], "direction": m["direction"],
        "author": m["author"], "status": m["status"], "text": m["text"],
        "attachments": [a["filename"] for a in m["attachments"]],
    }


def _item_from_note(n: JSON) -> JSON:
    return {
        "kind": "note", "id": n["id"], "created_at": n["created_at"], "direction": None,
        "author": {"type": "agent", **n["author"]}, "status": None, "text": n["text"], "attachments": [],
    }


async def _items(conn: asyncpg.Pool | asyncpg.Connection, conversation_ids: list[int]) -> dict[int, list[JSON]]:
    messages = await conn.fetch(
        MESSAGE_SELECT + " WHERE m.conversation_id = ANY($1::bigint[]) ORDER BY m.id", conversation_ids
    )
    notes = await conn.fetch(NOTE_SELECT + " WHERE n.conversation_id = ANY($1::bigint[]) ORDER BY n.id", conversation_ids)
    by_conv: dict[int, list[JSON]] = {cid: [] for cid in conversation_ids}
    for m in messages:
        by_conv[m["conversation_id"]].append(_item_from_message(message_json(m)))
    for n in notes:
        by_conv[n["conversation_id"]].append(_item_from_note(note_json(n)))
    for items in by_conv.values():
        items.sort(key=lambda i: (i["created_at"], i["kind"], i["id"]))
    return by_conv


async def conversation_transcript(pool: asyncpg.Pool, conversation_id: int) -> JSON:
    row = await pool.fetchrow(CONVERSATION_SELECT + " WHERE c.id = $1", conversation_id)
    if row is None:
        raise NotFound(f"conversation {conversation_id} does not exist")
    items = await _items(pool, [conversation_id])
    return {"conversation": conversation_json(row), "items": items[conversation_id]}


async def client_transcript(pool: asyncpg.Pool, client_id: int) -> JSON:
    """Every conversation of the client's (live) card, oldest first, and the notes on the card itself."""
    root = await pool.fetchval("SELECT client_root($1)", client_id)
    if root is None:
        raise NotFound(f"client {client_id} does not exist")
    client = await pool.fetchrow("SELECT id, name, email, phone FROM clients WHERE id = $1", root)
    rows = await pool.fetch(CONVERSATION_SELECT + " WHERE c.client_id = $1 ORDER BY c.id", root)
    items = await _items(pool, [r["id"] for r in rows])
    card_notes = await pool.fetch(NOTE_SELECT + " WHERE n.client_id = $1 AND n.conversation_id IS NULL ORDER BY n.id", root)
    return {
        "client": dict(client),
        "notes": [_item_from_note(note_json(n)) for n in card_notes],
        "conversations": [{"conversation": conversation_json(r), "items": items[r["id"]]} for r in rows],
    }


def _cell(value: object) -> object:
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def to_csv(columns: list[str], rows: Iterable[JSON]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _cell(v) for k, v in row.items()})
    return buf.getvalue()


def conversation_rows(conversations: list[JSON]) -> list[JSON]:
    """Flat CSV rows of [{conversation, items}]."""
    rows = []
    for part in conversations:
        conv = part["conversation"]
        for i in part["items"]:
            rows.append({
                "conversation_id": conv["id"], "channel": conv["channel"]["name"], "kind": i["kind"], "id": i["id"],
                "created_at": i["created_at"], "direction": i["direction"] or "", "author_type": i["author"]["type"],
                "author_name": i["author"]["name"], "status": i["status"] or "", "text": i["text"],
                "attachments": " ".join(i["attachments"]),
            })
    return rows


def _line(i: JSON) -> str:
    when = i["created_at"].replace("T", " ")[:19] + " UTC"
    who = i["author"]["name"]
    if i["kind"] == "note":
        who = f"(private note) {who}"
    elif i["author"]["type"] == "agent":
        who = f"{who} (agent)"
    text = i["text"].replace("\r\n", "\n").replace("\n", "\n    ")
    line = f"[{when}] {who}: {text}"
    if i["attachments"]:
        line += "\n    attachments: " + ", ".join(i["attachments"])
    return line


def conversation_text(part: JSON) -> str:
    c = part["conversation"]
    head = (
        f"Conversation {c['id']} · {c['channel']['name']} ({c['channel']['kind']}) · {c['client']['name']}"
        f" (client {c['client_id']}) · {c['status']} · started {c['created_at'][:19].replace('T', ' ')} UTC"
    )
    lines = [head]
    if c["subject"]:
        lines.append(f"Subject: {c['subject']}")
    lines += [_line(i) for i in part["items"]]
    return "\n".join(lines) + "\n"


def client_text(doc: JSON) -> str:
    client = doc["client"]
    parts = [f"Client {client['id']}: {client['name']} <{client['email']}> {client['phone']}".rstrip() + "\n"]
    if doc["notes"]:
        parts.append("Notes on the card:\n" + "\n".join(_line(n) for n in doc["notes"]) + "\n")
    parts += [conversation_text(p) for p in doc["conversations"]]
    return "\n".join(parts)


def search_rows(hits: list[JSON]) -> list[JSON]:
    return [
        {
            "kind": h["kind"], "id": h["id"], "conversation_id": h["conversation_id"] or "",
            "client_id": h["client"]["id"], "client_name": h["client"]["name"],
            "channel": h["channel"]["name"] if h["channel"] else "", "conversation_status": h["conversation_status"] or "",
            "direction": h["direction"] or "", "author_type": h["author"]["type"], "author_name": h["author"]["name"],
            "created_at": h["created_at"], "text": h["text"],
        }
        for h in hits
    ]


def search_text(hits: list[JSON]) -> str:
    lines = []
    for h in hits:
        where = f"conversation {h['conversation_id']}" if h["conversation_id"] else "client card"
        item = {**h, "attachments": []}
        lines.append(f"{_line(item)}\n    — {h['client']['name']}, {where}")
    return "\n".join(lines) + ("\n" if lines else "")
