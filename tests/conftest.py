"""Shared fixtures: a real PostgreSQL, a clean database per test, a running hub.

PostgreSQL: `OMNIHUB_TEST_DATABASE_URL` when set (CI: the server at
127.0.0.1:5432), otherwise an embedded server started for the session. Each
test gets its own database, cloned from a migrated template.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import socket
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
import pytest
import uvicorn
from playwright.async_api import Browser, async_playwright

from hub import db
from hub.config import Config
from hub.migrate import migrate
from hub.runtime import Hub, running_hub
from inbox.agents import add_agent
from tests.loopback import LoopbackConnector  # registers the loopback channel kind
from web.app import create_app

IN_CI = os.environ.get("CI") == "true"
_counter = itertools.count()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + name))


@pytest.fixture(scope="session")
def pg_server_url() -> Iterator[str]:
    url = os.environ.get("OMNIHUB_TEST_DATABASE_URL")
    if url:
        yield url
        return
    if IN_CI:
        pytest.fail("CI must set OMNIHUB_TEST_DATABASE_URL")
    from hub.embedded import EmbeddedPostgres

    with tempfile.TemporaryDirectory(prefix="omnihub-test-pg-") as tmp:
        os.chmod(tmp, 0o755)
        server = EmbeddedPostgres(Path(tmp))
        yield server.start()
        server.stop()


@pytest.fixture(scope="session")
async def template_db(pg_server_url: str) -> AsyncIterator[str]:
    name = f"omnihub_tmpl_{os.getpid()}"
    admin = await asyncpg.connect(pg_server_url)
    await admin.execute(f"DROP DATABASE IF EXISTS {name}")
    await admin.execute(f"CREATE DATABASE {name}")
    conn = await db.connect(with_database(pg_server_url, name))
    await migrate(conn)
    await conn.close()
    yield name
    await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    await admin.close()


@pytest.fixture
async def database_url(pg_server_url: str, template_db: str) -> AsyncIterator[str]:
    """A clean, migrated database of this test's own."""
    name = f"omnihub_t_{os.getpid()}_{next(_counter)}"
    admin = await asyncpg.connect(pg_server_url)
    try:
        await admin.execute(f"CREATE DATABASE {name} TEMPLATE {template_db}")
    finally:
        await admin.close()
    yield with_database(pg_server_url, name)
    admin = await asyncpg.connect(pg_server_url)
    try:
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    finally:
        await admin.close()


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    async with db.open_pool(database_url, min_size=1, max_size=10) as p:
        yield p


def test_config(port: int, data_dir: Path, **overrides: Any) -> Config:
    return Config(
        database_url=None, data_dir=data_dir, host="127.0.0.1", port=port, secret="test-secret", **overrides
    )


@dataclass
class RunningHub:
    hub: Hub
    base_url: str
    database_url: str
    server: uvicorn.Server

    @property
    def pool(self) -> asyncpg.Pool:
        return self.hub.pool

    @property
    def ws_url(self) -> str:
        return "ws" + self.base_url[4:]


@contextlib.asynccontextmanager
async def start_hub(database_url: str, *, demo_channel_id: int | None = None, **config: Any) -> AsyncIterator[RunningHub]:
    """A whole hub (fan-out, outbox, supervisor, a real uvicorn server) in this event loop."""
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="omnihub-test-") as tmp:
        cfg = test_config(port, Path(tmp), **config)
        async with running_hub(cfg, database_url) as hub:
            app = create_app(hub, demo_channel_id=demo_channel_id)
            server = uvicorn.Server(
                uvicorn.Config(app, host="127.0.0.1", port=port, ws="websockets-sansio", lifespan="off", log_level="warning")
            )
            server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
            task = asyncio.create_task(server.serve())
            while not server.started:
                if task.done():
                    task.result()
                await asyncio.sleep(0.01)
            try:
                yield RunningHub(hub, f"http://127.0.0.1:{port}", database_url, server)
            finally:
                server.should_exit = True
                await task


@pytest.fixture
async def hub(database_url: str) -> AsyncIterator[RunningHub]:
    async with start_hub(database_url) as h:
        yield h


async def make_agent(pool: asyncpg.Pool, role: str = "agent", name: str | None = None) -> dict[str, Any]:
    n = next(_counter)
    agent = await add_agent(
        pool, email=f"{role}{n}@example.com", name=name or f"{role.title()} {n}", role=role, password="correct horse"
    )
    agent["password"] = "correct horse"
    return agent


async def login(base_url: str, agent: dict[str, Any]) -> httpx.AsyncClient:
    client = httpx.AsyncClient(base_url=base_url, timeout=10)
    r = await client.post("/api/v1/auth/login", json={"email": agent["email"], "password": agent["password"]})
    assert r.status_code == 200, r.text
    client.headers["Authorization"] = f"Bearer {r.json()['token']}"
    client.cookies.clear()
    return client


@pytest.fixture
async def api(hub: RunningHub) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client logged in (Bearer) as an admin agent."""
    agent = await make_agent(hub.pool, "admin", name="Alice Admin")
    client = await login(hub.base_url, agent)
    client.agent = agent  # type: ignore[attr-defined]
    yield client
    await client.aclose()


async def wait_for(predicate: Any, timeout: float = 20.0, interval: float = 0.02) -> Any:
    """Poll an async or sync predicate until it returns something truthy."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {getattr(predicate, '__name__', predicate)}")
        await asyncio.sleep(interval)


@pytest.fixture(autouse=True)
def _fresh_loopback() -> None:
    """Channel ids restart at 1 in every test database: forget the last test's loopback traffic."""
    LoopbackConnector.sent.clear()
    LoopbackConnector.outcomes.clear()
    LoopbackConnector.attempts.clear()
    LoopbackConnector.run_failures.clear()


_skipped: list[str] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.skipped:
        _skipped.append(report.nodeid)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """In CI a skipped test is a failed run: every test must really run there."""
    if IN_CI and _skipped and session.exitstatus == 0:
        print(f"\nCI=true: {len(_skipped)} test(s) skipped, which CI does not allow: {', '.join(_skipped[:10])}")
        session.exitstatus = 1


# As root, without a network: no sandbox, no background traffic (see ../.library env notes).
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    "--disable-quic",
]


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    """Debian's Chromium, launched once for every browser test."""
    async with async_playwright() as p:
        b = await p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        yield b
        await b.close()
