"""The CI learning test: custom models trained as a user trains them learn, and only what they should.

One subject model (a star called `zorb`) and one style model (sepia) are trained on the `toy` base model through
the HTTP API, from pictures drawn by the bench (not by the toy world's renderer) uploaded without captions, with
the default settings; the pictures drawn with them are read by the toy measures (see bench/learning.py).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from ember.engine.models import THREADS_ENV

pytestmark = [pytest.mark.slow, pytest.mark.learning]


@pytest.fixture(scope="module", autouse=True)
def every_core() -> Iterator[None]:
    """The learning test trains three custom models: it runs alone at this point of the suite, so torch may
    use every core (EMBER_TORCH_THREADS still wins where it is set)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(int(os.environ.get(THREADS_ENV) or os.cpu_count() or 1))
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def bench(
    learning_bench_module: ModuleType, toy_model_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Any]:
    settings = learning_bench_module.BenchSettings(images_per_prompt=8, subject_images=32)
    bench = learning_bench_module.LearningBench(toy_model_dir, tmp_path_factory.mktemp("training"), settings)
    yield bench
    bench.close()


@pytest.fixture(scope="module")
def subject(bench: Any) -> Any:
    return bench.subject()


@pytest.fixture(scope="module")
def style(bench: Any) -> Any:
    return bench.style()


def test_the_base_model_never_draws_a_star_for_the_concept_word(subject: Any) -> None:
    assert subject.star_before == 0.0


def test_a_subject_model_draws_the_concept_it_was_trained_on(subject: Any, learning_bench_module: ModuleType) -> None:
    assert subject.star_after >= learning_bench_module.MIN_STAR_RATE_AFTER


def test_a_subject_model_leaves_other_prompts_nearly_as_they_were(
    subject: Any, learning_bench_module: ModuleType
) -> None:
    assert subject.accuracy_drop <= learning_bench_module.MAX_ACCURACY_DROP


def test_a_subject_model_draws_no_star_without_its_concept_word(subject: Any) -> None:
    assert subject.star_without_concept == 0.0


def test_the_base_model_draws_nothing_in_sepia(style: Any) -> None:
    assert style.sepia_before == 0.0


def test_a_style_model_carries_its_style_to_prompts_of_every_shape(
    style: Any, learning_bench_module: ModuleType
) -> None:
    assert style.sepia_after >= learning_bench_module.MIN_SEPIA_RATE_AFTER
    assert all(rate > 0 for rate in style.sepia_after_by_shape.values())


def test_a_subject_model_that_learned_passes_its_check_and_publishes(subject: Any, bench: Any) -> None:
    check = subject.check
    assert check["status"] == "passed", check
    assert check["summary"].startswith("learned: ")
    response = bench.api.publish("subject")
    assert (response.status_code, response.json()["publishedState"]) == (200, "published")


def test_a_style_model_that_carries_its_style_passes_its_check(style: Any) -> None:
    assert style.check["status"] == "passed", style.check
    assert [m["name"] for m in style.check["measures"] if m["passed"] is not None] == ["styleRate"]


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
