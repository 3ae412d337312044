"""The common case of a batch of inbound messages, in a few set-based statements.

Most traffic is a sender writing into the conversation open for them (or
opening one). For a batch, inbox/ingest runs that case here — lock
the batch's identities, look up stored ids and open conversations, open the
missing ones, insert the messages, bump the conversations, read them back for
the events: one statement each for the whole batch, instead of five or more
round trips per message; a first-time sender's card and identity are created
here too. Whatever needs a decision (threading, an edit, an automatic reply,
contact details that may link a card, an e-mail address in the text) is left
to the per-message path, together with every other message of the same sender in
the batch, so one sender's messages are still stored in their order.

With several messages of one conversation in a batch, each `message.created`
carries the conversation as the batch leaves it (unread count, last message).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from typing import Any

import asyncpg

from hub.events import Event
from hub.types import JSON, InboundMessage, IngestResult
from inbox import first_touch
from inbox.views import CONVERSATION_SELECT, conversation_json, message_json

SenderKey = tuple[int, str]


def plain(m: InboundMessage) -> bool:
    """Nothing to decide beyond the open conversation (see the module docstring)."""
    return (
        m.direction == "in"
        and not m.flags
        and not m.thread_refs
        and m.reply_token_conversation is None
        and not m.new_thread
        and not m.sender.phone
        and not m.sender.email
        and "@" not in m.text  # may name another card's e-mail: a merge suggestion (inbox/suggestions)
    )


# What an INSERT INTO messages returns: enough for the event's message JSON without a second read.
INSERTED_COLUMNS = (
    "id, conversation_id, channel_id, direction, text, html, attachments, flags, status, error,"
    " author_agent_id, created_at, sent_at, edited_at, external_id, original_text"
)


def original_text(m: InboundMessage) -> str:
    """What to store as the message's original text: '' when it is the shown text anyway."""
    return m.original_text if m.original_text != m.text else ""


def inserted_message_json(row: asyncpg.Record, conversation: JSON, client_id: int) -> JSON:
    """The message as the API shows it, from what the insert returned and its conversation's JSON."""
    return message_json(
        {
            **dict(row),
            "channel_kind": conversation["channel"]["kind"],
            "agent_name": None,
            "client_id": client_id,
            "client_name": conversation["client"]["name"],
        }
    )


def _sender(m: InboundMessage) -> SenderKey:
    return (m.channel_id, m.sender.external_id)


async def lock_senders(conn: asyncpg.Connection, messages: Sequence[InboundMessage]) -> None:
    """Row-lock every known identity of the batch in one sorted order: concurrent batches cannot deadlock on them."""
    keys = sorted({_sender(m) for m in messages})
    await conn.execute(
        "SELECT 1 FROM identities WHERE (channel_id, external_id) IN"
        " (SELECT * FROM unnest($1::bigint[], $2::text[])) ORDER BY channel_id, external_id FOR UPDATE",
        [k[0] for k in keys],
        [k[1] for k in keys],
    )


async def store_plain(
    conn: asyncpg.Connection, messages: Sequence[InboundMessage], events: list[Event]
) -> dict[int, IngestResult]:
    """Store the batch's plain messages (identities locked already); their results by index. The rest is the caller's."""
    external_ids = Counter((m.channel_id, m.external_id) for m in messages)
    # A sender with any message that needs a decision, or one delivered twice in the batch, goes the long way.
    long_way = {_sender(m) for m in messages if not plain(m) or external_ids[(m.channel_id, m.external_id)] > 1}
    picked = [i for i, m in enumerate(messages) if _sender(m) not in long_way]
    if not picked:
        return {}
    # A new statement after the locks: it sees what the transactions we waited for committed.
    found = await conn.fetch(
        "SELECT k.n, i.id AS identity_id, i.client_id, m.id AS message_id, m.conversation_id AS message_conversation_id,"
        " (SELECT c.id FROM conversations c WHERE c.identity_id = i.id AND c.status <> 'resolved'"
        "  ORDER BY c.id DESC LIMIT 1) AS open_id"
        " FROM unnest($1::bigint[], $2::text[], $3::text[], $4::int[]) AS k(channel_id, sender, external_id, n)"
        " JOIN identities i ON i.channel_id = k.channel_id AND i.external_id = k.sender"
        " LEFT JOIN messages m ON m.channel_id = k.channel_id AND m.external_id = k.external_id",
        [messages[i].channel_id for i in picked],
        [messages[i].sender.external_id for i in picked],
        [messages[i].external_id for i in picked],
        picked,
    )
    rows = {r["n"]: dict(r) for r in found}
    await _create_senders(conn, messages, [i for i in picked if i not in rows], rows, long_way)
    opened = await _open_conversations(conn, messages, [i for i in picked if _sender(messages[i]) not in long_way], rows)
    results: dict[int, IngestResult] = {}
    to_insert: list[int] = []
    for i in picked:
        if _sender(messages[i]) in long_way:
            continue
        r = rows[i]
        if r["message_id"] is not None:  # stored before: nothing to do but report it (the cursor moves on)
            results[i] = IngestResult(r["message_id"], r["message_conversation_id"], r["client_id"], created=False)
        else:
            to_insert.append(i)
    if not to_insert:
        return results

    inserted = await conn.fetch(
        "INSERT INTO messages (conversation_id, channel_id, external_id, direction, text, html, attachments,"
        " status, created_at, original_text)"
        " SELECT k.conversation_id, k.channel_id, k.external_id, 'in', k.text, k.html, k.attachments::jsonb,"
        " 'received', coalesce(k.sent_at, now()), k.original_text"
        " FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[], $7::timestamptz[],"
        " $8::text[]) WITH ORDINALITY AS k(conversation_id, channel_id, external_id, text, html, attachments, sent_at,"
        " original_text, n) ORDER BY k.n"
        " ON CONFLICT (channel_id, external_id) DO NOTHING"
        " RETURNING " + INSERTED_COLUMNS,
        [rows[i]["open_id"] for i in to_insert],
        [messages[i].channel_id for i in to_insert],
        [messages[i].external_id for i in to_insert],
        [messages[i].text for i in to_insert],
        [messages[i].html for i in to_insert],
        [json.dumps([a.as_json() for a in messages[i].attachments]) for i in to_insert],
        [messages[i].sent_at for i in to_insert],
        [original_text(messages[i]) for i in to_insert],
    )
    # Rows not returned were stored meanwhile by someone else: the per-message path reports them.
    by_key = {(r["channel_id"], r["external_id"]): r for r in inserted}
    unread = Counter(r["conversation_id"] for r in inserted)
    # A customer writing again reopens whatever state the conversation was in.
    await conn.execute(
        "UPDATE conversations c SET last_activity_at = now(), unread_count = c.unread_count + k.n, status = 'open',"
        " snoozed_until = NULL, resolved_at = NULL"
        " FROM unnest($1::bigint[], $2::int[]) AS k(id, n) WHERE c.id = k.id",
        list(unread),
        list(unread.values()),
    )
    conversations = {
        r["id"]: conversation_json(r)
        for r in await conn.fetch(CONVERSATION_SELECT + " WHERE c.id = ANY($1::bigint[])", list(unread))
    }
    for i in to_insert:
        row = by_key.get((messages[i].channel_id, messages[i].external_id))
        if row is None:
            continue
        conversation = conversations[row["conversation_id"]]
        client_id = rows[i]["client_id"]
        if opened.pop(row["conversation_id"], False):
            events.append(Event("conversation.created", {"conversation": conversation}, client_id, row["conversation_id"]))
        message = inserted_message_json(row, conversation, client_id)
        events.append(
            Event("message.created", {"message": message, "conversation": conversation}, client_id, row["conversation_id"])
        )
        results[i] = IngestResult(row["id"], row["conversation_id"], client_id, created=True)
    return results


async def _open_conversations(
    conn: asyncpg.Connection, messages: Sequence[InboundMessage], picked: list[int], rows: dict[int, dict[str, Any]]
) -> dict[int, bool]:
    """A new conversation for each known sender with none open (rows get its id as `open_id`); their ids."""
    need: dict[int, int] = {}  # identity id -> the first message that needs a conversation
    for i in picked:
        r = rows[i]
        if r["message_id"] is None and r["open_id"] is None:
            need.setdefault(r["identity_id"], i)
    if not need:
        return {}
    created = await conn.fetch(
        "INSERT INTO conversations (client_id, channel_id, identity_id, subject, status)"
        " SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::text[], $5::text[])"
        " RETURNING id, identity_id",
        [rows[i]["client_id"] for i in need.values()],
        [messages[i].channel_id for i in need.values()],
        list(need),
        [messages[i].subject[:500] for i in need.values()],
        ["open"] * len(need),
    )
    by_identity = {r["identity_id"]: r["id"] for r in created}
    for i in picked:
        r = rows[i]
        if r["message_id"] is None and r["open_id"] is None:
            r["open_id"] = by_identity[r["identity_id"]]
    return {r["id"]: True for r in created}


async def create_clients(conn: asyncpg.Connection, firsts: Sequence[InboundMessage]) -> list[int]:
    """A new client card for the sender of each message, with where they first came from; ids in order."""
    ids = await conn.fetch(
        "INSERT INTO clients (name, email, phone, first_touch)"
        " SELECT k.name, k.email, k.phone, jsonb_build_object('channel_id', k.channel_id,"
        " 'channel', (SELECT kind FROM channels WHERE id = k.channel_id), 'at', now()) || k.sources::jsonb"
        " FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::text[]) WITH ORDINALITY"
        " AS k(name, email, phone, channel_id, sources, n) ORDER BY k.n RETURNING id",
        [m.sender.display_name or m.sender.username or m.sender.email or m.sender.external_id for m in firsts],
        [m.sender.email for m in firsts],
        [m.sender.phone for m in firsts],
        [m.channel_id for m in firsts],
        [json.dumps(first_touch.sources(m.raw)) for m in firsts],
    )
    return sorted(r["id"] for r in ids)  # taken from the sequence in the insert's order


async def _create_senders(
    conn: asyncpg.Connection,
    messages: Sequence[InboundMessage],
    unknown: list[int],
    rows: dict[int, dict[str, Any]],
    long_way: set[SenderKey],
) -> None:
    """Client and identity for each first-time sender (rows of their messages filled in).

    A sender someone else created meanwhile is left to the per-message path.
    """
    first: dict[SenderKey, int] = {}
    for i in unknown:
        first.setdefault(_sender(messages[i]), i)
    if not first:
        return
    keys = sorted(first)
    client_ids = await create_clients(conn, [messages[first[k]] for k in keys])
    created = await conn.fetch(
        "INSERT INTO identities (channel_id, external_id, client_id, display_name, username)"
        " SELECT * FROM unnest($1::bigint[], $2::text[], $3::bigint[], $4::text[], $5::text[])"
        " AS k(channel_id, external_id, client_id, display_name, username) ORDER BY k.channel_id, k.external_id"
        " ON CONFLICT (channel_id, external_id) DO NOTHING RETURNING id, channel_id, external_id, client_id",
        [k[0] for k in keys],
        [k[1] for k in keys],
        client_ids,
        [messages[first[k]].sender.display_name for k in keys],
        [messages[first[k]].sender.username for k in keys],
    )
    identities = {(r["channel_id"], r["external_id"]): r for r in created}
    if len(identities) < len(keys):  # another transaction created some first: their cards, not ours
        taken = [c for k, c in zip(keys, client_ids, strict=True) if k not in identities]
        await conn.execute("DELETE FROM clients WHERE id = ANY($1::bigint[])", taken)
    for i in unknown:
        found = identities.get(_sender(messages[i]))
        if found is None:
            long_way.add(_sender(messages[i]))
            continue
        rows[i] = {
            "identity_id": found["id"], "client_id": found["client_id"],
            "message_id": None, "message_conversation_id": None, "open_id": None,
        }
