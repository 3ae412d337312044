"""E-mail channel against a real Dovecot (IMAP) and a real aiosmtpd (SMTP)."""

from __future__ import annotations

import asyncio
import datetime as dt
import email.utils
from collections.abc import Iterator
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import Any

import pytest

from connectors.email import EmailConnector
from connectors.email_reply_address import conversation_from, reply_address
from connectors.registry import CONNECTORS
from hub.errors import ChannelCheckError, ConfigError, PermanentFailure, TemporaryFailure
from hub.types import ChannelAccount, Cursor, OutboundMessage
from tests.channel_helpers import running
from tests.fakes.dovecot import Dovecot, free_port
from tests.fakes.smtp import SmtpServer
from tests.hubproc import hub_process, omnihub
from tests.sinks import MemoryBlobs, MemorySink

MAIL = Path(__file__).parent / "mail"
ADDRESS = "support@example.com"


def mail(
    subject: str,
    body: str = "Hello",
    *,
    sender: str = "Ivan Petrov <ivan@example.org>",
    message_id: str | None = None,
    in_reply_to: str = "",
    references: str = "",
    date: dt.datetime | None = None,
    to: str = ADDRESS,
) -> bytes:
    m = EmailMessage()
    m["From"] = sender
    m["To"] = to
    m["Subject"] = subject
    m["Date"] = format_datetime(date or dt.datetime.now(dt.UTC))
    m["Message-ID"] = message_id or make_msgid(domain="example.org")
    if in_reply_to:
        m["In-Reply-To"] = in_reply_to
    if references:
        m["References"] = references
    m.set_content(body)
    return m.as_bytes()


# -- an in-memory sink, for the connector on its own ----------------------------------------------


async def until(predicate: Any, seconds: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError("timed out")
        await asyncio.sleep(0.02)


@pytest.fixture
def dovecot() -> Iterator[Dovecot]:
    d = Dovecot()
    d.start()
    yield d
    d.close()


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    s = SmtpServer()
    s.start()
    yield s
    s.stop()


def settings_for(dovecot: Dovecot, smtp: SmtpServer | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "address": ADDRESS,
        "imap_host": dovecot.host,
        "imap_port": dovecot.port,
        "smtp_host": "127.0.0.1",
        "smtp_port": smtp.port if smtp else free_port(),
        "security": "plain",
        "mailbox": "INBOX",
        "backfill_days": 30,
        "poll_seconds": 0.2,
        **extra,
    }


def account_for(dovecot: Dovecot, smtp: SmtpServer | None = None, **extra: Any) -> ChannelAccount:
    return ChannelAccount(
        id=1,
        kind="email",
        name="Support",
        settings=settings_for(dovecot, smtp, **extra),
        secrets={"username": dovecot.username, "password": dovecot.password},
    )


# -- the connector on its own ---------------------------------------------------------------------


def test_registered() -> None:
    assert CONNECTORS["email"] is EmailConnector


async def test_backfill_takes_recent_days_then_idle_delivers_new_mail(dovecot: Dovecot) -> None:
    now = dt.datetime.now(dt.UTC)
    dovecot.deliver(mail("too old", message_id="<old@example.org>"), date=now - dt.timedelta(days=40))
    dovecot.deliver(mail("recent", message_id="<recent@example.org>"), date=now - dt.timedelta(days=2))
    dovecot.deliver((MAIL / "koi8r.eml").read_bytes())
    sink = MemorySink()
    async with running(EmailConnector(account_for(dovecot)), sink):
        await until(lambda: len(sink.messages) == 2)
        validity = dovecot.uidvalidity()
        assert sink.cursors["INBOX"] == f"{validity}:3"
        assert sink.messages["recent@example.org"].cursor == Cursor("INBOX", f"{validity}:2")
        koi = sink.messages["20261130100000.A1234@mail.example.ru"]
        assert koi.subject == "Проблема с оплатой" and koi.sender.display_name == "Ольга Смирнова"
        assert koi.sender.email == koi.sender.external_id == "olga@mail.example.ru"
        assert koi.new_thread and koi.thread_refs == ()

        await asyncio.sleep(0.5)  # now in IDLE: a new mail must arrive by push, not by a poll
        dovecot.deliver(mail("new", message_id="<new@example.org>"))
        await until(lambda: "new@example.org" in sink.messages, seconds=5)
    assert "old@example.org" not in sink.messages
    assert sorted(sink.ingested_ids()) == sorted(sink.messages)  # nothing ingested twice (UID N:* trap)
    assert sink.cursors["INBOX"] == f"{validity}:4"


async def test_polling_when_the_server_has_no_idle() -> None:
    d = Dovecot(idle=False)
    d.start()
    try:
        sink = MemorySink()
        async with running(EmailConnector(account_for(d)), sink):
            await until(lambda: "INBOX" in sink.cursors)  # empty backfill still sets the cursor
            d.deliver(mail("polled", message_id="<polled@example.org>"))
            await until(lambda: "polled@example.org" in sink.messages, seconds=5)
        assert sink.ingested_ids() == ["polled@example.org"]
    finally:
        d.close()


async def test_restart_resumes_from_the_cursor(dovecot: Dovecot) -> None:
    sink = MemorySink()
    dovecot.deliver_many([mail(f"m{i}", message_id=f"<m{i}@example.org>") for i in range(3)])
    async with running(EmailConnector(account_for(dovecot)), sink):
        await until(lambda: len(sink.messages) == 3)
    dovecot.deliver_many([mail(f"n{i}", message_id=f"<n{i}@example.org>") for i in range(2)])
    async with running(EmailConnector(account_for(dovecot)), sink):
        await until(lambda: len(sink.messages) == 5)
        await asyncio.sleep(0.3)
    assert len(sink.ingested) == 5


async def test_imap_server_restart_reconnects_and_misses_nothing(dovecot: Dovecot) -> None:
    sink = MemorySink()
    async with running(EmailConnector(account_for(dovecot)), sink) as task:
        dovecot.deliver(mail("before", message_id="<before@example.org>"))
        await until(lambda: len(sink.messages) == 1)
        await asyncio.to_thread(dovecot.stop)
        await asyncio.sleep(0.3)
        await asyncio.to_thread(dovecot.start)
        # Delivered right after the restart, while the connector is still reconnecting.
        await asyncio.to_thread(
            dovecot.deliver_many, [mail(f"after {i}", message_id=f"<after{i}@example.org>") for i in range(3)]
        )
        await until(lambda: len(sink.messages) == 4, seconds=15)
        assert not task.done()
    assert sorted(sink.ingested_ids()) == sorted(sink.messages)


async def test_uidvalidity_change_rescans_and_dedupes_by_message_id(dovecot: Dovecot) -> None:
    sink = MemorySink()
    dovecot.deliver_many([mail(f"m{i}", message_id=f"<v{i}@example.org>") for i in range(2)])
    async with running(EmailConnector(account_for(dovecot)), sink):
        await until(lambda: len(sink.messages) == 2)
    old = dovecot.uidvalidity()
    dovecot.stop()
    await asyncio.sleep(1.1)  # Dovecot takes the time as the new UIDVALIDITY
    dovecot.reset_uids()
    dovecot.start()
    assert dovecot.uidvalidity() != old
    dovecot.deliver(mail("third", message_id="<v2@example.org>"))
    async with running(EmailConnector(account_for(dovecot)), sink):
        await until(lambda: len(sink.messages) == 3)
        await until(lambda: sink.cursors["INBOX"] == f"{dovecot.uidvalidity()}:3")
    assert set(sink.messages) == {"v0@example.org", "v1@example.org", "v2@example.org"}


async def test_unparseable_and_malformed_mail_never_stop_the_loop(dovecot: Dovecot) -> None:
    sink = MemorySink()
    dovecot.deliver((MAIL / "no_sender.eml").read_bytes())
    dovecot.deliver((MAIL / "malformed_message_id.eml").read_bytes())
    dovecot.deliver(mail("fine", message_id="<fine@example.org>"))
    async with running(EmailConnector(account_for(dovecot)), sink):
        await until(lambda: len(sink.messages) == 2)
    validity = dovecot.uidvalidity()
    [(_, reason, payload)] = sink.raw
    assert "no sender" in reason and payload["uid"] == 1
    assert sink.blobs.data[payload["blob"]] == (MAIL / "no_sender.eml").read_bytes()
    odd = sink.messages[f"uid:{validity}:2"]  # no usable Message-ID: a synthesized one
    assert odd.flags == ("malformed",) and odd.thread_refs == ("omnihub.5.aa@example.com",)
    assert [a.filename for a in odd.attachments] == ["original.eml"]
    assert sink.cursors["INBOX"] == f"{validity}:3"


async def test_attachments_inline_images_and_html(dovecot: Dovecot) -> None:
    sink = MemorySink()
    dovecot.deliver((MAIL / "inline_image.eml").read_bytes())
    dovecot.deliver((MAIL / "html_only.eml").read_bytes())
    async with running(EmailConnector(account_for(dovecot)), sink):
        await until(lambda: len(sink.messages) == 2)
    m = sink.messages["inline.img@example.org"]
    image, csv = m.attachments
    assert (image.filename, image.kind, csv.filename, csv.kind) == ("error.png", "photo", "отчёт.csv", "document")
    assert sink.blobs.data[image.sha256].startswith(b"\x89PNG")
    assert m.raw["cids"] == {"img001@example.org": image.sha256}
    h = sink.messages["html.only@example.org"]
    assert f'<img src="/api/v1/blobs/{image.sha256}" alt="error">' in m.html
    assert "<script" not in h.html and "<b>account</b>" in h.html
    assert h.text.startswith("Hello support,")


async def test_auto_replies_and_bounces_never_start_a_thread(dovecot: Dovecot) -> None:
    sink = MemorySink()
    dovecot.deliver((MAIL / "auto_reply.eml").read_bytes())
    dovecot.deliver((MAIL / "bounce.eml").read_bytes())
    async with running(EmailConnector(account_for(dovecot)), sink):
        await until(lambda: len(sink.messages) == 2)
    auto = sink.messages["oof.1@corp.example.org"]
    assert auto.flags == ("auto_reply",) and not auto.new_thread
    bounce = sink.messages["20261130100000.ABC@mx.example.com"]
    assert "bounce" in bounce.flags and not bounce.new_thread
    # Filed under the customer our mail did not reach, in the thread of that mail.
    assert bounce.sender.external_id == "nobody@example.net"
    assert bounce.thread_refs == ("omnihub.99.deadbeef@example.com",)


async def test_check(dovecot: Dovecot, smtp: SmtpServer) -> None:
    assert await EmailConnector.check(account_for(dovecot, smtp)) == {}

    bad_imap = account_for(dovecot, smtp)
    bad_imap = ChannelAccount(1, "email", "x", bad_imap.settings, {"username": "support", "password": "nope"})
    with pytest.raises(ChannelCheckError, match=r"IMAP server 127\.0\.0\.1 refused the login for support"):
        await EmailConnector.check(bad_imap)

    smtp.password = "other"
    with pytest.raises(ChannelCheckError, match=r"SMTP server 127\.0\.0\.1:\d+ refused the login for support: 535"):
        await EmailConnector.check(account_for(dovecot, smtp))

    with pytest.raises(ChannelCheckError, match=r"cannot reach SMTP server 127\.0\.0\.1:\d+"):
        await EmailConnector.check(account_for(dovecot, None))

    with pytest.raises(ChannelCheckError, match=r"cannot open mailbox 'Nope'"):
        await EmailConnector.check(account_for(dovecot, smtp, mailbox="Nope"))

    port = dovecot.port
    dovecot.stop()
    with pytest.raises(ChannelCheckError, match=rf"cannot reach IMAP server 127\.0\.0\.1:{port}"):
        await EmailConnector.check(account_for(dovecot, smtp))


def outbound(**overrides: Any) -> OutboundMessage:
    fields: dict[str, Any] = {
        "message_id": 42,
        "channel_id": 1,
        "conversation_id": 7,
        "recipient": "ivan@example.org",
        "text": "Hello Ivan,\nyour parcel left the warehouse.",
        "subject": "Order #1042 has not arrived",
        "thread_refs": ("first@example.org", "uid:1:5", "second@example.org"),
    }
    return OutboundMessage(**{**fields, **overrides})


async def test_send_threads_the_reply(dovecot: Dovecot, smtp: SmtpServer) -> None:
    connector = EmailConnector(account_for(dovecot, smtp))
    blobs = MemoryBlobs()
    pdf = await blobs.put(b"%PDF-1.4 invoice", filename="invoice.pdf", content_type="application/pdf")
    result = await connector.send(outbound(attachments=(pdf,)), blobs)
    again = await connector.send(outbound(attachments=(pdf,)), blobs)  # a retry: the same mail
    [first, second] = await smtp.wait_for(2)
    m = first.message
    assert result.external_id == again.external_id and result.external_id.endswith("@example.com")
    assert m["Message-ID"] == f"<{result.external_id}>" == second.message["Message-ID"]
    assert first.mail_from == ADDRESS and first.rcpt_tos == ("ivan@example.org",) and first.login == "support"
    assert m["From"] == "Support <support@example.com>"
    assert m["Reply-To"] == f"Support <{reply_address(ADDRESS, 1, 7)}>"
    assert m["Subject"] == "Re: Order #1042 has not arrived"
    assert m["In-Reply-To"] == "<second@example.org>"
    assert m["References"] == "<first@example.org> <second@example.org>"
    body = m.get_body(("plain",))
    assert (
        body is not None
        and body.get_content().replace("\r\n", "\n") == "Hello Ivan,\nyour parcel left the warehouse.\n"
    )
    html = m.get_body(("html",))
    assert html is not None and "Hello Ivan,<br>" in html.get_content()
    [att] = list(m.iter_attachments())
    assert (att.get_filename(), att.get_content_type(), att.get_content()) == (
        "invoice.pdf",
        "application/pdf",
        b"%PDF-1.4 invoice",
    )
    other = await connector.send(outbound(message_id=43, subject="Re: Order"), blobs)
    assert other.external_id != result.external_id
    assert (await smtp.wait_for(3))[2].message["Subject"] == "Re: Order"

    plain = EmailConnector(account_for(dovecot, smtp, reply_token=False))  # `--no-reply-token`
    await plain.send(outbound(message_id=44), blobs)
    assert (await smtp.wait_for(4))[3].message["Reply-To"] is None


def test_reply_address_names_the_conversation_and_survives_only_intact() -> None:
    token = reply_address(ADDRESS, 3, 42)
    assert token.startswith("support+c42-") and token.endswith("@example.com")
    assert conversation_from([token], ADDRESS, 3) == 42
    assert conversation_from(["someone@else.org", token.upper()], ADDRESS, 3) == 42  # case-folded by a client
    assert conversation_from([token], ADDRESS, 4) is None  # another channel's token
    assert conversation_from([token.replace("@example.com", "@example.net")], ADDRESS, 3) is None
    assert conversation_from([token.replace("+c42-", "+c43-")], ADDRESS, 3) is None  # check digits
    assert conversation_from([ADDRESS, "support+sales@example.com", "support+c42@example.com"], ADDRESS, 3) is None


async def test_send_failures_are_typed(dovecot: Dovecot, smtp: SmtpServer) -> None:
    connector = EmailConnector(account_for(dovecot, smtp))
    smtp.refuse["gone@example.org"] = "550 5.1.1 No such user"
    smtp.refuse["busy@example.org"] = "452 4.2.2 Mailbox full"
    with pytest.raises(PermanentFailure, match="550"):
        await connector.send(outbound(recipient="gone@example.org"), MemoryBlobs())
    with pytest.raises(TemporaryFailure, match="452"):
        await connector.send(outbound(recipient="busy@example.org"), MemoryBlobs())
    smtp.stop()
    with pytest.raises(TemporaryFailure, match="SMTP server"):
        await connector.send(outbound(), MemoryBlobs())
    assert smtp.received == []


# -- the whole hub: Postgres, supervisor, outbox, REST API ----------------------------------------


async def add_email_channel(pool: Any, dovecot: Dovecot, smtp: SmtpServer, **extra: Any) -> int:
    from hub.channels import add_channel

    return await add_channel(
        pool,
        kind="email",
        name="Support mail",
        settings=settings_for(dovecot, smtp, **extra),
        secrets={"username": dovecot.username, "password": dovecot.password},
    )


async def wait_json(api: Any, url: str, predicate: Any, seconds: float = 15.0) -> Any:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while True:
        r = await api.get(url)
        assert r.status_code == 200, r.text
        body = r.json()
        if predicate(body):
            return body
        if loop.time() > deadline:
            raise AssertionError(f"{url} never matched: {body}")
        await asyncio.sleep(0.1)


async def test_mail_in_reply_out_customer_reply_joins(hub: Any, api: Any, dovecot: Dovecot, smtp: SmtpServer) -> None:
    await add_email_channel(hub.pool, dovecot, smtp)
    dovecot.deliver(mail("Order #1042 has not arrived", "Where is my order?", message_id="<c1@example.org>"))

    convs = await wait_json(api, "/api/v1/conversations", lambda b: len(b["items"]) == 1)
    conv = convs["items"][0]
    assert conv["subject"] == "Order #1042 has not arrived" and conv["channel"]["kind"] == "email"
    card = (await api.get(f"/api/v1/clients/{conv['client_id']}")).json()
    assert (card["name"], card["email"]) == ("Ivan Petrov", "ivan@example.org")
    assert [i["external_id"] for i in card["identities"]] == ["ivan@example.org"]

    r = await api.post(f"/api/v1/conversations/{conv['id']}/messages", json={"text": "It left the warehouse today."})
    assert r.status_code in (200, 201), r.text
    [sent] = await smtp.wait_for(1, seconds=15)
    out = sent.message
    assert sent.rcpt_tos == ("ivan@example.org",) and sent.mail_from == ADDRESS
    assert out["Subject"] == "Re: Order #1042 has not arrived"
    assert out["In-Reply-To"] == "<c1@example.org>" and out["References"] == "<c1@example.org>"
    assert "It left the warehouse today." in out.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    ours = out["Message-ID"]
    msgs = await wait_json(
        api, f"/api/v1/conversations/{conv['id']}/messages", lambda b: b["items"][-1]["status"] == "sent"
    )
    assert len(msgs["items"]) == 2

    # The customer's client threads by In-Reply-To, quoting us (Gmail-shaped).
    dovecot.deliver(
        mail(
            "Re: Order #1042 has not arrived",
            "Thanks, got it!\n\nOn Mon, 30 Nov 2026 at 11:40, Support <support@example.com> wrote:\n> It left the warehouse today.\n",
            message_id="<c2@example.org>",
            in_reply_to=ours,
            references=f"<c1@example.org> {ours}",
        )
    )
    msgs = await wait_json(api, f"/api/v1/conversations/{conv['id']}/messages", lambda b: len(b["items"]) == 3)
    assert msgs["items"][-1]["text"] == "Thanks, got it!"
    assert "> It left the warehouse today." not in msgs["items"][-1]["text"]
    assert msgs["items"][-1]["original_text"].startswith("Thanks, got it!\n\nOn Mon, 30 Nov 2026")
    assert "> It left the warehouse today." in msgs["items"][-1]["original_text"]  # kept, for "show quoted text"
    assert msgs["items"][0]["original_text"] == ""  # nothing was folded
    assert msgs["items"][-1]["direction"] == "in"

    # An out-of-office answer and a bounce of our reply land in the same conversation, flagged.
    oof = (MAIL / "auto_reply.eml").read_bytes().replace(b"anna.mueller@corp.example.org", b"ivan@example.org")
    dovecot.deliver(oof.replace(b"<omnihub.8.bb@example.com>", ours.encode()))
    bounce = (MAIL / "bounce.eml").read_bytes().replace(b"nobody@example.net", b"ivan@example.org")
    dovecot.deliver(bounce.replace(b"<omnihub.99.deadbeef@example.com>", ours.encode()))
    msgs = await wait_json(api, f"/api/v1/conversations/{conv['id']}/messages", lambda b: len(b["items"]) == 5)
    assert [m["flags"] for m in msgs["items"][-2:]] == [["auto_reply"], ["auto_reply", "bounce"]]
    assert len((await api.get("/api/v1/conversations")).json()["items"]) == 1
    assert [c["id"] for c in (await api.get("/api/v1/clients")).json()["items"]] == [conv["client_id"]]

    # A new subject from the same customer is a new conversation on the same card.
    dovecot.deliver(mail("Invoice needed", "Please send an invoice.", message_id="<c3@example.org>"))
    convs = await wait_json(api, "/api/v1/conversations", lambda b: len(b["items"]) == 2)
    assert {c["client_id"] for c in convs["items"]} == {conv["client_id"]}
    assert convs["items"][0]["subject"] == "Invoice needed"

    # A late reply to the resolved first conversation reopens it.
    r = await api.post(f"/api/v1/conversations/{conv['id']}/status", json={"status": "resolved"})
    assert r.status_code == 200, r.text
    dovecot.deliver(mail("Re: Order", "One more thing.", message_id="<c4@example.org>", in_reply_to="<c2@example.org>"))
    reopened = await wait_json(
        api, f"/api/v1/conversations/{conv['id']}", lambda b: b["status"] == "open" and b["unread_count"] >= 1
    )
    assert reopened["id"] == conv["id"]
    convs = (await api.get("/api/v1/conversations")).json()
    assert len(convs["items"]) == 2


async def test_reply_address_threads_a_reply_that_lost_its_headers(
    hub: Any, api: Any, dovecot: Dovecot, smtp: SmtpServer
) -> None:
    """Third fallback after In-Reply-To and References: the token in our Reply-To, scoped to the client."""
    await add_email_channel(hub.pool, dovecot, smtp)
    dovecot.deliver(mail("Broken grinder", "The grinder stopped.", message_id="<g1@example.org>"))
    [conv] = (await wait_json(api, "/api/v1/conversations", lambda b: len(b["items"]) == 1))["items"]
    r = await api.post(f"/api/v1/conversations/{conv['id']}/messages", json={"text": "Which model is it?"})
    assert r.status_code in (200, 201), r.text
    [sent] = await smtp.wait_for(1, seconds=15)
    reply_to = email.utils.parseaddr(sent.message["Reply-To"])[1]
    assert reply_to.startswith("support+c") and reply_to.endswith("@example.com")

    # A phone mail app that answers to Reply-To with no In-Reply-To or References, and a subject of its own.
    dovecot.deliver(mail("Model", "It is the Baratza 270.", message_id="<g2@example.org>", to=reply_to))
    msgs = await wait_json(api, f"/api/v1/conversations/{conv['id']}/messages", lambda b: len(b["items"]) == 3)
    assert msgs["items"][-1]["text"] == "It is the Baratza 270."

    # Somebody else writing to that address does not get into Ivan's conversation: the token is scoped.
    dovecot.deliver(
        mail("Model", "Me too!", sender="Olga <olga@example.net>", message_id="<o1@example.net>", to=reply_to)
    )
    convs = await wait_json(api, "/api/v1/conversations", lambda b: len(b["items"]) == 2)
    olga = next(c for c in convs["items"] if c["id"] != conv["id"])
    assert olga["client_id"] != conv["client_id"] and olga["subject"] == "Model"

    # A mangled token is no token: Ivan's new subject starts a new conversation, as any new subject does.
    mangled = reply_to.replace("+c", "+c9")
    dovecot.deliver(mail("Another question", "Do you sell filters?", message_id="<g3@example.org>", to=mangled))
    convs = await wait_json(api, "/api/v1/conversations", lambda b: len(b["items"]) == 3)
    assert (await api.get(f"/api/v1/conversations/{conv['id']}/messages")).json()["items"][-1]["text"] == (
        "It is the Baratza 270."
    )


async def test_sigkill_during_backfill_then_restart_ingests_each_mail_once(
    database_url: str, pool: Any, dovecot: Dovecot, smtp: SmtpServer, tmp_path: Path
) -> None:
    filler = "All work and no play makes Jack a dull boy.\n" * 400
    day = dt.datetime.now(dt.UTC) - dt.timedelta(days=3)
    dovecot.deliver_many(
        [mail(f"Backfill {i}", f"mail {i}\n{filler}", message_id=f"<bf{i}@example.org>") for i in range(200)],
        date=day,
    )
    channel_id = await add_email_channel(pool, dovecot, smtp)

    async def stored() -> int:
        n: int = await pool.fetchval("SELECT count(*) FROM messages WHERE channel_id = $1", channel_id)
        return n

    async with hub_process(database_url, tmp_path) as first:
        at_kill = await first.until(lambda: _at_least(stored(), 20), interval=0.01)
        await first.kill()
    assert at_kill < 200, "the backfill finished before the kill: the test proves nothing"

    async with hub_process(database_url, tmp_path) as second:
        await second.until(lambda: _at_least(stored(), 200), timeout=90, interval=0.1)
        await asyncio.sleep(1.0)  # anything extra would arrive now
        log = second.log_text()  # both runs: the log is appended to

    rows = await pool.fetch("SELECT external_id FROM messages WHERE channel_id = $1", channel_id)
    assert sorted(r["external_id"] for r in rows) == sorted(f"bf{i}@example.org" for i in range(200))
    conversations = await pool.fetchval("SELECT count(*) FROM conversations WHERE channel_id = $1", channel_id)
    assert conversations == 200  # every mail a new subject from the client: a conversation each
    cursor = await pool.fetchval("SELECT value FROM channel_cursors WHERE channel_id = $1", channel_id)
    assert cursor == f"{dovecot.uidvalidity()}:200"
    assert "backfill" in log


async def _at_least(count: Any, n: int) -> int | None:
    value: int = await count
    return value if value >= n else None


@pytest.mark.parametrize("security", ["ssl", "starttls"])
async def test_tls_imap_and_smtp(security: str) -> None:
    d = Dovecot(tls=True)
    d.start()
    assert d.cert is not None and d.key is not None
    s = SmtpServer(tls=security, cert=(d.cert, d.key))
    s.start()
    try:
        imap_port = d.tls_port if security == "ssl" else d.port
        settings = {**settings_for(d, s), "security": security, "imap_port": imap_port, "tls_ca_file": str(d.cert)}
        account = ChannelAccount(1, "email", "Support", settings, {"username": d.username, "password": d.password})
        assert await EmailConnector.check(account) == {}

        untrusted = ChannelAccount(1, "email", "Support", {**settings, "tls_ca_file": ""}, account.secrets)
        with pytest.raises(ChannelCheckError, match=r"cannot reach IMAP server .*CERTIFICATE_VERIFY_FAILED"):
            await EmailConnector.check(untrusted)

        sink = MemorySink()
        d.deliver(mail("over TLS", message_id="<tls@example.org>"))
        connector = EmailConnector(account)
        async with running(connector, sink):
            await until(lambda: "tls@example.org" in sink.messages)
        await connector.send(outbound(), MemoryBlobs())
        [sent] = await s.wait_for(1)
        assert sent.login == "support" and sent.rcpt_tos == ("ivan@example.org",)
    finally:
        s.stop()
        d.close()


async def test_cli_channel_add_checks_both_servers(
    database_url: str, pool: Any, dovecot: Dovecot, smtp: SmtpServer, tmp_path: Path
) -> None:
    async def add(name: str, password: str) -> tuple[int, str]:
        return await omnihub(
            database_url, "channel", "add", "email", "--name", name, "--address", ADDRESS,
            "--imap-host", "127.0.0.1", "--imap-port", str(dovecot.port), "--smtp-host", "127.0.0.1",
            "--smtp-port", str(smtp.port), "--username", "support", "--password", password, "--plain",
            env={"OMNIHUB_DATA_DIR": str(tmp_path)},
        )  # fmt: skip

    code, out = await add("Wrong", "nope")
    assert code != 0
    [line] = out.strip().splitlines()
    assert "IMAP server 127.0.0.1 refused the login for support" in line
    code, out = await add("Support", dovecot.password)
    assert code == 0, out
    rows = await pool.fetch("SELECT name, settings->>'security' AS security, secrets->>'password' AS pw FROM channels")
    assert [(r["name"], r["security"], r["pw"]) for r in rows] == [("Support", "plain", "secret")]


async def test_bad_settings_are_reported_where_someone_sees_them(dovecot: Dovecot, smtp: SmtpServer) -> None:
    settings = {**settings_for(dovecot, smtp), "security": "tls13"}
    account = ChannelAccount(1, "email", "Support", settings, {"username": "support", "password": "secret"})
    connector = EmailConnector(account)  # building it never raises: the supervisor must be able to
    with pytest.raises(ChannelCheckError, match="security must be one of ssl, starttls, plain, not 'tls13'"):
        await EmailConnector.check(account)
    with pytest.raises(ConfigError, match="tls13"):
        await connector.run(MemorySink())
    with pytest.raises(PermanentFailure, match="tls13"):
        await connector.send(outbound(), MemoryBlobs())
    missing = ChannelAccount(1, "email", "Support", {"address": ADDRESS}, {})
    with pytest.raises(ChannelCheckError, match="missing settings: imap_host, imap_port, smtp_host, smtp_port"):
        await EmailConnector.check(missing)
    with pytest.raises(PermanentFailure, match="not an e-mail address"):
        await EmailConnector(account_for(dovecot, smtp)).send(outbound(recipient="12345"), MemoryBlobs())
    assert smtp.received == []
