"""Ember's `customModels` extension: several custom models in one request, each checked, each with its weight."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select

from ember.api.runtime import Runtime
from ember.identity import ClientCredentials
from ember.store.tables import Job

from .conftest import Headers, RecordingDispatcher, add_client, add_trained_model

URL = "/v3/images/generate-async"
CUSTOM = {"x-model-version": "image3_custom"}


def post(http: TestClient, headers: Headers, body: Any) -> Any:
    return http.post(URL, json=body, headers={**headers, **CUSTOM})


def stored_request(runtime: Runtime) -> dict[str, Any]:
    with runtime.sessions() as session:
        request: dict[str, Any] = session.scalars(select(Job)).one().request
    return request


def error_locs(response: Any) -> list[list[Any]]:
    assert response.status_code == 422, response.text
    return [error["loc"] for error in response.json()["validation_errors"]]


def test_two_custom_models_are_stored_with_their_weights(
    http: TestClient, headers: Headers, runtime: Runtime, credentials: ClientCredentials
) -> None:
    one, two = add_trained_model(runtime, credentials), add_trained_model(runtime, credentials)
    body = {"prompt": "a zorb", "customModels": [{"id": one, "weight": 0.8}, {"id": two}]}
    assert post(http, headers, body).status_code == 202
    request = stored_request(runtime)
    assert [lora["weight"] for lora in request["loras"]] == [0.8, 1.0]
    assert request["customModels"] == [one, two]


def test_custom_model_id_joins_the_list_at_weight_one(
    http: TestClient, headers: Headers, runtime: Runtime, credentials: ClientCredentials
) -> None:
    one, two = add_trained_model(runtime, credentials), add_trained_model(runtime, credentials)
    body = {"prompt": "a zorb", "customModelId": one, "customModels": [{"id": two, "weight": 0.5}]}
    assert post(http, headers, body).status_code == 202
    request = stored_request(runtime)
    assert request["customModels"] == [one, two]
    assert [lora["weight"] for lora in request["loras"]] == [1.0, 0.5]


def test_a_model_in_both_fields_applies_once_at_the_lists_weight(
    http: TestClient, headers: Headers, runtime: Runtime, credentials: ClientCredentials
) -> None:
    one = add_trained_model(runtime, credentials)
    body = {"prompt": "a zorb", "customModelId": one, "customModels": [{"id": one, "weight": 1.5}]}
    assert post(http, headers, body).status_code == 202
    assert [lora["weight"] for lora in stored_request(runtime)["loras"]] == [1.5]


def test_a_listed_model_of_another_organization_is_a_404_naming_it(
    http: TestClient, headers: Headers, runtime: Runtime, credentials: ClientCredentials
) -> None:
    mine = add_trained_model(runtime, credentials)
    foreign = add_trained_model(runtime, add_client(runtime, "initech"))
    response = post(http, headers, {"prompt": "a zorb", "customModels": [{"id": mine}, {"id": foreign}]})
    assert (response.status_code, response.json()["error_code"]) == (404, "not_found")
    assert foreign in response.json()["message"] and mine not in response.json()["message"]


def test_a_weight_above_two_is_a_422_naming_it(
    http: TestClient, headers: Headers, runtime: Runtime, credentials: ClientCredentials
) -> None:
    one = add_trained_model(runtime, credentials)
    response = post(http, headers, {"prompt": "a zorb", "customModels": [{"id": one, "weight": 2.5}]})
    assert error_locs(response) == [["body", "customModels", 0, "weight"]]


def test_a_negative_weight_is_a_422(
    http: TestClient, headers: Headers, runtime: Runtime, credentials: ClientCredentials
) -> None:
    one = add_trained_model(runtime, credentials)
    response = post(http, headers, {"prompt": "a zorb", "customModels": [{"id": one, "weight": -0.1}]})
    assert error_locs(response) == [["body", "customModels", 0, "weight"]]


def test_five_custom_models_counting_custom_model_id_are_a_422(
    http: TestClient, headers: Headers, runtime: Runtime, credentials: ClientCredentials
) -> None:
    models = [add_trained_model(runtime, credentials) for _ in range(5)]
    body = {"prompt": "a zorb", "customModelId": models[0], "customModels": [{"id": m} for m in models[1:]]}
    assert error_locs(post(http, headers, body)) == [["body", "customModels"]]


def test_a_model_listed_twice_is_a_422(
    http: TestClient, headers: Headers, runtime: Runtime, credentials: ClientCredentials
) -> None:
    one = add_trained_model(runtime, credentials)
    response = post(http, headers, {"prompt": "a zorb", "customModels": [{"id": one}, {"id": one, "weight": 0.5}]})
    assert error_locs(response) == [["body", "customModels"]]


def test_custom_models_without_a_custom_model_version_are_a_422(
    http: TestClient, headers: Headers, runtime: Runtime, credentials: ClientCredentials
) -> None:
    one = add_trained_model(runtime, credentials)
    response = http.post(URL, json={"prompt": "a zorb", "customModels": [{"id": one}]}, headers=headers)
    assert error_locs(response) == [["header", "x-model-version"]]


def test_a_weighted_combination_is_routed_by_its_own_key(
    http: TestClient, headers: Headers, runtime: Runtime, credentials: ClientCredentials,
    dispatcher: RecordingDispatcher,
) -> None:
    one, two = add_trained_model(runtime, credentials), add_trained_model(runtime, credentials)
    post(http, headers, {"prompt": "a zorb", "customModels": [{"id": one, "weight": 0.5}, {"id": two}]})
    post(http, headers, {"prompt": "a zorb", "customModels": [{"id": one, "weight": 0.5}, {"id": two}]})
    first, second = (key for _, key in dispatcher.submitted)
    assert first == second and first is not None and "@0.5+" in first


def test_every_subject_model_missing_its_concept_word_gets_a_warning(
    http: TestClient, headers: Headers, runtime: Runtime, credentials: ClientCredentials
) -> None:
    zorb = add_trained_model(runtime, credentials, concept="zorb")
    quib = add_trained_model(runtime, credentials, concept="quib")
    post(http, headers, {"prompt": "a zorb", "customModels": [{"id": zorb}, {"id": quib}]})
    [warning] = stored_request(runtime)["warnings"]
    assert "'quib'" in warning["message"]


def test_the_openapi_document_describes_custom_models(http: TestClient) -> None:
    schemas = http.get("/openapi.json").json()["components"]["schemas"]
    field = schemas["GenerateImagesRequest"]["properties"]["customModels"]
    listed = next(option for option in field.get("anyOf", [field]) if option.get("type") == "array")
    entry = schemas[listed["items"]["$ref"].rsplit("/", 1)[-1]]
    assert listed["maxItems"] == 4 and entry["properties"]["weight"]["maximum"] == 2.0
