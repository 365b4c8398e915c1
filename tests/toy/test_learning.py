"""The CI learning test: custom models trained as a user trains them learn, and only what they should.

One subject model (a star called `zorb`) and one style model (sepia) are trained on the `toy` base model through
the HTTP API, from pictures drawn by the bench (not by the toy world's renderer) uploaded without captions, with
the default settings; the pictures drawn with them are read by the toy measures (see bench/learning.py).
test_learning_control.py shows that this gate fails when captioning is broken.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.learning, pytest.mark.usefixtures("every_core")]
# Both models train at once, each by an engine worker of its own on one core, as two users' trainings run in a
# deployment with a worker per core.
ENGINE_WORKERS = 2


@pytest.fixture(scope="module")
def trained(bench: Any) -> tuple[Any, Any]:
    result: tuple[Any, Any] = bench.subject_and_style()
    return result


@pytest.fixture(scope="module")
def subject(trained: tuple[Any, Any]) -> Any:
    return trained[0]


@pytest.fixture(scope="module")
def style(trained: tuple[Any, Any]) -> Any:
    return trained[1]


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


def test_a_style_model_changes_how_shapes_are_drawn_not_which(style: Any, learning_bench_module: ModuleType) -> None:
    assert style.shape_after >= learning_bench_module.MIN_SHAPE_UNDER_STYLE


def test_a_subject_model_that_learned_passes_its_check_and_publishes(subject: Any, bench: Any) -> None:
    check = subject.check
    assert check["status"] == "passed", check
    assert check["summary"].startswith("learned: ")
    response = bench.api.publish("subject")
    assert (response.status_code, response.json()["publishedState"]) == (200, "published")


def test_a_style_model_that_carries_its_style_passes_its_check(style: Any) -> None:
    assert style.check["status"] == "passed", style.check
    assert [m["name"] for m in style.check["measures"] if m["passed"] is not None] == ["styleRate"]
