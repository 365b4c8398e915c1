"""The learning gate's control: with captioning broken, the subject model learns nothing and the gate fails.

The subject model of test_learning.py is trained again, the same way (the same drawn pictures, uploaded without
captions through the HTTP API, the default settings), with the old captioner plugged back in: the built-in
captioner for `toy`, whose captions are pixel words the toy text encoder cannot read. Its star rate must stay
below the gate, and its check after training must fail, so publishing it needs `force`. A module of its own, so
the gate (test_learning.py) runs apart from its control.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.learning, pytest.mark.usefixtures("every_core")]


@pytest.fixture(scope="module")
def old_captioner_star_rate(bench: Any, learning_bench_module: ModuleType) -> float:
    with learning_bench_module.old_captioner():
        rate: float = bench.subject_star_rate_after_training("old-captioner")
    return rate


def test_the_learning_test_fails_when_the_old_captioner_is_plugged_back_in(
    old_captioner_star_rate: float, learning_bench_module: ModuleType
) -> None:
    assert old_captioner_star_rate < learning_bench_module.MIN_STAR_RATE_AFTER


def test_a_model_that_did_not_learn_fails_its_check_and_publishes_only_with_force(
    old_captioner_star_rate: float, bench: Any
) -> None:
    check = bench.api.model("old-captioner")["check"]
    assert check["status"] == "failed", check
    assert check["summary"].startswith("not learned: ")
    refused = bench.api.publish("old-captioner")
    assert (refused.status_code, refused.json()["error_code"]) == (409, "model_check_failed")
    assert check["summary"] in refused.json()["message"]
    assert bench.api.model("old-captioner")["publishedState"] == "never"
    forced = bench.api.publish("old-captioner", force=True)
    assert (forced.status_code, forced.json()["publishedState"]) == (200, "published")
