"""`POST .../train-async`: every training rule checked first, then one pending training job per model."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import select

from ember.api.runtime import Runtime
from ember.store.tables import Job, JobKind, JobState

from .conftest import Caller, picture


def _job(runtime: Runtime, job_id: str) -> Job:
    with runtime.sessions() as session:
        job = session.scalar(select(Job).where(Job.id == job_id))
        assert job is not None
        return job


def _errors(response: Any) -> list[tuple[list[str], str]]:
    assert response.status_code == 422, response.text
    return [(error["loc"], error["type"]) for error in response.json()["validation_errors"]]


def test_training_answers_202_with_the_job_and_its_urls(owner: Caller) -> None:
    asset_id = owner.trainable()
    response = owner.post(f"/{asset_id}/train-async")
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["jobId"].startswith("urn:ff:jobs:")
    assert body["statusUrl"] == f"http://testserver/v3/status/{body['jobId']}"
    assert body["cancelUrl"] == f"http://testserver/v3/cancel/{body['jobId']}"


def test_training_queues_the_model(owner: Caller) -> None:
    asset_id = owner.trainable()
    owner.post(f"/{asset_id}/train-async")
    assert owner.get(f"/{asset_id}").json()["trainingState"] == "queued"
    listed = owner.get("", params={"publishedState": "queued"}).json()["custom_models"]
    assert [item["assetId"] for item in listed] == [asset_id]


def test_the_training_job_is_a_pending_row_holding_what_the_worker_needs(owner: Caller, runtime: Runtime) -> None:
    asset_id = owner.trainable()
    images = owner.get(f"/{asset_id}/images").json()["images"]
    job_id = owner.post(f"/{asset_id}/train-async", json={"steps": 50, "learningRate": 0.001, "seed": 7}).json()[
        "jobId"
    ]
    job = _job(runtime, job_id)
    assert (job.kind, job.state, str(job.custom_model_id)) == (JobKind.train, JobState.pending, asset_id.split(":")[-1])
    request = job.request
    assert (request["baseModel"], request["mode"], request["concept"]) == ("tiny", "subject", "zorb")
    assert (request["samplePrompt"], request["version"]) == ("a zorb on a beach", 1)
    assert request["config"] == {"steps": 50, "learning_rate": 0.001, "seed": 7}
    assert [image["id"] for image in request["images"]] == [image["id"] for image in images]
    assert all(runtime.blobs.exists(image["blobKey"]) for image in request["images"])


def test_every_training_caption_carries_the_concept_word(owner: Caller, runtime: Runtime) -> None:
    asset_id = owner.trainable()
    image = owner.get(f"/{asset_id}/images").json()["images"][0]
    owner.patch(f"/{asset_id}/images/{image['id']}", json={"caption": "a small toy on a red chair"})
    job_id = owner.post(f"/{asset_id}/train-async").json()["jobId"]
    captions = {entry["id"]: entry["caption"] for entry in _job(runtime, job_id).request["images"]}
    assert captions[image["id"]] == "zorb, a small toy on a red chair"
    assert all("zorb" in caption for caption in captions.values())


def test_the_status_url_reports_the_pending_job(owner: Caller) -> None:
    asset_id = owner.trainable()
    job_id = owner.post(f"/{asset_id}/train-async").json()["jobId"]
    status = owner.http.get(f"/v3/status/{job_id}", headers=owner.headers).json()
    assert (status["jobId"], status["status"]) == (job_id, "pending")


def test_training_again_while_a_training_job_is_pending_is_a_409(owner: Caller, runtime: Runtime) -> None:
    asset_id = owner.trainable()
    owner.post(f"/{asset_id}/train-async")
    response = owner.post(f"/{asset_id}/train-async")
    assert (response.status_code, response.json()["error_code"]) == (409, "training_in_progress")
    with runtime.sessions() as session:
        assert len(session.scalars(select(Job).where(Job.kind == JobKind.train)).all()) == 1


def test_a_cancelled_training_leaves_the_model_cancelled_and_trainable(owner: Caller) -> None:
    asset_id = owner.trainable()
    job_id = owner.post(f"/{asset_id}/train-async").json()["jobId"]
    assert owner.http.put(f"/v3/cancel/{job_id}", headers=owner.headers).status_code == 200
    assert owner.get(f"/{asset_id}").json()["trainingState"] == "cancelled"
    assert owner.post(f"/{asset_id}/train-async").status_code == 202


def test_retraining_a_trained_model_makes_the_next_version(
    owner: Caller, runtime: Runtime, trained: Callable[[str, bytes], None]
) -> None:
    asset_id = owner.trainable()
    trained(asset_id, b"version one")
    job_id = owner.post(f"/{asset_id}/train-async").json()["jobId"]
    assert _job(runtime, job_id).request["version"] == 2
    item = owner.get(f"/{asset_id}").json()
    assert (item["version"], item["trainingState"]) == ("1", "queued")


def test_too_few_images_block_training(owner: Caller) -> None:
    asset_id = owner.trainable(images=9)
    assert _errors(owner.post(f"/{asset_id}/train-async")) == [(["images"], "too_few_images")]
    assert owner.get(f"/{asset_id}").json()["trainingState"] == "draft"


@pytest.mark.parametrize("settings_overrides", [{"training_min_images": 2}])
def test_the_minimum_image_count_is_configurable(owner: Caller) -> None:
    asset_id = owner.trainable(images=2)
    assert owner.post(f"/{asset_id}/train-async").status_code == 202


@pytest.mark.parametrize(
    ("caption", "code"),
    [("", "caption_missing"), ("a zorb", "caption_too_short"), (" ".join(["zorb"] * 41), "caption_too_long")],
)
def test_a_bad_caption_blocks_training_naming_the_image(owner: Caller, caption: str, code: str) -> None:
    asset_id = owner.trainable()
    image = owner.get(f"/{asset_id}/images").json()["images"][3]
    owner.patch(f"/{asset_id}/images/{image['id']}", json={"caption": caption})
    assert _errors(owner.post(f"/{asset_id}/train-async")) == [(["images", image["id"], "caption"], code)]


def test_a_flagged_image_blocks_training_naming_the_image(owner: Caller) -> None:
    asset_id = owner.trainable()
    [image] = owner.upload(asset_id, picture(1, 40, 96))["images"]
    assert (["images", image["id"]], "image_too_small") in _errors(owner.post(f"/{asset_id}/train-async"))


def test_a_duplicate_image_blocks_training(owner: Caller) -> None:
    asset_id = owner.trainable()
    [image] = owner.upload(asset_id, picture(0))["images"]
    assert _errors(owner.post(f"/{asset_id}/train-async")) == [(["images", image["id"]], "duplicate_image")]


def test_a_missing_sample_prompt_blocks_training(owner: Caller) -> None:
    asset_id = owner.trainable(samplePrompt="")
    assert _errors(owner.post(f"/{asset_id}/train-async")) == [(["samplePrompt"], "missing")]


def test_a_sample_prompt_without_the_new_concept_word_blocks_training(owner: Caller) -> None:
    asset_id = owner.trainable()
    owner.patch(f"/{asset_id}", json={"conceptId": "blip"})
    assert _errors(owner.post(f"/{asset_id}/train-async")) == [(["samplePrompt"], "sample_prompt_missing_concept")]


def test_every_broken_rule_is_reported_at_once(owner: Caller) -> None:
    asset_id = owner.trainable(images=3, samplePrompt="")
    image = owner.get(f"/{asset_id}/images").json()["images"][0]
    owner.patch(f"/{asset_id}/images/{image['id']}", json={"caption": "zorb"})
    assert _errors(owner.post(f"/{asset_id}/train-async")) == [
        (["images"], "too_few_images"),
        (["images", image["id"], "caption"], "caption_too_short"),
        (["samplePrompt"], "missing"),
    ]


@pytest.mark.parametrize(
    "body",
    [
        {"steps": 0},
        {"steps": "100"},
        {"learningRate": 0},
        {"learningRate": 1.5},
        {"rank": 500},
        {"resolution": 100},
        {"resolution": 4096},
        {"seed": -1},
        {"batchSize": 2},
    ],
)
def test_training_overrides_out_of_range_are_a_422(owner: Caller, body: dict[str, object]) -> None:
    asset_id = owner.trainable(images=2)
    response = owner.post(f"/{asset_id}/train-async", json=body)
    assert response.status_code == 422
    assert response.json()["validation_errors"][0]["loc"][:2] == ["body", next(iter(body))]
    assert owner.get(f"/{asset_id}").json()["trainingState"] == "draft"
