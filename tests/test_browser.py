"""The agent inbox and the site chat widget, driven in a real browser.

Debian's Chromium through Playwright, against a whole hub on a real uvicorn
server: a visitor on the demo page and an agent in the inbox, each in their own
browser context (their own cookies and localStorage), as two people would be.
Screenshots are taken on every run; they replace docs/screenshots/ when
OMNIHUB_UPDATE_SCREENSHOTS=1 (so a plain test run leaves the tree clean).
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from playwright.async_api import Browser, WebSocketRoute, expect

from connectors.widget import new_signing_key
from hub import db
from hub.channels import add_channel
from hub.errors import PermanentFailure
from hub.types import InboundMessage, Sender
from inbox.ingest import ingest
from tests.browser_helpers import PHONE, Person, add_disabled_channel, open_person, shot, sign_in
from tests.conftest import RunningHub, make_agent, start_hub
from tests.loopback import LoopbackConnector

pytestmark = pytest.mark.timeout(180)

# A payload that would leave a mark if it ever ran, next to the classic ones.
PWN = '<img src=x onerror="window.__pwned=1">'
XSS_TEXTS = ["<img src=x onerror=alert(1)>", "<script>alert(2)</script>", PWN]


@dataclass
class Demo:
    hub: RunningHub
    channel_id: int
    agent: dict[str, Any]


@pytest.fixture
async def demo(database_url: str) -> AsyncIterator[Demo]:
    """A hub serving /demo with a widget channel, and an agent to log in as."""
    conn = await db.connect(database_url)
    try:
        channel_id = await add_channel(
            conn,
            kind="widget",
            name="Website chat",
            settings={"origins": []},
            secrets={"signing_key": new_signing_key()},
        )
    finally:
        await conn.close()
    # Other channels for the screenshots.
    for kind, name in (("telegram", "Telegram bot"), ("email", "support@acme.coffee")):
        await add_disabled_channel(database_url, kind=kind, name=name)
    async with start_hub(database_url, demo_channel_id=channel_id) as h:
        agent = await make_agent(h.pool, "agent", name="Anna Agent")
        yield Demo(h, channel_id, agent)


async def open_visitor(browser: Browser, demo: Demo, **kw: Any) -> Person:
    v = await open_person(browser, **kw)
    await v.page.goto(f"{demo.hub.base_url}/demo")
    await v.page.click("#omnihub-widget .bubble")
    await expect(v.page.locator("#omnihub-widget .state")).to_have_attribute("data-state", "open")
    return v


async def visitor_says(v: Person, text: str) -> None:
    box = v.page.locator("#omnihub-widget .compose textarea")
    await box.fill(text)
    await box.press("Enter")
    # Acknowledged by the server: stored, with a server id, no longer pending.
    await expect(v.page.locator("#omnihub-widget .row.mine[data-id]", has_text=text)).to_have_count(1)


async def open_agent(browser: Browser, demo: Demo, **kw: Any) -> Person:
    a = await open_person(browser, **kw)
    await sign_in(a, demo.hub.base_url, demo.agent)
    # Marks this document: if the page reloads, the mark is gone.
    await a.page.evaluate("window.__sameDocument = true")
    return a


def widget_rows(v: Person) -> Any:
    return v.page.locator("#omnihub-widget .row .msg")


async def other_channel_traffic(demo: Demo) -> None:
    """A few conversations on other channels, so the inbox looks like a working day."""
    channels = dict(await demo.hub.pool.fetch("SELECT kind, id FROM channels"))
    for n, (kind, sender, text, subject) in enumerate(
        [
            (
                "email",
                Sender("john@example.com", "John Carter"),
                "Could you resend the October invoice as a PDF?",
                "Invoice October",
            ),
            (
                "telegram",
                Sender("5551", "Мария Иванова", username="maria_i"),
                "Здравствуйте! Заказ #1042 ещё не пришёл, подскажите статус?",
                "",
            ),
            ("telegram", Sender("5552", "Sophie Martin"), "Do you ship to France?", ""),
        ]
    ):
        await ingest(
            demo.hub.pool,
            InboundMessage(
                channel_id=channels[kind],
                external_id=f"seed-{n}",
                sender=sender,
                text=text,
                subject=subject,
            ),
        )


async def test_visitor_and_agent_talk_live_and_the_card_keeps_it(browser: Browser, demo: Demo) -> None:
    await other_channel_traffic(demo)
    agent = await open_agent(browser, demo)
    visitor = await open_visitor(browser, demo)
    page = agent.page

    await visitor_says(visitor, "Hi! Do you have a decaf in 250 g bags?")

    # It appears in the inbox without a reload, unread.
    row = page.locator(".conv", has_text="Do you have a decaf")
    await expect(row).to_have_count(1)
    await expect(row.locator(".unread-count")).to_have_text("1")
    await row.click()
    await expect(page.locator("#messages .msg.in .msg-text")).to_have_text(["Hi! Do you have a decaf in 250 g bags?"])
    await expect(row.locator(".unread-count")).to_have_count(0)

    reply = "Yes: Colombia Huila decaf, €12 for 250 g."
    await page.fill("#reply", reply)
    await page.press("#reply", "Enter")
    await expect(page.locator("#reply")).to_have_value("")
    out = page.locator("#messages .msg.out", has_text=reply)
    await expect(out).to_have_count(1)
    # Delivery status reaches the thread live: queued, then sent by the widget channel.
    await expect(out).to_have_attribute("data-status", "sent")

    # The visitor sees the reply live, with the agent's name.
    await expect(visitor.page.locator("#omnihub-widget .row.theirs .msg")).to_have_text([reply])
    await expect(visitor.page.locator("#omnihub-widget .row.theirs .who")).to_have_text(["Anna Agent"])  # once per run

    # Shift+Enter is a new line, Enter sends.
    await page.fill("#reply", "")
    await page.type("#reply", "Two lines:")
    await page.keyboard.press("Shift+Enter")
    await page.keyboard.type("second one")
    await expect(page.locator("#reply")).to_have_value("Two lines:\nsecond one")
    await page.keyboard.press("Enter")
    await expect(visitor.page.locator("#omnihub-widget .row.theirs .msg")).to_have_text(
        [reply, "Two lines:\nsecond one"]
    )

    # A private note is set apart in the thread and never reaches the visitor.
    await page.click("#note-toggle")
    await page.fill("#reply", "Regular customer, offer the loyalty card")
    await page.press("#reply", "Enter")
    await expect(page.locator("#messages .note .msg-text")).to_have_text(["Regular customer, offer the loyalty card"])

    # A reload keeps the history: the token stayed in localStorage.
    await visitor_says(visitor, "Great, I'll take two.")
    await visitor.page.reload()
    await expect(widget_rows(visitor)).to_have_text(
        ["Hi! Do you have a decaf in 250 g bags?", reply, "Two lines:\nsecond one", "Great, I'll take two."]
    )
    assert "Regular customer" not in await visitor.page.locator("#omnihub-widget").inner_text()

    # The client card shows the exchange, updated live.
    card = page.locator("#card")
    await expect(card.locator(".identity")).to_have_count(1)
    timeline = card.locator(".timeline")
    for text in ["Do you have a decaf", reply, "Great, I'll take two.", "Regular customer"]:
        await expect(timeline).to_contain_text(text)
    await expect(card.locator(".card-conv")).to_have_count(1)
    await expect(page.locator(".conv")).to_have_count(4)
    await shot(page, "inbox-desktop.png")

    # Assign to me and resolve from the thread header; the list follows.
    await page.click("#assign-me")
    await expect(page.locator("#conv-assignee")).to_have_text("Assigned to Anna Agent")

    # Filters and search ask the server; the list follows.
    await page.click(".seg-btn[data-filter=mine]")
    await expect(page.locator(".conv .conv-name")).to_have_text([re.compile("^Visitor ")])
    await page.click(".seg-btn[data-filter=unassigned]")
    await expect(page.locator(".conv")).to_have_count(3)
    await page.click(".seg-btn[data-filter=all]")
    await page.select_option("#filter-channel", label="Telegram bot")
    await expect(page.locator(".conv .conv-name")).to_have_text(["Sophie Martin", "Мария Иванова"])
    await page.select_option("#filter-channel", "")
    await page.fill("#search", "invoice")
    await expect(page.locator(".conv .conv-name")).to_have_text(["John Carter"])
    await page.fill("#search", "")
    await expect(page.locator(".conv")).to_have_count(4)
    await page.click("#resolve")
    await expect(page.locator("#conv-status")).to_have_text("Resolved")
    await expect(page.locator(".conv", has_text="I'll take two")).to_have_count(0)  # the Open filter drops it

    assert await page.evaluate("window.__sameDocument") is True, "the inbox reloaded"
    await page.select_option("#filter-status", "resolved")
    await page.click(".conv >> nth=0")
    await expect(page.locator("#messages .msg")).to_have_count(4)
    await expect(page.locator("#messages .note")).to_have_count(1)
    await shot(visitor.page, "widget-open.png")

    await page.set_viewport_size(PHONE)
    await expect(page.locator("#list")).to_be_hidden()
    await shot(page, "inbox-phone-thread.png")
    await page.click("#back")
    await expect(page.locator("#list")).to_be_visible()
    await expect(page.locator("#thread")).to_be_hidden()
    await shot(page, "inbox-phone-list.png")

    await visitor.page.set_viewport_size(PHONE)
    await shot(visitor.page, "widget-phone.png")
    fresh = await open_person(browser)
    await fresh.page.goto(f"{demo.hub.base_url}/demo")
    await expect(fresh.page.locator("#omnihub-widget .bubble")).to_be_visible()
    await shot(fresh.page, "demo-page.png")

    for p in (agent, visitor, fresh):
        await p.assert_nothing_ran()
        await p.context.close()


async def test_two_visitors_see_only_their_own_conversation(browser: Browser, demo: Demo) -> None:
    agent = await open_agent(browser, demo)
    alice = await open_visitor(browser, demo)
    bob = await open_visitor(browser, demo)

    await visitor_says(alice, "Alice here: my order number is 1042")
    await visitor_says(bob, "Bob here: do you ship to Porto?")

    tokens = [
        await p.page.evaluate("Object.entries(localStorage).filter(([k]) => k.endsWith(':token')).map(([, v]) => v)")
        for p in (alice, bob)
    ]
    assert len(tokens[0]) == 1 and len(tokens[1]) == 1 and tokens[0] != tokens[1]

    # The agent answers Alice only.
    await agent.page.click(".conv:has-text('order number is 1042')")
    await agent.page.fill("#reply", "Alice, 1042 ships tomorrow")
    await agent.page.press("#reply", "Enter")
    await expect(alice.page.locator("#omnihub-widget .row.theirs .msg")).to_have_text(["Alice, 1042 ships tomorrow"])
    await expect(agent.page.locator(".conv")).to_have_count(2)

    # Bob gets a message of his own after Alice's reply went out, so anything
    # meant for Alice would have reached him by now.
    await agent.page.click(".conv:has-text('ship to Porto')")
    await agent.page.fill("#reply", "Bob, yes we do")
    await agent.page.press("#reply", "Enter")
    await expect(bob.page.locator("#omnihub-widget .row.theirs .msg")).to_have_text(["Bob, yes we do"])

    await expect(widget_rows(alice)).to_have_text(["Alice here: my order number is 1042", "Alice, 1042 ships tomorrow"])
    await expect(widget_rows(bob)).to_have_text(["Bob here: do you ship to Porto?", "Bob, yes we do"])
    await bob.page.reload()
    await expect(widget_rows(bob)).to_have_text(["Bob here: do you ship to Porto?", "Bob, yes we do"])
    assert "1042" not in await bob.page.locator("#omnihub-widget").inner_text()

    for p in (agent, alice, bob):
        await p.assert_nothing_ran()
        await p.context.close()


async def test_markup_in_messages_is_shown_as_text(browser: Browser, demo: Demo) -> None:
    agent = await open_agent(browser, demo)
    visitor = await open_visitor(browser, demo)
    page = agent.page

    # The pre-chat form: a name that is markup, too.
    await visitor.page.fill("#omnihub-widget .prechat input[name=name]", PWN)
    await visitor.page.fill("#omnihub-widget .prechat input[name=email]", "mallory@example.com")
    await visitor.page.click("#omnihub-widget .prechat button[type=submit]")
    for text in XSS_TEXTS:
        await visitor_says(visitor, text)

    row = page.locator(".conv", has_text="window.__pwned")
    await expect(row).to_have_count(1)
    await expect(row.locator(".conv-preview")).to_have_text(PWN)
    await row.click()
    await expect(page.locator("#messages .msg.in .msg-text")).to_have_text(XSS_TEXTS)
    await expect(page.locator("#messages img")).to_have_count(0)
    await expect(page.locator("#card .timeline")).to_contain_text("<script>alert(2)</script>")
    await expect(page.locator("#card-name")).to_have_text(PWN)

    # The agent answers with markup too: the widget shows it as text.
    for text in XSS_TEXTS:
        await page.fill("#reply", text)
        await page.press("#reply", "Enter")
        await expect(page.locator("#messages .msg.out .msg-text", has_text=text)).to_have_count(1)
    await page.click("#note-toggle")
    await page.fill("#reply", PWN)
    await page.press("#reply", "Enter")
    await expect(page.locator("#messages .note .msg-text")).to_have_text([PWN])

    await expect(visitor.page.locator("#omnihub-widget .row.theirs .msg")).to_have_text(XSS_TEXTS)
    await expect(visitor.page.locator("#omnihub-widget .msg img")).to_have_count(0)
    await visitor.page.reload()
    await expect(widget_rows(visitor)).to_have_text(XSS_TEXTS + XSS_TEXTS)

    await agent.page.reload()
    await expect(page.locator(".conv", has_text="window.__pwned")).to_have_count(1)
    await page.click(".conv >> nth=0")
    await expect(page.locator("#messages .msg .msg-text")).to_have_count(6)

    for p in (agent, visitor):
        await p.assert_nothing_ran()
        await p.context.close()


async def test_widget_queues_offline_and_a_resend_is_stored_once(browser: Browser, demo: Demo) -> None:
    agent = await open_agent(browser, demo)
    visitor = await open_person(browser)
    cut = {"offline": False, "drop_acks": False}
    sockets: list[WebSocketRoute] = []

    async def route(ws: WebSocketRoute) -> None:
        if cut["offline"]:
            await ws.close(code=1011)
            return
        server = ws.connect_to_server()
        sockets.append(ws)

        def to_page(message: str | bytes) -> None:
            if cut["drop_acks"] and json.loads(message).get("type") == "ack":
                return  # the ack is lost on the way: the widget must resend
            ws.send(message)

        server.on_message(to_page)

    await visitor.page.route_web_socket(re.compile(r"/ws/widget"), route)
    await visitor.page.goto(f"{demo.hub.base_url}/demo")
    await visitor.page.click("#omnihub-widget .bubble")
    await expect(visitor.page.locator("#omnihub-widget .state")).to_have_attribute("data-state", "open")

    # The server stores the message but the ack never arrives; the line drops.
    cut["drop_acks"] = True
    box = visitor.page.locator("#omnihub-widget .compose textarea")
    await box.fill("first, ack lost")
    await box.press("Enter")
    await expect(agent.page.locator(".conv", has_text="first, ack lost")).to_have_count(1)
    await expect(visitor.page.locator("#omnihub-widget .row.pending")).to_have_count(1)

    # Offline: nothing gets through; what the visitor writes waits in localStorage.
    cut["offline"] = True
    for ws in sockets:
        await ws.close(code=1011)
    await expect(visitor.page.locator("#omnihub-widget .state")).to_have_attribute("data-state", "offline")
    await box.fill("second, written offline")
    await box.press("Enter")
    await expect(visitor.page.locator("#omnihub-widget .row.pending")).to_have_count(2)
    queued = await visitor.page.evaluate(
        "Object.entries(localStorage).filter(([k]) => k.endsWith(':queue')).map(([, v]) => JSON.parse(v).length)"
    )
    assert queued == [2]

    # Back online (after a reload, even): both go out, each stored once.
    cut["offline"] = False
    cut["drop_acks"] = False
    await visitor.page.reload()
    await expect(visitor.page.locator("#omnihub-widget .panel")).to_be_visible()  # it stays open across reloads
    await expect(visitor.page.locator("#omnihub-widget .state")).to_have_attribute("data-state", "open", timeout=40_000)
    await expect(widget_rows(visitor)).to_have_text(["first, ack lost", "second, written offline"])
    await expect(visitor.page.locator("#omnihub-widget .row.pending")).to_have_count(0)

    await agent.page.click(".conv >> nth=0")
    await expect(agent.page.locator("#messages .msg.in .msg-text")).to_have_text(
        ["first, ack lost", "second, written offline"]
    )
    count = await demo.hub.pool.fetchval("SELECT count(*) FROM messages WHERE direction = 'in'")
    assert count == 2

    for p in (agent, visitor):
        await p.assert_nothing_ran()
        await p.context.close()


async def test_inbox_goes_offline_says_so_and_misses_nothing(browser: Browser, demo: Demo) -> None:
    agent = await open_person(browser)
    cut = {"offline": False}
    sockets: list[WebSocketRoute] = []
    urls: list[str] = []

    async def route(ws: WebSocketRoute) -> None:
        urls.append(ws.url)
        if cut["offline"]:
            await ws.close(code=1011)
            return
        ws.connect_to_server()
        sockets.append(ws)

    await agent.page.route_web_socket(re.compile(r"/ws/agent"), route)
    await agent.page.goto(f"{demo.hub.base_url}/")
    await agent.page.fill("#login-email", demo.agent["email"])
    await agent.page.fill("#login-password", demo.agent["password"])
    await agent.page.click("#login-submit")
    await expect(agent.page.locator("#conn-dot")).to_have_attribute("data-state", "open")

    visitor = await open_visitor(browser, demo)
    await visitor_says(visitor, "before the cut")
    await expect(agent.page.locator(".conv", has_text="before the cut")).to_have_count(1)

    cut["offline"] = True
    for ws in sockets:
        await ws.close(code=1011)
    await expect(agent.page.locator("#banner")).to_be_visible()
    await expect(agent.page.locator("#banner-text")).to_contain_text("Offline")

    await visitor_says(visitor, "while the agent was offline")
    other = await open_visitor(browser, demo)
    await visitor_says(other, "a new conversation during the cut")
    await asyncio.sleep(0.5)
    await expect(agent.page.locator(".conv", has_text="a new conversation")).to_have_count(0)

    cut["offline"] = False
    await expect(agent.page.locator("#banner")).to_be_hidden(timeout=30_000)
    await expect(agent.page.locator(".conv", has_text="while the agent was offline")).to_have_count(1)
    await expect(agent.page.locator(".conv", has_text="a new conversation during the cut")).to_have_count(1)
    assert any("last_event_id=" in u for u in urls[1:]), urls

    # Signing out leads back to the login form, and it stays there.
    await agent.page.click("#logout")
    await expect(agent.page.locator("#login-form")).to_be_visible()
    await agent.page.reload()
    await expect(agent.page.locator("#login-form")).to_be_visible()
    await agent.page.fill("#login-email", demo.agent["email"])
    await agent.page.fill("#login-password", "not the password")
    await agent.page.click("#login-submit")
    await expect(agent.page.locator("#login-error")).to_contain_text("Sign-in failed")
    await agent.page.fill("#login-password", demo.agent["password"])
    await agent.page.click("#login-submit")
    await expect(agent.page.locator("#conn-dot")).to_have_attribute("data-state", "open")
    await expect(agent.page.locator(".conv")).to_have_count(2)

    # Language switch: stored, and applied without a reload.
    await agent.page.select_option("#lang", "ru")
    await expect(agent.page.locator(".seg-btn[data-filter=mine]")).to_have_text("Мои")
    assert await agent.page.evaluate("localStorage.getItem('omnihub.lang')") == "ru"
    await agent.page.keyboard.press("?")
    await expect(agent.page.locator("#help")).to_contain_text("Горячие клавиши")
    await agent.page.keyboard.press("Escape")
    await expect(agent.page.locator("#help")).to_be_hidden()

    # j / k walk the list, e resolves, r focuses the reply box.
    await agent.page.keyboard.press("j")
    first = agent.page.locator(".conv.selected")
    await expect(first).to_have_count(1)
    await agent.page.keyboard.press("j")
    await expect(agent.page.locator(".conv.selected")).to_contain_text("while the agent was offline")
    await agent.page.keyboard.press("r")
    await expect(agent.page.locator("#reply")).to_be_focused()
    await agent.page.keyboard.press("Escape")
    await agent.page.keyboard.press("e")
    await expect(agent.page.locator("#conv-status")).to_have_text("Решён")

    for p in (agent, visitor, other):
        await p.assert_nothing_ran()
        await p.context.close()


async def test_thread_shows_failures_files_and_mail_html_safely(browser: Browser, demo: Demo) -> None:
    pool = demo.hub.pool
    ch = await add_channel(pool, kind="loopback", name="Support mailbox", settings={}, secrets={})
    pdf = b"%PDF-1.4 invoice october"
    attachment = await demo.hub.hub.blobs.put(
        pdf, filename="invoice-oct.pdf", content_type="application/pdf", kind="document"
    )
    await ingest(
        pool,
        InboundMessage(
            channel_id=ch,
            external_id="mail-1",
            sender=Sender("john@example.com", "John Carter"),
            text="Please resend the October invoice.",
            subject="Invoice October",
            html='<p>Please <b>resend</b> the October invoice.</p><img src="https://tracker.example/pixel.png">',
            attachments=(attachment,),
        ),
    )
    LoopbackConnector.sent.pop(ch, None)  # class-level, shared by every test in this process
    LoopbackConnector.outcomes[ch] = [PermanentFailure("mailbox full")]

    agent = await open_agent(browser, demo)
    page = agent.page
    await page.click(".conv:has-text('John Carter')")
    incoming = page.locator("#messages .msg.in")
    await expect(incoming.locator(".msg-text")).to_have_text("Please resend the October invoice.")

    # The attachment is a link into the blob store, and it downloads with the agent's session.
    link = incoming.locator("a.attachment")
    await expect(link).to_contain_text("invoice-oct.pdf")
    href = await link.get_attribute("href")
    assert href == f"/api/v1/blobs/{attachment.sha256}"
    got = await page.request.get(f"{demo.hub.base_url}{href}")
    assert got.status == 200 and await got.body() == pdf

    # Mail HTML only ever inside a sandboxed frame, on request.
    await expect(page.locator("#messages iframe")).to_have_count(0)
    await incoming.locator("button.link-btn").click()
    frame = page.locator("#messages iframe.msg-html")
    await expect(frame).to_have_attribute("sandbox", "")
    await expect(page.frame_locator("#messages iframe.msg-html").locator("b")).to_have_text("resend")

    # The visitor's typing shows in the thread; the reply fails, says why, and Retry sends it.
    await page.fill("#reply", "Sent again, see attached.")
    await page.press("#reply", "Enter")
    failed = page.locator("#messages .msg.out")
    await expect(failed).to_have_attribute("data-status", "failed")
    await expect(failed.locator(".msg-error")).to_have_text("mailbox full")
    await failed.locator("button.retry").click()
    await expect(failed).to_have_attribute("data-status", "sent")
    await expect(failed.locator("button.retry")).to_have_count(0)
    assert [m.text for m in LoopbackConnector.sent[ch]] == ["Sent again, see attached."]

    # Pending and snooze from the header; the list (Any status) keeps up.
    await page.select_option("#filter-status", "")
    await page.click("#pending")
    await expect(page.locator("#conv-status")).to_have_text("Pending")
    await page.select_option("#snooze", "tomorrow")
    await expect(page.locator("#conv-status")).to_have_text("Snoozed")
    snoozed = await pool.fetchval("SELECT snoozed_until FROM conversations WHERE status = 'snoozed'")
    assert snoozed is not None
    await expect(page.locator(".conv .pill.st-snoozed")).to_have_count(1)

    await agent.assert_nothing_ran()
    await agent.context.close()


async def test_typing_shows_on_both_sides(browser: Browser, demo: Demo) -> None:
    agent = await open_agent(browser, demo)
    visitor = await open_visitor(browser, demo)
    await visitor_says(visitor, "Is anyone there?")
    await agent.page.click(".conv:has-text('Is anyone there')")
    await expect(agent.page.locator("#messages .msg.in")).to_have_count(1)

    await agent.page.locator("#reply").press_sequentially("Yes, one moment")
    await expect(visitor.page.locator("#omnihub-widget .typing")).to_have_text("Anna Agent is typing…")

    await visitor.page.locator("#omnihub-widget .compose textarea").press_sequentially("ok")
    await expect(agent.page.locator(".typing")).to_contain_text("is typing…")

    for p in (agent, visitor):
        await p.assert_nothing_ran()
        await p.context.close()


async def test_widget_keeps_its_own_styles_and_speaks_the_page_language(browser: Browser, demo: Demo) -> None:
    v = await open_person(browser)
    await v.page.goto(f"{demo.hub.base_url}/demo?lang=ru")
    bubble = v.page.locator("#omnihub-widget .bubble")
    await expect(bubble).to_have_attribute("aria-label", "Открыть чат")
    await bubble.click()
    await expect(v.page.locator("#omnihub-widget .title")).to_have_text("Acme Coffee")  # data-title
    await expect(v.page.locator("#omnihub-widget .sub")).to_have_text("Обычно отвечаем за несколько минут")
    await expect(v.page.locator("#omnihub-widget .compose textarea")).to_have_attribute(
        "placeholder", "Напишите сообщение…"
    )
    await visitor_says(v, "Здравствуйте")

    # The page styles every button and div (Georgia, dark buttons); none of it reaches the widget.
    style = "(e, p) => getComputedStyle(e)[p]"
    assert await bubble.evaluate(style, "backgroundColor") == "rgb(138, 75, 33)"  # data-color
    assert "Georgia" not in await v.page.locator("#omnihub-widget .msg").evaluate(style, "fontFamily")
    assert "Georgia" in await v.page.locator("h1").evaluate(style, "fontFamily")
    assert await v.page.locator(".cta").evaluate(style, "backgroundColor") == "rgb(181, 101, 43)"

    # At phone width the panel is the whole screen and the bubble steps aside.
    await v.page.set_viewport_size(PHONE)
    box = await v.page.locator("#omnihub-widget .panel").bounding_box()
    assert box is not None and (box["x"], box["y"], box["width"], box["height"]) == (
        0,
        0,
        PHONE["width"],
        PHONE["height"],
    )
    await expect(bubble).to_be_hidden()
    await v.page.locator("#omnihub-widget .x").click()
    await expect(bubble).to_be_visible()

    await v.assert_nothing_ran()
    await v.context.close()
