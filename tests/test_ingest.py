"""The ingest transaction: exactly once, cursor with the message, threading."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import asyncpg
import pytest

from hub import db, group_commit
from hub.blobs import PgBlobStore
from hub.channels import add_channel
from hub.db import _init_connection
from hub.types import Cursor, InboundMessage, Sender
from inbox.ingest import ingest, ingest_in, ingest_many, ingest_together
from inbox.sink import ChannelSink
from inbox.views import fetch_message


async def loopback_channel(pool: asyncpg.Pool, name: str = "loop") -> int:
    return await add_channel(pool, kind="loopback", name=name, settings={}, secrets={})


def msg(channel_id: int, external_id: str, sender: str = "u1", text: str = "hello", **kw: object) -> InboundMessage:
    return InboundMessage(channel_id=channel_id, external_id=external_id, sender=Sender(sender, display_name=f"User {sender}"), text=text, **kw)  # type: ignore[arg-type]


async def test_same_external_id_twice_is_one_message(pool: asyncpg.Pool) -> None:
    ch = await loopback_channel(pool)
    first = await ingest(pool, msg(ch, "m1", cursor=Cursor("offset", "1")))
    second = await ingest(pool, msg(ch, "m1", text="changed", cursor=Cursor("offset", "2")))
    assert first.created and not second.created
    assert second.message_id == first.message_id
    assert await pool.fetchval("SELECT count(*) FROM messages") == 1
    assert await pool.fetchval("SELECT text FROM messages") == "hello"
    # the duplicate still moves the cursor on, so the connector doesn't loop on it
    assert await pool.fetchval("SELECT value FROM channel_cursors WHERE key = 'offset'") == "2"
    assert await pool.fetchval("SELECT count(*) FROM events WHERE type = 'message.created'") == 1


async def test_concurrent_duplicates_store_one(pool: asyncpg.Pool) -> None:
    ch = await loopback_channel(pool)
    results = await asyncio.gather(*(ingest(pool, msg(ch, "same", sender="new")) for _ in range(8)))
    assert sum(r.created for r in results) == 1
    assert {r.message_id for r in results} == {results[0].message_id}
    assert await pool.fetchval("SELECT count(*) FROM clients") == 1
    assert await pool.fetchval("SELECT count(*) FROM conversations") == 1


async def test_concurrent_messages_from_a_new_sender_share_one_conversation(pool: asyncpg.Pool, database_url: str) -> None:
    ch = await loopback_channel(pool)
    async with db.open_pool(database_url, min_size=1, max_size=4) as elsewhere:  # as another hub process would
        await asyncio.gather(*(ingest((pool, elsewhere)[i % 2], msg(ch, f"m{i}", sender="burst")) for i in range(10)))
    assert await pool.fetchval("SELECT count(*) FROM conversations") == 1
    assert await pool.fetchval("SELECT count(*) FROM identities") == 1
    assert await pool.fetchval("SELECT count(*) FROM clients") == 1  # the cards of the batches that lost the race are gone
    assert await pool.fetchval("SELECT unread_count FROM conversations") == 10


async def killed_before_commit(
    pool: asyncpg.Pool, database_url: str, work: Callable[[asyncpg.Connection], Awaitable[object]]
) -> None:
    """Run `work` in a transaction whose backend is killed before it commits (the commit fails)."""
    conn = await asyncpg.connect(database_url)
    await _init_connection(conn)
    tx = conn.transaction()
    await tx.start()
    await work(conn)
    await pool.execute("SELECT pg_terminate_backend($1)", conn.get_server_pid())
    for _ in range(250):  # let the client see the server hang up before it tries to commit
        if conn.is_closed():
            break
        await asyncio.sleep(0.02)
    with pytest.raises((asyncpg.PostgresError, asyncpg.InterfaceError, ConnectionError)):
        await tx.commit()
    conn.terminate()


async def test_cursor_and_message_commit_together(pool: asyncpg.Pool, database_url: str) -> None:
    """Kill the connection mid-transaction: neither the message nor the cursor is stored."""
    ch = await loopback_channel(pool)
    await killed_before_commit(pool, database_url, lambda conn: ingest_in(conn, msg(ch, "doomed", cursor=Cursor("offset", "42"))))
    assert await pool.fetchval("SELECT count(*) FROM messages") == 0
    assert await pool.fetchval("SELECT count(*) FROM channel_cursors") == 0
    assert await pool.fetchval("SELECT count(*) FROM events") == 0
    # and the retry after a restart stores it exactly once
    again = await ingest(pool, msg(ch, "doomed", cursor=Cursor("offset", "42")))
    assert again.created
    assert await pool.fetchval("SELECT value FROM channel_cursors WHERE key = 'offset'") == "42"


async def test_thread_refs_pick_the_conversation_and_reopen_it(pool: asyncpg.Pool) -> None:
    ch = await loopback_channel(pool)
    a = await ingest(pool, msg(ch, "<a@x>", sender="ann@example.com", new_thread=True, subject="Invoice"))
    b = await ingest(pool, msg(ch, "<b@x>", sender="ann@example.com", new_thread=True, subject="Delivery"))
    assert a.conversation_id != b.conversation_id  # a new subject is a new conversation
    await pool.execute("UPDATE conversations SET status = 'resolved' WHERE id = $1", a.conversation_id)
    reply = await ingest(pool, msg(ch, "<c@x>", sender="ann@example.com", thread_refs=("<nope@x>", "<a@x>")))
    assert reply.conversation_id == a.conversation_id
    assert await pool.fetchval("SELECT status FROM conversations WHERE id = $1", a.conversation_id) == "open"


async def test_thread_refs_never_cross_clients(pool: asyncpg.Pool) -> None:
    ch = await loopback_channel(pool)
    a = await ingest(pool, msg(ch, "<a@x>", sender="ann@example.com", new_thread=True))
    other = await ingest(pool, msg(ch, "<z@x>", sender="eve@example.com", thread_refs=("<a@x>",)))
    assert other.conversation_id != a.conversation_id


async def test_resolved_conversation_is_not_reused_without_refs(pool: asyncpg.Pool) -> None:
    ch = await loopback_channel(pool)
    a = await ingest(pool, msg(ch, "1"))
    await pool.execute("UPDATE conversations SET status = 'resolved' WHERE id = $1", a.conversation_id)
    b = await ingest(pool, msg(ch, "2"))
    assert b.conversation_id != a.conversation_id
    assert b.client_id == a.client_id


async def test_same_email_on_two_channels_is_one_client(pool: asyncpg.Pool) -> None:
    mail = await loopback_channel(pool, "mail")
    chat = await loopback_channel(pool, "chat")
    a = await ingest(pool, InboundMessage(channel_id=mail, external_id="1", sender=Sender("ann@example.com", "Ann", email="ann@example.com"), text="hi"))
    b = await ingest(pool, InboundMessage(channel_id=chat, external_id="1", sender=Sender("visitor-9", "Ann", email="ANN@example.com"), text="hi again"))
    assert a.client_id == b.client_id
    assert a.conversation_id != b.conversation_id


async def test_event_is_published_with_the_message(pool: asyncpg.Pool) -> None:
    ch = await loopback_channel(pool)
    r = await ingest(pool, msg(ch, "1", text="Где мой заказ?"))
    rows = await pool.fetch("SELECT type, payload FROM events ORDER BY id")
    assert [row["type"] for row in rows] == ["conversation.created", "message.created"]
    payload = rows[1]["payload"]
    assert payload["message"]["id"] == r.message_id
    assert payload["message"]["text"] == "Где мой заказ?"
    assert payload["message"]["direction"] == "in"
    assert payload["conversation"]["unread_count"] == 1
    assert payload["message"] == await fetch_message(pool, r.message_id)  # the event shows what the API shows


async def test_an_edit_updates_the_message_and_keeps_the_old_text(pool: asyncpg.Pool) -> None:
    ch = await loopback_channel(pool)
    r = await ingest(pool, msg(ch, "m1", text="Order 41"))
    again = await ingest(pool, msg(ch, "m1", text="Order 42", flags=("edited",)))
    assert again.message_id == r.message_id and not again.created
    row = await pool.fetchrow("SELECT text, edited_at, flags FROM messages WHERE id = $1", r.message_id)
    assert row["text"] == "Order 42" and row["edited_at"] is not None and row["flags"] == ["edited"]
    events = await pool.fetch("SELECT payload FROM events WHERE type = 'message.updated'")
    assert [e["payload"]["previous_text"] for e in events] == ["Order 41"]
    await ingest(pool, msg(ch, "m1", text="Order 42", flags=("edited",)))  # the same edit again: nothing new
    assert await pool.fetchval("SELECT count(*) FROM events WHERE type = 'message.updated'") == 1
    assert await pool.fetchval("SELECT count(*) FROM messages") == 1


async def test_a_shared_phone_fills_the_card(pool: asyncpg.Pool) -> None:
    ch = await loopback_channel(pool)
    r = await ingest(pool, msg(ch, "m1"))
    await ingest(pool, InboundMessage(channel_id=ch, external_id="m2", sender=Sender("u1", "User u1", phone="+79991234567"), text=""))
    assert await pool.fetchval("SELECT phone FROM clients WHERE id = $1", r.client_id) == "+79991234567"


async def test_auto_replies_and_bounces_never_open_work(pool: asyncpg.Pool) -> None:
    ch = await loopback_channel(pool)
    first = await ingest(pool, msg(ch, "<q@x>", sender="ann@example.com", new_thread=True, subject="Refund"))
    await pool.execute("UPDATE conversations SET status = 'resolved', unread_count = 0 WHERE id = $1", first.conversation_id)
    ooo = await ingest(pool, msg(ch, "<ooo@x>", sender="ann@example.com", new_thread=True, subject="Out of office", flags=("auto_reply",)))
    assert ooo.conversation_id == first.conversation_id
    row = await pool.fetchrow("SELECT status, unread_count FROM conversations WHERE id = $1", first.conversation_id)
    assert (row["status"], row["unread_count"]) == ("resolved", 0)
    stray = await ingest(pool, msg(ch, "<b@x>", sender="nobody@example.com", flags=("bounce",)))
    assert await pool.fetchval("SELECT status FROM conversations WHERE id = $1", stray.conversation_id) == "resolved"
    assert await pool.fetchval("SELECT count(*) FROM messages") == 3  # nothing is lost


# Group commit (hub/group_commit) and the set-based path for a batch (inbox/ingest_bulk).


async def test_concurrent_messages_share_transactions_and_one_bad_message_fails_alone(pool: asyncpg.Pool) -> None:
    ch = await loopback_channel(pool)
    await ingest(pool, msg(ch, "first", sender="known"))
    before = (group_commit.totals.transactions, group_commit.totals.items)
    good = [msg(ch, f"g{i}", sender=f"s{i % 3}", text=f"fine {i}") for i in range(9)]
    bad = msg(ch, "bad", sender="known", text="a NUL byte \x00 PostgreSQL refuses")
    outcomes = await asyncio.gather(*(ingest(pool, m) for m in [*good[:4], bad, *good[4:]]), return_exceptions=True)
    assert group_commit.totals.items - before[1] > group_commit.totals.transactions - before[0], "no batch was shared"
    failed = [o for o in outcomes if isinstance(o, BaseException)]
    assert len(failed) == 1 and isinstance(failed[0], asyncpg.PostgresError)
    stored = await pool.fetch("SELECT external_id FROM messages WHERE external_id LIKE 'g%' ORDER BY id")
    assert sorted(r["external_id"] for r in stored) == sorted(m.external_id for m in good)
    created = await pool.fetch("SELECT payload FROM events WHERE type = 'message.created'")
    assert sorted(e["payload"]["message"]["text"] for e in created) == sorted(["hello"] + [m.text for m in good])


async def test_a_batch_stores_in_order_and_leaves_the_cursor_at_its_last_message(pool: asyncpg.Pool) -> None:
    ch = await loopback_channel(pool)
    await ingest(pool, msg(ch, "old", sender="b"))  # "b" is known, the others are new
    page = [
        msg(ch, "1", sender="c", text="one", cursor=Cursor("offset", "1")),
        msg(ch, "2", sender="b", text="two", cursor=Cursor("offset", "2")),
        msg(ch, "3", sender="b", text="three", cursor=Cursor("offset", "3")),
        msg(ch, "old", sender="b", cursor=Cursor("offset", "4")),  # stored before: still moves the cursor
        msg(ch, "5", sender="a", text="five", cursor=Cursor("offset", "5")),
    ]
    results = await ingest_many(pool, page)
    assert [r.created for r in results] == [True, True, True, False, True]
    assert await pool.fetchval("SELECT value FROM channel_cursors WHERE key = 'offset'") == "5"
    ids = {r["external_id"]: r["id"] for r in await pool.fetch("SELECT id, external_id FROM messages")}
    assert [r.message_id for r in results] == [ids[m.external_id] for m in page]
    assert ids["old"] < ids["2"] < ids["3"], "one sender's messages keep their order"
    conv = await pool.fetchrow("SELECT id, unread_count FROM conversations WHERE id = $1", results[1].conversation_id)
    assert results[2].conversation_id == conv["id"] and conv["unread_count"] == 3
    events = await pool.fetch("SELECT payload FROM events WHERE type = 'message.created' ORDER BY id")
    by_text = {e["payload"]["message"]["text"]: e["payload"] for e in events}
    assert set(by_text) == {"hello", "one", "two", "three", "five"}
    for r, m in zip(results, page, strict=True):
        if r.created:
            assert by_text[m.text]["message"] == await fetch_message(pool, r.message_id)
            assert by_text[m.text]["conversation"]["id"] == r.conversation_id


async def test_a_batch_that_fails_stores_the_messages_before_the_bad_one(pool: asyncpg.Pool) -> None:
    ch = await loopback_channel(pool)
    page = [
        msg(ch, "1", sender="x", cursor=Cursor("offset", "1")),
        msg(ch, "2", sender="y", text="\x00", cursor=Cursor("offset", "2")),
        msg(ch, "3", sender="z", cursor=Cursor("offset", "3")),
    ]
    with pytest.raises(asyncpg.PostgresError):
        await ingest_many(pool, page)
    assert [r["external_id"] for r in await pool.fetch("SELECT external_id FROM messages")] == ["1"]
    # the cursor never passes a message that is not stored: the connector resumes at "2"
    assert await pool.fetchval("SELECT value FROM channel_cursors WHERE key = 'offset'") == "1"
    page[1] = msg(ch, "2", sender="y", text="fixed", cursor=Cursor("offset", "2"))
    results = await ingest_many(pool, page)
    assert [r.created for r in results] == [False, True, True]
    assert await pool.fetchval("SELECT count(*) FROM messages") == 3
    assert await pool.fetchval("SELECT value FROM channel_cursors WHERE key = 'offset'") == "3"


async def test_a_batch_killed_before_commit_leaves_nothing_and_its_retry_stores_each_once(
    pool: asyncpg.Pool, database_url: str
) -> None:
    ch = await loopback_channel(pool)
    await ingest(pool, msg(ch, "0", sender="a"))
    page = [msg(ch, str(i), sender="ab"[i % 2], text=f"m{i}", cursor=Cursor("offset", str(i))) for i in range(1, 7)]
    await killed_before_commit(pool, database_url, lambda conn: ingest_together(conn, page))
    assert await pool.fetchval("SELECT count(*) FROM messages") == 1
    assert await pool.fetchval("SELECT count(*) FROM channel_cursors") == 0
    assert await pool.fetchval("SELECT count(*) FROM events WHERE type = 'message.created'") == 1
    # the connector restarts from its cursor (none) and hands the page again, twice over
    await asyncio.gather(ingest_many(pool, page), ingest_many(pool, page))
    rows = await pool.fetch("SELECT external_id, count(*) AS n FROM messages GROUP BY 1")
    assert {r["external_id"]: r["n"] for r in rows} == {str(i): 1 for i in range(7)}
    assert await pool.fetchval("SELECT count(*) FROM events WHERE type = 'message.created'") == 7
    assert await pool.fetchval("SELECT value FROM channel_cursors WHERE key = 'offset'") == "6"


async def test_a_message_in_a_batch_reopens_a_snoozed_conversation(pool: asyncpg.Pool) -> None:
    ch = await loopback_channel(pool)
    r = await ingest(pool, msg(ch, "1"))
    await pool.execute(
        "UPDATE conversations SET status = 'pending', snoozed_until = now() + interval '1 day', unread_count = 0"
        " WHERE id = $1",
        r.conversation_id,
    )
    again = await ingest_many(pool, [msg(ch, "2"), msg(ch, "3")])
    assert {a.conversation_id for a in again} == {r.conversation_id}
    row = await pool.fetchrow("SELECT status, snoozed_until, unread_count FROM conversations WHERE id = $1", r.conversation_id)
    assert (row["status"], row["snoozed_until"], row["unread_count"]) == ("open", None, 2)


async def test_a_sink_takes_a_page_of_its_own_channel_only(pool: asyncpg.Pool) -> None:
    ch = await loopback_channel(pool)
    other = await loopback_channel(pool, "other")
    sink = ChannelSink(pool, ch, PgBlobStore(pool, 1024))
    with pytest.raises(ValueError, match="handed to channel"):
        await sink.ingest_many([msg(ch, "1"), msg(other, "2")])
    assert await pool.fetchval("SELECT count(*) FROM messages") == 0
    results = await sink.ingest_many([msg(ch, "1", cursor=Cursor("ts", "a")), msg(ch, "2", cursor=Cursor("ts", "b"))])
    assert [r.created for r in results] == [True, True]
    assert await sink.cursor("ts") == "b"


async def test_a_known_sender_back_after_a_resolved_conversation_opens_one_new_conversation(pool: asyncpg.Pool) -> None:
    ch = await loopback_channel(pool)
    first = await ingest(pool, msg(ch, "1", sender="u1"))
    await ingest(pool, msg(ch, "x", sender="u2"))
    await pool.execute("UPDATE conversations SET status = 'resolved'")
    back = await ingest_many(pool, [msg(ch, "2", sender="u1", text="again"), msg(ch, "3", sender="u1", text="still")])
    assert back[0].conversation_id == back[1].conversation_id != first.conversation_id
    events = await pool.fetch("SELECT type, conversation_id, payload FROM events WHERE conversation_id = $1 ORDER BY id", back[0].conversation_id)
    assert [e["type"] for e in events] == ["conversation.created", "message.created", "message.created"]
    assert events[0]["payload"]["conversation"]["status"] == "open"
    assert await pool.fetchval("SELECT unread_count FROM conversations WHERE id = $1", back[0].conversation_id) == 2


async def test_first_time_senders_in_one_batch_get_a_card_each(pool: asyncpg.Pool) -> None:
    ch = await loopback_channel(pool)
    page = [
        msg(ch, "1", sender="n1", text="hi", raw={"page": "https://shop.example/pricing"}),
        msg(ch, "2", sender="n2", text="hello"),
        msg(ch, "3", sender="n1", text="anyone?"),
    ]
    r1, r2, r3 = await ingest_many(pool, page)
    assert r1.client_id == r3.client_id != r2.client_id
    assert r1.conversation_id == r3.conversation_id != r2.conversation_id
    card = await pool.fetchrow("SELECT name, first_touch FROM clients WHERE id = $1", r1.client_id)
    assert card["name"] == "User n1"
    assert card["first_touch"]["page"] == "https://shop.example/pricing" and card["first_touch"]["channel"] == "loopback"
    assert await pool.fetchval("SELECT count(*) FROM clients") == 2
    assert await pool.fetchval("SELECT count(*) FROM identities") == 2
    types = [r["type"] for r in await pool.fetch("SELECT type FROM events WHERE conversation_id = $1 ORDER BY id", r1.conversation_id)]
    assert types == ["conversation.created", "message.created", "message.created"]


async def test_concurrent_messages_of_one_sender_are_stored_in_the_order_they_came(pool: asyncpg.Pool) -> None:
    """A sender with messages in a shared transaction waits for it, so its next ones cannot overtake them."""
    ch = await loopback_channel(pool)
    results = await asyncio.gather(*(ingest(pool, msg(ch, f"m{i}", sender=("s", f"o{i}")[i % 2])) for i in range(40)))
    own = [r.message_id for i, r in enumerate(results) if i % 2 == 0]
    assert own == sorted(own)
    assert len({r.conversation_id for i, r in enumerate(results) if i % 2 == 0}) == 1
