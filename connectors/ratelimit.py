"""Token buckets for outbound channel calls (Telegram per chat and per bot, VK per group).

A bucket refills at `rate` tokens per second up to `burst`. `acquire` takes one
token, sleeping when the bucket is empty — unless the wait would exceed
`max_wait`, in which case it raises `RateLimited` and takes nothing, so the
caller can hand the message back to the outbox instead of holding a worker.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable


class RateLimited(Exception):
    def __init__(self, delay: float) -> None:
        super().__init__(f"rate limited for {delay:.1f}s")
        self.delay = delay


class TokenBucket:
    def __init__(self, rate: float, burst: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be > 0 and burst >= 1")
        self.rate = rate
        self.burst = burst
        self._clock = clock
        # The moment the bucket holds `burst` tokens again; tokens = burst - (full_at - now) * rate.
        self._full_at = clock()
        self._paused_until = 0.0

    def delay(self) -> float:
        """Seconds until one token is available (0 when available now)."""
        now = self._clock()
        tokens = self.burst - max(0.0, self._full_at - now) * self.rate
        return max(0.0, (1 - tokens) / self.rate, self._paused_until - now)

    def take(self) -> float:
        """Take one token, going into debt if needed; returns how long to wait before using it."""
        wait = self.delay()
        now = self._clock()
        self._full_at = max(self._full_at, now) + 1 / self.rate
        return wait

    def allow(self) -> bool:
        """Take a token if one is there now; False (taking nothing) otherwise."""
        if self.delay() > 0:
            return False
        self.take()
        return True

    def pause(self, seconds: float) -> None:
        """No token before `seconds` from now (the channel said "retry after")."""
        self._paused_until = max(self._paused_until, self._clock() + seconds)

    async def acquire(self, *, max_wait: float = float("inf")) -> None:
        wait = self.delay()
        if wait > max_wait:
            raise RateLimited(wait)
        wait = self.take()
        if wait > 0:
            await asyncio.sleep(wait)

    @property
    def idle(self) -> bool:
        now = self._clock()
        return self._full_at <= now and self._paused_until <= now


class KeyedRateLimiter:
    """One bucket per key (a chat, a peer), forgetting idle buckets beyond `max_keys`."""

    def __init__(self, rate: float, burst: float, *, max_keys: int = 10_000) -> None:
        self.rate = rate
        self.burst = burst
        self.max_keys = max_keys
        self._buckets: OrderedDict[Hashable, TokenBucket] = OrderedDict()

    def bucket(self, key: Hashable) -> TokenBucket:
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = TokenBucket(self.rate, self.burst)
            self._evict()
        self._buckets.move_to_end(key)
        return bucket

    def _evict(self) -> None:
        excess = len(self._buckets) - self.max_keys
        for key in list(self._buckets):
            if excess <= 0:
                break
            if self._buckets[key].idle:
                del self._buckets[key]
                excess -= 1

    async def acquire(self, key: Hashable, *, max_wait: float = float("inf")) -> None:
        await self.bucket(key).acquire(max_wait=max_wait)


async def acquire_all(buckets: list[TokenBucket], *, max_wait: float = float("inf")) -> None:
    """Take one token from each bucket, or none of them when any would wait longer than `max_wait`."""
    wait = max((b.delay() for b in buckets), default=0.0)
    if wait > max_wait:
        raise RateLimited(wait)
    wait = max((b.take() for b in buckets), default=0.0)
    if wait > 0:
        await asyncio.sleep(wait)
