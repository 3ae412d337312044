"""In-process token buckets for the public widget endpoints.

Per process: behind a load balancer each process allows its own share, which
is what a per-connection abuse limit needs.
"""

from __future__ import annotations

import time


class TokenBucket:
    def __init__(self, rate: float, burst: float) -> None:
        self.rate = rate
        self.burst = burst
        self._tokens: dict[str, tuple[float, float]] = {}

    def allow(self, key: str, cost: float = 1.0) -> bool:
        now = time.monotonic()
        tokens, last = self._tokens.get(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        if tokens < cost:
            self._tokens[key] = (tokens, now)
            return False
        self._tokens[key] = (tokens - cost, now)
        if len(self._tokens) > 100_000:
            self._prune(now)
        return True

    def _prune(self, now: float) -> None:
        full = [k for k, (t, last) in self._tokens.items() if t + (now - last) * self.rate >= self.burst]
        for k in full:
            del self._tokens[k]
