"""The managers' Reports view in a real browser: the seeded week of tests/test_reports.py on one screen.

Debian's Chromium through Playwright against a whole hub on a real uvicorn
server. A manager sees the per-agent table with the right numbers, downloads its
CSV, opens a breached conversation from the list, switches periods (an empty
one, a custom one) and languages; an agent gets no Reports button and the API
refuses them. Screenshots replace docs/screenshots/reports-*.png when
OMNIHUB_UPDATE_SCREENSHOTS=1.
"""

from __future__ import annotations

import asyncio
import csv
import io
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, Page, Route, ViewportSize, expect

from tests.browser_helpers import DESKTOP, PHONE, Person, open_person, shot, sign_in
from tests.conftest import RunningHub, login, make_agent, start_hub
from tests.test_reports import Week, seed_week

pytestmark = pytest.mark.timeout(180)


@dataclass
class Office:
    hub: RunningHub
    admin: httpx.AsyncClient
    week: Week


@pytest.fixture
async def office(database_url: str) -> AsyncIterator[Office]:
    async with start_hub(database_url) as h:
        admin = await login(h.base_url, await make_agent(h.pool, "admin", name="Alice Admin"))
        try:
            yield Office(h, admin, await seed_week(h, admin))
        finally:
            await admin.aclose()


async def open_inbox(browser: Browser, office: Office, who: dict[str, Any], viewport: ViewportSize = DESKTOP) -> Person:
    # Moscow time: the volume days follow the browser's zone (09:00 UTC is 12:00 there, the same day).
    person = await open_person(browser, viewport=viewport, timezone_id="Europe/Moscow")
    await sign_in(person, office.hub.base_url, who)
    return person


async def sticking_out(page: Page) -> list[str]:
    """Elements past the right edge of the window (the tables scroll inside their own box)."""
    found: list[str] = await page.evaluate("""() => [...document.querySelectorAll('body *')]
        .filter((e) => e.getBoundingClientRect().right > window.innerWidth + 1 && e.checkVisibility()
                       && !e.closest('.rep-scroll, .topbar-right'))
        .map((e) => `${e.tagName}#${e.id}.${e.className} ${Math.round(e.getBoundingClientRect().right)}`)""")
    topbar: bool = await page.evaluate(
        "() => { const r = document.querySelector('.topbar-right'); return r.scrollWidth <= r.clientWidth + 1; }")
    return found if topbar else [*found, "the top bar's buttons"]


def cells(page: Page, agent_id: int) -> Any:
    return page.locator(f"#rep-agents-table tr[data-agent='{agent_id}'] td")


async def test_manager_sees_who_answered_late_and_exports_it(browser: Browser, office: Office) -> None:
    w = office.week
    m = await open_inbox(browser, office, w.manager)
    page = m.page
    await expect(page.locator("#reports-btn")).to_have_text("Reports")
    await page.click("#reports-btn")
    await expect(page.locator("#reports")).to_be_visible()
    await expect(page.locator(".panes")).to_be_hidden()
    await expect(page.locator("#rep-period")).to_have_value("last7")
    # History and Reports take turns in the same place.
    await page.click("#history-btn")
    await expect(page.locator("#history")).to_be_visible()
    await expect(page.locator("#reports")).to_be_hidden()
    await page.click("#reports-btn")
    await expect(page.locator("#history")).to_be_hidden()
    await expect(page.locator("#reports")).to_be_visible()
    await expect(page.locator("#reports-btn")).to_have_attribute("aria-pressed", "true")

    # Anna answered within the target; Boris once 25 minutes late, and one conversation of his breached.
    await expect(cells(page, w.anna["id"])).to_have_text(["Anna Agent", "0", "0", "2", "5.0 min", "5.8 min", "2", "3"])
    await expect(cells(page, w.boris["id"])).to_have_text(["Boris Agent", "1", "1", "2", "14 min", "23 min", "2", "2"])
    await expect(page.locator(f"#rep-agents-table tr[data-agent='{w.boris['id']}'] td[data-col='late']")).to_have_class(
        "num rep-bad")
    await expect(page.locator("#rep-volume-table tbody tr")).to_have_count(2)
    await expect(page.locator("#rep-volume-table tr[data-channel='Telegram'] td[data-col='inbound']")).to_have_text("4")
    await expect(page.locator("#rep-volume-total")).to_contain_text("In total: 6 in, 5 out.")
    await expect(page.locator("#rep-breaches-table tbody tr")).to_have_count(1)
    await expect(page.locator("#rep-breaches-table .rep-open")).to_have_text("Vera")
    # Which ones? Boris's late count opens the list of his late first responses.
    await page.click(f"#rep-agents-table tr[data-agent='{w.boris['id']}'] .rep-late-btn")
    await expect(page.locator("#rep-late h4")).to_have_text("Late first responses — Boris Agent")
    await expect(page.locator("#rep-late-table tbody tr")).to_have_count(1)
    await expect(page.locator("#rep-late-table tbody td")).to_have_text(
        ["Lena", re.compile(r"\S"), re.compile(r"\S"), "25 min", re.compile(r"\S")])
    late_href = await page.locator("#rep-late .rep-late-csv").get_attribute("href")
    assert late_href is not None and f"agent={w.boris['id']}" in late_href and "late=1" in late_href
    await shot(page, "reports-desktop.png", full_page=True)

    # The CSV link downloads the same table.
    link = page.locator("#rep-agents .rep-csv")
    href = await link.get_attribute("href")
    assert href is not None and href.startswith("/api/v1/reports/agents?") and "format=csv" in href
    async with page.expect_download() as info:
        await link.click()
    download = await info.value
    assert download.suggested_filename.startswith("omnihub-agents-") and download.suggested_filename.endswith(".csv")
    path = await download.path()
    text = await asyncio.to_thread(Path(path).read_text, encoding="utf-8")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [(r["agent"], r["first_responses"], r["late_first_responses"], r["sla_breaches"]) for r in rows] == [
        ("Anna Agent", "2", "0", "0"), ("Boris Agent", "2", "1", "1")]
    breaches_href = await page.locator("#rep-breaches .rep-csv").get_attribute("href")
    r = await page.request.get(f"{office.hub.base_url}{breaches_href}")
    assert r.status == 200 and "Vera" in await r.text()

    # Yesterday nothing happened: empty states, not empty tables.
    await page.select_option("#rep-period", "yesterday")
    await expect(page.locator("#rep-agents .empty")).to_have_text("No replies in this period")
    await expect(page.locator("#rep-volume .empty")).to_have_text("No messages in this period")
    await expect(page.locator("#rep-breaches .empty")).to_have_text("No SLA breaches in this period")

    # A custom period of the one busy day gives the same table.
    await page.select_option("#rep-period", "custom")
    day = w.day.date().isoformat()
    await page.fill("#rep-from", day)
    await page.fill("#rep-to", day)
    await page.click("#rep-apply")
    await expect(cells(page, w.boris["id"])).to_have_text(["Boris Agent", "1", "0", "2", "14 min", "23 min", "2", "2"])

    # Russian.
    await page.select_option("#rep-period", "last7")
    await page.select_option("#lang", "ru")
    await expect(page.locator("#reports-btn")).to_have_text("Отчёты")
    await expect(page.locator("#rep-agents-table th").first).to_have_text("Сотрудник")
    await expect(cells(page, w.anna["id"]).nth(4)).to_have_text("5,0 мин")
    await page.select_option("#lang", "en")

    # A failing section says so; the others still show.
    async def fail(route: Route) -> None:
        await route.fulfill(status=500, json={"error": "database is away"})

    await page.route("**/api/v1/reports/volume*", fail)
    await page.click("#rep-refresh")
    await expect(page.locator("#rep-volume .empty.error")).to_have_text("Something went wrong: database is away")
    await expect(cells(page, w.anna["id"]).first).to_have_text("Anna Agent")
    await page.unroute("**/api/v1/reports/volume*")

    # A breach opens its conversation in the inbox.
    await page.click("#rep-breaches-table .rep-open")
    await expect(page.locator("#reports")).to_be_hidden()
    await expect(page.locator(".panes")).to_be_visible()
    await expect(page.locator("#card-name")).to_have_text("Vera")
    assert m.errors == []
    await m.context.close()


async def test_reports_on_a_phone(browser: Browser, office: Office) -> None:
    m = await open_inbox(browser, office, office.week.manager, viewport=PHONE)
    page = m.page
    await page.click("#reports-btn")
    await expect(cells(page, office.week.boris["id"]).nth(1)).to_have_text("1")  # late
    # The table scrolls sideways inside its section; the page itself does not.
    await shot(page, "reports-phone.png", full_page=True)
    assert await sticking_out(page) == []
    await page.select_option("#lang", "ru")
    await expect(page.locator("#reports-btn")).to_have_text("Отчёты")
    assert await sticking_out(page) == []
    assert m.errors == []
    await m.context.close()


async def test_an_agent_has_no_reports(browser: Browser, office: Office) -> None:
    a = await open_inbox(browser, office, office.week.anna)
    page = a.page
    await expect(page.locator("#reports-btn")).to_be_hidden()
    await expect(page.locator("#reports")).to_be_hidden()
    r = await page.request.get(f"{office.hub.base_url}/api/v1/reports/agents")
    assert r.status == 403
    assert a.errors == []
    await a.context.close()
