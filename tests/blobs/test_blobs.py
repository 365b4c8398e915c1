"""The blob store contract, run against a local directory and against an S3 server (moto's server mode)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from ember.blobs import (
    BlobNotFound,
    BlobStore,
    BlobStoreUnavailable,
    InvalidBlobKey,
    LocalBlobStore,
    S3BlobStore,
    new_key,
    open_blob_store,
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def s3_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> BlobStore:
    if request.param == "local":
        return open_blob_store(f"file://{tmp_path}/blobs")
    request.getfixturevalue("s3_env")
    endpoint = request.getfixturevalue("s3_endpoint")
    bucket = f"ember-{new_key('b').split('/')[1][:12]}"
    import boto3

    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(Bucket=bucket)
    return open_blob_store(f"s3://{bucket}/tenant-data?endpoint_url={endpoint}&region=us-east-1")


def test_put_then_get_returns_the_same_bytes(store: BlobStore) -> None:
    key = new_key("outputs", ".png")
    store.put(key, b"\x89PNG data", "image/png")
    assert store.get(key) == b"\x89PNG data"
    assert store.exists(key)


def test_put_replaces_existing_blob(store: BlobStore) -> None:
    store.put("models/a/lora.safetensors", b"v1")
    store.put("models/a/lora.safetensors", b"v2")
    assert store.get("models/a/lora.safetensors") == b"v2"


def test_missing_blob_raises_not_found(store: BlobStore) -> None:
    with pytest.raises(BlobNotFound):
        store.get("outputs/never-written.png")
    assert not store.exists("outputs/never-written.png")


def test_delete_removes_and_tolerates_missing(store: BlobStore) -> None:
    store.put("uploads/x.jpg", b"jpeg")
    store.delete("uploads/x.jpg")
    assert not store.exists("uploads/x.jpg")
    store.delete("uploads/x.jpg")


@pytest.mark.parametrize("key", ["../escape", "a/../../b", "/abs/path", "", "a//b", "sp ace", "a/.hidden/../x"])
def test_unsafe_keys_are_refused(store: BlobStore, key: str) -> None:
    with pytest.raises(InvalidBlobKey):
        store.put(key, b"x")


def test_check_passes_on_a_usable_store(store: BlobStore) -> None:
    store.check()


def test_local_check_fails_when_root_is_not_writable(tmp_path: Path) -> None:
    blocker = tmp_path / "file-not-dir"
    blocker.write_text("x")
    with pytest.raises(BlobStoreUnavailable):
        LocalBlobStore(blocker / "blobs").check()


def test_local_put_leaves_no_temporary_files(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path)
    store.put("outputs/a.png", b"data")
    assert sorted(p.name for p in (tmp_path / "outputs").iterdir()) == ["a.png"]


def test_s3_check_fails_for_missing_bucket(s3_endpoint: str, s3_env: None) -> None:
    with pytest.raises(BlobStoreUnavailable):
        open_blob_store(f"s3://no-such-bucket?endpoint_url={s3_endpoint}").check()


def test_s3_presigned_url_serves_the_blob(s3_endpoint: str, s3_env: None) -> None:
    import boto3

    boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1").create_bucket(Bucket="presign")
    store = open_blob_store(f"s3://presign?endpoint_url={s3_endpoint}&region=us-east-1")
    assert isinstance(store, S3BlobStore)
    store.put("outputs/p.webp", b"webp-bytes", "image/webp")
    url = store.presigned_url("outputs/p.webp", 60)
    assert url is not None
    response = httpx.get(url)
    assert response.status_code == 200 and response.content == b"webp-bytes"


def test_local_store_has_no_presigned_url(tmp_path: Path) -> None:
    assert LocalBlobStore(tmp_path).presigned_url("outputs/a.png", 60) is None


@pytest.mark.parametrize("url", ["ftp://x/y", "s3:///prefix-without-bucket", "file://remotehost/dir"])
def test_unsupported_urls_are_refused(url: str) -> None:
    with pytest.raises(ValueError):
        open_blob_store(url)
