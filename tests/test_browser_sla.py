"""The inbox shows routing: SLA clocks, priority, breach alerts and presence, in a real browser.

Same set-up as tests/test_browser.py: Debian's Chromium through Playwright
against a whole hub on a real uvicorn server. Screenshots go to the temp
directory (omnihub-screenshots/sla-*.png).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, expect

from hub.types import InboundMessage, Sender
from inbox.ingest import ingest
from tests.browser_helpers import Person, add_disabled_channel, open_person, shot, sign_in
from tests.conftest import RunningHub, login, make_agent, start_hub, wait_for

pytestmark = pytest.mark.timeout(180)


@dataclass
class Desk:
    hub: RunningHub
    channel_id: int
    anna: dict[str, Any]
    boris: dict[str, Any]
    admin: httpx.AsyncClient


@pytest.fixture
async def desk(database_url: str) -> AsyncIterator[Desk]:
    """A hub with a (disabled) Telegram channel, two agents and an admin API client."""
    channel_id = await add_disabled_channel(database_url, kind="telegram", name="Telegram bot")
    async with start_hub(database_url) as h:
        anna = await make_agent(h.pool, "agent", name="Anna Agent")
        boris = await make_agent(h.pool, "agent", name="Boris Agent")
        admin = await login(h.base_url, await make_agent(h.pool, "admin", name="Alice Admin"))
        try:
            yield Desk(h, channel_id, anna, boris, admin)
        finally:
            await admin.aclose()


async def open_agent(browser: Browser, desk: Desk, agent: dict[str, Any]) -> Person:
    a = await open_person(browser)
    await sign_in(a, desk.hub.base_url, agent)
    return a


async def say(desk: Desk, external_id: str, sender: Sender, text: str) -> int:
    await ingest(
        desk.hub.pool,
        InboundMessage(channel_id=desk.channel_id, external_id=external_id, sender=sender, text=text),
    )
    conv_id: int = await desk.hub.pool.fetchval(
        "SELECT conversation_id FROM messages WHERE external_id = $1", external_id
    )
    return conv_id


async def test_sla_clock_counts_down_then_shows_overdue_and_alerts(browser: Browser, desk: Desk) -> None:
    r = await desk.admin.post("/api/v1/sla/policies", json={"name": "Answer fast", "first_response_seconds": 60})
    assert r.status_code == 201, r.text

    # A VIP client waiting since before the agent opened the inbox.
    vip = await say(desk, "vip-1", Sender("7001", "Viktor VIP"), "Where is my order?")
    await desk.hub.pool.execute(
        "UPDATE clients SET segment = 'vip' WHERE id = (SELECT client_id FROM conversations WHERE id = $1)", vip
    )

    async def vip_clock() -> Any:
        return await desk.hub.pool.fetchval("SELECT due_at FROM sla_clocks WHERE conversation_id = $1", vip)

    await wait_for(vip_clock)
    agent = await open_agent(browser, desk, desk.anna)
    page = agent.page
    vip_row = page.locator(".conv", has_text="Viktor VIP")
    await expect(vip_row.locator(".prio-vip")).to_have_text("VIP")
    await expect(vip_row.locator(".sla-clock")).to_have_text(re.compile(r"^due in 1 min$"))

    # A new conversation arrives live; its clock follows from conversation.updated.
    conv = await say(desk, "late-1", Sender("7002", "Lena Late"), "Hello? Anybody there?")
    row = page.locator(".conv", has_text="Lena Late")
    clock = row.locator(".sla-clock")
    await expect(clock).to_have_text("due in 1 min")
    await expect(clock).to_have_attribute("data-level", "ok")
    await row.click()
    await expect(page.locator(".thread-sub .sla-clock")).to_have_text("due in 1 min")

    # The target passes (moved into the past rather than waited for): the hub breaches the
    # clock and the list, the header and an alert follow live.
    await desk.hub.pool.execute(
        "UPDATE sla_clocks SET due_at = now() - interval '5 minutes' WHERE conversation_id = $1", conv
    )
    await expect(clock).to_have_text("overdue 5 min")
    await expect(clock).to_have_attribute("data-level", "overdue")
    await expect(clock).to_have_css("color", "rgb(210, 59, 59)")
    await expect(row.locator(".prio-urgent")).to_have_text("Urgent")
    await expect(page.locator(".thread-sub .sla-clock")).to_have_text("overdue 5 min")
    alert = page.locator("#sla-alert")
    await expect(alert).to_be_visible()
    await expect(alert).to_contain_text("SLA breached (First response): Lena Late")
    path = await shot(page, "sla-overdue.png", scratch=True)
    assert path.stat().st_size > 0

    # The other row's clock is untouched and repaints in place from its due time, without a refetch.
    assert await page.evaluate(
        "() => { const el = [...document.querySelectorAll('.conv')].find((r) => r.textContent.includes('Viktor VIP'))"
        ".querySelector('.sla-clock'); el.dataset.due = String(Date.now() - 125 * 60000);"
        " return import('/static/inbox/sla.js').then((m) => { m.refreshClocks(); return el.textContent; }); }"
    ) == "overdue 2 h 5 min"

    # Russian.
    await page.select_option("#lang", "ru")
    await expect(clock).to_have_text("просрочено на 5 мин")
    await expect(row.locator(".prio-urgent")).to_have_text("Срочно")
    await expect(alert).to_contain_text("Нарушен SLA (Первый ответ): Lena Late")
    await shot(page, "sla-ru.png", scratch=True)

    # The alert opens the conversation.
    await page.select_option("#lang", "en")
    await page.click(".conv >> nth=0")
    await expect(page.locator("#sla-alert")).to_be_visible()
    await page.locator("#sla-alert").get_by_role("button", name="Open").click()
    await expect(page.locator(".client-link")).to_have_text("Lena Late")
    await expect(page.locator("#sla-alert")).to_be_hidden()

    # The Queue tab: waiting conversations in hand-out order (the breached one first, then the VIP).
    await page.click(".seg-btn[data-filter=queue]")
    await expect(page.locator(".conv .conv-name")).to_have_text(["Lena Late", "Viktor VIP"])
    await expect(page.locator(".conv .queue-wait").first).to_have_text(re.compile(r"^waiting \d+ min$"))
    await expect(page.locator("#filter-status")).to_be_disabled()
    await shot(page, "sla-queue.png", scratch=True)
    await page.click("#assign-me")  # Lena Late is open in the thread
    await expect(page.locator(".conv .conv-name")).to_have_text(["Viktor VIP"])
    await page.click(".seg-btn[data-filter=all]")
    await expect(page.locator(".conv")).to_have_count(2)
    await expect(page.locator("#filter-status")).to_be_enabled()

    await agent.assert_nothing_ran()
    await agent.context.close()


async def test_the_clock_warns_from_its_own_start_and_shows_paused_while_pending(browser: Browser, desk: Desk) -> None:
    r = await desk.admin.post("/api/v1/sla/policies", json={"name": "An hour", "first_response_seconds": 3600})
    assert r.status_code == 201, r.text
    now = dt.datetime.now(dt.UTC)

    async def ingested(external_id: str, sender: Sender, sent_at: dt.datetime) -> int:
        msg = InboundMessage(channel_id=desk.channel_id, external_id=external_id, sender=sender, text="Hello", sent_at=sent_at)
        conv = (await ingest(desk.hub.pool, msg)).conversation_id
        await wait_for(lambda: desk.hub.pool.fetchval("SELECT due_at FROM sla_clocks WHERE conversation_id = $1", conv))
        return conv

    # Written 50 minutes ago (the channel's time), arrived now: 10 of its 60 minutes are left.
    late = await ingested("w-1", Sender("7201", "Wanda Waiting"), now - dt.timedelta(minutes=50))
    # A conversation opened two days ago whose customer wrote just now: 60 of 60 minutes left.
    fresh = await ingested("w-2", Sender("7202", "Fedor Fresh"), now)
    await desk.hub.pool.execute("UPDATE conversations SET created_at = now() - interval '2 days' WHERE id = $1", fresh)

    agent = await open_agent(browser, desk, desk.anna)
    page = agent.page
    late_clock = page.locator(".conv", has_text="Wanda Waiting").locator(".sla-clock")
    await expect(late_clock).to_have_text(re.compile(r"^due in (9|10) min$"))
    await expect(late_clock).to_have_attribute("data-level", "warn")
    fresh_clock = page.locator(".conv", has_text="Fedor Fresh").locator(".sla-clock")
    await expect(fresh_clock).to_have_text(re.compile(r"^due in (59 min|1 h)$"))
    await expect(fresh_clock).to_have_attribute("data-level", "ok")

    # Pending: the clock stands still and says so, in the header and on the row.
    await page.locator(".conv", has_text="Wanda Waiting").click()
    header = page.locator(".thread-sub .sla-clock")
    await expect(header).to_have_attribute("data-level", "warn")
    r = await desk.admin.post(f"/api/v1/conversations/{late}/status", json={"status": "pending"})
    assert r.status_code == 200, r.text
    await expect(header).to_have_text("paused")
    await expect(header).to_have_attribute("data-level", "paused")
    await page.select_option("#filter-status", "pending")
    row_clock = page.locator(".conv", has_text="Wanda Waiting").locator(".sla-clock")
    await expect(row_clock).to_have_text("paused")
    assert await row_clock.get_attribute("title") == (
        "First response: paused while pending or snoozed; resumes when the conversation is open again")
    # A repaint (every 30 s) keeps it paused rather than counting down.
    assert await page.evaluate(
        "() => import('/static/inbox/sla.js').then((m) => { m.refreshClocks();"
        " return document.querySelector('.thread-sub .sla-clock').textContent; })"
    ) == "paused"
    await shot(page, "sla-paused.png", scratch=True)
    # A snapshot of the pending conversation taken before routing paused its clock still shows "paused".
    assert await page.evaluate(
        "() => import('/static/inbox/sla.js').then((m) => m.slaClock({status: 'pending', sla: {due_at: null, clocks: ["
        "{metric: 'first_response', started_at: new Date(Date.now() - 6e5).toISOString(),"
        " due_at: new Date(Date.now() + 6e5).toISOString(), stopped_at: null, paused_at: null}]}}))"
    ) == {"metric": "first_response", "paused": True}
    await page.select_option("#lang", "ru")
    await expect(row_clock).to_have_text("на паузе")
    await expect(header).to_have_text("на паузе")
    await page.select_option("#lang", "en")

    # Reopened: it counts down again from what it had left.
    r = await desk.admin.post(f"/api/v1/conversations/{late}/status", json={"status": "open"})
    assert r.status_code == 200, r.text
    await expect(header).to_have_text(re.compile(r"^due in (9|10) min$"))
    await expect(header).to_have_attribute("data-level", "warn")

    await agent.assert_nothing_ran()
    await agent.context.close()


async def test_presence_toggle_sends_away_and_colleagues_see_it(browser: Browser, desk: Desk) -> None:
    await say(desk, "p-1", Sender("7101", "Pavel"), "Hi")
    anna = await open_agent(browser, desk, desk.anna)
    boris = await open_agent(browser, desk, desk.boris)
    await anna.page.click(".conv", timeout=10_000)
    boris_option = anna.page.locator("#assign-to option", has_text="Boris Agent")
    await expect(boris_option).to_have_attribute("data-presence", "online")

    toggle = boris.page.locator("#presence-toggle")
    await expect(toggle).to_have_text("Online")
    await toggle.click()
    await expect(toggle).to_have_text("Away")
    await expect(toggle).to_have_attribute("aria-pressed", "true")

    async def boris_status() -> str:
        r = await desk.admin.get("/api/v1/presence")
        return next(p["status"] for p in r.json()["items"] if p["agent"]["id"] == desk.boris["id"])

    await wait_for(lambda: _is(boris_status, "away"))
    await expect(boris_option).to_have_attribute("data-presence", "away")
    await expect(boris_option).to_contain_text("Boris Agent — Away")
    await shot(boris.page, "sla-presence-away.png", scratch=True)

    # Assigning to a colleague from the select.
    await anna.page.select_option("#assign-to", str(desk.boris["id"]))
    await expect(anna.page.locator("#conv-assignee")).to_have_text("Assigned to Boris Agent")

    await toggle.click()
    await expect(toggle).to_have_text("Online")
    await wait_for(lambda: _is(boris_status, "online"))
    await expect(boris_option).to_have_attribute("data-presence", "online")

    for p in (anna, boris):
        await p.assert_nothing_ran()
        await p.context.close()


async def _is(get: Any, want: str) -> bool:
    return bool(await get() == want)
