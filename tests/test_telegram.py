"""Telegram connector against a local fake Bot API (tests/fakes/telegram_api.py)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import httpx
import pytest

from connectors.ratelimit import RateLimited, TokenBucket, acquire_all
from connectors.registry import CONNECTORS
from connectors.telegram import OFFSET_KEY, TelegramConnector, webhook_secret
from hub import db
from hub.channels import add_channel
from hub.errors import ChannelCheckError, ConfigError, PermanentFailure, RetryAfter, TemporaryFailure
from hub.types import Attachment, ChannelAccount, OutboundMessage
from tests.channel_helpers import conversations, hub_with_channel, messages_of, over, running
from tests.conftest import RunningHub, start_hub, wait_for
from tests.fakes.telegram_api import FakeBotAPI, until
from tests.hubproc import hub_process, omnihub
from tests.sinks import MemoryBlobs, MemorySink

_names = itertools.count()

# -- the fake itself speaks the Bot API wire format ----------------------------------


async def test_fake_get_updates_long_polls_and_confirms_by_offset() -> None:
    async with FakeBotAPI() as fake, aiohttp.ClientSession() as http:
        url = f"{fake.base_url}/bot{fake.token}/getUpdates"
        started = time.monotonic()
        async with http.post(url, data={"timeout": "1"}) as r:
            assert (r.status, await r.json()) == (200, {"ok": True, "result": []})
        assert 0.9 < time.monotonic() - started < 3

        async def push_soon() -> int:
            await asyncio.sleep(0.3)
            return fake.push_update(message=fake.message(1, "late"))

        pusher = asyncio.create_task(push_soon())
        started = time.monotonic()
        async with http.get(url, params={"timeout": "20"}) as r:
            body = await r.json()
        first = await pusher
        assert time.monotonic() - started < 2  # answered when the update came, not after 20 s
        assert [u["update_id"] for u in body["result"]] == [first]
        assert body["result"][0]["message"]["text"] == "late"

        second = fake.push_update(message=fake.message(1, "next"))
        async with http.post(url, json={"offset": first + 1}) as r:  # confirms `first`
            assert [u["update_id"] for u in (await r.json())["result"]] == [second]
        async with http.post(url, json={"offset": -1}) as r:
            assert [u["update_id"] for u in (await r.json())["result"]] == [second]
        async with http.post(f"{fake.base_url}/bot1:wrong/getMe") as r:
            assert (r.status, await r.json()) == (401, {"ok": False, "error_code": 401, "description": "Unauthorized"})
        fake.too_many_requests("getMe", retry_after=7)
        async with http.post(f"{fake.base_url}/bot{fake.token}/getMe") as r:
            assert r.status == 429 and (await r.json())["parameters"] == {"retry_after": 7}


# -- a sink in memory, for the connector on its own -----------------------------


@pytest.fixture
async def fake() -> AsyncIterator[FakeBotAPI]:
    async with FakeBotAPI() as api:
        yield api


def make_account(fake: FakeBotAPI, channel_id: int = 7, **settings: Any) -> ChannelAccount:
    return ChannelAccount(
        id=channel_id,
        kind="telegram",
        name="support bot",
        settings={"api_base": fake.base_url, "mode": "polling", "poll_timeout": 1, **settings},
        secrets={"token": fake.token},
    )


def outbound(
    chat_id: int, text: str, *, message_id: int = 1, attachments: tuple[Attachment, ...] = ()
) -> OutboundMessage:
    return OutboundMessage(
        message_id=message_id,
        channel_id=7,
        conversation_id=1,
        recipient=str(chat_id),
        text=text,
        attachments=attachments,
    )


def blocked_update(chat_id: int, bot_id: int) -> dict[str, Any]:
    bot = {"id": bot_id, "is_bot": True, "first_name": "B"}
    return {
        "chat": {"id": chat_id, "type": "private", "first_name": "A"},
        "from": {"id": chat_id, "is_bot": False, "first_name": "A"},
        "date": int(time.time()),
        "old_chat_member": {"status": "member", "user": bot},
        "new_chat_member": {"status": "kicked", "until_date": 0, "user": bot},
    }


# -- inbound -----------------------------------------------------------------------


async def test_registered_for_kind_telegram() -> None:
    assert CONNECTORS["telegram"] is TelegramConnector


async def test_text_message_is_ingested_with_its_offset(fake: FakeBotAPI) -> None:
    sink = MemorySink()
    msg = fake.push_message(501, "Hello, I need help", first_name="Anna", last_name="K", username="anna_k")
    async with running(TelegramConnector(make_account(fake)), sink):
        await until(lambda: sink.messages, what="the message")
        await until(lambda: not fake.pending(), what="the offset to be confirmed")
    stored = sink.messages[f"501:{msg['message_id']}"]
    assert stored.text == "Hello, I need help"
    assert stored.channel_id == 7
    assert (stored.sender.external_id, stored.sender.display_name, stored.sender.username) == (
        "501",
        "Anna K",
        "anna_k",
    )
    assert stored.sent_at is not None and abs(stored.sent_at.timestamp() - msg["date"]) < 1
    assert stored.cursor is not None and stored.cursor.key == OFFSET_KEY
    polled = [p["offset"] for m, p in fake.calls if m == "getupdates" and "offset" in p]
    assert sink.cursors[OFFSET_KEY] == polled[-1]


async def test_restart_resumes_from_the_stored_offset(fake: FakeBotAPI) -> None:
    sink = MemorySink()
    fake.push_message(501, "one")
    async with running(TelegramConnector(make_account(fake)), sink):
        await until(lambda: len(sink.messages) == 1, what="first message")
    fake.push_message(501, "two")
    before = len(fake.calls)
    async with running(TelegramConnector(make_account(fake)), sink):
        await until(lambda: len(sink.messages) == 2, what="second message")
    first_poll = next(p for m, p in fake.calls[before:] if m == "getupdates")
    assert first_poll["offset"] == str(int(sink.cursors[OFFSET_KEY]) - 1)
    assert sorted(m.text for m in sink.messages.values()) == ["one", "two"]
    assert sink.ingest_calls == 2


async def test_every_attachment_kind_is_downloaded(fake: FakeBotAPI) -> None:
    sink = MemorySink()
    blobs = {
        k: f"{k} bytes".encode() * 50 for k in ("photo", "document", "voice", "video", "video_note", "sticker", "audio")
    }
    small_photo = fake.add_file(b"thumb", path_hint="photos/small")
    fake.push_message(
        9,
        caption="see photo",
        photo=[
            {**small_photo, "width": 90, "height": 90},
            {**fake.add_file(blobs["photo"], path_hint="photos/big"), "width": 800, "height": 600},
        ],
    )
    fake.push_message(
        9, document={**fake.add_file(blobs["document"]), "file_name": "invoice.pdf", "mime_type": "application/pdf"}
    )
    fake.push_message(
        9, voice={**fake.add_file(blobs["voice"], path_hint="voice/v"), "duration": 3, "mime_type": "audio/ogg"}
    )
    fake.push_message(
        9, video={**fake.add_file(blobs["video"], path_hint="videos/v"), "width": 1, "height": 1, "duration": 1}
    )
    fake.push_message(
        9, video_note={**fake.add_file(blobs["video_note"], path_hint="video_notes/v"), "length": 1, "duration": 1}
    )
    fake.push_message(
        9,
        sticker={
            **fake.add_file(blobs["sticker"], path_hint="stickers/s"),
            "type": "regular",
            "width": 512,
            "height": 512,
            "is_animated": False,
            "is_video": False,
        },
    )
    fake.push_message(
        9,
        audio={
            **fake.add_file(blobs["audio"], path_hint="music/a"),
            "duration": 1,
            "file_name": "song.mp3",
            "mime_type": "audio/mpeg",
        },
    )
    fake.push_message(9, location={"latitude": 55.7558, "longitude": 37.6173})
    async with running(TelegramConnector(make_account(fake)), sink):
        await until(lambda: len(sink.messages) == 8, what="eight messages")
    by_kind = {m.attachments[0].kind: m for m in sink.messages.values() if m.attachments}
    assert set(by_kind) == set(blobs)
    for kind, data in blobs.items():
        att = by_kind[kind].attachments[0]
        assert sink.blobs.data[att.sha256] == data, kind
        assert att.size == len(data)
    assert by_kind["photo"].text == "see photo"
    assert by_kind["document"].attachments[0].filename == "invoice.pdf"
    assert by_kind["document"].attachments[0].content_type == "application/pdf"
    assert by_kind["voice"].attachments[0].content_type == "audio/ogg"
    assert by_kind["sticker"].attachments[0].content_type == "image/webp"
    location = next(m for m in sink.messages.values() if "location" in m.flags)
    assert "55.7558, 37.6173" in location.text
    assert not location.attachments


async def test_file_over_the_limit_keeps_the_message_with_a_note(fake: FakeBotAPI) -> None:
    sink = MemorySink()
    huge = fake.add_file(b"pretend this is 25 MB", declared_size=25 * 1024 * 1024)
    over_ours = fake.add_file(b"x" * 2048)
    fake.push_message(3, caption="the contract", document={**huge, "file_name": "contract.pdf"})
    fake.push_message(3, document={**over_ours, "file_name": "big.bin"})
    huge_no_size = {k: v for k, v in fake.add_file(b"y", declared_size=21 * 1024 * 1024).items() if k != "file_size"}
    fake.push_message(3, document={**huge_no_size, "file_name": "nosize.bin"})
    liar = fake.add_file(b"z" * 5000, declared_size=10)  # getFile says 10 bytes, the download is bigger
    fake.push_message(3, document={**liar, "file_name": "liar.bin"})
    fake.push_message(3, document={"file_id": "gone", "file_unique_id": "gone", "file_name": "gone.bin"})
    async with running(TelegramConnector(make_account(fake, max_file_size=1024)), sink):
        await until(lambda: len(sink.messages) == 5, what="five messages")
    texts = sorted(m.text for m in sink.messages.values())
    assert "[document liar.bin not downloaded: larger than the 1 KB limit]" in texts
    assert "[document gone.bin not downloaded: Bad Request: invalid file_id]" in texts
    assert all(not m.attachments and "attachment_missing" in m.flags for m in sink.messages.values())
    assert "the contract\n[document contract.pdf not downloaded: Telegram lets bots download at most 20 MB]" in texts
    assert "[document big.bin not downloaded: larger than the 1 KB limit]" in texts
    assert "[document nosize.bin not downloaded: Telegram lets bots download at most 20 MB]" in texts


async def test_unknown_and_broken_updates_are_kept_raw_and_the_loop_goes_on(fake: FakeBotAPI) -> None:
    sink = MemorySink()
    fake.push_update(some_future_update={"id": 1, "what": "new in Bot API 99"})
    fake.push_update(message={"message_id": 5, "text": "no chat, no date"})
    fake.push_update(
        callback_query={"id": "1", "from": {"id": 4, "is_bot": False, "first_name": "A"}, "chat_instance": "x"}
    )
    last = fake.push_message(4, "still here")
    async with running(TelegramConnector(make_account(fake)), sink):
        await until(lambda: sink.messages, what="the message after the bad updates")
    assert [m.text for m in sink.messages.values()] == ["still here"]
    reasons = [reason for _, reason, _ in sink.raw]
    assert reasons[0] == "unhandled update type some_future_update"
    assert reasons[1].startswith("update does not parse")
    assert reasons[2] == "unhandled update type callback_query"
    assert sink.raw[0][2]["some_future_update"]["what"] == "new in Bot API 99"
    assert sink.messages[f"4:{last['message_id']}"].cursor is not None


async def test_groups_are_ignored_unless_allowed(fake: FakeBotAPI) -> None:
    sink = MemorySink()
    fake.push_message(-100, "hi all", chat_type="supergroup", title="Partners", user_id=77, first_name="Oleg")
    async with running(TelegramConnector(make_account(fake)), sink):
        await until(lambda: not fake.pending(), what="the group update to be confirmed")
    assert not sink.messages and not sink.raw
    assert OFFSET_KEY in sink.cursors

    fake.push_message(-100, "hi again", chat_type="supergroup", title="Partners", user_id=77, first_name="Oleg")
    async with running(TelegramConnector(make_account(fake, allow_groups=True)), sink):
        await until(lambda: sink.messages, what="the group message")
    (msg,) = sink.messages.values()
    assert msg.sender.external_id == "-100" and msg.sender.display_name == "Partners"
    assert msg.text == "Oleg: hi again" and "group" in msg.flags


async def test_edits_replies_contacts_and_start_payload(fake: FakeBotAPI) -> None:
    sink = MemorySink()
    start = fake.push_message(8, "/start promo-42")
    original = fake.push_message(8, "my order is 123")
    fake.push_update(edited_message={**original, "text": "my order is 124", "edit_date": original["date"] + 5})
    fake.push_message(8, "about that", reply_to_message=original)
    fake.push_message(8, contact={"phone_number": "+79990001122", "first_name": "Ivan", "user_id": 8})
    fake.push_message(8, contact={"phone_number": "+70000000000", "first_name": "My friend", "user_id": 99})
    async with running(TelegramConnector(make_account(fake)), sink):
        await until(lambda: len(sink.messages) == 5 and len(sink.edits) == 1, what="five messages and an edit")
    first = sink.messages[f"8:{start['message_id']}"]
    assert "start" in first.flags and first.raw["start_payload"] == "promo-42"
    (edit,) = sink.edits
    assert edit.external_id == f"8:{original['message_id']}"  # the original's id: ingest updates it in place
    assert edit.text == "my order is 124" and "edited" in edit.flags
    reply = next(m for m in sink.messages.values() if m.text == "about that")
    assert reply.thread_refs == (f"8:{original['message_id']}",)
    own, other = (m for m in sink.messages.values() if "contact" in m.flags)
    assert own.sender.phone == "+79990001122" and "+79990001122" in own.text
    assert other.sender.phone == "" and "+70000000000" in other.text
    assert [(who, kind) for who, kind, _ in sink.events] == [("8", "telegram.start"), ("8", "telegram.contact_shared")]


async def test_blocking_the_bot_is_reported_for_the_client_card(fake: FakeBotAPI) -> None:
    sink = MemorySink()
    fake.push_update(my_chat_member=blocked_update(12, fake.bot_id))
    async with running(TelegramConnector(make_account(fake)), sink):
        await until(lambda: sink.events, what="the event")
    assert [(who, kind) for who, kind, _ in sink.events] == [("12", "telegram.bot_blocked")]


async def test_polling_removes_our_old_webhook_but_not_someone_elses(fake: FakeBotAPI) -> None:
    sink = MemorySink()
    fake.webhook_url = "https://hub.example.com/hooks/telegram/7"  # left by this channel in webhook mode
    fake.push_message(5, "after the switch")
    async with running(TelegramConnector(make_account(fake)), sink):
        await until(lambda: sink.messages, what="a message by polling")
    assert fake.webhook_url == ""

    fake.webhook_url = "https://other.example/telegram"
    connector = TelegramConnector(make_account(fake))
    try:
        with pytest.raises(
            ConfigError, match=r"a webhook is set to https://other\.example/telegram by another program"
        ):
            await asyncio.wait_for(connector.run(sink), 10)
    finally:
        await connector.close()
    assert fake.webhook_url == "https://other.example/telegram"


async def test_network_errors_do_not_stop_polling(fake: FakeBotAPI) -> None:
    sink = MemorySink()
    fake.fail_next("getUpdates", status=502, description="Bad Gateway", times=1)
    fake.push_message(5, "made it")
    async with running(TelegramConnector(make_account(fake)), sink) as task:
        await until(lambda: sink.messages, within=15, what="the message after a 502")
        assert not task.done()


# -- outbound ------------------------------------------------------------------------


async def test_reply_reaches_the_chat_verbatim(fake: FakeBotAPI) -> None:
    fake.known_chats.add(42)
    connector = TelegramConnector(make_account(fake))
    try:
        text = "Price: <b>5*2_0</b> [link](x) & \\ `code`"
        result = await connector.send(outbound(42, text), MemoryBlobs())
    finally:
        await connector.close()
    (sent,) = fake.sent
    assert (sent.method, sent.chat_id, sent.text, sent.parse_mode) == ("sendMessage", 42, text, None)
    assert result.external_id == f"42:{sent.message_id}"


async def test_long_text_is_split(fake: FakeBotAPI) -> None:
    fake.known_chats.add(42)
    connector = TelegramConnector(make_account(fake))
    try:
        await connector.send(outbound(42, "a" * 5000), MemoryBlobs())
    finally:
        await connector.close()
    assert [len(s.text) for s in fake.sent] == [4096, 904]


async def test_photo_and_document_are_uploaded(fake: FakeBotAPI) -> None:
    fake.known_chats.add(42)
    blobs = MemoryBlobs()
    photo = await blobs.put(b"\xff\xd8jpeg", filename="shot.jpg", content_type="image/jpeg", kind="photo")
    doc = await blobs.put(b"%PDF-1.4", filename="terms.pdf", content_type="application/pdf", kind="document")
    connector = TelegramConnector(make_account(fake))
    try:
        await connector.send(outbound(42, "here you go", attachments=(photo, doc)), blobs)
    finally:
        await connector.close()
    assert [(s.method, s.filename, s.data, s.caption) for s in fake.sent] == [
        ("sendPhoto", "shot.jpg", b"\xff\xd8jpeg", "here you go"),
        ("sendDocument", "terms.pdf", b"%PDF-1.4", ""),
    ]


async def test_429_becomes_retry_after_and_a_retry_sends_each_part_once(fake: FakeBotAPI) -> None:
    fake.known_chats.add(42)
    blobs = MemoryBlobs()
    doc = await blobs.put(b"data", filename="a.txt", content_type="text/plain")
    fake.too_many_requests("sendDocument", retry_after=3)
    connector = TelegramConnector(make_account(fake))
    message = outbound(42, "x" * 2000, attachments=(doc,), message_id=55)
    try:
        with pytest.raises(RetryAfter) as caught:
            await connector.send(message, blobs)
        assert caught.value.seconds == 3
        assert [s.method for s in fake.sent] == ["sendMessage"]
        connector._chat_limiter.bucket(42)._paused_until = 0  # the outbox waited the 3 s
        await connector.send(message, blobs)
    finally:
        await connector.close()
    assert [s.method for s in fake.sent] == ["sendMessage", "sendDocument"]


async def test_delivery_errors_are_typed(fake: FakeBotAPI) -> None:
    fake.known_chats.update({1, 2, 3})
    fake.blocked_chats.add(1)
    connector = TelegramConnector(make_account(fake))
    try:
        with pytest.raises(PermanentFailure, match="user blocked the bot"):
            await connector.send(outbound(1, "hi"), MemoryBlobs())
        fake.fail_next("sendMessage", status=502, description="Bad Gateway")
        with pytest.raises(TemporaryFailure, match="Bad Gateway"):
            await connector.send(outbound(2, "hi"), MemoryBlobs())
        with pytest.raises(PermanentFailure, match="chat not found"):
            await connector.send(outbound(404, "hi"), MemoryBlobs())
        with pytest.raises(PermanentFailure, match="not a Telegram chat id"):
            await connector.send(dataclasses.replace(outbound(0, "hi"), recipient="abc"), MemoryBlobs())
    finally:
        await connector.close()
    assert fake.sent == []


async def test_unreachable_api_is_a_temporary_failure(fake: FakeBotAPI) -> None:
    account = make_account(fake)
    account = ChannelAccount(
        account.id, account.kind, account.name, {**account.settings, "api_base": "http://127.0.0.1:9"}, account.secrets
    )
    connector = TelegramConnector(account)
    try:
        with pytest.raises(TemporaryFailure, match="Telegram unavailable"):
            await connector.send(outbound(1, "hi"), MemoryBlobs())
    finally:
        await connector.close()


async def test_per_chat_rate_limit_spaces_a_burst(fake: FakeBotAPI) -> None:
    fake.known_chats.update({42, 43})
    connector = TelegramConnector(make_account(fake))
    try:
        started = time.monotonic()
        await asyncio.gather(*(connector.send(outbound(42, f"m{i}", message_id=i), MemoryBlobs()) for i in range(5)))
        await connector.send(outbound(43, "other chat", message_id=99), MemoryBlobs())
    finally:
        await connector.close()
    at = [s.at - started for s in fake.sent]
    assert max(at[:3]) < 0.5  # the burst goes at once
    assert 1.8 < at[4] < 3.0  # then one a second
    assert at[5] < at[4] + 0.5


def test_token_bucket() -> None:
    now = [0.0]
    bucket = TokenBucket(1.0, 2.0, clock=lambda: now[0])
    assert bucket.take() == 0 and bucket.take() == 0
    assert bucket.delay() == pytest.approx(1.0)
    now[0] = 0.5
    assert bucket.delay() == pytest.approx(0.5)
    now[0] = 10
    bucket.pause(4)
    assert bucket.delay() == pytest.approx(4)


async def test_acquire_all_takes_nothing_when_it_would_wait_too_long() -> None:
    chat, bot = TokenBucket(1.0, 1.0), TokenBucket(100.0, 100.0)
    await acquire_all([chat, bot], max_wait=0.1)
    with pytest.raises(RateLimited) as caught:
        await acquire_all([chat, bot], max_wait=0.1)
    assert 0.5 < caught.value.delay <= 1.0
    assert bot.delay() == 0 and bot._full_at - time.monotonic() < 0.02  # one token taken, not two


# -- channel add --------------------------------------------------------------------


async def test_check_returns_the_bot_username(fake: FakeBotAPI) -> None:
    assert await TelegramConnector.check(make_account(fake)) == {
        "bot_username": "omnihub_test_bot",
        "bot_id": fake.bot_id,
    }


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"secrets": {"token": "123:wrong"}}, "refused the bot token"),
        ({"secrets": {"token": "not a token"}}, "does not look like a bot token"),
        ({"secrets": {}}, "token is required"),
        ({"api_base": "http://127.0.0.1:9"}, "cannot reach the Bot API"),
        ({"mode": "webhook"}, "needs --public-url"),
        ({"mode": "carrier-pigeon"}, "unknown Telegram mode"),
    ],
)
async def test_check_explains_what_is_wrong(fake: FakeBotAPI, change: dict[str, Any], message: str) -> None:
    account = make_account(fake)
    secrets = change.pop("secrets", account.secrets)
    account = ChannelAccount(account.id, "telegram", "bot", {**account.settings, **change}, secrets)
    with pytest.raises(ChannelCheckError, match=message):
        await TelegramConnector.check(account)


async def test_check_refuses_a_webhook_set_by_another_program(fake: FakeBotAPI) -> None:
    fake.webhook_url = "https://elsewhere.example/bot"
    with pytest.raises(ChannelCheckError, match=r"already has a webhook set to https://elsewhere\.example/bot"):
        await TelegramConnector.check(make_account(fake))


async def test_check_in_webhook_mode_sets_the_webhook_with_a_secret(fake: FakeBotAPI) -> None:
    account = make_account(fake, mode="webhook", public_url="https://hub.example.com/")
    await TelegramConnector.check(account)
    assert fake.webhook_url == "https://hub.example.com/hooks/telegram/7"
    assert fake.webhook_secret == webhook_secret(account) and len(fake.webhook_secret) >= 32


# -- the whole hub: store, inbox API, outbox, supervisor ------------------------------


async def add_telegram_channel(pool: asyncpg.Pool, fake: FakeBotAPI, **settings: Any) -> int:
    return await add_channel(
        pool,
        kind="telegram",
        name=f"tg-{next(_names)}",
        settings={"api_base": fake.base_url, "mode": "polling", "poll_timeout": 1, **settings},
        secrets={"token": fake.token},
    )


def hub_with_telegram(
    database_url: str, fake: FakeBotAPI, **settings: Any
) -> contextlib.AbstractAsyncContextManager[tuple[RunningHub, httpx.AsyncClient, int]]:
    return hub_with_channel(database_url, lambda pool: add_telegram_channel(pool, fake, **settings))


async def test_message_in_reaches_the_inbox_and_the_client_card_and_a_reply_goes_back(
    database_url: str, fake: FakeBotAPI
) -> None:
    async with hub_with_telegram(database_url, fake) as (_hub, client, _channel_id):
        fake.push_message(501, "Where is my order?", first_name="Anna", last_name="K", username="anna_k")
        (conv,) = await wait_for(lambda: conversations(client), timeout=15)
        assert conv["channel"]["kind"] == "telegram" and conv["client"]["name"] == "Anna K"
        (inbound,) = await messages_of(client, conv["id"])
        assert (inbound["direction"], inbound["text"]) == ("in", "Where is my order?")

        r = await client.get(f"/api/v1/clients/{conv['client_id']}")
        card = r.json()
        assert [(i["external_id"], i["username"]) for i in card["identities"]] == [("501", "anna_k")]
        assert [c["id"] for c in card["conversations"]] == [conv["id"]]

        r = await client.post(
            f"/api/v1/conversations/{conv['id']}/messages", json={"text": "It ships <today> *for sure*"}
        )
        assert r.status_code == 201, r.text
        reply_id = r.json()["id"]
        await until(lambda: fake.sent, what="the reply at the fake Bot API")
        (sent,) = fake.sent
        assert (sent.chat_id, sent.text) == (501, "It ships <today> *for sure*")

        async def reply_sent() -> bool:
            return any(m["id"] == reply_id and m["status"] == "sent" for m in await messages_of(client, conv["id"]))

        await wait_for(reply_sent, timeout=10)


async def test_429_is_sent_after_the_delay_exactly_once(database_url: str, fake: FakeBotAPI) -> None:
    async with hub_with_telegram(database_url, fake) as (_hub, client, _channel_id):
        fake.push_message(77, "hi")
        (conv,) = await wait_for(lambda: conversations(client), timeout=15)
        fake.too_many_requests("sendMessage", retry_after=2)
        asked = time.monotonic()
        r = await client.post(f"/api/v1/conversations/{conv['id']}/messages", json={"text": "answer"})
        assert r.status_code == 201
        await until(lambda: fake.sent, within=15, what="the reply after retry_after")
        assert fake.sent[0].at - asked >= 2.0
        await asyncio.sleep(1.5)
        assert [(s.chat_id, s.text) for s in fake.sent] == [(77, "answer")]
        assert sum(1 for m, p in fake.calls if m == "sendmessage") == 2  # the refused one and the one that went
        (reply,) = [m for m in await messages_of(client, conv["id"]) if m["direction"] == "out"]
        assert reply["status"] == "sent"


async def test_a_user_who_blocked_the_bot_fails_the_reply_with_the_reason(database_url: str, fake: FakeBotAPI) -> None:
    async with hub_with_telegram(database_url, fake) as (_hub, client, _channel_id):
        fake.push_message(88, "hi")
        (conv,) = await wait_for(lambda: conversations(client), timeout=15)
        fake.blocked_chats.add(88)
        r = await client.post(f"/api/v1/conversations/{conv['id']}/messages", json={"text": "are you there?"})
        reply_id = r.json()["id"]

        async def failed() -> list[dict[str, Any]]:
            return [m for m in await messages_of(client, conv["id"]) if m["id"] == reply_id and m["status"] == "failed"]

        (reply,) = await wait_for(failed, timeout=10)
        assert reply["error"] == "user blocked the bot"
        assert fake.sent == []

        fake.push_update(my_chat_member=blocked_update(88, fake.bot_id))

        async def card_events() -> list[tuple[str, str]]:
            r = await client.get(f"/api/v1/clients/{conv['client_id']}")
            timeline = r.json()["timeline"]
            return [
                (e["type"], e["data"].get("reason") or e["data"].get("event"))
                for e in timeline
                if e["type"] in ("message.failed", "channel.event")
            ]

        events = await wait_for(lambda: _at_least(2, card_events()), timeout=10)
        assert events == [("message.failed", "user blocked the bot"), ("channel.event", "telegram.bot_blocked")]


async def test_attachments_and_unknown_updates_in_the_store(database_url: str, fake: FakeBotAPI) -> None:
    photo = b"\xff\xd8\xff" + bytes(range(256)) * 40
    async with hub_with_telegram(database_url, fake) as (hub, client, channel_id):
        fake.push_update(brand_new_update_type={"x": 1})
        fake.push_message(
            66,
            caption="broken screen",
            photo=[{**fake.add_file(photo, path_hint="photos/p"), "width": 10, "height": 10}],
        )
        fake.push_message(66, contact={"phone_number": "+79991234567", "first_name": "Petr", "user_id": 66})
        (conv,) = await wait_for(lambda: conversations(client), timeout=15)
        msgs = await wait_for(lambda: _at_least(2, messages_of(client, conv["id"])), timeout=10)
        att = msgs[0]["attachments"][0]
        assert (msgs[0]["text"], att["kind"], att["size"]) == ("broken screen", "photo", len(photo))
        r = await client.get(f"/api/v1/blobs/{att['sha256']}")
        assert r.status_code == 200 and r.content == photo
        raw = await hub.pool.fetch("SELECT kind, reason, payload FROM raw_inbound WHERE channel_id = $1", channel_id)
        assert [(row["kind"], row["reason"]) for row in raw] == [
            ("telegram.update", "unhandled update type brand_new_update_type")
        ]
        assert raw[0]["payload"]["brand_new_update_type"] == {"x": 1}
        assert msgs[1]["text"] == "Shared contact: Petr +79991234567"
        card = (await client.get(f"/api/v1/clients/{conv['client_id']}")).json()
        shared = [e["data"] for e in card["timeline"] if e["type"] == "channel.event"]
        assert shared and shared[0]["event"] == "telegram.contact_shared" and shared[0]["phone"] == "+79991234567"


async def _at_least(n: int, items: Any) -> Any:
    values = await items
    return values if len(values) >= n else None


async def test_webhook_with_a_wrong_secret_is_refused_and_stores_nothing(database_url: str, fake: FakeBotAPI) -> None:
    async with start_hub(database_url) as hub:
        channel_id = await add_telegram_channel(hub.pool, fake, mode="webhook", public_url=hub.base_url)
        await until(lambda: fake.webhook_url, within=15, what="the hub to register its webhook")
        assert fake.webhook_url == f"{hub.base_url}/hooks/telegram/{channel_id}"
        update = {"update_id": 1, "message": fake.message(5, "forged")}
        async with httpx.AsyncClient() as http:
            for headers in ({}, {"X-Telegram-Bot-Api-Secret-Token": "guess"}):
                r = await http.post(fake.webhook_url, json=update, headers=headers)
                assert r.status_code == 401, r.text
            # Telegram itself, with the secret it was given: stored once even when delivered twice.
            real = fake.push_message(5, "real one")
            await until(lambda: fake.webhook_deliveries, within=10, what="a webhook delivery")
            secret = {"X-Telegram-Bot-Api-Secret-Token": fake.webhook_secret}
            again = {"update_id": 2, "message": real}
            r = await http.post(fake.webhook_url, json=again, headers=secret)
            assert r.status_code == 200
        texts = await hub.pool.fetch("SELECT text FROM messages WHERE channel_id = $1", channel_id)
        assert [t["text"] for t in texts] == ["real one"]
        assert await hub.pool.fetchval("SELECT count(*) FROM raw_inbound") == 0
        assert fake.webhook_deliveries[0][1] == 200


async def test_channel_add_checks_the_token(database_url: str, fake: FakeBotAPI) -> None:
    code, out = await omnihub(
        database_url, "channel", "add", "telegram", "--name", "bad", "--token", "123:nope", "--api-base", fake.base_url
    )
    assert code != 0 and "refused the bot token" in out and len(out.strip().splitlines()) == 1, out
    code, out = await omnihub(
        database_url, "channel", "add", "telegram", "--name", "good", "--token", fake.token, "--api-base", fake.base_url
    )
    assert code == 0, out
    async with db.open_pool(database_url, min_size=1, max_size=1) as pool:
        row = await pool.fetchrow("SELECT name, settings FROM channels")
    assert row["name"] == "good" and row["settings"]["bot_username"] == "omnihub_test_bot"


async def test_sigkill_mid_burst_and_restart_store_every_message_once(
    database_url: str, fake: FakeBotAPI, tmp_path: Path
) -> None:
    async with db.open_pool(database_url, min_size=1, max_size=2) as pool:
        channel_id = await add_telegram_channel(pool, fake)

        async def stored() -> int:
            count: int = await pool.fetchval("SELECT count(*) FROM messages WHERE channel_id = $1", channel_id)
            return count

        total = 300

        async def burst() -> None:
            for i in range(total):
                fake.push_message(1000 + i % 7, f"m{i}")
                if i % 10 == 9:
                    await asyncio.sleep(0.02)

        async with hub_process(database_url, tmp_path) as first:
            pushing = asyncio.create_task(burst())
            await first.until(lambda: over(stored(), 40))
            await first.kill()  # SIGKILL: no cleanup, the open transaction dies with the process
            killed_at = await stored()
            await pushing
        assert killed_at < total, "the burst was over before the kill; the test proves nothing"
        async with hub_process(database_url, tmp_path) as second:
            await second.until(lambda: over(stored(), total - 1))
            await asyncio.sleep(1.0)  # anything extra would show up now
            rows = await pool.fetch(
                "SELECT text, count(*) AS n FROM messages WHERE channel_id = $1 GROUP BY text", channel_id
            )
    assert {r["text"]: r["n"] for r in rows} == {f"m{i}": 1 for i in range(total)}
