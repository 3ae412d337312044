"""The routing loop: one per hub process, reacting to events and to the clock.

Who reacts to what:
- conversation.created, message.created, conversation.status → enqueue the
  conversation (routing row), recompute its SLA clocks;
- those, conversation.assigned and agent.presence (a slot or an agent freed up)
  → hand out the queue (routing/auto_assign.py);
- every TICK_SECONDS → presence sweep (grace time, dead processes), SLA
  breaches, the queue again;
- every CATCH_UP_SECONDS → conversations that arrived while no process routed.

Every step is safe to run in several processes at once (see each module), so
every process runs the whole loop: nothing to elect, nothing to fail over.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import asyncpg

from hub.events import EventFanout, Subscription
from hub.types import JSON
from routing import auto_assign, presence, sla
from routing.presence import Presence

log = logging.getLogger(__name__)

TICK_SECONDS = 1.0
CATCH_UP_SECONDS = 30.0
WAKE_TYPES = {"conversation.created", "message.created", "conversation.status", "conversation.assigned",
              "agent.presence", "routing.changed"}
CLOCK_TYPES = {"conversation.created", "message.created", "conversation.status"}
DB_ERRORS = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError)


class Routing:
    def __init__(self, pool: asyncpg.Pool, fanout: EventFanout) -> None:
        self._pool = pool
        self._fanout = fanout
        self.presence = Presence(pool)
        self._dirty: set[int] = set()
        self._wake = asyncio.Event()
        self._sub: Subscription | None = None
        self._task: asyncio.Task[None] | None = None
        self._next_sweep = 0.0

    async def start(self) -> None:
        self._sub = self._fanout.subscribe(self._on_event)
        await self.presence.start()
        self._task = asyncio.create_task(self._run(), name="routing")

    async def stop(self) -> None:
        if self._sub is not None:
            self._fanout.unsubscribe(self._sub)
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.presence.stop()

    def _on_event(self, event: JSON) -> None:
        kind = event.get("type")
        if kind not in WAKE_TYPES:
            return
        if kind in CLOCK_TYPES and isinstance(event.get("conversation_id"), int):
            self._dirty.add(event["conversation_id"])
        self._wake.set()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        next_catch_up = 0.0
        while True:
            try:
                if loop.time() >= next_catch_up:
                    self._dirty.update(await auto_assign.enqueue_missing(self._pool))
                    next_catch_up = loop.time() + CATCH_UP_SECONDS
                await self.step()
            except asyncio.CancelledError:
                raise
            except DB_ERRORS as e:
                log.warning("routing cannot reach the database (%s); retrying", e)
            except Exception:
                log.exception("routing step failed; retrying")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), TICK_SECONDS)
            self._wake.clear()

    async def step(self) -> None:
        """One pass: new and changed conversations, presence, breaches, then the queue."""
        dirty, self._dirty = sorted(self._dirty), set()
        if dirty:
            try:
                await auto_assign.enqueue(self._pool, dirty)
                changed = await sla.update_clocks(self._pool, dirty)
            except BaseException:
                self._dirty.update(dirty)  # try them again next pass
                raise
            await sla.announce(self._pool, changed)
        now = asyncio.get_running_loop().time()
        if now >= self._next_sweep:  # timers need a pass per tick, not one per event
            self._next_sweep = now + TICK_SECONDS
            await presence.sweep(self._pool)
            await sla.escalate_breaches(self._pool)
        await auto_assign.assign_waiting(self._pool)
