"""The widget's websocket as a site visitor's browser speaks it."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import asyncpg
import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from connectors.widget import new_signing_key
from hub.channels import add_channel
from hub.types import InboundMessage, Sender
from inbox.ingest import ingest
from tests.conftest import RunningHub
from web.ws_widget import widget_file


async def widget_channel(pool: asyncpg.Pool, origins: list[str] | None = None) -> int:
    return await add_channel(
        pool, kind="widget", name="Site", settings={"origins": origins or []}, secrets={"signing_key": new_signing_key()}
    )


async def visit(hub: RunningHub, channel: int, token: str | None = None, origin: str | None = None) -> tuple[ClientConnection, dict[str, Any]]:
    url = f"{hub.ws_url}/ws/widget?channel={channel}" + (f"&token={token}" if token else "")
    ws = await connect(url, origin=origin)  # type: ignore[arg-type]
    session = json.loads(await ws.recv())
    assert session["type"] == "session", session
    return ws, session


async def next_of(ws: ClientConnection, kind: str, timeout: float = 5.0, direction: str | None = None) -> dict[str, Any]:
    async with asyncio.timeout(timeout):
        while True:
            msg = json.loads(await ws.recv())
            if msg["type"] == kind and (direction is None or msg["message"]["direction"] == direction):
                return msg


async def say(ws: ClientConnection, text: str, client_msg_id: str) -> dict[str, Any]:
    await ws.send(json.dumps({"type": "message", "client_msg_id": client_msg_id, "text": text}))
    return await next_of(ws, "ack")


async def test_visitor_writes_agent_answers_history_survives_reconnect(hub: RunningHub, api: httpx.AsyncClient) -> None:
    ch = await widget_channel(hub.pool)
    ws, session = await visit(hub, ch)
    assert session["messages"] == [] and session["conversation_id"] is None
    ack = await say(ws, "Do you ship to Kazan?", "c-1")
    assert ack["message"]["text"] == "Do you ship to Kazan?" and ack["message"]["direction"] == "in"

    convs = (await api.get("/api/v1/conversations?channel=widget")).json()["items"]
    assert len(convs) == 1
    conv = convs[0]["id"]
    await api.post(f"/api/v1/conversations/{conv}/messages", json={"text": "Yes, in 3 days."})
    reply = await next_of(ws, "message", direction="out")
    assert reply["message"]["text"] == "Yes, in 3 days." and reply["message"]["author_name"] == "Alice Admin"
    await ws.close()

    ws, again = await visit(hub, ch, token=session["token"])
    assert again["visitor_id"] == session["visitor_id"] and again["conversation_id"] == conv
    assert [m["text"] for m in again["messages"]] == ["Do you ship to Kazan?", "Yes, in 3 days."]
    await ws.close()


async def test_a_resent_message_is_stored_once(hub: RunningHub) -> None:
    ch = await widget_channel(hub.pool)
    ws, session = await visit(hub, ch)
    first = await say(ws, "hello", "same-id")
    await ws.close()
    ws, _ = await visit(hub, ch, token=session["token"])  # offline queue flushed after a reconnect
    second = await say(ws, "hello", "same-id")
    assert second["message"]["id"] == first["message"]["id"]
    assert await hub.pool.fetchval("SELECT count(*) FROM messages") == 1
    await ws.close()


async def test_two_visitors_never_see_each_other(hub: RunningHub, api: httpx.AsyncClient) -> None:
    ch = await widget_channel(hub.pool)
    ann, ann_session = await visit(hub, ch)
    bob, bob_session = await visit(hub, ch)
    await say(ann, "Ann's secret order 4471", "a1")
    await say(bob, "Bob here", "b1")
    convs = {c["client"]["name"]: c["id"] for c in (await api.get("/api/v1/conversations")).json()["items"]}
    assert len(convs) == 2
    ann_conv = await hub.pool.fetchval(
        "SELECT c.id FROM conversations c JOIN identities i ON i.id = c.identity_id WHERE i.external_id = $1", ann_session["visitor_id"]
    )
    await api.post(f"/api/v1/conversations/{ann_conv}/messages", json={"text": "Ann, your order ships today"})
    assert (await next_of(ann, "message", direction="out"))["message"]["text"] == "Ann, your order ships today"
    with pytest.raises(TimeoutError):
        await next_of(bob, "message", timeout=1.0, direction="out")
    # Bob's token cannot open Ann's history, and a forged token is refused
    b2, again = await visit(hub, ch, token=bob_session["token"])
    assert [m["text"] for m in again["messages"]] == ["Bob here"]
    forged = ann_session["visitor_id"] + "." + bob_session["token"].split(".")[1]
    ws = await connect(f"{hub.ws_url}/ws/widget?channel={ch}&token={forged}")
    with pytest.raises(ConnectionClosed) as info:
        await ws.recv()
    assert info.value.rcvd is not None and info.value.rcvd.code == 4401
    for w in (ann, bob, b2):
        await w.close()


async def test_private_notes_never_reach_the_visitor(hub: RunningHub, api: httpx.AsyncClient) -> None:
    ch = await widget_channel(hub.pool)
    ws, _ = await visit(hub, ch)
    ack = await say(ws, "hi", "1")
    conv = await hub.pool.fetchval("SELECT conversation_id FROM messages WHERE id = $1", ack["message"]["id"])
    await api.post(f"/api/v1/conversations/{conv}/notes", json={"text": "internal: refund approved"})
    await api.post(f"/api/v1/conversations/{conv}/messages", json={"text": "public answer"})
    seen = []
    async with asyncio.timeout(5):
        while not any(m.get("message", {}).get("text") == "public answer" for m in seen):
            seen.append(json.loads(await ws.recv()))
    assert "internal" not in json.dumps(seen)
    await ws.close()


async def test_origins_unknown_channels_and_bad_input(hub: RunningHub) -> None:
    ch = await widget_channel(hub.pool, origins=["https://shop.example"])
    ok, _ = await visit(hub, ch, origin="https://shop.example")
    await ok.send("not json")
    assert "JSON" in (await next_of(ok, "error"))["reason"]
    await ok.send(json.dumps({"type": "message", "client_msg_id": "x", "text": "y" * 10_001}))
    assert "longer than" in (await next_of(ok, "error"))["reason"]
    await ok.send(json.dumps({"type": "message", "text": "no id"}))
    assert "client_msg_id" in (await next_of(ok, "error"))["reason"]
    await ok.close()
    for url, code in [
        (f"/ws/widget?channel={ch}", 4403),  # no Origin from the allowed site
        ("/ws/widget?channel=999", 4404),
        ("/ws/widget", 4404),
    ]:
        ws = await connect(hub.ws_url + url, origin="https://evil.example")  # type: ignore[arg-type]
        with pytest.raises(ConnectionClosed) as info:
            await ws.recv()
        assert info.value.rcvd is not None and info.value.rcvd.code == code, url


async def test_message_flood_is_rate_limited(hub: RunningHub) -> None:
    ch = await widget_channel(hub.pool)
    ws, _ = await visit(hub, ch)
    answers = []
    for i in range(15):
        await ws.send(json.dumps({"type": "message", "client_msg_id": f"f{i}", "text": f"spam {i}"}))
    async with asyncio.timeout(10):
        while len(answers) < 15:
            answer = json.loads(await ws.recv())
            if answer["type"] in ("ack", "error"):
                answers.append(answer)
    limited = [a for a in answers if a["type"] == "error"]
    assert limited and all("slow down" in a["reason"] for a in limited)
    assert await hub.pool.fetchval("SELECT count(*) FROM messages") == 15 - len(limited)
    await ws.close()


async def test_prechat_email_links_the_visitor_to_the_known_client(hub: RunningHub, api: httpx.AsyncClient) -> None:
    mail = await add_channel(hub.pool, kind="loopback", name="mail", settings={}, secrets={})
    known = await ingest(hub.pool, InboundMessage(channel_id=mail, external_id="<1@x>", sender=Sender("olga@example.com", "Olga", email="olga@example.com"), text="invoice?"))
    ch = await widget_channel(hub.pool)
    ws, _ = await visit(hub, ch)
    await say(ws, "hi, it's me again", "1")
    await ws.send(json.dumps({"type": "identify", "name": "Olga K", "email": "Olga@example.com"}))
    await next_of(ws, "identified")
    card = (await api.get(f"/api/v1/clients/{known.client_id}")).json()
    assert {i["channel"]["kind"] for i in card["identities"]} == {"loopback", "widget"}
    assert len(card["conversations"]) == 2
    await ws.close()


async def test_agent_typing_reaches_the_visitor_and_keeps_the_feed_alive(hub: RunningHub, api: httpx.AsyncClient) -> None:
    ch = await widget_channel(hub.pool)
    ws, _ = await visit(hub, ch)
    bob, _ = await visit(hub, ch)  # another visitor, who must not see it and must keep his own feed
    ack = await say(ws, "hello?", "t1")
    bob_ack = await say(bob, "me too", "b1")
    conv = await hub.pool.fetchval("SELECT conversation_id FROM messages WHERE id = $1", ack["message"]["id"])
    bob_conv = await hub.pool.fetchval("SELECT conversation_id FROM messages WHERE id = $1", bob_ack["message"]["id"])
    token = api.headers["Authorization"].split()[1]
    agent = await connect(f"{hub.ws_url}/ws/agent?token={token}")
    await agent.recv()  # hello
    await agent.send(json.dumps({"type": "typing", "conversation_id": conv}))
    assert (await next_of(ws, "typing"))["agent"] == "Alice Admin"
    await api.post(f"/api/v1/conversations/{conv}/messages", json={"text": "yes, here"})
    assert (await next_of(ws, "message", direction="out"))["message"]["text"] == "yes, here"
    await api.post(f"/api/v1/conversations/{bob_conv}/messages", json={"text": "Bob, one moment"})
    bob_seen = await next_of(bob, "message", direction="out")
    assert bob_seen["message"]["text"] == "Bob, one moment"
    await agent.close()
    await ws.close()
    await bob.close()


async def test_file_links_work_for_their_visitor_and_are_rate_limited(hub: RunningHub) -> None:
    ch = await widget_channel(hub.pool)
    key = await hub.pool.fetchval("SELECT secrets->>'signing_key' FROM channels WHERE id = $1", ch)
    a = await hub.hub.blobs.put(b"%PDF-1.4 menu", filename="menu.pdf", content_type="application/pdf")
    url = widget_file(a.as_json(), ch, key, "visitor-1")["url"]
    async with httpx.AsyncClient(base_url=hub.base_url) as http:
        ok = await http.get(url)
        assert ok.status_code == 200 and ok.content == b"%PDF-1.4 menu"
        assert ok.headers["content-disposition"] == "attachment; filename*=UTF-8''menu.pdf"
        assert (await http.get(url.replace("v=visitor-1", "v=visitor-2"))).status_code == 403
        # A burst of 60 per address, then 2 a second: a scraper or a signature guesser is slowed down.
        codes = [(await http.get(url)).status_code for _ in range(70)]
    assert codes[:50] == [200] * 50 and 429 in codes[58:]
    assert set(codes) == {200, 429}
