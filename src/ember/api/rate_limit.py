"""Per-organization request quotas per minute and per day (fixed windows, kept in this process only)."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

MINUTE = 60
DAY = 86_400


@dataclass(frozen=True)
class Quota:
    limit: int
    window_seconds: int


class RateLimited(Exception):
    """The organization has used its quota; `retry_after` is whole seconds until the window resets."""

    def __init__(self, retry_after: int, quota: Quota) -> None:
        super().__init__(f"{quota.limit} requests per {quota.window_seconds} s")
        self.retry_after = retry_after
        self.quota = quota


class RateLimiter:
    """Counts requests per organization in fixed windows; a zero limit turns that quota off.

    The counters live in this process, so each replica enforces the quota on its own."""

    def __init__(self, per_minute: int, per_day: int, clock: Callable[[], float] = time.time) -> None:
        self.quotas = [Quota(limit, window) for limit, window in ((per_minute, MINUTE), (per_day, DAY)) if limit > 0]
        self.clock = clock
        self._counts: dict[tuple[uuid.UUID, int, int], int] = {}
        self._lock = threading.Lock()

    def hit(self, org_id: uuid.UUID) -> None:
        """Count one request, or raise RateLimited (without counting) when any quota is used up."""
        now = self.clock()
        with self._lock:
            keys = []
            for quota in self.quotas:
                window = int(now // quota.window_seconds)
                key = (org_id, quota.window_seconds, window)
                if self._counts.get(key, 0) >= quota.limit:
                    retry_after = max(1, int((window + 1) * quota.window_seconds - now + 0.999))
                    raise RateLimited(retry_after, quota)
                keys.append(key)
            for key in keys:
                self._counts[key] = self._counts.get(key, 0) + 1
            self._forget_old_windows(now)

    def _forget_old_windows(self, now: float) -> None:
        if len(self._counts) < 10_000:
            return
        self._counts = {key: count for key, count in self._counts.items() if key[2] >= int(now // key[1])}
