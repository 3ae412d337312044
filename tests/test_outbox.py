"""Reply → outbox → dispatcher → channel: sent, retried, failed, retried by the agent."""

from __future__ import annotations

import asyncpg
import httpx

from hub.channels import add_channel
from hub.errors import PermanentFailure, RetryAfter, TemporaryFailure
from hub.outbox import backoff
from hub.types import InboundMessage, Sender
from inbox.ingest import ingest
from tests.conftest import RunningHub, login, make_agent, start_hub, wait_for
from tests.loopback import LoopbackConnector


async def conversation(pool: asyncpg.Pool, name: str = "loop") -> tuple[int, int]:
    ch = await add_channel(pool, kind="loopback", name=name, settings={}, secrets={})
    r = await ingest(pool, InboundMessage(channel_id=ch, external_id="in-1", sender=Sender("cust-7", "Customer"), text="help"))
    return ch, r.conversation_id


async def status_of(pool: asyncpg.Pool, message_id: int) -> str:
    value: str = await pool.fetchval("SELECT status FROM messages WHERE id = $1", message_id)
    return value


async def test_reply_is_sent_through_the_channel(hub: RunningHub, api: httpx.AsyncClient) -> None:
    ch, conv = await conversation(hub.pool)
    r = await api.post(f"/api/v1/conversations/{conv}/messages", json={"text": "On its way!"})
    assert r.status_code == 201, r.text
    message = r.json()
    assert message["status"] == "queued" and message["direction"] == "out"
    assert message["author"]["name"] == "Alice Admin"
    await wait_for(lambda: status_of(hub.pool, message["id"]), timeout=20)
    await wait_for(lambda: _is(hub.pool, message["id"], "sent"))
    sent = LoopbackConnector.sent[ch]
    assert [m.text for m in sent] == ["On its way!"]
    assert sent[0].recipient == "cust-7"
    assert sent[0].thread_refs == ("in-1",)
    assert await hub.pool.fetchval("SELECT external_id FROM messages WHERE id = $1", message["id"]) == f"loop-{message['id']}"
    assert await hub.pool.fetchval("SELECT count(*) FROM outbox") == 0


async def _is(pool: asyncpg.Pool, message_id: int, status: str) -> bool:
    return await status_of(pool, message_id) == status


async def test_retry_after_is_honoured_then_sent_once(hub: RunningHub, api: httpx.AsyncClient) -> None:
    ch, conv = await conversation(hub.pool)
    LoopbackConnector.outcomes[ch] = [RetryAfter("flood control", 1.0)]
    message = (await api.post(f"/api/v1/conversations/{conv}/messages", json={"text": "later"})).json()
    await wait_for(lambda: _is(hub.pool, message["id"], "sent"), timeout=20)
    first, second = LoopbackConnector.attempts[ch]
    assert second - first >= 0.95  # waited as asked
    assert len(LoopbackConnector.sent[ch]) == 1


async def test_temporary_failures_back_off_then_succeed(hub: RunningHub, api: httpx.AsyncClient) -> None:
    ch, conv = await conversation(hub.pool)
    LoopbackConnector.outcomes[ch] = [TemporaryFailure("connection reset"), TemporaryFailure("502 from API")]
    message = (await api.post(f"/api/v1/conversations/{conv}/messages", json={"text": "eventually"})).json()
    await wait_for(lambda: _is(hub.pool, message["id"], "sent"), timeout=30)
    times = LoopbackConnector.attempts[ch]
    assert len(times) == 3
    assert times[1] - times[0] >= 0.75  # ~1 s, jittered
    assert times[2] - times[1] >= 1.5  # ~2 s: the delay doubles


async def test_permanent_failure_is_visible_and_the_agent_can_retry(hub: RunningHub, api: httpx.AsyncClient) -> None:
    ch, conv = await conversation(hub.pool)
    LoopbackConnector.outcomes[ch] = [PermanentFailure("user blocked the bot")]
    message = (await api.post(f"/api/v1/conversations/{conv}/messages", json={"text": "hello?"})).json()
    await wait_for(lambda: _is(hub.pool, message["id"], "failed"))
    msgs = (await api.get(f"/api/v1/conversations/{conv}/messages")).json()["items"]
    failed = next(m for m in msgs if m["id"] == message["id"])
    assert failed["error"] == "user blocked the bot"
    card = (await api.get(f"/api/v1/clients/{msgs[0]['author']['id']}")).json()
    assert any(e["type"] == "message.failed" and e["data"]["reason"] == "user blocked the bot" for e in card["timeline"])
    # retrying a message that is not failed is refused
    other = (await api.post(f"/api/v1/conversations/{conv}/messages", json={"text": "second"})).json()
    await wait_for(lambda: _is(hub.pool, other["id"], "sent"))
    assert (await api.post(f"/api/v1/messages/{other['id']}/retry")).status_code == 409
    r = await api.post(f"/api/v1/messages/{message['id']}/retry")
    assert r.status_code == 200 and r.json()["status"] == "queued"
    await wait_for(lambda: _is(hub.pool, message["id"], "sent"))
    assert [m.text for m in LoopbackConnector.sent[ch]] == ["second", "hello?"]


async def test_gives_up_after_max_attempts(hub: RunningHub, api: httpx.AsyncClient) -> None:
    ch, conv = await conversation(hub.pool)
    message = (await api.post(f"/api/v1/conversations/{conv}/messages", json={"text": "x"})).json()
    await wait_for(lambda: _is(hub.pool, message["id"], "sent"))
    # a row that has used its attempts fails with the reason instead of retrying forever
    LoopbackConnector.outcomes[ch] = [TemporaryFailure("still down")]
    await hub.hub.outbox.stop()
    retry_me = (await api.post(f"/api/v1/conversations/{conv}/messages", json={"text": "y"})).json()
    await hub.pool.execute("UPDATE outbox SET attempts = 7 WHERE message_id = $1", retry_me["id"])
    await hub.hub.outbox.start()
    await wait_for(lambda: _is(hub.pool, retry_me["id"], "failed"))
    error = await hub.pool.fetchval("SELECT error FROM messages WHERE id = $1", retry_me["id"])
    assert "still down" in error and "gave up after 8 attempts" in error


def test_backoff_doubles_and_is_capped() -> None:
    assert 0.8 <= backoff(1) <= 1.2
    assert 3.2 <= backoff(3) <= 4.8
    assert backoff(30) <= 360


async def test_a_lease_left_by_a_dead_process_is_taken_over(hub: RunningHub, api: httpx.AsyncClient) -> None:
    ch, conv = await conversation(hub.pool)
    await hub.hub.outbox.stop()  # this process stops dispatching, as if another one had claimed the row and died
    message = (await api.post(f"/api/v1/conversations/{conv}/messages", json={"text": "orphan"})).json()
    await hub.pool.execute(
        "UPDATE outbox SET locked_until = now() + interval '1 second', attempts = 1 WHERE message_id = $1", message["id"]
    )
    await hub.hub.outbox.start()
    await wait_for(lambda: _is(hub.pool, message["id"], "sent"), timeout=20)
    assert len(LoopbackConnector.sent[ch]) == 1


async def test_a_reply_with_files_goes_out_with_its_attachments(database_url: str) -> None:
    async with start_hub(database_url, max_attachment_bytes=2000) as h:
        ch, conv = await conversation(h.pool)
        client = await login(h.base_url, await make_agent(h.pool))
        try:
            files = [("file", ("menu.pdf", b"%PDF-1.4 tiny", "application/pdf")), ("file", ("cup.png", b"\x89PNG...", "image/png"))]
            r = await client.post(f"/api/v1/conversations/{conv}/messages", data={"text": "Here you go"}, files=files)
            assert r.status_code == 201, r.text
            message = r.json()
            assert [(a["filename"], a["kind"]) for a in message["attachments"]] == [("menu.pdf", "document"), ("cup.png", "photo")]
            await wait_for(lambda: _is(h.pool, message["id"], "sent"))
            (sent,) = LoopbackConnector.sent[ch]
            assert [a.filename for a in sent.attachments] == ["menu.pdf", "cup.png"]
            download = await client.get(message["attachments"][0]["url"])
            assert download.content == b"%PDF-1.4 tiny"
            # only files, no text, is fine; a file over the limit is refused with the reason, nothing queued
            only_file = await client.post(f"/api/v1/conversations/{conv}/messages", files=[files[1]])
            assert only_file.status_code == 201
            big = await client.post(f"/api/v1/conversations/{conv}/messages", data={"text": "x"}, files=[("file", ("big.bin", b"0" * 3000, "application/octet-stream"))])
            assert big.status_code == 413 and "big.bin" in big.json()["error"]
            empty = await client.post(f"/api/v1/conversations/{conv}/messages", data={"text": " "})
            assert empty.status_code == 400
            assert await h.pool.fetchval("SELECT count(*) FROM messages WHERE direction = 'out'") == 2
        finally:
            await client.aclose()
