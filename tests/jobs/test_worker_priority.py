"""Engine workers run at the server's scheduling priority, not the lower one Ray gives its workers."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from ember.worker import actor as worker

PROBE = "import os; from ember.worker.actor import _take_priority; _take_priority(0); print(os.getpriority(0, 0))"


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="raising priority needs root")
def test_a_worker_started_at_a_lower_priority_takes_the_servers() -> None:
    command = ["nice", "-n", "15", sys.executable, "-c", PROBE]
    assert subprocess.run(command, capture_output=True, text=True, check=True).stdout.strip() == "0"


def test_without_the_privilege_a_worker_keeps_its_priority_and_says_so(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def refuse(which: int, who: int, value: int) -> None:
        raise PermissionError("not permitted")

    monkeypatch.setattr(worker.os, "getpriority", lambda which, who: 15)
    monkeypatch.setattr(worker.os, "setpriority", refuse)
    with caplog.at_level("INFO", logger="ember.worker.actor"):
        worker._take_priority(0)  # no exception: a worker without the privilege still starts
    assert "left at niceness 15" in caplog.text
