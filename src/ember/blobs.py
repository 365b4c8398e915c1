"""Blob storage for images, LoRA files, checkpoints and outputs: a local directory or an S3-compatible bucket."""

from __future__ import annotations

import os
import re
import tempfile
import uuid
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

# Keys are made by Ember (ids and fixed folder names), never from user input; the pattern makes
# a mistake loud instead of letting a key climb out of the store's root.
_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)*$")


class BlobStoreError(Exception):
    """Base class of blob store errors."""


class BlobStoreUnavailable(BlobStoreError):
    """The store cannot be reached or written."""


class BlobNotFound(BlobStoreError):
    """No blob has that key."""


class InvalidBlobKey(BlobStoreError, ValueError):
    """A key that is not a plain relative path of safe characters."""


def check_key(key: str) -> str:
    if not _KEY.match(key) or ".." in key.split("/"):
        raise InvalidBlobKey(f"invalid blob key: {key!r}")
    return key


def new_key(folder: str, suffix: str = "") -> str:
    """A fresh, unguessable key under `folder`, e.g. new_key("outputs", ".png")."""
    return check_key(f"{folder}/{uuid.uuid4().hex}{suffix}")


class BlobStore(ABC):
    """Where Ember keeps bytes. Writes are all-or-nothing: a reader never sees half a blob."""

    @abstractmethod
    def put(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None: ...

    @abstractmethod
    def get(self, key: str) -> bytes: ...

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove a blob; removing a missing blob is not an error."""

    @abstractmethod
    def exists(self, key: str) -> bool: ...

    @abstractmethod
    def check(self) -> None:
        """Raise BlobStoreUnavailable unless the store can be written and read now."""

    def presigned_url(self, key: str, expires_s: int) -> str | None:
        """A URL a client can fetch directly, or None where the API must serve the blob itself."""
        return None


class LocalBlobStore(BlobStore):
    """Blobs as files under one root directory."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root).resolve()

    def path_of(self, key: str) -> Path:
        path = (self.root / check_key(key)).resolve()
        if self.root not in path.parents:
            raise InvalidBlobKey(f"invalid blob key: {key!r}")
        return path

    def put(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        path = self.path_of(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
                os.replace(tmp, path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except OSError as exc:
            raise BlobStoreUnavailable(f"cannot write blob {key}: {exc}") from exc

    def get(self, key: str) -> bytes:
        try:
            return self.path_of(key).read_bytes()
        except FileNotFoundError as exc:
            raise BlobNotFound(key) from exc

    def delete(self, key: str) -> None:
        self.path_of(key).unlink(missing_ok=True)

    def exists(self, key: str) -> bool:
        return self.path_of(key).is_file()

    def check(self) -> None:
        probe = f"probe/{uuid.uuid4().hex}"
        try:
            self.put(probe, b"ok")
            if self.get(probe) != b"ok":
                raise BlobStoreUnavailable(f"blob store at {self.root} returned other bytes")
        except BlobStoreError as exc:
            raise BlobStoreUnavailable(f"blob store at {self.root} is not usable: {exc}") from exc
        finally:
            try:
                self.delete(probe)
            except OSError:
                pass  # the failure that matters was raised above


class S3BlobStore(BlobStore):
    """Blobs as objects in an S3-compatible bucket, under an optional prefix."""

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        client: Any = None,
    ) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        if client is None:
            import boto3  # only deployments that use S3 need it

            client = boto3.client("s3", endpoint_url=endpoint_url, region_name=region)
        self.client = client

    def _object_key(self, key: str) -> str:
        check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def _missing(self, exc: Exception) -> bool:
        code = getattr(exc, "response", {}).get("Error", {}).get("Code")
        return code in ("404", "NoSuchKey", "NotFound")

    def put(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        try:
            self.client.put_object(Bucket=self.bucket, Key=self._object_key(key), Body=data, ContentType=content_type)
        except Exception as exc:  # botocore raises many classes; all mean the same to a caller
            raise BlobStoreUnavailable(f"cannot write s3://{self.bucket}/{self._object_key(key)}: {exc}") from exc

    def get(self, key: str) -> bytes:
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=self._object_key(key))
        except Exception as exc:
            if self._missing(exc):
                raise BlobNotFound(key) from exc
            raise BlobStoreUnavailable(f"cannot read s3://{self.bucket}/{self._object_key(key)}: {exc}") from exc
        data: bytes = response["Body"].read()
        return data

    def delete(self, key: str) -> None:
        try:
            self.client.delete_object(Bucket=self.bucket, Key=self._object_key(key))
        except Exception as exc:
            if not self._missing(exc):
                raise BlobStoreUnavailable(f"cannot delete {key}: {exc}") from exc

    def exists(self, key: str) -> bool:
        try:
            self.client.head_object(Bucket=self.bucket, Key=self._object_key(key))
        except Exception as exc:
            if self._missing(exc):
                return False
            raise BlobStoreUnavailable(f"cannot reach s3://{self.bucket}: {exc}") from exc
        return True

    def check(self) -> None:
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except Exception as exc:
            raise BlobStoreUnavailable(f"bucket s3://{self.bucket} is not reachable: {exc}") from exc

    def presigned_url(self, key: str, expires_s: int) -> str | None:
        url: str = self.client.generate_presigned_url(
            "get_object", Params={"Bucket": self.bucket, "Key": self._object_key(key)}, ExpiresIn=expires_s
        )
        return url


def open_blob_store(url: str) -> BlobStore:
    """Open a store from a URL: `file:///abs/dir`, or `s3://bucket/prefix?endpoint_url=…&region=…`.

    S3 credentials come from the usual AWS environment variables or instance role.
    """
    parsed = urlparse(url)
    if parsed.scheme == "file":
        if parsed.netloc not in ("", "localhost"):
            raise ValueError(f"a file blob URL has no host: {url!r}")
        return LocalBlobStore(Path(parsed.path))
    if parsed.scheme == "s3":
        if not parsed.netloc:
            raise ValueError(f"an s3 blob URL names a bucket: {url!r}")
        query = {k: v[-1] for k, v in parse_qs(parsed.query).items()}
        return S3BlobStore(
            parsed.netloc, parsed.path, endpoint_url=query.get("endpoint_url"), region=query.get("region")
        )
    raise ValueError(f"unsupported blob store URL {url!r}: use file:///dir or s3://bucket/prefix")
