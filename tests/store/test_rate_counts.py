"""Rate limits hold for the deployment: replicas sharing a database share every organization's quota."""

from __future__ import annotations

import threading
import uuid

import pytest
from sqlalchemy import Engine, func, select

from ember.api.rate_limit import RateLimited, RateLimiter
from ember.store.database import session_factory, transaction
from ember.store.rate_tables import RateCount
from ember.store.tables import Organization

NOON = 1_800_000_000.0 - (1_800_000_000 % 86_400) + 43_200  # midday: minutes never cross a day here


def organization(engine: Engine) -> uuid.UUID:
    with transaction(session_factory(engine)) as session:
        org = Organization(id=uuid.uuid4(), name=f"org-{uuid.uuid4().hex[:6]}")
        session.add(org)
        return org.id


def test_two_replicas_together_allow_the_quota_once(engine: Engine) -> None:
    org = organization(engine)
    replicas = [RateLimiter(session_factory(engine), 5, 0, clock=lambda: NOON) for _ in range(2)]
    allowed = 0
    for n in range(8):
        try:
            replicas[n % 2].hit(org)
            allowed += 1
        except RateLimited as limited:
            assert limited.retry_after == 60
    assert allowed == 5


def test_replicas_racing_for_the_last_requests_get_exactly_the_quota(engine: Engine) -> None:
    org = organization(engine)
    limit = 6
    replicas = [RateLimiter(session_factory(engine), limit, 0, clock=lambda: NOON) for _ in range(3)]
    results: list[bool] = []
    lock = threading.Lock()

    def hammer(replica: RateLimiter) -> None:
        for _ in range(5):
            try:
                replica.hit(org)
                outcome = True
            except RateLimited:
                outcome = False
            with lock:
                results.append(outcome)

    threads = [threading.Thread(target=hammer, args=(replica,)) for replica in replicas]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(results) == 15 and results.count(True) == limit


def test_a_refused_request_counts_against_no_quota_and_old_windows_are_dropped(engine: Engine) -> None:
    org = organization(engine)
    now = [NOON]
    limiter = RateLimiter(session_factory(engine), 2, 3, clock=lambda: now[0])
    limiter.hit(org)
    limiter.hit(org)
    with pytest.raises(RateLimited):
        limiter.hit(org)  # the minute is used up: the day's count must not grow
    now[0] += 60
    limiter.hit(org)  # a new minute: the day allows a third
    with pytest.raises(RateLimited) as refused:
        limiter.hit(org)
    assert refused.value.quota.window_seconds == 86_400
    with session_factory(engine)() as session:
        minute_rows = session.scalar(
            select(func.count()).select_from(RateCount).where(RateCount.org_id == org, RateCount.window_s == 60)
        )
    assert minute_rows == 1
