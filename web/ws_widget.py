"""`/ws/widget`: a site visitor's chat.

A visitor is known by a signed token kept in their browser and sees only the
conversations of their own identity on this widget channel. Each message
carries a client-side id, which is its dedupe key, so a message re-sent after a
reconnect is stored once. See docs/api.md for the protocol.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import asyncpg
from starlette.requests import HTTPConnection, Request
from starlette.responses import Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from connectors.ratelimit import KeyedRateLimiter
from connectors.widget import file_signature, issue_visitor_token, verify_file_signature, verify_visitor_token
from hub.events import publish_ephemeral
from hub.types import JSON, InboundMessage, Sender
from inbox.clients import merge_clients
from inbox.ingest import ingest
from inbox.views import MESSAGE_SELECT, fetch_message, message_json
from web.http import error, hub_of

log = logging.getLogger(__name__)

CLOSE_BAD_TOKEN = 4401
CLOSE_ORIGIN = 4403
CLOSE_UNKNOWN_CHANNEL = 4404
CLOSE_RATE_LIMITED = 4429
HISTORY_LIMIT = 200
MAX_TEXT = 10_000



@dataclass
class WidgetLimits:
    """Abuse limits of the public widget endpoint, per app (per process behind a load balancer)."""

    connects: KeyedRateLimiter = field(default_factory=lambda: KeyedRateLimiter(rate=0.5, burst=20, max_keys=100_000))
    messages: KeyedRateLimiter = field(default_factory=lambda: KeyedRateLimiter(rate=1.0, burst=10, max_keys=100_000))
    # File links are public capability URLs: a history full of pictures loads at once, a scraper
    # (or someone guessing signatures) is slowed to 2 a second per address.
    downloads: KeyedRateLimiter = field(default_factory=lambda: KeyedRateLimiter(rate=2.0, burst=60, max_keys=100_000))


def limits_of(conn: HTTPConnection) -> WidgetLimits:
    limits: WidgetLimits = conn.app.state.widget_limits
    return limits


def widget_message(m: JSON, key: str, visitor_id: str) -> JSON:
    return {
        "id": m["id"],
        "direction": m["direction"],
        "text": m["text"],
        "author_name": m["author"]["name"] if m["direction"] == "out" else "",
        "created_at": m["created_at"],
        "status": m["status"],
        "attachments": [widget_file(a, m["channel_id"], key, visitor_id) for a in m.get("attachments") or []],
    }


def widget_file(a: JSON, channel_id: int, key: str, visitor_id: str) -> JSON:
    name = str(a.get("filename") or "file")
    query = urlencode({"v": visitor_id, "name": name, "sig": file_signature(key, visitor_id, a["sha256"], name)})
    return {
        "filename": name, "content_type": a.get("content_type") or "application/octet-stream", "size": a.get("size"),
        "url": f"/widget/files/{channel_id}/{a['sha256']}?{query}",
    }


async def widget_file_download(request: Request) -> Response:
    """A file of a visitor's conversation, for the URL the server signed for that visitor."""
    bucket = limits_of(request).downloads.bucket(request.client.host if request.client else "?")
    if not bucket.allow():
        response = error(429, "too many file downloads; try again in a moment")
        response.headers["Retry-After"] = str(max(1, math.ceil(bucket.delay())))
        return response
    q = request.query_params
    sha = request.path_params["sha256"]
    key = await hub_of(request).pool.fetchval(
        "SELECT secrets->>'signing_key' FROM channels WHERE id = $1 AND kind = 'widget'", request.path_params["channel"]
    )
    visitor_id, name, sig = q.get("v", ""), q.get("name", ""), q.get("sig", "")
    if not key or not verify_file_signature(key, visitor_id, sha, name, sig):
        return error(403, "this file link is not valid")
    store = hub_of(request).blobs
    data = await store.get(sha)
    if data is None:
        return error(404, "the file is gone")
    content_type = await store.content_type(sha) or "application/octet-stream"
    # Never let a file run as a page of ours; only images show in place.
    headers = {"Content-Security-Policy": "sandbox", "X-Content-Type-Options": "nosniff", "Cache-Control": "private, max-age=86400"}
    if not content_type.startswith("image/") or content_type == "image/svg+xml":
        headers["Content-Disposition"] = f"attachment; filename*=UTF-8''{quote(name)}"
    return Response(data, media_type=content_type, headers=headers)


def origin_allowed(websocket: WebSocket, settings: dict[str, Any]) -> bool:
    origins = [o.rstrip("/") for o in settings.get("origins") or []]
    if not origins:
        return True
    origin = websocket.headers.get("origin", "")
    own = f"{'https' if websocket.url.scheme == 'wss' else 'http'}://{websocket.url.netloc}"
    public = hub_of(websocket).config.public_url
    allowed = {*origins, own}
    if public:
        p = urlsplit(public)
        allowed.add(f"{p.scheme}://{p.netloc}")
    return origin in allowed


class VisitorSession:
    def __init__(self, websocket: WebSocket, channel: asyncpg.Record, visitor_id: str) -> None:
        self.ws = websocket
        self.hub = hub_of(websocket)
        self.channel_id: int = channel["id"]
        self.key: str = channel["secrets"]["signing_key"]
        self.visitor_id = visitor_id
        self.name = ""
        self.email = ""
        self.own: dict[int, bool] = {}  # conversation id -> belongs to this visitor
        self.client_id: int | None = None
        self.queue: asyncio.Queue[JSON] = asyncio.Queue(maxsize=1000)

    async def history(self) -> tuple[int | None, list[JSON]]:
        pool = self.hub.pool
        row = await pool.fetchrow(
            "SELECT i.client_id, (SELECT c.id FROM conversations c WHERE c.identity_id = i.id ORDER BY c.id DESC LIMIT 1)"
            " AS conv_id FROM identities i WHERE i.channel_id = $1 AND i.external_id = $2",
            self.channel_id,
            self.visitor_id,
        )
        if row is None or row["conv_id"] is None:
            return None, []
        self.client_id = row["client_id"]
        conv_id = row["conv_id"]
        self.own[conv_id] = True
        rows = await pool.fetch(
            "SELECT * FROM (" + MESSAGE_SELECT + " WHERE m.conversation_id = $1 ORDER BY m.id DESC LIMIT $2) x"
            " ORDER BY id",
            conv_id,
            HISTORY_LIMIT,
        )
        return conv_id, [self.message(message_json(r)) for r in rows]

    def message(self, m: JSON) -> JSON:
        return widget_message(m, self.key, self.visitor_id)

    def deliver(self, event: JSON) -> None:
        t = event.get("type")
        if t in ("message.created", "message.status"):
            if event["data"]["message"]["channel_id"] != self.channel_id:
                return
        elif t != "agent.typing":
            return
        # Decide in memory: with thousands of visitors online, a query per event per socket is too many.
        mine = self.own.get(event["conversation_id"])
        if mine is False:
            return
        if mine is None:
            # A conversation this socket has not seen (the visitor's other tab opened it):
            # only one of this visitor's own client can be theirs; `owns` checks the rest.
            conversation = (event.get("data") or {}).get("conversation") or {}  # typing events carry none
            if self.client_id is None or conversation.get("client_id") != self.client_id:
                return
        with contextlib.suppress(asyncio.QueueFull):
            self.queue.put_nowait(event)

    async def owns(self, conversation_id: int) -> bool:
        if conversation_id not in self.own:
            self.own[conversation_id] = bool(
                await self.hub.pool.fetchval(
                    "SELECT 1 FROM conversations c JOIN identities i ON i.id = c.identity_id"
                    " WHERE c.id = $1 AND i.channel_id = $2 AND i.external_id = $3",
                    conversation_id,
                    self.channel_id,
                    self.visitor_id,
                )
            )
        return self.own[conversation_id]

    async def send_events(self) -> None:
        while True:
            event = await self.queue.get()
            if not await self.owns(event["conversation_id"]):
                continue
            if event["type"] == "agent.typing":
                await self.ws.send_json({"type": "typing", "agent": event["agent"]})
            else:
                await self.ws.send_json({"type": "message", "message": self.message(event["data"]["message"])})

    async def receive(self) -> None:
        while True:
            text = await self.ws.receive_text()
            try:
                msg = json.loads(text)
            except ValueError:
                await self.ws.send_json({"type": "error", "reason": "messages must be JSON"})
                continue
            if not isinstance(msg, dict):
                continue
            kind = msg.get("type")
            if kind == "message":
                await self.on_message(msg)
            elif kind == "identify":
                await self.on_identify(msg)
            elif kind == "typing":
                conv = next((c for c, mine in self.own.items() if mine), None)
                if conv is not None:
                    await publish_ephemeral(
                        self.hub.pool, {"type": "visitor.typing", "audience": "agents", "conversation_id": conv}
                    )
            elif kind == "ping":
                await self.ws.send_json({"type": "pong"})
            else:
                await self.ws.send_json({"type": "error", "reason": f"unknown message type {kind!r}"})

    async def on_message(self, msg: JSON) -> None:
        client_msg_id, text = msg.get("client_msg_id"), msg.get("text")
        if not isinstance(client_msg_id, str) or not 1 <= len(client_msg_id) <= 100:
            await self.ws.send_json({"type": "error", "reason": "client_msg_id must be a string of 1-100 characters"})
            return
        if not isinstance(text, str) or not text.strip():
            await self.ws.send_json({"type": "error", "reason": "text must be a non-empty string", "client_msg_id": client_msg_id})
            return
        if len(text) > MAX_TEXT:
            await self.ws.send_json({"type": "error", "reason": f"message longer than {MAX_TEXT} characters", "client_msg_id": client_msg_id})
            return
        if not limits_of(self.ws).messages.bucket(self.visitor_id).allow():
            await self.ws.send_json({"type": "error", "reason": "too many messages; slow down", "client_msg_id": client_msg_id})
            return
        result = await ingest(
            self.hub.pool,
            InboundMessage(
                channel_id=self.channel_id,
                external_id=f"{self.visitor_id}:{client_msg_id}",
                sender=Sender(
                    external_id=self.visitor_id,
                    display_name=self.name or f"Visitor {self.visitor_id[:6]}",
                    email=self.email,
                ),
                text=text,
                raw={"page": str(msg.get("page", ""))[:500]},
            ),
        )
        self.own[result.conversation_id] = True
        self.client_id = result.client_id
        stored = await fetch_message(self.hub.pool, result.message_id)
        assert stored is not None
        await self.ws.send_json({"type": "ack", "client_msg_id": client_msg_id, "message": self.message(stored)})

    async def on_identify(self, msg: JSON) -> None:
        name = str(msg.get("name") or "").strip()[:200]
        email = str(msg.get("email") or "").strip()[:320]
        if email and ("@" not in email or " " in email):
            await self.ws.send_json({"type": "error", "reason": "that e-mail address does not look right"})
            return
        self.name, self.email = name or self.name, email or self.email
        await link_visitor(self.hub.pool, self.channel_id, self.visitor_id, name, email)
        await self.ws.send_json({"type": "identified"})


async def link_visitor(pool: asyncpg.Pool, channel_id: int, visitor_id: str, name: str, email: str) -> None:
    """Put what the visitor told us on their card; an e-mail we know joins them to that client."""
    row = await pool.fetchrow(
        "SELECT client_id FROM identities WHERE channel_id = $1 AND external_id = $2", channel_id, visitor_id
    )
    if row is None:
        return  # no identity yet: the first message creates it with these details
    client_id = row["client_id"]
    if email:
        other = await pool.fetchval(
            "SELECT id FROM clients WHERE lower(email) = lower($1) AND merged_into IS NULL AND id <> $2"
            " ORDER BY id LIMIT 1",
            email,
            client_id,
        )
        if other:
            await merge_clients(pool, client_id=other, other_id=client_id, agent=None)
            client_id = other
    await pool.execute(
        "UPDATE clients SET name = CASE WHEN $2 <> '' AND (name = '' OR name LIKE 'Visitor %') THEN $2 ELSE name END,"
        " email = CASE WHEN email = '' THEN $3 ELSE email END, updated_at = now() WHERE id = $1",
        client_id,
        name,
        email,
    )
    if name:
        await pool.execute(
            "UPDATE identities SET display_name = $3 WHERE channel_id = $1 AND external_id = $2",
            channel_id, visitor_id, name,
        )


async def widget_socket(websocket: WebSocket) -> None:
    await websocket.accept()
    hub = hub_of(websocket)
    address = websocket.client.host if websocket.client else "?"
    if not limits_of(websocket).connects.bucket(address).allow():
        await websocket.close(CLOSE_RATE_LIMITED, "too many connections; try again later")
        return
    raw_channel = websocket.query_params.get("channel", "")
    channel = None
    if raw_channel.isdigit():
        channel = await hub.pool.fetchrow(
            "SELECT id, settings, secrets FROM channels WHERE id = $1 AND kind = 'widget' AND enabled", int(raw_channel)
        )
    if channel is None:
        await websocket.close(CLOSE_UNKNOWN_CHANNEL, "no such widget channel")
        return
    if not origin_allowed(websocket, channel["settings"]):
        await websocket.close(CLOSE_ORIGIN, "this site is not allowed to use this widget")
        return
    key = channel["secrets"]["signing_key"]
    token = websocket.query_params.get("token")
    if token:
        visitor_id = verify_visitor_token(key, token)
        if visitor_id is None:
            await websocket.close(CLOSE_BAD_TOKEN, "visitor token not valid; start a new session")
            return
    else:
        visitor_id, token = issue_visitor_token(key)

    session = VisitorSession(websocket, channel, visitor_id)
    sub = hub.fanout.subscribe(session.deliver)
    tasks: list[asyncio.Task[None]] = []
    try:
        conv_id, messages = await session.history()
        await websocket.send_json(
            {"type": "session", "token": token, "visitor_id": visitor_id, "conversation_id": conv_id, "messages": messages}
        )
        tasks = [asyncio.create_task(session.send_events()), asyncio.create_task(session.receive())]
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for t in done:
            t.result()
    except WebSocketDisconnect:
        pass
    finally:
        hub.fanout.unsubscribe(sub)
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t


routes = [
    WebSocketRoute("/ws/widget", widget_socket),
    Route("/widget/files/{channel:int}/{sha256:str}", widget_file_download),
]
