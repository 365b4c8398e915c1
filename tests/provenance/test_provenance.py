"""Content Credentials: every output says it was made by a trained algorithm, with which models."""

from __future__ import annotations

import io
import os
import stat
from pathlib import Path

import pytest
from PIL import Image

from ember.worker.provenance import (
    TRAINED_ALGORITHMIC_MEDIA,
    Origin,
    ProvenanceError,
    SigningChain,
    load_or_create_chain,
    make_local_chain,
    read_credentials,
    sign_image,
)


@pytest.fixture(scope="module")
def chain() -> SigningChain:
    return make_local_chain()


def _image(fmt: str) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (48, 32), (30, 120, 200)).save(buf, fmt)
    return buf.getvalue()


def _active(report: dict) -> dict:
    return report["manifests"][report["active_manifest"]]


@pytest.mark.parametrize(("mimetype", "fmt"), [("image/jpeg", "JPEG"), ("image/png", "PNG"), ("image/webp", "WEBP")])
def test_signed_image_carries_a_valid_manifest_and_still_decodes(chain: SigningChain, mimetype: str, fmt: str) -> None:
    signed = sign_image(_image(fmt), mimetype, Origin("tiny"), chain)
    report = read_credentials(signed, mimetype)
    assert report["validation_state"] == "Valid"
    assert Image.open(io.BytesIO(signed)).size == (48, 32)


def test_manifest_names_trained_algorithm_base_and_custom_models(chain: SigningChain) -> None:
    origin = Origin("sdxl", ("urn:aaid:sc:VA6C2:1111", "urn:aaid:sc:VA6C2:2222"))
    manifest = _active(read_credentials(sign_image(_image("PNG"), "image/png", origin, chain), "image/png"))
    by_label = {a["label"].removesuffix(".v2"): a["data"] for a in manifest["assertions"]}
    (created,) = by_label["c2pa.actions"]["actions"]
    assert created["action"] == "c2pa.created"
    assert created["digitalSourceType"] == TRAINED_ALGORITHMIC_MEDIA
    assert by_label["org.ember.generation"] == {"baseModel": "sdxl", "customModels": list(origin.custom_models)}


def test_only_local_authority_is_reported_untrusted(chain: SigningChain) -> None:
    report = read_credentials(sign_image(_image("JPEG"), "image/jpeg", Origin("tiny"), chain), "image/jpeg")
    codes = {status["code"] for status in report.get("validation_status", [])}
    assert codes <= {"signingCredential.untrusted"}


def test_tampered_image_fails_validation(chain: SigningChain) -> None:
    signed = bytearray(sign_image(_image("PNG"), "image/png", Origin("tiny"), chain))
    signed[-40] ^= 0xFF  # inside the image data, after the manifest
    try:
        report = read_credentials(bytes(signed), "image/png")
    except ProvenanceError:
        return
    assert report["validation_state"] != "Valid"


def test_unsigned_image_has_no_credentials() -> None:
    with pytest.raises(ProvenanceError):
        read_credentials(_image("JPEG"), "image/jpeg")


def test_unsupported_type_is_refused(chain: SigningChain) -> None:
    with pytest.raises(ProvenanceError):
        sign_image(b"GIF89a", "image/gif", Origin("tiny"), chain)


def test_local_chain_is_made_once_and_kept_private(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EMBER_C2PA_CERT", raising=False)
    monkeypatch.delenv("EMBER_C2PA_KEY", raising=False)
    first = load_or_create_chain(tmp_path)
    assert load_or_create_chain(tmp_path) == first
    assert stat.S_IMODE(os.stat(tmp_path / "c2pa-key.pem").st_mode) == 0o600


def test_configured_chain_takes_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    own = make_local_chain()
    (tmp_path / "cert.pem").write_bytes(own.cert_chain_pem)
    (tmp_path / "key.pem").write_bytes(own.private_key_pem)
    monkeypatch.setenv("EMBER_C2PA_CERT", str(tmp_path / "cert.pem"))
    monkeypatch.setenv("EMBER_C2PA_KEY", str(tmp_path / "key.pem"))
    assert load_or_create_chain(tmp_path / "data") == own


def test_manifest_embeds_no_thumbnail_so_outputs_stay_small(chain: SigningChain) -> None:
    buf = io.BytesIO()
    Image.effect_noise((256, 256), 64).convert("RGB").save(buf, "JPEG", quality=90)
    signed = sign_image(buf.getvalue(), "image/jpeg", Origin("tiny"), chain)
    assert "thumbnail" not in _active(read_credentials(signed, "image/jpeg"))
    # The manifest (mostly the certificate chain) is all that is added.
    assert len(signed) - len(buf.getvalue()) < 40_000
