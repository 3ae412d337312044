"""The event log and its live fan-out.

`publish` (one event) and `publish_many` (a transaction's events in one
statement) store events and NOTIFY inside the caller's transaction, so an event
exists exactly when the change it describes has committed.

`EventFanout` (one per process) reads stored events in id order and hands them
to subscribers (agent and widget websockets). Ids come from a sequence, so a
transaction that took id 7 may commit after the one that took id 8. The fan-out
never skips past a missing id while a transaction that may hold it is still
running (checked with the snapshot's xmin), so a subscriber that resumes from
"the last id I saw" misses nothing. See docs/events.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import asyncpg

from hub.listen import Listener
from hub.types import JSON

log = logging.getLogger(__name__)

EVENTS_CHANNEL = "omnihub_events"
EPHEMERAL_CHANNEL = "omnihub_ephemeral"

# Events that make up a client card's timeline (the rest are delivery noise).
TIMELINE_TYPES = (
    "message.created",
    "message.updated",
    "note.created",
    "conversation.created",
    "conversation.assigned",
    "conversation.status",
    "message.failed",
    "client.merged",
    "client.updated",
    "channel.event",
)

GAP_MAX_WAIT = 10.0  # seconds a missing event id may hold the feed back
OVERDUE_MAX = 10_000  # missing ids watched for a late commit after the feed moved past them

_EVENT_COLUMNS = "id, type, client_id, conversation_id, actor_agent_id, payload, created_at"
_E_EVENT_COLUMNS = ", ".join("e." + c.strip() for c in _EVENT_COLUMNS.split(","))


async def publish(
    conn: asyncpg.Connection,
    type: str,
    *,
    data: JSON,
    client_id: int | None = None,
    conversation_id: int | None = None,
    actor: JSON | None = None,
) -> int:
    """Store an event and notify listeners when the surrounding transaction commits."""
    payload = dict(data)
    if actor is not None:
        payload["actor"] = actor
    event_id: int = await conn.fetchval(
        "WITH e AS (INSERT INTO events (type, client_id, conversation_id, actor_agent_id, payload)"
        " VALUES ($1, $2, $3, $4, $5) RETURNING id)"
        " SELECT e.id FROM e, pg_notify($6, '')",
        type,
        client_id,
        conversation_id,
        actor["id"] if actor else None,
        payload,
        EVENTS_CHANNEL,
    )
    return event_id


@dataclass(frozen=True)
class Event:
    """An event not stored yet (see `publish_many`)."""

    type: str
    data: JSON
    client_id: int | None = None
    conversation_id: int | None = None
    actor: JSON | None = field(default=None)


async def publish_many(conn: asyncpg.Connection, events: Sequence[Event], *, notify: bool = True) -> list[int]:
    """Store events in the given order, in one round trip, and notify listeners when the transaction commits.

    `notify=False` is for benchmarks only (what the NOTIFY costs): live feeds would wait for their 1 s poll.
    """
    if not events:
        return []
    rows = [
        {
            "type": e.type,
            "client_id": e.client_id,
            "conversation_id": e.conversation_id,
            "actor_agent_id": e.actor["id"] if e.actor else None,
            "payload": {**e.data, "actor": e.actor} if e.actor is not None else e.data,
        }
        for e in events
    ]
    ids: list[int] = [
        r["id"]
        for r in await conn.fetch(
            "WITH e AS (INSERT INTO events (type, client_id, conversation_id, actor_agent_id, payload)"
            " SELECT x.e->>'type', (x.e->>'client_id')::bigint, (x.e->>'conversation_id')::bigint,"
            " (x.e->>'actor_agent_id')::bigint, x.e->'payload'"
            " FROM jsonb_array_elements($1::jsonb) WITH ORDINALITY AS x(e, n) ORDER BY x.n RETURNING id)"
            + (" SELECT e.id FROM e, pg_notify($2, '') ORDER BY e.id" if notify else " SELECT e.id FROM e ORDER BY e.id"),
            rows,
            *([EVENTS_CHANNEL] if notify else []),
        )
    ]
    return ids


async def publish_ephemeral(conn: asyncpg.Connection | asyncpg.Pool, event: JSON) -> None:
    """A transient signal (typing): not stored, lost if nobody listens."""
    await conn.execute("SELECT pg_notify($1, $2)", EPHEMERAL_CHANNEL, json.dumps(event))


def event_json(row: asyncpg.Record) -> JSON:
    data = dict(row["payload"])
    actor = data.pop("actor", None)
    return {
        "id": row["id"],
        "type": row["type"],
        "client_id": row["client_id"],
        "conversation_id": row["conversation_id"],
        "actor": actor,
        "data": data,
        "created_at": row["created_at"].isoformat(),
    }


async def events_after(conn: asyncpg.Connection | asyncpg.Pool, after_id: int, upto_id: int, limit: int = 1000) -> list[JSON]:
    rows = await conn.fetch(
        f"SELECT {_EVENT_COLUMNS} FROM events WHERE id > $1 AND id <= $2 ORDER BY id LIMIT $3", after_id, upto_id, limit
    )
    return [event_json(r) for r in rows]


Deliver = Callable[[JSON], None]


@dataclass
class Subscription:
    deliver: Deliver
    closed: bool = False


class EventFanout:
    def __init__(self, pool: asyncpg.Pool, listener: Listener) -> None:
        self._pool = pool
        self._subs: list[Subscription] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.high_water = 0  # every stored event with id <= this has been delivered (or never will exist)
        self._gap_xmax: int | None = None
        self._gap_since = 0.0
        # Ids the feed moved past while a writer might still commit them: id → the
        # snapshot xmax when we began waiting. Watched until every transaction that
        # could insert them has ended; one that commits meanwhile is delivered late.
        self._overdue: dict[int, int] = {}
        listener.on(EVENTS_CHANNEL, lambda _p: self._wake.set())
        listener.on(EPHEMERAL_CHANNEL, self._ephemeral)

    async def start(self) -> None:
        self.high_water = await self._pool.fetchval("SELECT coalesce(max(id), 0) FROM events")
        self._task = asyncio.create_task(self._run(), name="event-fanout")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def subscribe(self, deliver: Deliver) -> Subscription:
        """Live events from `high_water` on; read older ones with `events_after(…, upto=high_water)` first.

        Call both without an await in between, so nothing falls between them.
        """
        sub = Subscription(deliver)
        self._subs.append(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        sub.closed = True
        with contextlib.suppress(ValueError):
            self._subs.remove(sub)

    @property
    def subscriber_count(self) -> int:
        return len(self._subs)

    def _ephemeral(self, payload: str) -> None:
        try:
            event = json.loads(payload)
        except ValueError:
            return
        self._broadcast(event)

    def _broadcast(self, event: JSON) -> None:
        for sub in list(self._subs):
            try:
                sub.deliver(event)
            except Exception:
                log.exception("event subscriber failed; dropping it")
                self.unsubscribe(sub)

    async def _run(self) -> None:
        while True:
            # A pending gap is re-checked soon; otherwise a NOTIFY wakes us, and
            # a slow poll covers NOTIFYs lost while the database was away.
            timeout = 0.02 if self._gap_xmax is not None else 0.5 if self._overdue else 1.0
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)
            self._wake.clear()
            try:
                while await self._poll():
                    pass
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as e:
                log.warning("event fan-out cannot read events (%s); retrying", e)
                await asyncio.sleep(0.5)

    async def _poll(self) -> bool:
        """Deliver what is ready; True when a full batch was read (read again)."""
        batch = 1000
        rows = await self._pool.fetch(
            f"SELECT {_EVENT_COLUMNS},"
            " pg_snapshot_xmin(pg_current_snapshot())::text::bigint AS xmin,"
            " pg_snapshot_xmax(pg_current_snapshot())::text::bigint AS xmax"
            " FROM events WHERE id > $1 ORDER BY id LIMIT $2",
            self.high_water,
            batch,
        )
        now = asyncio.get_running_loop().time()
        for row in rows:
            if row["id"] != self.high_water + 1:
                if self._gap_xmax is None:
                    # Every transaction that may still insert a missing id had
                    # started before this snapshot's xmax.
                    self._gap_xmax = row["xmax"]
                    self._gap_since = now
                    return False
                if row["xmin"] < self._gap_xmax:
                    # A writer of the missing id may still commit. xmin is
                    # cluster-wide, so any long write transaction on the server
                    # holds it back: past GAP_MAX_WAIT, stop waiting (our own
                    # event transactions last milliseconds).
                    if now - self._gap_since < GAP_MAX_WAIT:
                        return False
                    log.warning("event ids %d..%d still missing after %.0fs; moving on, watching for them",
                                self.high_water + 1, row["id"] - 1, GAP_MAX_WAIT)
                    self._watch(range(self.high_water + 1, row["id"]), self._gap_xmax)
                # Otherwise those writers have all ended: the missing ids were rolled back.
            self._gap_xmax = None
            self.high_water = row["id"]
            self._broadcast(event_json(row))
        if self._overdue:
            await self._poll_overdue()
        return len(rows) == batch

    def _watch(self, ids: range, xmax: int) -> None:
        for event_id in ids[-OVERDUE_MAX:]:
            self._overdue[event_id] = xmax
        while len(self._overdue) > OVERDUE_MAX:  # a pathological gap: forget the oldest
            del self._overdue[next(iter(self._overdue))]

    async def _poll_overdue(self) -> None:
        """Deliver watched ids that committed late (marked `late`: below ids already sent); forget the others
        once every transaction that could still insert them has ended."""
        rows = await self._pool.fetch(
            f"SELECT s.xmin, {_E_EVENT_COLUMNS}"
            " FROM (SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint AS xmin) s"
            " LEFT JOIN events e ON e.id = ANY($1::bigint[]) ORDER BY e.id",
            list(self._overdue),
        )
        for row in rows:
            if row["id"] is not None:
                del self._overdue[row["id"]]
                log.warning("event %d committed after the feed moved past it; delivered late", row["id"])
                self._broadcast({**event_json(row), "late": True})
        xmin = rows[0]["xmin"]
        for event_id, xmax in list(self._overdue.items()):
            if xmin >= xmax:
                del self._overdue[event_id]
