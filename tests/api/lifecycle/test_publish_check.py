"""The check after training, over the API: shown with the model, and publishing a model whose check failed is a
409 unless `force=true` is given. (The check itself, measured on real training, is in tests/toy/test_learning.py
and tests/jobs/test_training.py.)"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from ember.engine.checks import FAILED, PASSED, CheckMeasure, ModelCheck

from .conftest import Caller


def stored_check(status: str, rate: float) -> dict[str, Any]:
    measure = CheckMeasure("conceptRate", "samples that show the subject", rate, "at least 0.50", rate >= 0.5)
    summary = f"learned: {rate:.2f} of samples show the subject" if status == PASSED else (
        f"not learned: {rate:.2f} of samples show the subject, 0.50 needed"
    )
    return ModelCheck(status, summary, [measure], prompt="a zorb on a gray background").as_json()


@pytest.fixture
def failed_model(owner: Caller, trained: Callable[..., None]) -> str:
    asset_id = str(owner.create()["assetId"])
    trained(asset_id, b"lora", stored_check(FAILED, 0.12))
    return asset_id


def test_the_model_body_shows_the_check_of_its_current_version(owner: Caller, failed_model: str) -> None:
    check = owner.get(f"/{failed_model}").json()["check"]
    assert check["status"] == "failed"
    assert check["summary"] == "not learned: 0.12 of samples show the subject, 0.50 needed"
    assert check["measures"] == [
        {"name": "conceptRate", "label": "samples that show the subject", "value": 0.12, "before": None,
         "target": "at least 0.50", "passed": False}
    ]
    listed = owner.get("", params={"publishedState": "all"}).json()["custom_models"]
    assert [item["check"]["status"] for item in listed] == ["failed"]


def test_publishing_a_model_whose_check_failed_is_a_409_that_says_why(owner: Caller, failed_model: str) -> None:
    response = owner.post(f"/{failed_model}/publish")
    assert response.status_code == 409
    body = response.json()
    assert body["error_code"] == "model_check_failed"
    assert "0.12 of samples show the subject" in body["message"] and "force=true" in body["message"]
    assert owner.get(f"/{failed_model}").json()["publishedState"] == "never"


def test_force_publishes_a_model_whose_check_failed(owner: Caller, failed_model: str) -> None:
    response = owner.post(f"/{failed_model}/publish", params={"force": "true"})
    assert response.status_code == 200, response.text
    assert response.json()["publishedState"] == "published"
    assert response.json()["check"]["status"] == "failed"  # forcing publishes; it does not change the check


def test_a_model_whose_check_passed_publishes_without_force(owner: Caller, trained: Callable[..., None]) -> None:
    asset_id = str(owner.create()["assetId"])
    trained(asset_id, b"lora", stored_check(PASSED, 0.81))
    response = owner.post(f"/{asset_id}/publish")
    assert response.status_code == 200, response.text
    assert response.json()["check"]["summary"] == "learned: 0.81 of samples show the subject"


def test_a_version_trained_before_the_check_publishes_as_before(owner: Caller, trained: Callable[..., None]) -> None:
    asset_id = str(owner.create()["assetId"])
    trained(asset_id, b"lora")
    response = owner.post(f"/{asset_id}/publish")
    assert response.status_code == 200
    assert "check" not in owner.get("", params={"publishedState": "all"}).json()["custom_models"][0]
    assert response.json()["check"] is None


def test_retraining_after_a_failed_check_is_judged_by_the_new_version(
    owner: Caller, trained: Callable[..., None], failed_model: str
) -> None:
    trained(failed_model, b"lora 2", stored_check(PASSED, 0.75))
    assert owner.post(f"/{failed_model}/publish").status_code == 200


@pytest.mark.parametrize("force", ["maybe", "2", "", "[true]"])
def test_force_that_is_no_boolean_is_a_422_and_publishes_nothing(
    owner: Caller, failed_model: str, force: str
) -> None:
    response = owner.post(f"/{failed_model}/publish", params={"force": force})
    assert response.status_code == 422, response.text
    assert response.json()["error_code"] == "validation_error"
    assert owner.get(f"/{failed_model}").json()["publishedState"] == "never"


def test_force_false_is_the_default(owner: Caller, failed_model: str) -> None:
    assert owner.post(f"/{failed_model}/publish", params={"force": "false"}).status_code == 409
