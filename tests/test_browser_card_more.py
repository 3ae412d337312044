"""The client card holds a client's newest 50 conversations; "Show more" pages on, in a real browser."""

from __future__ import annotations

import pytest
from playwright.async_api import Browser, expect

from tests.test_browser_card import Setup, open_inbox, say, setup, shot  # noqa: F401  (setup: the fixture)

pytestmark = pytest.mark.timeout(180)


async def test_show_more_pages_through_a_busy_clients_conversations(browser: Browser, setup: Setup) -> None:  # noqa: F811
    first = await say(setup, "202", "Busy Buyer", "my first question")
    await setup.hub.pool.execute(
        "INSERT INTO conversations (client_id, channel_id, identity_id, status, last_activity_at)"
        " SELECT client_id, channel_id, identity_id, 'resolved', now() - g * interval '1 hour'"
        " FROM conversations, generate_series(1, 59) g WHERE id = $1",
        first.conversation_id,
    )
    a = await open_inbox(browser, setup, setup.agent)
    page = a.page
    await page.click(".conv:has-text('Busy Buyer')")
    card = page.locator("#card")
    await expect(card.locator("#card-name")).to_have_text("Busy Buyer")
    await expect(card.locator(".card-conv")).to_have_count(50)
    more = card.locator("#card-conv-more")
    await expect(more).to_have_text("Show more (50 of 60)")
    await page.wait_for_load_state("networkidle")  # the refresh that opening the conversation (read) sets off
    await more.scroll_into_view_if_needed()  # (before that refresh, it may replace the button while this scrolls)
    await shot(page, "card-show-more.png")
    await more.click()
    await expect(card.locator(".card-conv")).to_have_count(60)
    await expect(more).to_have_count(0)
    # the oldest (lowest id) came with the second page: the client's first, open conversation
    await expect(card.locator(".card-conv-text").last).to_have_text("my first question")
    # a live refresh of the card (a new message from the client) keeps the opened page
    await say(setup, "202", "Busy Buyer", "one more thing")
    await expect(card.locator(".card-conv-text").last).to_have_text("one more thing")  # its open conversation
    await expect(card.locator(".card-conv")).to_have_count(60)
    await expect(more).to_have_count(0)
    await a.assert_nothing_ran()


async def test_show_more_pages_through_a_long_timeline_and_many_identities(browser: Browser, setup: Setup) -> None:  # noqa: F811
    first = await say(setup, "303", "Old Friend", "hello again")
    # 130 newer events, all at one instant (the pages go by event id, so ties neither split nor repeat)
    await setup.hub.pool.execute(
        "INSERT INTO events (type, client_id, payload, created_at)"
        " SELECT 'note.created', $1, jsonb_build_object('note', jsonb_build_object('text', 'old note ' || g,"
        " 'author', jsonb_build_object('name', 'Ann'))), now() - interval '1 day' FROM generate_series(1, 130) g",
        first.client_id,
    )
    await setup.hub.pool.execute(
        "INSERT INTO identities (channel_id, external_id, client_id, display_name)"
        " SELECT $1, 'alias-' || g, $2, 'Alias ' || g FROM generate_series(1, 52) g",
        setup.tg, first.client_id,
    )
    a = await open_inbox(browser, setup, setup.agent)
    page = a.page
    await page.click(".conv:has-text('Old Friend')")
    card = page.locator("#card")
    await expect(card.locator("#card-name")).to_have_text("Old Friend")
    timeline = card.locator(".timeline .tl")
    await expect(timeline).to_have_count(100)
    await expect(card.locator(".tl:has-text('hello again')")).to_have_count(0)
    await expect(card.locator(".identity")).to_have_count(50)
    await expect(card.locator("#card-ident-more")).to_have_text("Show more (50 of 53)")
    more = card.locator("#card-timeline-more")
    await expect(more).to_have_text("Show more (100 of 100+)")  # no total: counting every event is what the cap saves
    await page.wait_for_load_state("networkidle")  # the refresh that opening the conversation (read) sets off
    await more.scroll_into_view_if_needed()
    await shot(page, "card-timeline-more.png")
    await more.click()
    await expect(card.locator(".tl:has-text('old note')")).to_have_count(130)
    await expect(card.locator(".tl:has-text('hello again')")).to_have_count(1)
    await expect(timeline.last).to_contain_text("Conversation started")  # the oldest, at the bottom
    await expect(timeline.first).to_contain_text("old note 130")  # the newest, on top
    await expect(more).to_have_count(0)
    await card.locator("#card-ident-more").click()
    await expect(card.locator(".identity")).to_have_count(53)
    await expect(card.locator("#card-ident-more")).to_have_count(0)
    # a live refresh (a new message from the client) keeps the opened pages
    await say(setup, "303", "Old Friend", "one more thing")
    await expect(card.locator(".tl:has-text('one more thing')")).to_have_count(1)
    await expect(card.locator(".tl:has-text('hello again')")).to_have_count(1)
    await expect(card.locator(".tl:has-text('old note')")).to_have_count(130)
    await expect(card.locator(".identity")).to_have_count(53)
    await a.assert_nothing_ran()
