"""Training jobs through the public API on a real local Ray: progress while running, the new version on
success, weights and generation with it, retraining, and cancelling a running training job."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import select

from ember.api.conversions import model_id_from_asset_id
from ember.store.tables import CustomModelVersion

from .conftest import Live
from .trainable import MODELS, follow, start_training, trainable_model

STEPS = 120  # past the tiny preset's first sample (every 100 steps)


@dataclass
class Trained:
    """One model trained once through the API, with every status body seen while it trained."""

    asset_id: str
    headers: dict[str, str]
    job_id: str
    statuses: list[dict[str, Any]]

    @property
    def final(self) -> dict[str, Any]:
        return self.statuses[-1]


@pytest.fixture(scope="module")
def trained(live: Live) -> Trained:
    _, headers = live.client()
    asset_id = trainable_model(live.http, headers)
    job_id = start_training(live.http, headers, asset_id, steps=STEPS, seed=3)
    return Trained(asset_id, headers, job_id, follow(live.http, headers, job_id))


def versions(live: Live, asset_id: str) -> list[int]:
    with live.runtime.sessions() as session:
        return list(
            session.scalars(
                select(CustomModelVersion.number)
                .where(CustomModelVersion.model_id == model_id_from_asset_id(asset_id))
                .order_by(CustomModelVersion.number)
            )
        )


def test_a_running_training_job_reports_a_rising_step_with_loss_and_eta(trained: Trained) -> None:
    running = [status for status in trained.statuses if status["status"] == "running" and "training" in status]
    steps = [status["training"]["step"] for status in running]
    assert len(set(steps)) >= 3 and steps == sorted(steps)
    later = next(status["training"] for status in running if status["training"]["step"] > 0)
    assert later["totalSteps"] == STEPS
    assert later["loss"] > 0 and later["etaSeconds"] >= 0
    assert later["losses"][-1]["step"] == later["step"]


def test_a_succeeded_training_job_answers_with_the_model_version_and_size(trained: Trained) -> None:
    final = trained.final
    assert (final["status"], final["progress"]) == ("succeeded", 100)
    assert final["result"]["customModelId"] == trained.asset_id
    assert final["result"]["version"] == 1 and final["result"]["size"] > 0


def test_the_loss_curve_covers_every_step_in_at_most_200_points(trained: Trained) -> None:
    training = trained.final["training"]
    assert (training["step"], training["totalSteps"]) == (STEPS, STEPS)
    points = training["losses"]
    assert len(points) == STEPS and [point["step"] for point in points] == list(range(1, STEPS + 1))
    assert all(point["loss"] > 0 for point in points)


def test_training_samples_are_served_through_signed_urls(live: Live, trained: Trained) -> None:
    [sample] = trained.final["training"]["samples"]
    assert sample["step"] == 100
    response = live.http.get(sample["url"])
    assert response.status_code == 200
    assert response.content.startswith(b"\x89PNG")


def test_the_trained_model_is_ready_at_version_1_with_one_version_row(live: Live, trained: Trained) -> None:
    item = live.http.get(f"{MODELS}/{trained.asset_id}", headers=trained.headers).json()
    assert (item["trainingState"], item["version"]) == ("ready", "1")
    assert item["size"] == trained.final["result"]["size"]
    assert versions(live, trained.asset_id) == [1]


def test_the_trained_version_carries_its_check_with_samples_beside_the_training_pictures(
    live: Live, trained: Trained
) -> None:
    # `tiny` has no measure of what its pictures show: the check is unmeasured, shows its samples and the
    # likeness figure, and publishing needs no force.
    check = live.http.get(f"{MODELS}/{trained.asset_id}", headers=trained.headers).json()["check"]
    assert (check["status"], check["prompt"]) == ("unmeasured", "a zorb on a beach")
    assert check["summary"].startswith("not measured for Tiny test model")
    [likeness] = check["measures"]
    assert likeness["name"] == "likeness" and likeness["passed"] is None
    assert 0 < likeness["value"] <= 1 and 0 < likeness["before"] <= 1
    assert len(check["samples"]) == 4
    for url in check["samples"]:
        response = live.http.get(url)
        assert response.status_code == 200 and response.content.startswith(b"\x89PNG")
    published = live.http.post(f"{MODELS}/{trained.asset_id}/publish", headers=trained.headers)
    assert published.status_code == 200, published.text
    live.http.post(f"{MODELS}/{trained.asset_id}/unpublish", headers=trained.headers)


@pytest.mark.parametrize("fmt", ["diffusers", "kohya"])
def test_the_trained_weights_download(live: Live, trained: Trained, fmt: str) -> None:
    response = live.http.get(f"{MODELS}/{trained.asset_id}/weights", params={"format": fmt}, headers=trained.headers)
    assert response.status_code == 200, response.text
    assert len(response.content) > 1000


def test_generating_with_the_trained_model_succeeds(live: Live, trained: Trained) -> None:
    response = live.http.post(
        "/v3/images/generate-async",
        json={
            "prompt": "a zorb on a beach", "customModelId": trained.asset_id, "size": {"width": 1024, "height": 1024}
        },
        headers={**trained.headers, "x-model-version": "image3_custom"},
    )
    assert response.status_code == 202, response.text
    final = follow(live.http, trained.headers, response.json()["jobId"])[-1]
    assert final["status"] == "succeeded", final
    assert len(final["result"]["outputs"]) == 1


def test_retraining_a_trained_model_makes_version_2(live: Live, trained: Trained) -> None:
    job_id = start_training(live.http, trained.headers, trained.asset_id, steps=10)
    final = follow(live.http, trained.headers, job_id)[-1]
    assert final["status"] == "succeeded", final
    assert final["result"]["version"] == 2
    item = live.http.get(f"{MODELS}/{trained.asset_id}", headers=trained.headers).json()
    assert (item["trainingState"], item["version"]) == ("ready", "2")
    assert versions(live, trained.asset_id) == [1, 2]


def test_cancelling_a_running_training_job_stops_it_and_leaves_no_version(live: Live) -> None:
    _, headers = live.client()
    asset_id = trainable_model(live.http, headers)
    job_id = start_training(live.http, headers, asset_id, steps=5000)
    follow(live.http, headers, job_id, until=lambda status: status.get("training", {}).get("step", 0) >= 2)
    assert live.http.get(f"{MODELS}/{asset_id}", headers=headers).json()["trainingState"] == "training"
    asked = time.monotonic()
    assert live.http.put(f"/v3/cancel/{job_id}", headers=headers).status_code == 200
    final = follow(live.http, headers, job_id)[-1]
    took = time.monotonic() - asked
    assert final["status"] == "cancelled", final
    assert took < 5, f"a training step is well under a second, yet the cancel took {took:.1f} s"
    assert final["training"]["step"] < 5000
    item = live.http.get(f"{MODELS}/{asset_id}", headers=headers).json()
    assert (item["trainingState"], item["version"]) == ("cancelled", "0")
    assert versions(live, asset_id) == []


def test_a_training_job_the_engine_refuses_fails_the_model_without_a_version(live: Live) -> None:
    from ember.custom_models.training import start_training as record_training_job
    from ember.store.database import transaction
    from ember.store.tables import CustomModel

    _, headers = live.client()
    asset_id = trainable_model(live.http, headers)
    with transaction(live.runtime.sessions) as session:
        model = session.get(CustomModel, model_id_from_asset_id(asset_id))
        assert model is not None
        # The wire refuses such a resolution; a job recorded with one shows what an engine refusal does.
        job_id = record_training_job(
            session, live.runtime.settings, model, org_id=model.org_id, client_pk=None, overrides={"resolution": 12}
        ).id
    live.runtime.dispatcher.submit(job_id)
    final = follow(live.http, headers, job_id)[-1]
    assert (final["status"], final["error_code"]) == ("failed", "invalid_request")
    assert "resolution" in final["message"]
    item = live.http.get(f"{MODELS}/{asset_id}", headers=headers).json()
    assert (item["trainingState"], item["version"]) == ("failed", "0")
    assert versions(live, asset_id) == []


@pytest.mark.slow
def test_a_model_on_tiny_sdxl_trains_and_generates_through_the_api(live: Live) -> None:
    _, headers = live.client()
    asset_id = trainable_model(live.http, headers, base_model="tiny-sdxl")
    job_id = start_training(live.http, headers, asset_id, steps=20, seed=3)
    statuses = follow(live.http, headers, job_id)
    assert statuses[-1]["status"] == "succeeded", statuses[-1]
    response = live.http.post(
        "/v3/images/generate-async",
        json={"prompt": "a zorb on a beach", "customModelId": asset_id, "size": {"width": 1024, "height": 1024}},
        headers={**headers, "x-model-version": "image3_custom"},
    )
    assert response.status_code == 202, response.text
    assert follow(live.http, headers, response.json()["jobId"])[-1]["status"] == "succeeded"
