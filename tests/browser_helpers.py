"""What the browser tests share: a person in a browser context of their own, signing in, screenshots.

Screenshots go to SCREENSHOTS: docs/screenshots/ when OMNIHUB_UPDATE_SCREENSHOTS=1, otherwise the temp
directory (so a plain test run leaves the tree clean). SCRATCH is the temp directory always, for
screenshots that are looked at but never go into the docs.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from playwright.async_api import Browser, BrowserContext, Dialog, Locator, Page, ViewportSize, expect

from hub import db
from hub.channels import add_channel

SCRATCH = Path(tempfile.gettempdir()) / "omnihub-screenshots"
SCREENSHOTS = (
    Path(__file__).resolve().parent.parent / "docs" / "screenshots"
    if os.environ.get("OMNIHUB_UPDATE_SCREENSHOTS") == "1"
    else SCRATCH
)
DESKTOP: ViewportSize = {"width": 1440, "height": 900}
PHONE: ViewportSize = {"width": 390, "height": 800}

expect.set_options(timeout=10_000)


@dataclass
class Person:
    """A browser context with one page, and every dialog it tried to open."""

    context: BrowserContext
    page: Page
    dialogs: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    async def assert_nothing_ran(self) -> None:
        assert self.dialogs == [], f"a dialog opened: {self.dialogs}"
        assert await self.page.evaluate("window.__pwned") is None, "an injected handler ran"
        assert self.errors == [], f"uncaught page errors: {self.errors}"


async def open_person(
    browser: Browser, *, viewport: ViewportSize = DESKTOP, locale: str = "en-US", timezone_id: str | None = None
) -> Person:
    context = await browser.new_context(viewport=viewport, locale=locale, timezone_id=timezone_id)
    page = await context.new_page()
    person = Person(context, page)

    async def on_dialog(d: Dialog) -> None:
        person.dialogs.append(d.message)
        await d.dismiss()

    page.on("dialog", on_dialog)
    page.on("pageerror", lambda e: person.errors.append(str(e)))
    return person


async def sign_in(person: Person, base_url: str, who: dict[str, Any]) -> None:
    """Log `who` in to the inbox at base_url and wait for its list and its live connection."""
    page = person.page
    await page.goto(f"{base_url}/")
    await page.fill("#login-email", who["email"])
    await page.fill("#login-password", who["password"])
    await page.click("#login-submit")
    await expect(page.locator("#conv-items")).to_be_visible()
    await expect(page.locator("#conn-dot")).to_have_attribute("data-state", "open")


async def shot(target: Page | Locator, name: str, *, scratch: bool = False, **options: Any) -> Path:
    """A screenshot of a page or a part of it, into SCREENSHOTS (SCRATCH if `scratch`)."""
    folder = SCRATCH if scratch else SCREENSHOTS
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    await target.screenshot(path=str(path), **options)
    return path


async def add_disabled_channel(database_url: str, *, kind: str, name: str) -> int:
    """A channel to show in the inbox that never runs: nothing tries to reach Telegram or a mail server."""
    conn = await db.connect(database_url)
    try:
        channel_id = await add_channel(conn, kind=kind, name=name, settings={}, secrets={})
        await conn.execute("UPDATE channels SET enabled = false WHERE id = $1", channel_id)
    finally:
        await conn.close()
    return channel_id
