"""`ember models` and `ember demo` pieces: the lifecycle calls over HTTP, the training progress follower, the
demo's images and its account."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from ember.api import create_app
from ember.cli.demo import CONCEPT, demo_account, drawn_set, toy_set
from ember.cli.models import follow_training
from ember.client import EmberClient, JobFailed, ModelsApi
from ember.config import Settings
from ember.identity import ClientCredentials, authenticate_user, create_client
from ember.store.database import migrate, open_engine, session_factory, transaction


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    settings = Settings(data_dir=tmp_path / "data", ray_address="disabled")
    engine = open_engine(settings.database_url)
    migrate(engine)
    engine.dispose()
    return settings


@pytest.fixture
def http(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield client


def add_client(settings: Settings, org: str) -> ClientCredentials:
    engine = open_engine(settings.database_url)
    try:
        with transaction(session_factory(engine)) as session:
            return create_client(session, org)
    finally:
        engine.dispose()


def api_for(http: TestClient, credentials: ClientCredentials) -> ModelsApi:
    return ModelsApi(EmberClient("http://testserver", credentials.client_id, credentials.client_secret, http=http))


@pytest.fixture
def api(http: TestClient, settings: Settings) -> ModelsApi:
    return api_for(http, add_client(settings, "acme"))


def picture(seed: int) -> bytes:
    blocks = np.random.default_rng(seed).integers(0, 256, size=(8, 8, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(blocks).resize((96, 96), Image.Resampling.NEAREST).save(out, format="PNG")
    return out.getvalue()


def new_model(api: ModelsApi) -> str:
    model = api.create(displayName="Mascot", trainingMode="subject", conceptId="zorb", baseModel={"name": "tiny"})
    return str(model["assetId"])


def test_a_created_model_is_a_draft_with_its_concept(api: ModelsApi) -> None:
    model = api.get(new_model(api))
    assert (model["trainingState"], model["conceptId"]) == ("draft", "zorb")


def test_uploaded_images_come_back_captioned_and_refused_files_say_why(api: ModelsApi) -> None:
    asset_id = new_model(api)
    outcomes = api.upload(asset_id, [("a.png", picture(1)), ("broken.png", b"not an image")])
    stored = {outcome["filename"]: outcome for outcome in outcomes}
    assert stored["a.png"]["stored"] and stored["a.png"]["caption"]
    assert not stored["broken.png"]["stored"] and stored["broken.png"]["errors"]


def test_more_files_than_one_batch_are_all_uploaded(api: ModelsApi) -> None:
    asset_id = new_model(api)
    api.upload(asset_id, [(f"{index}.png", picture(index)) for index in range(12)])
    assert len(api.images(asset_id)) == 12


def test_a_one_word_caption_is_flagged(api: ModelsApi) -> None:
    asset_id = new_model(api)
    image = api.upload(asset_id, [("a.png", picture(1))])[0]
    updated = api.set_caption(asset_id, image["id"], "zorb")
    assert [issue["code"] for issue in updated["errors"]] == ["caption_too_short"]


def test_a_deleted_image_is_gone(api: ModelsApi) -> None:
    asset_id = new_model(api)
    image = api.upload(asset_id, [("a.png", picture(1))])[0]
    api.delete_image(asset_id, image["id"])
    assert api.images(asset_id) == []


def test_a_model_is_shared_with_another_organizations_technical_account(
    api: ModelsApi, settings: Settings
) -> None:
    partner = add_client(settings, "partner")
    share = api.share(new_model(api), partner.technical_account_id, "editor")
    assert (share["principal"], share["role"]) == (partner.technical_account_id, "editor")


def test_creating_a_project_by_an_existing_name_reuses_it(api: ModelsApi) -> None:
    first = api.create_project("Demo")
    assert api.create_project("Demo")["id"] == first["id"]


class ScriptedClient:
    """Follows a job through a script of status bodies, one per change."""

    def __init__(self, statuses: list[dict[str, Any]]) -> None:
        self.statuses = list(statuses)
        self.polls = 0

    def follow(self, job_id: str, **_options: Any) -> Iterator[dict[str, Any]]:
        while self.statuses:
            self.polls += 1
            yield self.statuses.pop(0)


def training_status(status: str, step: int) -> dict[str, Any]:
    return {"jobId": "j", "status": status, "progress": step, "training": {"step": step, "totalSteps": 20, "loss": 0.5}}


def test_following_a_training_job_reads_its_changes_until_it_succeeds() -> None:
    client = ScriptedClient(
        [training_status("pending", 0), training_status("running", 10), training_status("succeeded", 20)]
    )
    final = follow_training(client, "j")  # type: ignore[arg-type]
    assert (final["status"], client.polls) == ("succeeded", 3)


def test_following_a_failed_training_job_raises() -> None:
    failed = {"jobId": "j", "status": "failed", "error_code": "runtime_error", "message": "out of memory"}
    with pytest.raises(JobFailed, match="out of memory"):
        follow_training(ScriptedClient([failed]), "j")  # type: ignore[arg-type]


def test_the_drawn_demo_set_has_distinct_captioned_images_large_enough_to_train() -> None:
    chosen = drawn_set("tiny")
    assert len({data for _name, data, _caption in chosen.images}) == len(chosen.images) == 12
    assert all(min(Image.open(io.BytesIO(data)).size) >= 64 for _name, data, _caption in chosen.images)
    assert all(CONCEPT in caption.split() for _name, _data, caption in chosen.images)


def test_the_toy_demo_set_speaks_the_toy_worlds_vocabulary() -> None:
    from ember.engine.toy.world import VOCABULARY

    chosen = toy_set()
    words = {word for _name, _data, caption in chosen.images for word in caption.split()}
    assert chosen.base_model == "toy" and CONCEPT in words
    assert words | set(chosen.sample_prompt.split()) <= set(VOCABULARY)


def test_running_the_demo_again_gives_its_user_a_new_password(settings: Settings) -> None:
    first = demo_account(settings.data_dir)
    second = demo_account(settings.data_dir)
    assert first.password != second.password and first.client_id != second.client_id
    engine = open_engine(settings.database_url)
    try:
        with session_factory(engine)() as session:
            assert authenticate_user(session, second.email, second.password).email == second.email
    finally:
        engine.dispose()


def test_the_toy_demo_set_passes_the_dataset_rules_of_the_toy_model() -> None:
    from ember.engine.dataset import check_dataset
    from ember.engine.registry import get_base_model

    chosen = toy_set()
    report = check_dataset([(name, data) for name, data, _caption in chosen.images], get_base_model("toy"))
    assert len(chosen.images) == 12
    assert report.ok, [issue for image in report.images for issue in image.issues] + report.errors
