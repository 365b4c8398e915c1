"""Per-organization request quotas per minute and per day, in fixed windows counted in the database, so that
a quota holds for the whole deployment however many API replicas share it."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import delete
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from ember.store.database import transaction
from ember.store.rate_tables import RateCount

log = logging.getLogger("ember.api.rate_limit")
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

    Each request is one conditional upsert per quota (`count = count + 1` only while under the limit), in one
    transaction: replicas racing for an organization's last request cannot both get it."""

    def __init__(
        self, sessions: sessionmaker[Session], per_minute: int, per_day: int, clock: Callable[[], float] = time.time
    ) -> None:
        self.sessions = sessions
        self.quotas = [Quota(limit, window) for limit, window in ((per_minute, MINUTE), (per_day, DAY)) if limit > 0]
        self.clock = clock

    def hit(self, org_id: uuid.UUID) -> None:
        """Count one request, or raise RateLimited (without counting) when any quota is used up."""
        if not self.quotas:
            return
        try:
            self._count(org_id)
        except OperationalError:
            # The database refuses the count (locked by a long write, briefly unreachable): the request goes on
            # uncounted rather than failing for the limiter's sake; a request that itself needs the database gets
            # its own clear 503.
            log.warning("rate limit not counted: the database refused the write", exc_info=True)

    def _count(self, org_id: uuid.UUID) -> None:
        now = self.clock()
        # A refusal raised inside the transaction rolls back the other quota's count too.
        with transaction(self.sessions) as session:
            for quota in self.quotas:
                window = int(now // quota.window_seconds)
                count = _count_one(session, org_id, quota, window)
                if count is None:
                    raise RateLimited(max(1, int((window + 1) * quota.window_seconds - now + 0.999)), quota)
                if count == 1:  # a new window: the organization's older ones are done with
                    session.execute(
                        delete(RateCount).where(
                            RateCount.org_id == org_id, RateCount.window_s == quota.window_seconds,
                            RateCount.window < window,
                        )
                    )


def _count_one(session: Session, org_id: uuid.UUID, quota: Quota, window: int) -> int | None:
    """Add one to the window's count while it is under the limit; the new count, or None when at the limit."""
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    statement = (
        insert(RateCount)
        .values(org_id=org_id, window_s=quota.window_seconds, window=window, count=1)
        .on_conflict_do_update(
            index_elements=[RateCount.org_id, RateCount.window_s, RateCount.window],
            set_={"count": RateCount.count + 1},
            where=RateCount.count < quota.limit,
        )
        .returning(RateCount.count)
    )
    count = session.scalar(statement)
    return None if count is None else int(count)
