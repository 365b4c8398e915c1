"""`ember demo` end to end against a real `ember serve`: it trains a `zorb` custom model on the default base
model `toy` through the API, publishes it and draws with it."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from ember.cli import app
from ember.client import EmberClient

from .conftest import Server

pytestmark = pytest.mark.slow


def test_the_demo_trains_publishes_and_draws_a_zorb_on_the_toy_model(server: Server, tmp_path: Path) -> None:
    out = tmp_path / "demo-images"
    result = CliRunner().invoke(
        app, ["demo", "--url", server.url, "--data-dir", str(server.data_dir), "--steps", "10", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert "base model toy" in " ".join(result.output.split())

    pictures = sorted(out.iterdir())
    assert len(pictures) == 4
    for path in pictures:
        with Image.open(io.BytesIO(path.read_bytes())) as image:
            assert image.size == (1024, 1024)

    asset_id = re.search(r"/ui/#/models/(\S+)", result.output)
    assert asset_id is not None
    demo_client = server.add_client("demo")
    with EmberClient(server.url, demo_client.client_id, demo_client.client_secret) as client:
        models = {model["assetId"]: model for model in client.list_custom_models(publishedState="published")}
    assert models[asset_id.group(1)]["baseModel"]["name"] == "toy"
