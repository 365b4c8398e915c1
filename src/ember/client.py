"""The Python SDK: an Ember (or Firefly Services) client for tokens, uploads, generation jobs and outputs."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

DEFAULT_SCOPE = "openid,AdobeID,firefly_api,ff_apis"
FINAL_STATUSES = frozenset({"succeeded", "failed", "cancelled", "timeout"})
EXTENSIONS = {"image/jpeg": "jpg", "image/png": "png", "image/webp": "webp"}
TOKEN_MARGIN_S = 60


class EmberError(Exception):
    """Base class of the SDK's errors."""


class ApiCallFailed(EmberError):
    """The API answered with an error body; `error_code`, `message` and `validation_errors` come from it."""

    def __init__(self, status_code: int, body: dict[str, Any]) -> None:
        self.status_code = status_code
        self.error_code = str(body.get("error_code") or body.get("error") or "unknown")
        self.message = str(body.get("message") or body.get("error_description") or "")
        self.validation_errors: list[dict[str, Any]] = list(body.get("validation_errors") or [])
        details = "; ".join(f"{'.'.join(map(str, e.get('loc', [])))}: {e.get('msg')}" for e in self.validation_errors)
        super().__init__(f"{status_code} {self.error_code}: {self.message}{' (' + details + ')' if details else ''}")


class JobFailed(EmberError):
    """A job ended in a state other than succeeded; `status` is its last status body."""

    def __init__(self, status: dict[str, Any]) -> None:
        self.status = status
        super().__init__(f"job {status.get('jobId')} ended as {status.get('status')}: {status.get('message', '')}")


class JobWaitTimedOut(EmberError):
    """A job was still not final when the caller stopped waiting."""


class EmberClient:
    """One API client's session: fetches and renews its token, adds the gateway headers to every call.

    `ims_url` defaults to `base_url` (Ember serves both); pass `http` to reuse an httpx client."""

    def __init__(
        self,
        base_url: str,
        client_id: str,
        client_secret: str,
        *,
        ims_url: str | None = None,
        scope: str = DEFAULT_SCOPE,
        timeout_s: float = 60.0,
        http: httpx.Client | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.ims_url = (ims_url or base_url).rstrip("/")
        self.client_id = client_id
        self.client_secret = client_secret
        self.scope = scope
        self._owns_http = http is None
        self.http = http or httpx.Client(timeout=timeout_s, follow_redirects=True)
        self._token: str | None = None
        self._token_expires = 0.0

    def token(self) -> str:
        if self._token is None or time.monotonic() >= self._token_expires:
            response = self.http.post(
                f"{self.ims_url}/ims/token/v3",
                data={"grant_type": "client_credentials", "client_id": self.client_id,
                      "client_secret": self.client_secret, "scope": self.scope},
            )
            body = self._json(response)
            self._token = str(body["access_token"])
            self._token_expires = time.monotonic() + float(body.get("expires_in", 3600)) - TOKEN_MARGIN_S
        return self._token

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token()}", "x-api-key": self.client_id}

    def list_custom_models(self, **query: str) -> list[dict[str, Any]]:
        body = self._json(self.http.get(f"{self.base_url}/v3/custom-models", params=query, headers=self.headers()))
        return list(body["custom_models"])

    def upload_image(self, data: bytes, mimetype: str) -> str:
        """Upload a reference image; its id works as `source.uploadId` for 7 days."""
        response = self.http.post(
            f"{self.base_url}/v2/storage/image", content=data, headers={**self.headers(), "content-type": mimetype}
        )
        return str(self._json(response)["images"][0]["id"])

    def generate_async(
        self,
        prompt: str,
        *,
        custom_model_id: str | None = None,
        model_version: str | None = None,
        mimetype: str | None = None,
        **fields: Any,
    ) -> dict[str, Any]:
        """Submit a generation job; `fields` are further body fields by their wire names (seeds, size…)."""
        headers = self.headers()
        version = model_version or ("image3_custom" if custom_model_id else None)
        if version:
            headers["x-model-version"] = version
        if mimetype:
            headers["x-accept-mimetype"] = mimetype
        body: dict[str, Any] = {"prompt": prompt, **{k: v for k, v in fields.items() if v is not None}}
        if custom_model_id:
            body["customModelId"] = custom_model_id
        return self._json(self.http.post(f"{self.base_url}/v3/images/generate-async", json=body, headers=headers))

    def status(self, job_id: str) -> dict[str, Any]:
        return self._json(self.http.get(f"{self.base_url}/v3/status/{job_id}", headers=self.headers()))

    def cancel(self, job_id: str) -> dict[str, Any]:
        return self._json(self.http.put(f"{self.base_url}/v3/cancel/{job_id}", headers=self.headers()))

    def wait(
        self,
        job_id: str,
        *,
        poll_s: float = 0.5,
        timeout_s: float = 600.0,
        on_status: Callable[[dict[str, Any]], None] | None = None,
    ) -> dict[str, Any]:
        """Poll until the job is final; returns the succeeded status or raises JobFailed / JobWaitTimedOut."""
        deadline = time.monotonic() + timeout_s
        while True:
            status = self.status(job_id)
            if on_status is not None:
                on_status(status)
            if status["status"] in FINAL_STATUSES:
                if status["status"] != "succeeded":
                    raise JobFailed(status)
                return status
            if time.monotonic() >= deadline:
                raise JobWaitTimedOut(f"job {job_id} is still {status['status']} after {timeout_s} s")
            time.sleep(poll_s)

    def download(self, url: str) -> bytes:
        """An output image from its signed URL (no token needed)."""
        response = self.http.get(url)
        if response.status_code != 200:
            raise ApiCallFailed(response.status_code, _body(response))
        return response.content

    def generate(
        self,
        prompt: str,
        out_dir: Path,
        *,
        on_status: Callable[[dict[str, Any]], None] | None = None,
        timeout_s: float = 600.0,
        **options: Any,
    ) -> list[Path]:
        """Submit, wait and download every output into `out_dir`; returns the files written."""
        accepted = self.generate_async(prompt, **options)
        return self.save_outputs(self.wait(accepted["jobId"], on_status=on_status, timeout_s=timeout_s), out_dir)

    def save_outputs(self, status: dict[str, Any], out_dir: Path) -> list[Path]:
        """Download every output of a succeeded job into `out_dir` as <job uuid>-<seed>.<ext>."""
        out_dir.mkdir(parents=True, exist_ok=True)
        stem = str(status["jobId"]).rsplit(":", 1)[-1]
        paths = []
        for output in status["result"]["outputs"]:
            response = self.http.get(output["image"]["url"])
            if response.status_code != 200:
                raise ApiCallFailed(response.status_code, _body(response))
            mimetype = response.headers.get("content-type", "image/jpeg").split(";")[0]
            path = out_dir / f"{stem}-{output['seed']}.{EXTENSIONS.get(mimetype, 'bin')}"
            path.write_bytes(response.content)
            paths.append(path)
        return paths

    def close(self) -> None:
        if self._owns_http:
            self.http.close()

    def __enter__(self) -> EmberClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _json(self, response: httpx.Response) -> dict[str, Any]:
        body = _body(response)
        if response.status_code >= 400:
            raise ApiCallFailed(response.status_code, body)
        return body


def _body(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {"message": response.text[:200]}
    return body if isinstance(body, dict) else {"message": str(body)}
