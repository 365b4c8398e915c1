"""Cost of the job event log on a worker's progress commits: each commit of a generation's progress against
the same commit that also writes the steps' events (and, with a webhook that hears progress, their outbox rows).

The baseline is the progress commit every running job made before the event log (`record_progress` alone, one
transaction); each variant adds the events of `--steps` buffered steps to that transaction. It prints commits
per commit of each, the baseline's, and their ratio (commits per second, variant over baseline), measured in
alternating rounds on the same database. A running job commits its progress at most every 0.25 s.

    .venv/bin/python bench/job_events.py [--commits 200] [--steps 1 10] [--database-url URL]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from ember.jobs import events, records
from ember.jobs.webhooks import subscribe
from ember.store.database import migrate, open_engine, session_factory, transaction
from ember.store.tables import JobKind, Organization

ROUNDS = 5


def running_job(sessions: sessionmaker[Session], webhook: bool) -> str:
    with transaction(sessions) as session:
        org = Organization(id=uuid.uuid4(), name=f"bench-{uuid.uuid4().hex[:8]}")
        session.add(org)
        session.flush()
        job = records.create_job(session, org_id=org.id, client_pk=None, kind=JobKind.generate, request={})
        if webhook:
            subscribe(session, job.id, "https://example.com/hook", ["progress", "completed"], "https://ember.test")
        records.claim(session, job.id, "bench")
        return job.id


def commits_per_second(sessions: sessionmaker[Session], commits: int, write: Callable[[Session, str], None],
                       webhook: bool = False) -> float:
    job_id = running_job(sessions, webhook)
    started = time.perf_counter()
    for _ in range(commits):
        with transaction(sessions) as session:
            write(session, job_id)
    return commits / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commits", type=int, default=200)
    parser.add_argument("--steps", type=int, nargs="+", default=[1, 10])
    parser.add_argument("--database-url", default="")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        url = args.database_url or f"sqlite:///{Path(scratch) / 'ember.db'}"
        engine = open_engine(url)
        migrate(engine)
        sessions = session_factory(engine)

        def progress_only(session: Session, job_id: str) -> None:
            records.record_progress(session, job_id, 50)

        def with_events(steps: int) -> Callable[[Session, str], None]:
            def write(session: Session, job_id: str) -> None:
                if records.record_progress(session, job_id, 50):
                    events.record_steps(
                        session, job_id,
                        [events.Step(events.PROGRESS, {"step": n, "totalSteps": steps, "etaSeconds": 1.0})
                         for n in range(steps)],
                    )
            return write

        commits_per_second(sessions, 50, progress_only)  # warm the connection pool and the caches
        print(f"{engine.dialect.name}: median of {ROUNDS} rounds of {args.commits} commits, each round measuring "
              "the baseline right before the variant")
        for steps in args.steps:
            for webhook in (False, True):
                pairs = [
                    (commits_per_second(sessions, args.commits, progress_only),
                     commits_per_second(sessions, args.commits, with_events(steps), webhook))
                    for _ in range(ROUNDS)
                ]
                baseline = statistics.median(pair[0] for pair in pairs)
                rate = statistics.median(pair[1] for pair in pairs)
                ratio = statistics.median(pair[1] / pair[0] for pair in pairs)
                label = f"{steps:2d} step event(s) per commit{' + outbox rows' if webhook else ''}"
                print(f"{label:<42} {1000 / rate:6.2f} ms/commit vs baseline (record_progress alone) "
                      f"{1000 / baseline:6.2f} ms  ratio {ratio:.2f}")
        engine.dispose()


if __name__ == "__main__":
    main()
