"""The Python SDK and the `ember generate` / `ember jobs` commands against a live server."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from ember.cli import app
from ember.cli.jobs import seeds_for
from ember.client import ApiCallFailed, EmberClient

from .conftest import Live
from .test_end_to_end import wait_final
from .test_worker import long_job, wait_progress


def test_the_sdk_generates_and_downloads_images(live: Live, tmp_path: Path) -> None:
    credentials, _ = live.client()
    with EmberClient("http://testserver", credentials.client_id, credentials.client_secret, http=live.http) as client:
        paths = client.generate("a cat", tmp_path, seeds=[3, 4], size={"width": 1024, "height": 1024},
                                mimetype="image/png")
    assert [path.name.rsplit("-", 1)[-1] for path in paths] == ["3.png", "4.png"]
    assert all(Image.open(path).size == (1024, 1024) for path in paths)


def test_the_sdk_raises_the_apis_validation_errors(live: Live) -> None:
    credentials, _ = live.client()
    client = EmberClient("http://testserver", credentials.client_id, credentials.client_secret, http=live.http)
    with pytest.raises(ApiCallFailed) as raised:
        client.generate_async("a cat", visualIntensity=99)
    assert raised.value.status_code == 422
    assert raised.value.validation_errors[0]["loc"] == ["body", "visualIntensity"]


def test_one_seed_with_several_variations_means_consecutive_seeds() -> None:
    assert seeds_for([1], 3) == [1, 2, 3]
    assert seeds_for([5, 9], None) == [5, 9]
    assert seeds_for([], 2) is None


def test_ember_generate_writes_each_variation_to_the_out_folder(live: Live, live_url: str, tmp_path: Path) -> None:
    credentials, _ = live.client()
    result = CliRunner().invoke(app, [
        "generate", "a cat on a mat", "--variations", "2", "--seed", "1", "--size", "1024x1024",
        "--out", str(tmp_path / "out"), "--url", live_url,
        "--client-id", credentials.client_id, "--client-secret", credentials.client_secret,
    ])
    assert result.exit_code == 0, result.output
    written = sorted((tmp_path / "out").iterdir())
    assert [path.name.rsplit("-", 1)[-1] for path in written] == ["1.jpg", "2.jpg"]
    assert Image.open(io.BytesIO(written[0].read_bytes())).format == "JPEG"


def test_ember_jobs_status_and_cancel_speak_for_a_job(live: Live, live_url: str) -> None:
    credentials, headers = live.client()
    job_id = long_job(live, credentials, steps=900)
    wait_progress(live, headers, job_id, at_least=1)
    options = ["--url", live_url, "--client-id", credentials.client_id, "--client-secret", credentials.client_secret]
    status = CliRunner().invoke(app, ["jobs", "status", job_id, *options])
    assert status.exit_code == 0, status.output
    assert json.loads(status.output)["status"] == "running"
    cancel = CliRunner().invoke(app, ["jobs", "cancel", job_id, *options])
    assert cancel.exit_code == 0, cancel.output
    assert json.loads(cancel.output) == {"jobId": job_id, "status": "cancel_pending"}
    assert wait_final(live.http, headers, f"/v3/status/{job_id}")["status"] == "cancelled"


def test_ember_jobs_status_of_an_unknown_job_fails_with_its_error(live: Live, live_url: str) -> None:
    credentials, _ = live.client()
    result = CliRunner().invoke(app, [
        "jobs", "status", "urn:ff:jobs:x:00000000-0000-4000-8000-000000000000", "--url", live_url,
        "--client-id", credentials.client_id, "--client-secret", credentials.client_secret,
    ])
    assert result.exit_code == 1
    assert "unknown_job_id" in result.output
