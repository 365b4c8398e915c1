"""`ember webhooks add|list|remove|secret` against a live server."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner, Result

from ember.cli import app
from ember.identity import ClientCredentials

from .conftest import Live


def invoke(live_url: str, credentials: ClientCredentials, *args: str) -> Result:
    login = ["--url", live_url, "--client-id", credentials.client_id, "--client-secret", credentials.client_secret]
    return CliRunner().invoke(app, ["webhooks", *args, *login])


def run(live_url: str, credentials: ClientCredentials, *args: str) -> str:
    result = invoke(live_url, credentials, *args)
    assert result.exit_code == 0, result.output
    return result.output


def test_ember_webhooks_adds_lists_and_removes_an_endpoint(
    live: Live, live_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(live.runtime.settings, "webhook_allow_private", True)
    credentials, _ = live.client()
    endpoint_id, secret = run(live_url, credentials, "add", "http://127.0.0.1:9/hook", "--event", "start").split()
    assert secret.startswith("whsec_")
    listed = run(live_url, credentials, "list")
    assert listed.split("\t")[:3] == [endpoint_id, "http://127.0.0.1:9/hook", "start"] and secret not in listed
    run(live_url, credentials, "remove", endpoint_id)
    assert endpoint_id not in run(live_url, credentials, "list")


def test_ember_webhooks_add_reports_a_refused_url(live: Live, live_url: str) -> None:
    credentials, _ = live.client()
    result = invoke(live_url, credentials, "add", "http://10.0.0.8/hook")
    assert result.exit_code == 1
    assert "non-public address" in result.output


def test_ember_webhooks_secret_prints_the_organization_s_signing_secret(live: Live, live_url: str) -> None:
    credentials, _ = live.client()
    first = run(live_url, credentials, "secret").strip()
    assert first.startswith("whsec_") and run(live_url, credentials, "secret").strip() == first
