"""bench/gpu.py and bench/gpu_generation.py in their CPU mode: every figure they print is measured."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPOSITORY = Path(__file__).resolve().parents[2]


def run_small(tmp_path: Path, script: str, *options: str) -> subprocess.CompletedProcess[str]:
    """A GPU bench in its CPU mode (`--small`), offline; it must exit 0."""
    completed = subprocess.run(
        [sys.executable, str(REPOSITORY / "bench" / script), "--small", *options],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "TMPDIR": str(tmp_path)},
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    return completed


@pytest.mark.slow
def test_small_mode_prints_steps_per_second_ratio_and_preset_minutes_per_family(tmp_path: Path) -> None:
    completed = run_small(tmp_path, "gpu.py", "--steps", "8", "--warmup", "2")
    ratios = [float(x) for x in re.findall(r"ratio Ember / bare:\s+([0-9.]+)", completed.stdout)]
    minutes = re.findall(r"subject preset \((\d+) steps\) end to end: ([0-9.]+) min", completed.stdout)
    assert len(ratios) == 2 and all(ratio > 0 for ratio in ratios)
    cpu_ratios = [float(x) for x in re.findall(r"per CPU second: .*; ratio ([0-9.]+)", completed.stdout)]
    assert len(cpu_ratios) == 2 and all(ratio > 0 for ratio in cpu_ratios)
    assert [steps for steps, _ in minutes] == ["300", "300"] and all(float(m) > 0 for _, m in minutes)


@pytest.mark.slow
def test_generation_bench_small_mode_reports_every_figure_for_both_architectures(tmp_path: Path) -> None:
    """bench/gpu_generation.py --small: the GPU generation bench's whole path on scaled-down SDXL and FLUX
    pipelines (its figures mean nothing on a CPU; that every one of them is measured is what is checked)."""
    completed = run_small(tmp_path, "gpu_generation.py", "--repeats", "1")
    report = json.loads(completed.stdout)
    for name in ("sdxl", "flux"):
        figures = report[name]
        for ratio in ("ember_over_bare", "custom_over_base", "unfused_custom_over_base"):
            assert figures[ratio]["ratio"] > 0, (name, ratio)
        assert figures["first_load_s"]["s"] is not None and figures["switch_s"]["s"] is not None
        assert figures["compiled"]["speed_up"] > 0
        assert "error" not in figures["hotswap"], figures["hotswap"]
        assert figures["hotswap"]["custom_over_base"] > 0 and figures["hotswap"]["swap_s"] >= 0
