"""Shared by the channel tests (e-mail, Telegram, VK): a connector's loop on its own, and a whole hub with one channel."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import asyncpg
import httpx

from hub import db
from hub.types import Connector
from tests.conftest import RunningHub, login, make_agent, start_hub
from tests.sinks import MemorySink, SinkCrash


@contextlib.asynccontextmanager
async def running(connector: Connector, sink: MemorySink) -> AsyncIterator[asyncio.Task[None]]:
    """The connector's inbound loop as a task into `sink`; cancelled, and the connector closed, on the way out."""
    task = asyncio.create_task(connector.run(sink))
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, SinkCrash):
            await task
        await connector.close()


@contextlib.asynccontextmanager
async def hub_with_channel(
    database_url: str, add: Callable[[asyncpg.Pool], Awaitable[int]]
) -> AsyncIterator[tuple[RunningHub, httpx.AsyncClient, int]]:
    """The channel `add` makes, then a whole hub and an admin's API client: (hub, client, channel id)."""
    async with db.open_pool(database_url, min_size=1, max_size=2) as pool:
        channel_id = await add(pool)
    async with start_hub(database_url) as hub:
        client = await login(hub.base_url, await make_agent(hub.pool, "admin"))
        try:
            yield hub, client, channel_id
        finally:
            await client.aclose()


async def conversations(client: httpx.AsyncClient) -> list[dict[str, Any]]:
    r = await client.get("/api/v1/conversations")
    assert r.status_code == 200, r.text
    items: list[dict[str, Any]] = r.json()["items"]
    return items


async def messages_of(client: httpx.AsyncClient, conversation_id: int) -> list[dict[str, Any]]:
    r = await client.get(f"/api/v1/conversations/{conversation_id}/messages")
    assert r.status_code == 200, r.text
    items: list[dict[str, Any]] = r.json()["items"]
    return items


async def over(value: Awaitable[Any], n: int) -> bool:
    return bool(await value > n)
