"""`omnihub serve`: the web server and the hub's background work in one process."""

from __future__ import annotations

import logging
import secrets
import socket

import asyncpg
import uvicorn

from connectors.widget import new_signing_key
from hub.channels import add_channel
from hub.config import Config
from hub.errors import ConfigError
from hub.runtime import running_hub
from inbox.agents import ensure_agent
from web.app import create_app

log = logging.getLogger(__name__)

DEMO_EMAIL = "demo@omnihub.local"
DEMO_WIDGET = "Website chat (demo)"


def listen_socket(host: str, port: int) -> socket.socket:
    """Bind before anything starts, so a taken port is one clear error."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        raise ConfigError(f"cannot listen on {host}:{port} ({e.strerror}); choose another with --port or OMNIHUB_PORT") from None
    sock.set_inheritable(True)
    return sock


async def serve(config: Config, database_url: str, sock: socket.socket, *, demo: bool = False) -> None:
    async with running_hub(config, database_url) as hub:
        demo_channel = await seed_demo(hub.pool) if demo else None
        app = create_app(hub, demo_channel_id=demo_channel[0] if demo_channel else None)
        server = uvicorn.Server(
            uvicorn.Config(app, host=config.host, port=config.port, ws="websockets-sansio", lifespan="off", log_level="warning")
        )
        print(f"omnihub is running at {config.base_url}/  (Ctrl-C stops it)", flush=True)
        if demo_channel:
            print(f"  agent inbox: {config.base_url}/   login {DEMO_EMAIL}  password {demo_channel[1]}", flush=True)
            print(f"  demo site with the chat widget: {config.base_url}/demo", flush=True)
        await server.serve(sockets=[sock])


async def seed_demo(pool: asyncpg.Pool) -> tuple[int, str]:
    """A demo agent (fresh password each start) and a widget channel; returns (channel id, password)."""
    password = secrets.token_urlsafe(9)
    await ensure_agent(pool, email=DEMO_EMAIL, name="Demo Agent", role="admin", password=password)
    channel_id = await pool.fetchval("SELECT id FROM channels WHERE name = $1", DEMO_WIDGET)
    if channel_id is None:
        channel_id = await add_channel(
            pool, kind="widget", name=DEMO_WIDGET, settings={"origins": []}, secrets={"signing_key": new_signing_key()}
        )
    return channel_id, password
