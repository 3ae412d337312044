"""Group commit: concurrent calls in one process share a transaction.

Every commit costs a WAL flush, and a transaction that NOTIFYs also takes
PostgreSQL's cluster-wide notify lock from `PreCommit_Notify` through that
flush, so NOTIFYing commits go one at a time. Work submitted while earlier
transactions run is collected and committed together: the flush, the notify
lock and BEGIN/COMMIT are paid once per batch instead of once per call.

There is no waiting window: a batch is whatever queued meanwhile, so a lone
call goes straight through and batches grow only under load. Items may carry a
key (ingest: the sender): an item whose key is in a transaction now waits for
the next batch rather than join another one that would then sit on that
transaction's row lock; items of one key so also keep their order.

Isolation: when anything in a shared transaction fails, it rolls back and each
submission is retried in transactions of its own, so one bad item fails alone
and the others are stored. A submission of several items (a connector's page
of updates) goes in order, one transaction per item, and stops at the first
that fails: what is stored is always a prefix, so a cursor stored with an item
never passes an item that was not stored.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

import asyncpg

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")

# Runs items in the caller's transaction; one result per item, in order.
Together = Callable[[asyncpg.Connection, Sequence[T]], Awaitable[list[R]]]


@dataclass
class Totals:
    """Transactions committed by every GroupCommit of this process, and the items they held (benchmarks)."""

    transactions: int = 0
    items: int = 0


totals = Totals()


@dataclass
class _Submission(Generic[T, R]):
    items: Sequence[T]
    done: asyncio.Future[list[R]]


class GroupCommit(Generic[T, R]):
    def __init__(
        self,
        pool: asyncpg.Pool,
        together: Together[T, R],
        *,
        max_items: int = 64,
        max_transactions: int = 4,
        on_idle: Callable[[], None] | None = None,
        key: Callable[[T], Hashable] | None = None,
    ) -> None:
        self.pool = pool
        self._key = key
        self._in_flight: Counter[Hashable] = Counter()  # keys of the items in transactions now
        self._together = together
        self._max_items = max_items
        self._max_transactions = max_transactions
        self._on_idle = on_idle
        self._queue: deque[_Submission[T, R]] = deque()
        self._running = 0  # drain tasks
        self._busy = 0  # of which in a transaction
        self._tasks: set[asyncio.Task[None]] = set()

    async def submit(self, items: Sequence[T]) -> list[R]:
        """Run `items` (in order) in a transaction, possibly shared with other submissions."""
        if not items:
            return []
        submission: _Submission[T, R] = _Submission(items, asyncio.get_running_loop().create_future())
        self._queue.append(submission)
        if self._running < self._max_transactions:
            self._running += 1
            task = asyncio.create_task(self._drain(), name="group-commit")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return await submission.done

    async def _drain(self) -> None:
        try:
            while batch := self._take():
                self._busy += 1
                try:
                    await self._commit(batch)
                finally:
                    self._busy -= 1
                    for submission in batch:
                        self._in_flight.subtract(self._keys(submission))
                    self._in_flight = +self._in_flight  # drop the zeros
        finally:
            self._running -= 1
            if self._running == 0 and not self._queue and self._on_idle is not None:
                self._on_idle()

    def _take(self) -> list[_Submission[T, R]]:
        # A fair share of what waits among the transactions not busy yet, rather
        # than one taking all (then the others, and their connections, idle).
        queued = sum(len(s.items) for s in self._queue)
        limit = min(self._max_items, -(-queued // max(1, self._max_transactions - self._busy)))
        batch: list[_Submission[T, R]] = []
        size = 0
        # An item whose key (the sender) is in a transaction now would only wait
        # for that one's row lock, holding up its whole batch: it waits here,
        # with every later item of the same key, and goes in a later batch.
        held: set[Hashable] = set(self._in_flight)
        waiting: deque[_Submission[T, R]] = deque()
        while self._queue and size < limit:
            submission = self._queue.popleft()
            if submission.done.done():
                continue  # its caller gave up (cancelled) before its turn
            keys = self._keys(submission)
            if keys & held:
                held |= keys
                waiting.append(submission)
                continue
            if batch and size + len(submission.items) > limit:
                self._queue.appendleft(submission)
                break
            batch.append(submission)
            size += len(submission.items)
        self._queue.extendleft(reversed(waiting))
        for submission in batch:
            self._in_flight.update(self._keys(submission))
        return batch

    def _keys(self, submission: _Submission[T, R]) -> set[Hashable]:
        return {self._key(item) for item in submission.items} if self._key else set()

    async def _commit(self, batch: list[_Submission[T, R]]) -> None:
        try:
            items = [item for s in batch for item in s.items]
            try:
                async with self.pool.acquire() as conn, conn.transaction():
                    results = await self._together(conn, items)
            except Exception as e:
                if len(items) == 1:
                    _fail(batch[0], e)
                    return
                log.info("a shared transaction of %d items failed (%r); retrying each on its own", len(items), e)
                for s in batch:
                    await self._alone(s)
                return
            totals.transactions += 1
            totals.items += len(items)
            start = 0
            for s in batch:
                if not s.done.done():
                    s.done.set_result(results[start : start + len(s.items)])
                start += len(s.items)
        except BaseException:
            for s in batch:
                s.done.cancel()  # this task is being cancelled (shutdown): release the callers
            raise

    async def _alone(self, submission: _Submission[T, R]) -> None:
        results: list[R] = []
        try:
            for item in submission.items:
                async with self.pool.acquire() as conn, conn.transaction():
                    results.extend(await self._together(conn, [item]))
        except Exception as e:
            _fail(submission, e)
            return
        if not submission.done.done():
            submission.done.set_result(results)


def _fail(submission: _Submission[T, R], error: Exception) -> None:
    if not submission.done.done():
        submission.done.set_exception(error)
