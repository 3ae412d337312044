"""The client card's editable profile and the managers' History view, in a real browser.

Debian's Chromium through Playwright against a whole hub on a real uvicorn
server (the launch pattern of tests/test_browser.py): tags and custom fields
persist, a suggested merge is confirmed and undone from the card, a manager
finds Russian words in any form with highlighted hits, an agent gets no History
button, and markup in a tag or a message stays text.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from playwright.async_api import Browser, Page, expect

from hub.types import InboundMessage, Sender
from inbox.ingest import ingest
from tests import browser_helpers
from tests.browser_helpers import Person, add_disabled_channel, open_person, sign_in
from tests.conftest import RunningHub, login, make_agent, start_hub

pytestmark = pytest.mark.timeout(180)

XSS = "<img src=x onerror=alert(1)>"
PWN = '<img src=x onerror="window.__pwned=1">'


@dataclass
class Setup:
    hub: RunningHub
    tg: int
    agent: dict[str, Any]
    manager: dict[str, Any]


@pytest.fixture
async def setup(database_url: str) -> AsyncIterator[Setup]:
    tg = await add_disabled_channel(database_url, kind="telegram", name="Telegram bot")
    async with start_hub(database_url) as h:
        agent = await make_agent(h.pool, "agent", name="Anna Agent")
        manager = await make_agent(h.pool, "manager", name="Max Manager")
        yield Setup(h, tg, agent, manager)


async def say(s: Setup, ext: str, name: str, text: str, **raw: Any) -> Any:
    return await ingest(
        s.hub.pool,
        InboundMessage(channel_id=s.tg, external_id=f"m-{ext}-{text[:10]}", sender=Sender(ext, name), text=text, raw=raw),
    )


async def open_inbox(browser: Browser, s: Setup, who: dict[str, Any], locale: str = "en-US") -> Person:
    person = await open_person(browser, locale=locale)
    await sign_in(person, s.hub.base_url, who)
    return person


async def shot(page: Page, name: str) -> None:
    """Looked at, never part of the docs."""
    await browser_helpers.shot(page, name, scratch=True)


async def test_tags_and_fields_persist_and_markup_stays_text(browser: Browser, setup: Setup) -> None:
    await say(setup, "101", "Ivan Petrov", "Hello, where is my parcel?", start_payload="promo-42")
    a = await open_inbox(browser, setup, setup.agent)
    page = a.page
    # An agent has no History view.
    await expect(page.locator("#history-btn")).to_be_hidden()
    await page.click(".conv:has-text('Ivan Petrov')")
    card = page.locator("#card")
    await expect(card.locator("#card-name")).to_have_text("Ivan Petrov")
    await expect(card.locator("#card-first-touch")).to_contain_text("came from Telegram /start promo-42")

    await card.locator("#card-tag-input").fill("vip")
    await card.locator("#card-tag-input").press("Enter")
    await expect(card.locator("#card-tags .chip-text")).to_have_text(["vip"])
    await card.locator("#card-tag-input").fill(XSS)
    await card.locator("#card-tag-input").press("Enter")
    await expect(card.locator("#card-tags .chip-text")).to_have_text(["vip", XSS])
    await card.locator("#card-cf-key").fill("city")
    await card.locator("#card-cf-value").fill("Kazan")
    await card.locator("#card-cf-add").click()
    await expect(card.locator("#card-custom dd[data-key='city'] .cf-value")).to_have_text("Kazan")
    await card.locator("#card-segment").fill("retail")
    await card.locator("#card-segment").press("Enter")
    await card.locator("#card-note-input").fill(f"Prefers e-mail {PWN}")
    await card.locator("#card-note-add").click()
    await expect(card.locator("#card-notes .card-note")).to_contain_text(PWN)

    client_id = (await setup.hub.pool.fetchval("SELECT id FROM clients WHERE name = 'Ivan Petrov'"))
    row = await setup.hub.pool.fetchrow("SELECT tags, custom_fields, segment FROM clients WHERE id = $1", client_id)
    assert list(row["tags"]) == ["vip", XSS]
    assert row["segment"] == "retail"

    await page.reload()
    await expect(page.locator("#conv-items")).to_be_visible()
    await page.click(".conv:has-text('Ivan Petrov')")
    await expect(card.locator("#card-tags .chip-text")).to_have_text(["vip", XSS])
    await expect(card.locator("#card-custom dd[data-key='city'] .cf-value")).to_have_text("Kazan")
    await expect(card.locator("#card-segment")).to_have_value("retail")
    await expect(card.locator("#card-notes .card-note")).to_contain_text(PWN)
    assert await card.locator("img").count() == 0
    # Removing a tag is one click on its chip.
    await card.locator("#card-tags .chip[data-tag='vip'] .chip-x").click()
    await expect(card.locator("#card-tags .chip-text")).to_have_text([XSS])
    await shot(page, "card-profile.png")
    await a.assert_nothing_ran()


async def test_a_suggested_merge_is_confirmed_and_undone_from_the_card(browser: Browser, setup: Setup) -> None:
    first = await say(setup, "201", "Petr Ivanov", "Hi from the first account")
    second = await say(setup, "202", "petr ivanov", "Hi from the second account")
    api = await login(setup.hub.base_url, setup.manager)
    try:
        await api.patch(f"/api/v1/clients/{first.client_id}", json={"phone": "+7 (999) 123-45-67"})
        await api.patch(f"/api/v1/clients/{second.client_id}", json={"phone": "89991234567"})
        assert len((await api.get(f"/api/v1/clients/{first.client_id}/merge-suggestions")).json()["items"]) == 1
    finally:
        await api.aclose()

    a = await open_inbox(browser, setup, setup.agent)
    page = a.page
    card = page.locator("#card")
    await page.click(".conv:has-text('the first account')")
    await expect(card.locator("#card-suggestions .suggestion")).to_have_count(1)
    await expect(card.locator("#card-suggestions")).to_contain_text("same name and phone")
    await card.locator(".suggestion-merge").click()
    await expect(card.locator("#card-suggestions")).to_have_count(0)
    await expect(card.locator(".identity")).to_have_count(2)
    await expect(card.locator(".card-merge:not(.undone)")).to_have_count(1)
    await expect(card.locator(".tl-title", has_text="merged")).to_have_count(1)
    await shot(page, "card-merged.png")
    assert await setup.hub.pool.fetchval("SELECT merged_into FROM clients WHERE id = $1", second.client_id) == first.client_id

    await card.locator(".merge-undo").click()
    await expect(card.locator(".card-merge.undone")).to_have_count(1)
    await expect(card.locator(".merge-undo")).to_have_count(0)
    await expect(card.locator(".identity")).to_have_count(1)
    assert await setup.hub.pool.fetchval("SELECT merged_into FROM clients WHERE id = $1", second.client_id) is None
    await a.assert_nothing_ran()


async def test_manager_searches_history_with_highlights(browser: Browser, setup: Setup) -> None:
    await say(setup, "301", "Мария Иванова", "Здравствуйте! Мой заказ ещё не пришёл")
    await say(setup, "302", "Oleg", f"Про заказ {XSS} и {PWN}")
    await say(setup, "303", "Sophie", "Do you ship to France?")
    m = await open_inbox(browser, setup, setup.manager, locale="ru-RU")
    page = m.page
    await expect(page.locator("#history-btn")).to_be_visible()
    await expect(page.locator("#history-btn")).to_have_text("История")
    await page.click("#history-btn")
    await expect(page.locator("#history")).to_be_visible()
    await expect(page.locator(".panes")).to_be_hidden()
    await page.fill("#hist-q", "заказы")
    await page.click("#hist-submit")
    hits = page.locator("#hist-list .hist-hit")
    await expect(hits).to_have_count(2)
    await expect(page.locator("#hist-list mark.hit").first).to_have_text("заказ")
    await expect(hits.filter(has_text="Мария Иванова").locator(".hist-snippet")).to_contain_text("Мой заказ")
    # Markup in a message is text in the snippet: no element came out of it.
    assert await page.locator("#hist-list img").count() == 0
    oleg = hits.filter(has_text="Oleg")
    await expect(oleg.locator(".hist-snippet")).to_contain_text("Про заказ")
    await expect(page.locator("#hist-list")).not_to_contain_text("Sophie")
    # Export links for the result and per conversation.
    href = await page.locator("#hist-export a[data-format='csv']").get_attribute("href")
    assert href is not None and href.startswith("/api/v1/search/export?") and "format=csv" in href
    t_href = await oleg.locator(".hist-transcript-link[data-format='txt']").get_attribute("href")
    assert t_href is not None and t_href.endswith("/transcript?format=txt")
    r = await page.request.get(f"{setup.hub.base_url}{t_href}")
    assert r.status == 200 and XSS in await r.text()
    await shot(page, "history-search.png")

    # Filters go to the server: a status no conversation has finds nothing.
    await page.select_option("#hist-status", "resolved")
    await page.click("#hist-submit")
    await expect(page.locator("#hist-list")).to_have_count(0)
    await expect(page.locator("#hist-results .empty")).to_have_text("Ничего не найдено")

    # Opening a hit goes back to the inbox with that conversation.
    await page.select_option("#hist-status", "")
    await page.click("#hist-submit")
    await oleg.locator(".hist-open").click()
    await expect(page.locator(".panes")).to_be_visible()
    await expect(page.locator("#card-name")).to_have_text("Oleg")
    await expect(page.locator("#thread")).to_contain_text(XSS)
    assert await page.locator("#thread img").count() == 0
    await m.assert_nothing_ran()
