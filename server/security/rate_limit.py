"""Per-subject rate limit on commands: a token bucket for each token subject.

Each subject may send `burst` requests at once, refilled at `per_minute` a
minute. The buckets live in the process, so with several server processes
behind a load balancer each process applies the limit on its own.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable

# Idle subjects whose bucket is full again are dropped once this many are tracked.
_PRUNE_ABOVE = 10_000


class RateLimiter:
    def __init__(self, per_minute: int, burst: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_minute = per_minute
        self.burst = max(1, burst)
        self._rate = per_minute / 60.0
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self.per_minute > 0

    def acquire(self, subject: str) -> float | None:
        """Take one request from the subject's bucket; return None, or the seconds to wait when it is empty."""
        if not self.enabled:
            return None
        now = self._clock()
        with self._lock:
            tokens, updated = self._buckets.get(subject, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - updated) * self._rate)
            if tokens >= 1.0:
                self._buckets[subject] = (tokens - 1.0, now)
                if len(self._buckets) > _PRUNE_ABOVE:
                    self._prune(now)
                return None
            self._buckets[subject] = (tokens, now)
            return max(1.0, math.ceil((1.0 - tokens) / self._rate))

    def _prune(self, now: float) -> None:
        full = [
            subject
            for subject, (tokens, updated) in self._buckets.items()
            if tokens + (now - updated) * self._rate >= self.burst
        ]
        for subject in full:
            del self._buckets[subject]
