"""The ingest transaction: inbound messages into the store, exactly once.

In one transaction: find or create identity → client → conversation, insert the
message (unique per channel + external id), advance the channel cursor, store
the events (which NOTIFY on commit). A duplicate still advances the cursor, so
a connector that crashed after commit but before its own bookkeeping moves on.

Concurrent `ingest` calls in one process share a transaction (hub/group_commit:
one commit, one NOTIFY for the batch); a message that fails is retried alone,
so it never takes the others down with it.
"""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from hub.events import Event, publish_many
from hub.group_commit import GroupCommit
from hub.types import Cursor, InboundMessage, IngestResult, Sender
from inbox import ingest_bulk, suggestions
from inbox.views import fetch_conversation, fetch_message

MAX_BATCH = 64  # messages in one shared transaction
MAX_TRANSACTIONS = 3  # shared transactions in flight per process (pool connections they hold)

_committers: dict[int, GroupCommit[InboundMessage, IngestResult]] = {}


async def ingest(pool: asyncpg.Pool, message: InboundMessage) -> IngestResult:
    """Store one message; concurrent calls share a transaction (group commit)."""
    (result,) = await _committer(pool).submit((message,))
    return result


async def ingest_many(pool: asyncpg.Pool, messages: Sequence[InboundMessage]) -> list[IngestResult]:
    """Store a connector's page of messages in order, in one transaction when all go well.

    If one fails, it and the ones after it are not stored and its error is
    raised; the ones before it are stored with their cursors, as if ingested
    one by one.
    """
    return await _committer(pool).submit(tuple(messages))


async def ingest_alone(pool: asyncpg.Pool, message: InboundMessage) -> IngestResult:
    """One message in a transaction of its own (no group commit)."""
    async with pool.acquire() as conn, conn.transaction():
        return await ingest_in(conn, message)


def _committer(pool: asyncpg.Pool) -> GroupCommit[InboundMessage, IngestResult]:
    key = id(pool)
    committer = _committers.get(key)
    if committer is None or committer.pool is not pool:

        def forget() -> None:  # an idle committer holds nothing: don't keep the pool alive
            if _committers.get(key) is committer:
                del _committers[key]

        committer = _committers[key] = GroupCommit(
            pool, ingest_together, max_items=MAX_BATCH, max_transactions=MAX_TRANSACTIONS, on_idle=forget,
            key=lambda m: (m.channel_id, m.sender.external_id),
        )
    return committer


async def ingest_in(conn: asyncpg.Connection, m: InboundMessage) -> IngestResult:
    """The ingest transaction's body, for callers that already hold a transaction."""
    (result,) = await ingest_together(conn, (m,))
    return result


async def ingest_together(conn: asyncpg.Connection, messages: Sequence[InboundMessage]) -> list[IngestResult]:
    """Several messages in the caller's transaction; results in the given order.

    The common case goes set-based (inbox/ingest_bulk), the rest one by one,
    sorted by sender (one sender's messages keep their order). Identity row
    locks are taken in one sorted order first, so two concurrent batches cannot
    deadlock on them. Each channel cursor is written once, with the value of
    the last message (in the given order) that carries it.
    """
    events: list[Event] = []
    results: dict[int, IngestResult] = {}
    if len(messages) > 1 or ingest_bulk.plain(messages[0]):
        await ingest_bulk.lock_senders(conn, messages)
        results = await ingest_bulk.store_plain(conn, messages, events)
    by_sender = sorted(range(len(messages)), key=lambda i: (messages[i].channel_id, messages[i].sender.external_id))
    for i in by_sender:
        if i not in results:
            results[i] = await _store(conn, messages[i], events)
    cursors = {(m.channel_id, m.cursor.key): (m.channel_id, m.cursor) for m in messages if m.cursor is not None}
    for channel_id, cursor in cursors.values():
        await advance_cursor(conn, channel_id, cursor)
    await publish_many(conn, events)
    return [results[i] for i in range(len(messages))]


async def _store(conn: asyncpg.Connection, m: InboundMessage, events: list[Event]) -> IngestResult:
    """One message: stored (or found stored, or edited); the events it makes go to `events`."""
    identity_id, client_id, existing = await _identity(conn, m.channel_id, m.sender, m)
    if existing:
        if "edited" in m.flags:
            await _apply_edit(conn, existing["id"], m, client_id, events)
        return IngestResult(existing["id"], existing["conversation_id"], client_id, created=False)

    conversation_id, conversation_created = await _conversation(conn, m, identity_id, client_id)
    status = "received" if m.direction == "in" else "sent"
    inserted = await conn.fetchrow(
        "INSERT INTO messages (conversation_id, channel_id, external_id, direction, text, html, attachments,"
        " flags, status, created_at, sent_at, original_text)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, coalesce($10, now()), CASE WHEN $4 = 'out' THEN now() END, $11)"
        " ON CONFLICT (channel_id, external_id) DO NOTHING"
        " RETURNING " + ingest_bulk.INSERTED_COLUMNS,
        conversation_id,
        m.channel_id,
        m.external_id,
        m.direction,
        m.text,
        m.html,
        [a.as_json() for a in m.attachments],
        list(m.flags),
        status,
        m.sent_at,
        ingest_bulk.original_text(m),
    )
    if inserted is None:  # a concurrent ingest of the same message won
        row = await conn.fetchrow(
            "SELECT id, conversation_id FROM messages WHERE channel_id = $1 AND external_id = $2",
            m.channel_id,
            m.external_id,
        )
        return IngestResult(row["id"], row["conversation_id"], client_id, created=False)
    message_id: int = inserted["id"]

    if _automatic(m):
        pass  # an out-of-office or a bounce is kept, but neither reopens nor counts as unread
    elif m.direction == "in":
        await suggestions.from_message(conn, client_id=client_id, message_id=message_id, text=m.text)
        # A customer writing again reopens whatever state the conversation was in.
        await conn.execute(
            "UPDATE conversations SET last_activity_at = now(), unread_count = unread_count + 1,"
            " status = 'open', snoozed_until = NULL, resolved_at = NULL WHERE id = $1",
            conversation_id,
        )
    else:
        await conn.execute("UPDATE conversations SET last_activity_at = now() WHERE id = $1", conversation_id)

    conversation = await fetch_conversation(conn, conversation_id)
    assert conversation is not None
    message = ingest_bulk.inserted_message_json(inserted, conversation, client_id)
    if conversation_created:
        events.append(Event("conversation.created", {"conversation": conversation}, client_id, conversation_id))
    events.append(Event("message.created", {"message": message, "conversation": conversation}, client_id, conversation_id))
    return IngestResult(message_id, conversation_id, client_id, created=True)


async def _apply_edit(
    conn: asyncpg.Connection, message_id: int, m: InboundMessage, client_id: int, events: list[Event]
) -> None:
    """The customer edited a message we hold: show the new text, keep the old one on the timeline."""
    row = await conn.fetchrow(
        "UPDATE messages SET text = $2, html = $3, edited_at = now(),"
        " flags = (SELECT array_agg(DISTINCT f) FROM unnest(flags || ARRAY['edited']) AS f)"
        " WHERE id = $1 AND (text <> $2 OR html <> $3)"
        " RETURNING conversation_id, (SELECT text FROM messages WHERE id = $1) AS previous_text",
        message_id,
        m.text,
        m.html,
    )
    if row is None:
        return  # the same edit delivered twice
    message = await fetch_message(conn, message_id)
    events.append(
        Event("message.updated", {"message": message, "previous_text": row["previous_text"]}, client_id, row["conversation_id"])
    )


async def _identity(
    conn: asyncpg.Connection, channel_id: int, sender: Sender, m: InboundMessage
) -> tuple[int, int, asyncpg.Record | None]:
    """The sender's identity and client, created on first contact and locked for this transaction,
    and the message if it is stored already (read in the same round trip).

    The row lock serialises concurrent messages from one sender, so they land
    in one conversation rather than racing to open two.
    """
    row = await conn.fetchrow(
        "SELECT i.id, i.client_id, m.id AS message_id, m.conversation_id"
        " FROM identities i LEFT JOIN messages m ON m.channel_id = i.channel_id AND m.external_id = $3"
        " WHERE i.channel_id = $1 AND i.external_id = $2 FOR UPDATE OF i",
        channel_id,
        sender.external_id,
        m.external_id,
    )
    existing = await _stored(conn, m) if row is None else None
    if row and row["message_id"] is not None:
        existing = {"id": row["message_id"], "conversation_id": row["conversation_id"]}
    if row:
        if sender.phone or sender.email:  # details the person gave us (a shared contact) fill gaps on the card
            filled = await conn.execute(
                "UPDATE clients SET phone = CASE WHEN phone = '' THEN $2 ELSE phone END,"
                " email = CASE WHEN email = '' THEN $3 ELSE email END, updated_at = now()"
                " WHERE id = $1 AND ((phone = '' AND $2 <> '') OR (email = '' AND $3 <> ''))",
                row["client_id"],
                sender.phone,
                sender.email,
            )
            if filled != "UPDATE 0":  # a phone on the card now may match another card's name and phone
                await suggestions.for_client(conn, row["client_id"])
        return row["id"], row["client_id"], existing
    client_id = await _linked_client(conn, sender)
    new_client = client_id is None
    if client_id is None:
        (client_id,) = await ingest_bulk.create_clients(conn, [m])
    identity_id = await conn.fetchval(
        "INSERT INTO identities (channel_id, external_id, client_id, display_name, username)"
        " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (channel_id, external_id) DO NOTHING RETURNING id",
        channel_id,
        sender.external_id,
        client_id,
        sender.display_name,
        sender.username,
    )
    if identity_id is None:  # another transaction created it first: use theirs
        if new_client:
            await conn.execute("DELETE FROM clients WHERE id = $1", client_id)
        row = await conn.fetchrow(
            "SELECT id, client_id FROM identities WHERE channel_id = $1 AND external_id = $2 FOR UPDATE",
            channel_id,
            sender.external_id,
        )
        return row["id"], row["client_id"], existing
    return identity_id, client_id, existing


async def _stored(conn: asyncpg.Connection, m: InboundMessage) -> asyncpg.Record | None:
    found: asyncpg.Record | None = await conn.fetchrow(
        "SELECT id, conversation_id FROM messages WHERE channel_id = $1 AND external_id = $2",
        m.channel_id,
        m.external_id,
    )
    return found


async def _linked_client(conn: asyncpg.Connection, sender: Sender) -> int | None:
    """An existing client this new identity provably belongs to: same e-mail or phone they gave us."""
    if sender.email:
        found = await _live_card(conn, "lower(email) = lower($1) AND email <> ''", sender.email)
        if found:
            return found
    if sender.phone:
        return await _live_card(conn, "phone = $1", sender.phone)
    return None


async def _live_card(conn: asyncpg.Connection, match: str, value: str) -> int | None:
    """The live card of the first client matching, share-locked so that a merge cannot take it away meanwhile.

    A matching card merged away leads to the card it was merged into. If a merge
    commits while we wait for the lock, look again: the card to link to moved.
    """
    for _attempt in range(3):
        root: int | None = await conn.fetchval(
            f"SELECT client_root(id) FROM clients WHERE {match} ORDER BY merged_into IS NOT NULL, id LIMIT 1", value
        )
        if root is None:
            return None
        if await conn.fetchval("SELECT id FROM clients WHERE id = $1 AND merged_into IS NULL FOR SHARE", root):
            return root
    return None


async def _conversation(
    conn: asyncpg.Connection, m: InboundMessage, identity_id: int, client_id: int
) -> tuple[int, bool]:
    if m.thread_refs:
        row = await conn.fetchrow(
            "SELECT msg.conversation_id FROM messages msg JOIN conversations c ON c.id = msg.conversation_id"
            " WHERE msg.channel_id = $1 AND msg.external_id = ANY($2::text[]) AND c.client_id = $3"
            " ORDER BY array_position($2::text[], msg.external_id) LIMIT 1",
            m.channel_id,
            list(m.thread_refs),
            client_id,
        )
        if row:
            return row["conversation_id"], False
    if m.reply_token_conversation is not None:  # our reply address, answered by a client that dropped the headers
        found_by_token: int | None = await conn.fetchval(
            "SELECT id FROM conversations WHERE id = $1 AND channel_id = $2 AND client_id = $3",
            m.reply_token_conversation,
            m.channel_id,
            client_id,
        )
        if found_by_token is not None:
            return found_by_token, False
    automatic = _automatic(m)
    if not m.new_thread or automatic:
        found = await conn.fetchval(
            "SELECT id FROM conversations WHERE identity_id = $1 AND ($2 OR status <> 'resolved')"
            " ORDER BY id DESC LIMIT 1",
            identity_id,
            automatic,
        )
        if found:
            return found, False
    # An automatic message with nowhere to go is kept in a conversation that is already closed.
    conversation_id = await conn.fetchval(
        "INSERT INTO conversations (client_id, channel_id, identity_id, subject, status, resolved_at)"
        " VALUES ($1, $2, $3, $4, $5, CASE WHEN $5 = 'resolved' THEN now() END) RETURNING id",
        client_id,
        m.channel_id,
        identity_id,
        m.subject[:500],
        "resolved" if automatic else "open",
    )
    return conversation_id, True


def _automatic(m: InboundMessage) -> bool:
    """Sent by a machine (auto-reply, delivery report): never opens work for an agent."""
    return m.direction == "in" and bool({"auto_reply", "bounce"} & set(m.flags))


async def advance_cursor(conn: asyncpg.Connection, channel_id: int, cursor: Cursor | None) -> None:
    if cursor is None:
        return
    await conn.execute(
        "INSERT INTO channel_cursors (channel_id, key, value) VALUES ($1, $2, $3)"
        " ON CONFLICT (channel_id, key) DO UPDATE SET value = EXCLUDED.value, updated_at = now()",
        channel_id,
        cursor.key,
        cursor.value,
    )
