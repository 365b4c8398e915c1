"""bench/gpu.py in its CPU mode: it trains each family with Ember and with a bare loop and prints the ratio."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPOSITORY = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_small_mode_prints_steps_per_second_ratio_and_preset_minutes_per_family(tmp_path: Path) -> None:
    completed = subprocess.run(
        [sys.executable, str(REPOSITORY / "bench" / "gpu.py"), "--small", "--steps", "8", "--warmup", "2"],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "TMPDIR": str(tmp_path)},
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    ratios = [float(x) for x in re.findall(r"ratio Ember / bare:\s+([0-9.]+)", completed.stdout)]
    minutes = re.findall(r"subject preset \((\d+) steps\) end to end: ([0-9.]+) min", completed.stdout)
    assert len(ratios) == 2 and all(ratio > 0 for ratio in ratios)
    cpu_ratios = [float(x) for x in re.findall(r"per CPU second: .*; ratio ([0-9.]+)", completed.stdout)]
    assert len(cpu_ratios) == 2 and all(ratio > 0 for ratio in cpu_ratios)
    assert [steps for steps, _ in minutes] == ["300", "300"] and all(float(m) > 0 for _, m in minutes)
