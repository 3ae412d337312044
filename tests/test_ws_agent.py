"""The live inbox feed: events arrive, and a reconnect resumes with no gap and no duplicate."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import asyncpg
import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

import hub.events as events_module
from hub import db
from hub.channels import add_channel
from hub.events import publish
from hub.types import InboundMessage, Sender
from inbox.ingest import ingest, ingest_many
from tests.conftest import RunningHub, wait_for


async def open_ws(hub: RunningHub, api: httpx.AsyncClient, last_event_id: int | None = None) -> tuple[ClientConnection, dict[str, Any]]:
    token = api.headers["Authorization"].split()[1]
    url = f"{hub.ws_url}/ws/agent?token={token}"
    if last_event_id is not None:
        url += f"&last_event_id={last_event_id}"
    ws = await connect(url)
    hello = json.loads(await ws.recv())
    assert hello["type"] == "hello"
    return ws, hello


async def recv_until(ws: ClientConnection, n: int, timeout: float = 5.0) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    async with asyncio.timeout(timeout):
        while len(events) < n:
            e = json.loads(await ws.recv())
            if "id" in e:
                events.append(e)
    return events


def inbound(ch: int, i: int, sender: str = "c1") -> InboundMessage:
    return InboundMessage(channel_id=ch, external_id=f"m{i}", sender=Sender(sender, "Client"), text=f"message {i}")


async def test_new_message_and_status_change_arrive_live(hub: RunningHub, api: httpx.AsyncClient) -> None:
    ch = await add_channel(hub.pool, kind="loopback", name="l", settings={}, secrets={})
    ws, _ = await open_ws(hub, api)
    r = await ingest(hub.pool, inbound(ch, 1))
    created, message = await recv_until(ws, 2)
    assert created["type"] == "conversation.created"
    assert message["type"] == "message.created"
    assert message["data"]["message"]["text"] == "message 1"
    assert message["data"]["conversation"]["id"] == r.conversation_id
    await api.post(f"/api/v1/conversations/{r.conversation_id}/status", json={"status": "resolved"})
    (status,) = await recv_until(ws, 1)
    assert status["type"] == "conversation.status"
    assert status["data"]["to"] == "resolved"
    assert status["actor"]["name"] == "Alice Admin"
    reply = (await api.post(f"/api/v1/conversations/{r.conversation_id}/messages", json={"text": "hi"})).json()
    queued, sent = await recv_until(ws, 2)
    assert queued["type"] == "message.created" and queued["data"]["message"]["status"] == "queued"
    assert sent["type"] == "message.status" and sent["data"]["message"] == {**sent["data"]["message"], "id": reply["id"], "status": "sent"}
    await ws.close()


async def test_resume_after_reconnect_has_no_gap_and_no_duplicate(hub: RunningHub, api: httpx.AsyncClient) -> None:
    ch = await add_channel(hub.pool, kind="loopback", name="l", settings={}, secrets={})
    ws, _ = await open_ws(hub, api)
    await ingest(hub.pool, inbound(ch, 1))
    seen = await recv_until(ws, 2)
    await ws.close()
    # while the agent is away
    for i in range(2, 6):
        await ingest(hub.pool, inbound(ch, i))
    ws, _ = await open_ws(hub, api, last_event_id=seen[-1]["id"])
    # and while it reconnects
    await ingest(hub.pool, inbound(ch, 6))
    rest = await recv_until(ws, 5)
    ids = [e["id"] for e in seen + rest]
    assert ids == sorted(set(ids)), "no duplicate, in order"
    texts = [e["data"]["message"]["text"] for e in seen + rest if e["type"] == "message.created"]
    assert texts == [f"message {i}" for i in range(1, 7)]
    all_ids = [r["id"] for r in await hub.pool.fetch("SELECT id FROM events ORDER BY id")]
    assert ids == all_ids, "no gap"
    await ws.close()


async def test_a_shared_ingest_transaction_arrives_whole_and_in_order(hub: RunningHub, api: httpx.AsyncClient) -> None:
    """Group commit: concurrent messages in one transaction reach the agent as one gap-free run of events."""
    ch = await add_channel(hub.pool, kind="loopback", name="l", settings={}, secrets={})
    ws, _ = await open_ws(hub, api)
    await asyncio.gather(ingest_many(hub.pool, [inbound(ch, i, sender=f"c{i % 3}") for i in range(1, 7)]),
                         *(ingest(hub.pool, inbound(ch, i, sender="c9")) for i in range(7, 10)))
    events = await recv_until(ws, 4 + 9)  # 4 conversations opened, 9 messages
    assert [e["id"] for e in events] == [r["id"] for r in await hub.pool.fetch("SELECT id FROM events ORDER BY id")]
    texts = [e["data"]["message"]["text"] for e in events if e["type"] == "message.created"]
    assert sorted(texts) == sorted(f"message {i}" for i in range(1, 10))
    for e in events:
        if e["type"] == "message.created":
            assert e["data"]["conversation"]["id"] == e["data"]["message"]["conversation_id"]
    await ws.close()


async def test_an_event_committed_late_is_not_skipped(hub: RunningHub, api: httpx.AsyncClient) -> None:
    """A transaction that took a lower event id but commits after a higher one: delivered in order, not lost."""
    ws, _ = await open_ws(hub, api)
    slow, tx, slow_id, fast_id = await slow_then_fast(hub)
    assert slow_id < fast_id
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.5):
            await ws.recv()  # the fast event waits for the slow one
    await tx.commit()
    await slow.close()
    events = await recv_until(ws, 2)
    assert [e["type"] for e in events] == ["test.slow", "test.fast"]
    await ws.close()


async def test_an_event_committed_after_the_feed_gave_up_waiting_is_delivered_late(
    hub: RunningHub, api: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past GAP_MAX_WAIT the feed moves on, but keeps watching the missing id: a late commit still arrives live."""
    monkeypatch.setattr(events_module, "GAP_MAX_WAIT", 1.0)
    ws, _ = await open_ws(hub, api)
    slow, tx, slow_id, fast_id = await slow_then_fast(hub)
    (fast,) = await recv_until(ws, 1, timeout=10)  # the feed stopped waiting for the slow id
    assert (fast["type"], fast["id"], fast.get("late")) == ("test.fast", fast_id, None)
    await tx.commit()
    await slow.close()
    (late,) = await recv_until(ws, 1, timeout=10)
    assert (late["type"], late["id"], late["late"]) == ("test.slow", slow_id, True)
    after = await publish_committed(hub.pool, "test.after")
    (event,) = await recv_until(ws, 1, timeout=10)
    assert (event["id"], event.get("late")) == (after, None)
    await ws.close()


async def test_a_rolled_back_event_id_does_not_stall_the_feed(hub: RunningHub, api: httpx.AsyncClient) -> None:
    ws, _ = await open_ws(hub, api)
    conn = await db.connect(hub.database_url)
    tx = conn.transaction()
    await tx.start()
    await publish(conn, "test.never", data={})
    await publish_committed(hub.pool, "test.after")
    await tx.rollback()
    await conn.close()
    (event,) = await recv_until(ws, 1, timeout=3)
    assert event["type"] == "test.after"
    await ws.close()


async def slow_then_fast(hub: RunningHub) -> tuple[asyncpg.Connection, Any, int, int]:
    """An event id taken by a transaction still open, then a higher one committed."""
    slow = await db.connect(hub.database_url)
    tx = slow.transaction()
    await tx.start()
    slow_id = await publish(slow, "test.slow", data={})
    return slow, tx, slow_id, await publish_committed(hub.pool, "test.fast")


async def publish_committed(pool: asyncpg.Pool, type: str) -> int:
    async with pool.acquire() as conn, conn.transaction():
        return await publish(conn, type, data={})


async def test_unauthenticated_socket_is_closed_with_4401(hub: RunningHub) -> None:
    ws = await connect(f"{hub.ws_url}/ws/agent")
    with pytest.raises(ConnectionClosed) as info:
        await ws.recv()
    assert info.value.rcvd is not None and info.value.rcvd.code == 4401


async def test_cookie_socket_from_another_origin_is_refused(hub: RunningHub, api: httpx.AsyncClient) -> None:
    token = api.headers["Authorization"].split()[1]
    ws = await connect(f"{hub.ws_url}/ws/agent", additional_headers={"Cookie": f"omnihub_session={token}"}, origin="https://evil.example")  # type: ignore[arg-type]
    with pytest.raises(ConnectionClosed) as info:
        await ws.recv()
    assert info.value.rcvd is not None and info.value.rcvd.code == 4403
    ok = await connect(f"{hub.ws_url}/ws/agent", additional_headers={"Cookie": f"omnihub_session={token}"}, origin=hub.base_url)  # type: ignore[arg-type]
    assert json.loads(await ok.recv())["type"] == "hello"
    await ok.close()


async def test_fanout_survives_a_database_connection_loss(hub: RunningHub, api: httpx.AsyncClient) -> None:
    ch = await add_channel(hub.pool, kind="loopback", name="l", settings={}, secrets={})
    ws, _ = await open_ws(hub, api)
    # cut every connection the hub holds, as a database restart would
    await hub.pool.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
    )
    await asyncio.sleep(0.3)
    await wait_for(lambda: ingest_ok(hub.pool, ch), timeout=10)
    events = await recv_until(ws, 2, timeout=10)
    assert events[-1]["type"] == "message.created"
    await ws.close()


async def ingest_ok(pool: asyncpg.Pool, ch: int) -> bool:
    try:
        await ingest(pool, inbound(ch, 99))
    except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError):
        return False
    return True


async def test_a_long_write_transaction_elsewhere_delays_a_gap_only_boundedly(
    hub: RunningHub, api: httpx.AsyncClient, pg_server_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """xmin is cluster-wide: a bulk job in another database must not freeze the live inbox."""
    monkeypatch.setattr(events_module, "GAP_MAX_WAIT", 1.0)
    ws, _ = await open_ws(hub, api)
    other = await asyncpg.connect(pg_server_url)
    bulk = other.transaction()
    await bulk.start()
    await other.fetchval("SELECT txid_current()")  # a write transaction that stays open
    try:
        conn = await db.connect(hub.database_url)
        tx = conn.transaction()
        await tx.start()
        await publish(conn, "test.never", data={})
        await tx.rollback()
        await conn.close()
        await publish_committed(hub.pool, "test.after")
        (event,) = await recv_until(ws, 1, timeout=5)
        assert event["type"] == "test.after"
    finally:
        await bulk.rollback()
        await other.close()
        await ws.close()
