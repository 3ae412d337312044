"""`/ws/agent`: the live inbox feed.

On connect the agent may name the last event id it saw; every stored event
after it is sent first, then live ones, with no gap and no duplicate (see
hub/events.py for why ids are safe to resume from). A client that can't keep
up is disconnected rather than buffered without bound; it reconnects and
resumes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging

from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from hub.events import events_after, publish_ephemeral
from hub.types import JSON
from web.auth import AgentUser, same_origin
from web.http import hub_of

log = logging.getLogger(__name__)

QUEUE_LIMIT = 5000
CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_TOO_SLOW = 4408


class _Overflow(Exception):
    pass


async def agent_socket(websocket: WebSocket) -> None:
    await websocket.accept()
    user = websocket.scope.get("user")
    if not isinstance(user, AgentUser):
        await websocket.close(CLOSE_UNAUTHENTICATED, "log in first")
        return
    if user.via_cookie and not same_origin(websocket):
        await websocket.close(CLOSE_FORBIDDEN, "cross-origin websocket refused")
        return
    hub = hub_of(websocket)
    raw_last = websocket.query_params.get("last_event_id", "")
    last_seen = int(raw_last) if raw_last.isdigit() else None

    queue: asyncio.Queue[JSON] = asyncio.Queue()
    overflow = asyncio.Event()

    def deliver(event: JSON) -> None:
        if event.get("audience", "agents") != "agents":
            return
        if event.get("type") == "agent.presence" and event.get("agent_id") == user.agent["id"]:
            return  # others hear that this agent came online; the agent knows
        if queue.qsize() >= QUEUE_LIMIT:
            overflow.set()
            return
        queue.put_nowait(event)

    # No await between reading the high-water mark and subscribing: every
    # event is either in the replay range or arrives live, never both.
    upto = hub.fanout.high_water
    sub = hub.fanout.subscribe(deliver)
    presence_id: int | None = None
    try:
        presence_id = await hub.routing.presence.connect(user.agent["id"])  # online while this socket lives
        await websocket.send_json({"type": "hello", "agent": user.agent, "last_event_id": upto})
        if last_seen is not None:
            after = last_seen
            while after < upto:
                batch = await events_after(hub.pool, after, upto)
                if not batch:
                    break
                for event in batch:
                    await websocket.send_json(event)
                after = batch[-1]["id"]
        await _pump(websocket, queue, overflow, user.agent, presence_id)
    except (WebSocketDisconnect, _Overflow):
        pass
    finally:
        hub.fanout.unsubscribe(sub)
        if presence_id is not None:
            with contextlib.suppress(Exception):
                await hub.routing.presence.disconnect(presence_id)


async def _pump(
    websocket: WebSocket, queue: asyncio.Queue[JSON], overflow: asyncio.Event, agent: JSON, presence_id: int
) -> None:
    async def send() -> None:
        while True:
            event = await queue.get()
            if overflow.is_set():
                await websocket.close(CLOSE_TOO_SLOW, "too far behind; reconnect with last_event_id")
                raise _Overflow
            await websocket.send_json(event)

    async def receive() -> None:
        while True:
            text = await websocket.receive_text()
            try:
                msg = json.loads(text)
            except ValueError:
                await websocket.send_json({"type": "error", "reason": "messages must be JSON"})
                continue
            if not isinstance(msg, dict):
                continue
            if msg.get("type") == "ping":
                await websocket.send_json({"type": "pong"})
            elif msg.get("type") == "typing" and isinstance(msg.get("conversation_id"), int):
                await publish_ephemeral(
                    hub_of(websocket).pool,
                    {"type": "agent.typing", "audience": "visitors", "conversation_id": msg["conversation_id"],
                     "agent": agent["name"]},
                )
            elif msg.get("type") == "presence" and msg.get("status") in ("online", "away"):
                await hub_of(websocket).routing.presence.set_status(presence_id, msg["status"])

    async def watch_overflow() -> None:
        await overflow.wait()
        queue.put_nowait({"type": "overflow"})  # wakes send(), which closes

    tasks = [asyncio.create_task(t()) for t in (send, receive, watch_overflow)]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for t in done:
            t.result()
    finally:
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t


routes = [WebSocketRoute("/ws/agent", agent_socket)]
