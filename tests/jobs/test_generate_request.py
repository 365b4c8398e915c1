"""POST /v3/images/generate-async: every field and header rule of SPEC §3, and what a valid request records."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from ember.api.runtime import Runtime
from ember.api.wire import STYLE_PRESET_IDS
from ember.identity import ClientCredentials
from ember.store.tables import Job, JobState, TrainingMode

from .conftest import Headers, RecordingDispatcher, add_client, add_trained_model

URL = "/v3/images/generate-async"


def post(http: TestClient, headers: Headers, body: Any, **extra_headers: str) -> Any:
    return http.post(URL, json=body, headers={**headers, **extra_headers})


def only_error(response: Any) -> dict[str, Any]:
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["error_code"] == "validation_error"
    assert len(body["validation_errors"]) == 1, body
    error: dict[str, Any] = body["validation_errors"][0]
    return error


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"prompt": ""}, ["body", "prompt"]),
        ({"prompt": "   "}, ["body", "prompt"]),
        ({"prompt": "x" * 1025}, ["body", "prompt"]),
        ({"prompt": 5}, ["body", "prompt"]),
        ({"prompt": "a cat", "negativePrompt": "x" * 1025}, ["body", "negativePrompt"]),
        ({"prompt": "a cat", "numVariations": 0}, ["body", "numVariations"]),
        ({"prompt": "a cat", "numVariations": 5}, ["body", "numVariations"]),
        ({"prompt": "a cat", "seeds": []}, ["body", "seeds"]),
        ({"prompt": "a cat", "seeds": [1, 2, 3, 4, 5]}, ["body", "seeds"]),
        ({"prompt": "a cat", "seeds": [1, 1]}, ["body", "seeds"]),
        ({"prompt": "a cat", "seeds": [-1]}, ["body", "seeds", 0]),
        ({"prompt": "a cat", "seeds": [2**31]}, ["body", "seeds", 0]),
        ({"prompt": "a cat", "seeds": [1, 2], "numVariations": 3}, ["body", "numVariations"]),
        ({"prompt": "a cat", "size": {"width": 1000, "height": 1000}}, ["body", "size"]),
        ({"prompt": "a cat", "size": {"width": 1024}}, ["body", "size", "height"]),
        ({"prompt": "a cat", "contentClass": "painting"}, ["body", "contentClass"]),
        ({"prompt": "a cat", "visualIntensity": 1}, ["body", "visualIntensity"]),
        ({"prompt": "a cat", "visualIntensity": 11}, ["body", "visualIntensity"]),
        ({"prompt": "a cat", "style": {"presets": ["no_such_preset"]}}, ["body", "style", "presets"]),
        ({"prompt": "a cat", "style": {"presets": ["bw", "bw"]}}, ["body", "style", "presets"]),
        ({"prompt": "a cat", "style": {"strength": 0}}, ["body", "style", "strength"]),
        ({"prompt": "a cat", "style": {"strength": 101}}, ["body", "style", "strength"]),
        ({"prompt": "a cat", "style": {"imageReference": {"source": {}}}},
         ["body", "style", "imageReference", "source"]),
        ({"prompt": "a cat", "style": {"imageReference": {"source": {"url": "ftp://x/y.png"}}}},
         ["body", "style", "imageReference", "source", "url"]),
        ({"prompt": "a cat", "structure": {"strength": 101, "imageReference": {"source": {"url": "https://x/y"}}}},
         ["body", "structure", "strength"]),
        ({"prompt": "a cat", "structure": {"strength": 10}}, ["body", "structure", "imageReference"]),
        ({"prompt": "a cat", "promptBiasingLocaleCode": "english"}, ["body", "promptBiasingLocaleCode"]),
        ({"prompt": "a cat", "upsamplerType": "extreme"}, ["body", "upsamplerType"]),
        ({"prompt": "a cat", "colour": "red"}, ["body", "colour"]),
        ({"prompt": "a cat", "style": {"presets": [], "extra": 1}}, ["body", "style", "extra"]),
    ],
)
def test_a_bad_field_is_a_422_naming_it(http: TestClient, headers: Headers, body: Any, loc: list[Any]) -> None:
    assert only_error(post(http, headers, body))["loc"] == loc


@pytest.mark.parametrize(
    ("extra_headers", "body", "loc"),
    [
        ({"x-model-version": "image9"}, {"prompt": "a cat"}, ["header", "x-model-version"]),
        ({"x-accept-mimetype": "image/gif"}, {"prompt": "a cat"}, ["header", "x-accept-mimetype"]),
        ({"x-model-version": "image3_custom"}, {"prompt": "a cat"}, ["body", "customModelId"]),
        ({"x-model-version": "image3"}, {"prompt": "a cat", "customModelId": "urn:aaid:sc:VA6C2:x"},
         ["header", "x-model-version"]),
        ({"x-model-version": "image4_standard"}, {"prompt": "a cat", "upsamplerType": "default"},
         ["body", "upsamplerType"]),
        ({"x-model-version": "image3_custom"}, {"prompt": "a cat", "customModelId": "not-an-asset-id"},
         ["body", "customModelId"]),
    ],
)
def test_a_bad_header_or_combination_is_a_422_naming_it(
    http: TestClient, headers: Headers, extra_headers: dict[str, str], body: Any, loc: list[Any]
) -> None:
    assert only_error(post(http, headers, body, **extra_headers))["loc"] == loc


def test_several_bad_fields_are_all_reported(http: TestClient, headers: Headers) -> None:
    response = post(http, headers, {"prompt": "", "visualIntensity": 99, "contentClass": "x"})
    locs = sorted(tuple(error["loc"]) for error in response.json()["validation_errors"])
    assert locs == [("body", "contentClass"), ("body", "prompt"), ("body", "visualIntensity")]


def test_an_empty_body_is_empty_input_body(http: TestClient, headers: Headers) -> None:
    response = http.post(URL, headers={**headers, "content-type": "application/json"})
    assert (response.status_code, response.json()["error_code"]) == (400, "empty_input_body")


def test_a_body_that_is_not_json_is_415(http: TestClient, headers: Headers) -> None:
    response = http.post(URL, content=b"prompt=a cat", headers={**headers, "content-type": "text/plain"})
    assert (response.status_code, response.json()["error_code"]) == (415, "invalid_content_type")


def test_a_request_without_a_token_is_refused_before_validation(http: TestClient) -> None:
    response = http.post(URL, json={"prompt": ""})
    assert (response.status_code, response.json()["error_code"]) == (403, "403010")


def test_get_on_generate_async_says_to_use_post(http: TestClient, headers: Headers) -> None:
    response = http.get(URL, headers=headers)
    assert response.status_code == 405
    assert "POST" in response.json()["message"]


def test_a_valid_request_records_a_pending_job_and_hands_its_id_on(
    http: TestClient, headers: Headers, runtime: Runtime, dispatcher: RecordingDispatcher
) -> None:
    response = post(http, headers, {"prompt": "a cat", "seeds": [7, 8], "size": {"width": 1024, "height": 1024}},
                    **{"x-accept-mimetype": "image/png"})
    assert response.status_code == 202, response.text
    accepted = response.json()
    job_id = accepted["jobId"]
    assert job_id.startswith("urn:ff:jobs:")
    assert accepted["statusUrl"] == f"http://testserver/v3/status/{job_id}"
    assert accepted["cancelUrl"] == f"http://testserver/v3/cancel/{job_id}"
    assert dispatcher.submitted == [(job_id, None)]
    with runtime.sessions() as session:
        job = session.scalars(select(Job)).one()
    assert (job.id, job.state, job.progress) == (job_id, JobState.pending, 0)
    assert job.request["seeds"] == [7, 8]
    assert (job.request["width"], job.request["height"], job.request["mimetype"]) == (1024, 1024, "image/png")
    assert job.request["baseModel"] == runtime.settings.default_base_model


def test_without_seeds_the_job_gets_as_many_distinct_seeds_as_variations(
    http: TestClient, headers: Headers, runtime: Runtime
) -> None:
    post(http, headers, {"prompt": "a cat", "numVariations": 3})
    with runtime.sessions() as session:
        seeds = session.scalars(select(Job)).one().request["seeds"]
    assert len(set(seeds)) == 3


def test_defaults_are_one_2048_square_jpeg(http: TestClient, headers: Headers, runtime: Runtime) -> None:
    post(http, headers, {"prompt": "a cat"})
    with runtime.sessions() as session:
        request = session.scalars(select(Job)).one().request
    assert (len(request["seeds"]), request["width"], request["height"], request["mimetype"]) == (
        1, 2048, 2048, "image/jpeg"
    )


def test_a_custom_model_of_another_organization_is_refused(
    http: TestClient, headers: Headers, runtime: Runtime
) -> None:
    foreign = add_trained_model(runtime, add_client(runtime, "globex"))
    response = post(http, headers, {"prompt": "zorb", "customModelId": foreign}, **{"x-model-version": "image3_custom"})
    assert only_error(response)["loc"] == ["body", "customModelId"]


def test_a_custom_model_shared_with_the_caller_is_accepted(
    http: TestClient, headers: Headers, runtime: Runtime, credentials: ClientCredentials,
    dispatcher: RecordingDispatcher,
) -> None:
    shared = add_trained_model(runtime, add_client(runtime, "globex"), shared_with=credentials)
    response = post(http, headers, {"prompt": "zorb", "customModelId": shared}, **{"x-model-version": "image3_custom"})
    assert response.status_code == 202, response.text
    lora_key = dispatcher.submitted[0][1]
    assert lora_key is not None and lora_key.endswith(":v1")


def test_a_custom_model_without_trained_weights_is_refused(
    http: TestClient, headers: Headers, runtime: Runtime, credentials: ClientCredentials
) -> None:
    draft = add_trained_model(runtime, credentials, trained=False)
    response = post(http, headers, {"prompt": "zorb", "customModelId": draft}, **{"x-model-version": "image3_custom"})
    assert "no trained weights" in only_error(response)["msg"]


def test_a_custom_model_uses_its_own_base_model_and_lora(
    http: TestClient, headers: Headers, runtime: Runtime, credentials: ClientCredentials
) -> None:
    model = add_trained_model(runtime, credentials)
    post(http, headers, {"prompt": "a zorb", "customModelId": model}, **{"x-model-version": "image4_custom"})
    with runtime.sessions() as session:
        job = session.scalars(select(Job)).one()
    assert job.request["baseModel"] == "tiny"
    [lora] = job.request["loras"]
    assert lora["blobKey"].endswith("lora.safetensors") and lora["weight"] == 1.0
    assert job.custom_model_id is not None and str(job.custom_model_id) in model
    assert "warnings" not in job.request


def test_a_subject_prompt_without_the_concept_word_is_accepted_with_a_warning(
    http: TestClient, headers: Headers, runtime: Runtime, credentials: ClientCredentials
) -> None:
    model = add_trained_model(runtime, credentials, mode=TrainingMode.subject, concept="zorb")
    response = post(http, headers, {"prompt": "a red car", "customModelId": model},
                    **{"x-model-version": "image3_custom"})
    assert response.status_code == 202
    with runtime.sessions() as session:
        warnings = session.scalars(select(Job)).one().request["warnings"]
    assert [warning["code"] for warning in warnings] == ["concept_missing"]


def test_a_style_model_needs_no_concept_word(
    http: TestClient, headers: Headers, runtime: Runtime, credentials: ClientCredentials
) -> None:
    model = add_trained_model(runtime, credentials, mode=TrainingMode.style)
    post(http, headers, {"prompt": "a red car", "customModelId": model}, **{"x-model-version": "image3_custom"})
    with runtime.sessions() as session:
        assert "warnings" not in session.scalars(select(Job)).one().request


def test_an_unknown_upload_id_is_refused(http: TestClient, headers: Headers) -> None:
    source = {"uploadId": "3f1c1f0e-0000-4000-8000-000000000000"}
    body = {"prompt": "a cat", "style": {"imageReference": {"source": source}}}
    assert only_error(post(http, headers, body))["loc"] == ["body", "style", "imageReference", "source", "uploadId"]


def test_without_engine_workers_a_valid_request_is_503(
    http: TestClient, headers: Headers, dispatcher: RecordingDispatcher
) -> None:
    dispatcher.accepting = False
    assert post(http, headers, {"prompt": "a cat"}).status_code == 503


def test_the_style_preset_list_is_the_engines() -> None:
    from ember.engine.presets import STYLE_PRESETS

    assert frozenset(STYLE_PRESETS) == STYLE_PRESET_IDS
