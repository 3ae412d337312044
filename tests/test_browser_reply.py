"""The reply box and the thread, driven in a real browser.

Debian's Chromium through Playwright against a whole hub on a real uvicorn
server (the launch pattern of tests/test_browser.py), with a Telegram channel
polling a local fake Bot API (tests/fakes/telegram_api.py): files chosen with
the paperclip, pasted or dropped become chips, go out as a photo and a document,
and show in the thread; a file over the hub's limit is refused with the typed
text kept; an e-mail's quoted text opens on demand, as text; a long thread
loads its older messages on request.
"""

from __future__ import annotations

import base64
import re
import struct
import zlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, FilePayload, Page, Route, expect

from hub import db
from hub.channels import add_channel
from hub.types import InboundMessage, Sender
from inbox.ingest import ingest
from tests.browser_helpers import Person, add_disabled_channel, open_person, shot, sign_in
from tests.conftest import RunningHub, make_agent, start_hub, wait_for
from tests.fakes.telegram_api import FakeBotAPI
from tests.test_browser import Demo, open_agent, open_visitor, visitor_says

# The hub serving /demo with a widget channel; a fixture, so the test's argument of the same name "redefines" it.
from tests.test_browser import demo as widget_demo  # noqa: F401

pytestmark = pytest.mark.timeout(180)

LIMIT = 300_000  # the hub's attachment cap in these tests (OMNIHUB_MAX_ATTACHMENT_BYTES)
PWN = "<img src=x onerror=window.__pwned=1>"
PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"


def png(width: int = 48, height: int = 32, rgb: tuple[int, int, int] = (79, 70, 229)) -> bytes:
    """A real, decodable PNG of one colour."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    rows = b"".join(b"\x00" + bytes(rgb) * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def payload(name: str, mime_type: str, data: bytes) -> FilePayload:
    return {"name": name, "mimeType": mime_type, "buffer": data}


@dataclass
class Setup:
    hub: RunningHub
    fake: FakeBotAPI
    email: int
    agent: dict[str, Any]


@pytest.fixture
async def setup(database_url: str) -> AsyncIterator[Setup]:
    async with FakeBotAPI() as fake:
        conn = await db.connect(database_url)
        try:
            await add_channel(
                conn, kind="telegram", name="Telegram bot", secrets={"token": fake.token},
                settings={"api_base": fake.base_url, "mode": "polling", "poll_timeout": 1},
            )
        finally:
            await conn.close()
        # Messages are ingested directly.
        email = await add_disabled_channel(database_url, kind="email", name="support@acme.coffee")
        async with start_hub(database_url, max_attachment_bytes=LIMIT) as h:
            agent = await make_agent(h.pool, "agent", name="Anna Agent")
            yield Setup(h, fake, email, agent)


async def open_inbox(browser: Browser, s: Setup, width: int = 1280, height: int = 900) -> Person:
    """An agent signed in (open_person records dialogs and page errors)."""
    a = await open_person(browser, viewport={"width": width, "height": height})
    await a.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=s.hub.base_url)
    await sign_in(a, s.hub.base_url, s.agent)
    return a


async def open_conversation(page: Page, text: str, row: str | None = None) -> None:
    """Click the list row showing `row` (default: `text`), then wait for `text` in the thread."""
    await page.locator(".conv", has_text=row or text).click()
    await expect(page.locator("#messages .msg", has_text=text).first).to_be_visible()


def chip_names(page: Page) -> Any:
    return page.locator("#reply-chips .file-chip-name")


async def test_files_go_out_to_telegram_as_a_photo_and_a_document(browser: Browser, setup: Setup) -> None:
    s = setup
    s.fake.push_message(501, "Could you send the menu and a photo of the cup?", first_name="Lena")
    agent = await open_inbox(browser, s, width=1440, height=600)
    page = agent.page
    await open_conversation(page, "send the menu")

    cup = png()
    pdf_name = "Winter menu 2026.pdf"
    stray = f"notes {PWN}.txt"
    await page.set_input_files("#reply-files", [
        payload("cup.png", "image/png", cup),
        payload(pdf_name, "application/pdf", PDF),
        payload(stray, "text/plain", b"not this one"),
    ])
    # Chips: name (markup stays text) and size; the image gets a preview, the others their extension.
    await expect(chip_names(page)).to_have_text(["cup.png", pdf_name, stray])
    await expect(page.locator("#reply-chips .file-chip-size")).to_have_text([f"{len(cup)} B", f"{len(PDF)} B", "12 B"])
    await expect(page.locator("#reply-chips .file-chip-thumb")).to_have_count(1)
    await expect(page.locator("#reply-chips .file-chip-ext")).to_have_text(["PDF", "TXT"])
    await expect(page.locator("#reply-chips img")).to_have_count(1)  # the filename made no <img>

    await page.get_by_role("button", name=f"Remove {stray}").click()
    await expect(chip_names(page)).to_have_text(["cup.png", pdf_name])
    await page.fill("#reply", "Here they are: the menu and our cup.")
    await shot(page.locator(".pane-thread"), "reply-attachments.png")
    await page.press("#reply", "Enter")

    # The thread shows the reply with a thumbnail that really loaded, and the PDF as a link.
    out = page.locator("#messages .msg.out", has_text="the menu and our cup")
    await expect(out).to_have_count(1)
    await expect(out.locator(".att-name")).to_have_text(["cup.png", pdf_name])
    thumb = out.locator("img.thumb")
    await expect(thumb).to_have_count(1)
    await wait_for(lambda: thumb.evaluate("img => img.complete && img.naturalWidth === 48"))
    await expect(out).to_have_attribute("data-status", "sent", timeout=20_000)
    await shot(page.locator(".pane-thread"), "reply-attachments-sent.png")
    await expect(page.locator("#reply-chips .file-chip")).to_have_count(0)
    await expect(page.locator("#reply")).to_have_value("")

    # Telegram got a photo with the text as its caption and the PDF as a document, bytes intact.
    await wait_for(lambda: len(s.fake.sent) >= 2)
    photo, document = s.fake.sent
    assert (photo.method, photo.chat_id, photo.caption, photo.data) == ("sendPhoto", 501, "Here they are: the menu and our cup.", cup)
    assert (document.method, document.filename, document.data) == ("sendDocument", pdf_name, PDF)
    await agent.assert_nothing_ran()


async def test_paste_oversize_and_note_mode_keep_what_was_typed(browser: Browser, setup: Setup) -> None:
    s = setup
    s.fake.push_message(502, "Is the shop open on Sunday?", first_name="Oleg")
    agent = await open_inbox(browser, s)
    page = agent.page
    await open_conversation(page, "open on Sunday")

    typed = "Yes, 10:00–16:00. See the sign:"
    await page.fill("#reply", typed)
    # A real paste: an image put on the system clipboard, then Ctrl+V in the reply box.
    shot_png = base64.b64encode(png(20, 20, (31, 157, 85))).decode()
    await page.evaluate(
        """async (b64) => {
            const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
            await navigator.clipboard.write([new ClipboardItem({"image/png": new Blob([bytes], {type: "image/png"})})]);
        }""",
        shot_png,
    )
    await page.focus("#reply")
    await page.keyboard.press("Control+V")
    await expect(chip_names(page)).to_have_count(1)
    assert (await chip_names(page).inner_text()).startswith("pasted-")
    await expect(page.locator("#reply")).to_have_value(typed)

    # Over the hub's limit: refused before any upload, with the size and the limit; the text stays.
    uploads: list[str] = []
    page.on("request", lambda r: uploads.append(r.url) if r.method == "POST" and "/messages" in r.url else None)
    await page.set_input_files("#reply-files", [payload("scan.tiff", "image/tiff", b"0" * (LIMIT + 1))])
    error = page.locator(".reply-error")
    await expect(error).to_be_visible()
    await expect(error).to_contain_text("scan.tiff")
    await expect(error).to_contain_text("over the 293 KB limit")
    await expect(chip_names(page)).to_have_count(1)
    await expect(page.locator("#reply")).to_have_value(typed)
    assert uploads == []

    # If the browser's idea of the limit is off, the server's 413 says why; text and files stay.
    async def lie_about_the_limit(route: Route) -> None:
        await route.fulfill(json={"max_file_bytes": 10 * LIMIT, "max_files": 10, "max_text_chars": 100_000})

    await page.route("**/api/v1/reply-limits", lie_about_the_limit)
    await page.reload()  # the limits are fetched once per page; drafts live in memory only
    await expect(page.locator("#conn-dot")).to_have_attribute("data-state", "open")
    await open_conversation(page, "open on Sunday")
    await page.fill("#reply", typed)
    await page.set_input_files("#reply-files", [payload("scan.tiff", "image/tiff", b"0" * (LIMIT + 1))])
    await expect(chip_names(page)).to_have_text(["scan.tiff"])
    await expect(page.locator("#reply-chips .file-chip-ext")).to_have_text(["TIFF"])  # no preview a browser can't draw
    # A slow uplink (100 KB/s, DevTools network emulation): the send button counts the upload up.
    cdp = await page.context.new_cdp_session(page)
    await cdp.send("Network.emulateNetworkConditions", {
        "offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": 100_000,
    })
    await page.press("#reply", "Enter")
    await expect(page.locator("#send")).to_have_text(re.compile(r"^Uploading… [1-9]\d?%$"))
    await expect(error).to_contain_text(f"scan.tiff is over the {LIMIT} byte attachment limit")
    await cdp.send("Network.emulateNetworkConditions", {
        "offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1,
    })
    await expect(page.locator("#send")).to_have_text("Send")
    await expect(page.locator("#reply")).to_have_value(typed)
    await expect(chip_names(page)).to_have_text(["scan.tiff"])
    assert await s.hub.pool.fetchval("SELECT count(*) FROM messages WHERE direction = 'out'") == 0
    await page.get_by_role("button", name="Remove scan.tiff").click()

    # Notes carry no files (POST /notes is JSON text): the paperclip says so, the files wait for the reply.
    await page.set_input_files("#reply-files", [payload("sign.png", "image/png", png())])
    await page.click("#note-toggle")
    clip = page.locator("#attach")
    await expect(clip).to_have_attribute("aria-disabled", "true")
    await expect(clip).to_have_attribute("title", "Notes cannot carry files — switch off Note to attach")
    await expect(page.locator(".file-chips-held")).to_be_visible()
    await page.fill("#reply", "Asked about Sunday hours")
    await page.press("#reply", "Enter")
    await expect(page.locator("#messages .note .msg-text")).to_have_text(["Asked about Sunday hours"])
    await expect(chip_names(page)).to_have_text(["sign.png"])
    await page.click("#note-toggle")
    await expect(clip).to_have_attribute("aria-disabled", "false")

    # Each conversation keeps its own draft: nothing typed or attached follows the agent elsewhere.
    s.fake.push_message(503, "Do you sell gift cards?", first_name="Ivan")
    await page.fill("#reply", "Draft for Oleg")
    await open_conversation(page, "gift cards")
    await expect(page.locator("#reply")).to_have_value("")
    await expect(page.locator("#reply-chips .file-chip")).to_have_count(0)
    await open_conversation(page, "open on Sunday")
    await expect(page.locator("#reply")).to_have_value("Draft for Oleg")
    await expect(chip_names(page)).to_have_text(["sign.png"])
    await agent.assert_nothing_ran()


async def test_drop_files_onto_the_thread(browser: Browser, setup: Setup) -> None:
    s = setup
    s.fake.push_message(504, "Here is my receipt", first_name="Mia")
    name = f"refund {PWN}.pdf"
    agent = await open_inbox(browser, s)
    page = agent.page
    await open_conversation(page, "my receipt")
    transfer = await page.evaluate_handle(
        """(name) => {
            const dt = new DataTransfer();
            dt.items.add(new File(["%PDF-1.4"], name, {type: "application/pdf"}));
            return dt;
        }""",
        name,
    )
    scroller = page.locator("#messages")
    await scroller.dispatch_event("dragenter", {"dataTransfer": transfer})
    await expect(page.locator(".thread-body.dropping")).to_have_count(1)
    await scroller.dispatch_event("drop", {"dataTransfer": transfer})
    await expect(page.locator(".thread-body.dropping")).to_have_count(0)
    await expect(chip_names(page)).to_have_text([name])
    # A drop beside the thread (the list) neither attaches nor lets the browser open the file over the inbox.
    prevented = await page.evaluate(
        """(dt) => {
            const e = new DragEvent("drop", {dataTransfer: dt, bubbles: true, cancelable: true});
            document.querySelector("#conv-items").dispatchEvent(e);
            return e.defaultPrevented;
        }""",
        transfer,
    )
    assert prevented
    await expect(chip_names(page)).to_have_text([name])

    # Sent: the file's name reaches Telegram as it was and shows in the thread as text.
    await page.press("#reply", "Enter")  # files alone make a reply
    out = page.locator("#messages .msg.out")
    await expect(out.locator(".att-name")).to_have_text([name])
    await expect(out.locator("img")).to_have_count(0)
    await wait_for(lambda: s.fake.sent)
    (document,) = s.fake.sent
    assert (document.method, document.filename, document.data) == ("sendDocument", name, b"%PDF-1.4")
    await agent.assert_nothing_ran()


async def test_quoted_text_of_an_email_opens_as_text(browser: Browser, setup: Setup) -> None:
    s = setup
    jane = Sender("jane@example.com", "Jane Roe", email="jane@example.com")
    original = (
        "Thanks, the new beans arrived!\n\n"
        "On Mon, 1 Dec 2026 at 10:00, Acme Coffee <support@acme.coffee> wrote:\n"
        "> Your order #1042 ships today by DHL.\n"
        "> Tracking: JD014600003828\n\n"
        "-- \nJane Roe, Head of Office, Roe & Sons"
    )
    await ingest(s.hub.pool, InboundMessage(
        channel_id=s.email, external_id="<q1@example.com>", subject="Re: Order 1042", sender=jane,
        text="Thanks, the new beans arrived!", original_text=original,
        html="<p>Thanks, the new beans arrived!</p><blockquote>Your order #1042 ships today.</blockquote>",
    ))
    await ingest(s.hub.pool, InboundMessage(
        channel_id=s.email, external_id="<q2@example.com>", subject="Re: Order 1042", sender=jane,
        text="And the invoice, please.", thread_refs=("<q1@example.com>",),
    ))
    agent = await open_inbox(browser, s, width=1440, height=720)
    page = agent.page
    await open_conversation(page, "new beans arrived", row="Jane Roe")

    folded = page.locator("#messages .msg", has_text="new beans arrived")
    toggle = folded.locator(".quoted-toggle")
    await expect(toggle).to_have_text("Show quoted text")
    await expect(toggle).to_have_attribute("aria-expanded", "false")
    await expect(folded.locator(".msg-text")).to_have_text("Thanks, the new beans arrived!")
    # A message with nothing folded (original_text "") gets no toggle.
    await expect(page.locator("#messages .msg", has_text="invoice, please").locator(".quoted-toggle")).to_have_count(0)

    await toggle.click()
    await expect(toggle).to_have_text("Hide quoted text")
    await expect(toggle).to_have_attribute("aria-expanded", "true")
    await expect(folded.locator(".msg-original")).to_have_text(original)  # the whole mail, as plain text
    await shot(page.locator(".pane-thread"), "email-quoted-text.png")

    # The formatted (HTML) view still opens, sandboxed.
    await folded.get_by_role("button", name="Show formatted").click()
    await expect(folded.locator("iframe.msg-html")).to_have_attribute("sandbox", "")

    await toggle.click()
    await expect(folded.locator(".msg-text")).to_have_text("Thanks, the new beans arrived!")
    await expect(toggle).to_have_text("Show quoted text")

    # Markup in the quoted text stays text: nothing is parsed, nothing runs.
    hostile = f"See below\n\n> {PWN}\n> <script>window.__pwned=2</script>"
    await ingest(s.hub.pool, InboundMessage(
        channel_id=s.email, external_id="<q3@example.com>", subject="Re: Order 1042", sender=jane,
        text="See below", original_text=hostile, thread_refs=("<q2@example.com>",),
    ))
    tricky = page.locator("#messages .msg", has_text="See below")
    await tricky.locator(".quoted-toggle").click()
    await expect(tricky.locator(".msg-original")).to_have_text(hostile)
    await expect(tricky.locator(".bubble script, .bubble img")).to_have_count(0)

    await page.select_option("#lang", "ru")
    await expect(toggle).to_have_text("Показать цитату")
    await expect(tricky.locator(".quoted-toggle")).to_have_text("Скрыть цитату")
    await agent.assert_nothing_ran()


async def test_a_long_thread_opens_at_its_end_and_loads_earlier_pages(browser: Browser, setup: Setup) -> None:
    s = setup
    for i in range(130):
        await ingest(s.hub.pool, InboundMessage(
            channel_id=s.email, external_id=f"<long{i}@example.com>", subject="Long one",
            sender=Sender("max@example.com", "Max Long", email="max@example.com"), text=f"message number {i}",
            thread_refs=(f"<long{i - 1}@example.com>",) if i else (),
        ))
    # A note written back at message 5: it belongs to the earlier page, not above message 30.
    await s.hub.pool.execute(
        "INSERT INTO notes (conversation_id, client_id, author_agent_id, text, created_at)"
        " SELECT conversation_id, c.client_id, $1, 'Called him about the order', m.created_at + interval '1 ms'"
        " FROM messages m JOIN conversations c ON c.id = m.conversation_id WHERE m.text = 'message number 5'",
        s.agent["id"],
    )
    agent = await open_inbox(browser, s)
    page = agent.page
    await open_conversation(page, "message number 129")
    msgs = page.locator("#messages .msg")
    await expect(msgs).to_have_count(100)
    await expect(msgs.first).to_contain_text("message number 30")
    await expect(page.locator("#messages .note")).to_have_count(0)
    reading = page.locator("#messages .msg", has_text="message number 30")
    await page.click("#load-earlier")
    await expect(msgs).to_have_count(130)
    await expect(msgs.first).to_contain_text("message number 0")
    await expect(page.locator("#load-earlier")).to_have_count(0)
    order = await page.locator("#messages .msg-text").all_inner_texts()
    assert order.index("Called him about the order") == order.index("message number 5") + 1
    await expect(reading).to_be_in_viewport()  # the page grew above what the agent was reading
    await agent.assert_nothing_ran()


async def test_a_web_chat_visitor_gets_the_picture_and_the_pdf(browser: Browser, widget_demo: Demo) -> None:  # noqa: F811
    demo = widget_demo
    visitor = await open_visitor(browser, demo)
    await visitor_says(visitor, "Could you send me the price list?")
    agent = await open_agent(browser, demo)
    page = agent.page
    await open_conversation(page, "send me the price list")
    cup = png(180, 120, (138, 75, 33))
    await page.set_input_files("#reply-files", [
        payload("cup.png", "image/png", cup), payload("Price list 2026.pdf", "application/pdf", PDF),
    ])
    await page.fill("#reply", "Here you are, with a photo of the cup.")
    await page.press("#reply", "Enter")
    await expect(page.locator("#messages .msg.out")).to_have_attribute("data-status", "sent", timeout=20_000)

    # The visitor sees the picture in place and the PDF as a link, its name as text.
    widget = visitor.page.locator("#omnihub-widget")
    reply = widget.locator(".row.theirs")
    await expect(reply.locator(".msg")).to_have_text(["Here you are, with a photo of the cup."])
    pic = reply.locator("img.pic")
    await expect(pic).to_have_count(1)
    await wait_for(lambda: pic.evaluate("img => img.complete && img.naturalWidth === 180"))
    await expect(reply.locator(".file-name")).to_have_text(["Price list 2026.pdf"])
    await shot(widget.locator(".panel"), "widget-files.png")

    # The link is signed for this visitor and this file: it downloads; altered, it does not.
    href = await reply.locator("a.file", has_text="Price list").get_attribute("href")
    assert href and href.startswith(f"{demo.hub.base_url}/widget/files/")
    async with httpx.AsyncClient() as http:
        r = await http.get(href)
        assert (r.status_code, r.content) == (200, PDF)
        assert r.headers["content-disposition"].startswith("attachment;")
        assert r.headers["content-security-policy"] == "sandbox"
        for forged in (href.replace("v=", "v=0"), href.replace("name=Price", "name=Other"), re.sub(r"sig=[^&]+", "sig=AAAA", href)):
            assert (await http.get(forged)).status_code == 403, forged

    # A file's name is text in the widget too; files alone make a message without an empty bubble.
    await page.set_input_files("#reply-files", [payload(f"notes {PWN}.txt", "text/plain", b"hello")])
    await page.press("#reply", "Enter")
    await expect(reply.locator(".file-name")).to_have_text(["Price list 2026.pdf", f"notes {PWN}.txt"])
    await expect(reply.locator(".msg")).to_have_count(1)
    await agent.assert_nothing_ran()
    await visitor.assert_nothing_ran()
