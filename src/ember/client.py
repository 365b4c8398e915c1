"""The Python SDK: an Ember (or Firefly Services) client for tokens, uploads, generation jobs and outputs, and
(`EmberClient.models`, a `ModelsApi`) the custom-model lifecycle."""

from __future__ import annotations

import mimetypes
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import httpx

from ember.job_stream import StreamEvent, fold, parse_events
from ember.media import EXTENSIONS

DEFAULT_SCOPE = "openid,AdobeID,firefly_api,ff_apis"
FINAL_STATUSES = frozenset({"succeeded", "failed", "cancelled", "timeout"})
TOKEN_MARGIN_S = 60
UPLOAD_BATCH = 10  # training images per multipart request: keeps each request far below the body limit
STREAM_TRIES = 3  # connections to a job's event stream before following it by polling


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


class StreamUnavailable(EmberError):
    """The job's event stream cannot be read here (an older server, or a proxy that drops or buffers it)."""


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
        stream: bool = True,
    ) -> dict[str, Any]:
        """Follow the job until it is final; returns the succeeded status or raises JobFailed / JobWaitTimedOut."""
        status: dict[str, Any] = {}
        for status in self.follow(job_id, poll_s=poll_s, timeout_s=timeout_s, stream=stream):
            if on_status is not None:
                on_status(status)
        if status.get("status") != "succeeded":
            raise JobFailed(status)
        return status

    def follow(
        self, job_id: str, *, poll_s: float = 0.5, timeout_s: float = 600.0, stream: bool = True
    ) -> Iterator[dict[str, Any]]:
        """The job's status body each time it changes, until it is final: from the event stream (reconnecting
        with Last-Event-ID when the connection drops), else by polling `GET /v3/status/{jobId}`."""
        deadline = time.monotonic() + timeout_s
        status: dict[str, Any] = {"jobId": job_id, "status": "pending", "progress": 0}
        last_id: str | None = None
        for _ in range(STREAM_TRIES if stream else 0):
            try:
                for event in self.events(job_id, last_event_id=last_id):
                    last_id = event.id or last_id
                    status = fold(status, event)
                    yield status
                    if event.event == "status":
                        return
                    if time.monotonic() >= deadline:
                        raise JobWaitTimedOut(f"job {job_id} is still {status['status']} after {timeout_s} s")
            except (StreamUnavailable, httpx.TransportError):
                continue
        while True:
            status = self.status(job_id)
            yield status
            if status["status"] in FINAL_STATUSES:
                return
            if time.monotonic() >= deadline:
                raise JobWaitTimedOut(f"job {job_id} is still {status['status']} after {timeout_s} s")
            time.sleep(poll_s)

    def events(self, job_id: str, *, last_event_id: str | None = None) -> Iterator[StreamEvent]:
        """The job's event stream as it arrives; StreamUnavailable when the answer is no event stream."""
        headers = {**self.headers(), "accept": "text/event-stream"}
        if last_event_id:
            headers["last-event-id"] = last_event_id
        with self.http.stream("GET", f"{self.base_url}/v3/status/{job_id}/events", headers=headers) as response:
            if response.status_code >= 400:
                response.read()
                body = _body(response)
                if response.status_code == 404 and body.get("error_code") == "unknown_job_id":
                    raise ApiCallFailed(404, body)
                raise StreamUnavailable(f"the event stream answered HTTP {response.status_code}")
            if not response.headers.get("content-type", "").startswith("text/event-stream"):
                raise StreamUnavailable("the event stream answered something else than text/event-stream")
            yield from parse_events(response.iter_lines())

    def add_webhook(self, url: str, events: list[str] | None = None) -> dict[str, Any]:
        """Register a webhook endpoint for every job of the organization; the answer holds its secret."""
        body: dict[str, Any] = {"url": url, **({"events": events} if events else {})}
        return self._json(self.http.post(f"{self.base_url}/v3/webhooks", json=body, headers=self.headers()))

    def webhooks(self) -> list[dict[str, Any]]:
        return list(self._json(self.http.get(f"{self.base_url}/v3/webhooks", headers=self.headers()))["webhooks"])

    def remove_webhook(self, webhook_id: str) -> None:
        response = self.http.delete(f"{self.base_url}/v3/webhooks/{webhook_id}", headers=self.headers())
        if response.status_code >= 400:
            raise ApiCallFailed(response.status_code, _body(response))

    def webhook_secret(self) -> str:
        """The secret that signs the webhooks named in this organization's requests."""
        return str(self._json(self.http.get(f"{self.base_url}/v3/webhooks/secret", headers=self.headers()))["secret"])

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

    @property
    def models(self) -> ModelsApi:
        """The custom-model lifecycle endpoints."""
        return ModelsApi(self)

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        """Any endpoint under the base URL with this client's token: its JSON body, its bytes, or None (204);
        ApiCallFailed on an error answer."""
        response = self.http.request(method, f"{self.base_url}{path}", headers=self.headers(), **kwargs)
        if response.status_code >= 400:
            try:
                body = response.json()
            except ValueError:
                body = {"message": response.text}
            raise ApiCallFailed(response.status_code, body)
        if response.status_code == 204 or not response.content:
            return None
        if response.headers.get("content-type", "").startswith("application/json"):
            return response.json()
        return response.content

    def _json(self, response: httpx.Response) -> dict[str, Any]:
        body = _body(response)
        if response.status_code >= 400:
            raise ApiCallFailed(response.status_code, body)
        return body


class ModelsApi:
    """The custom-model lifecycle endpoints, over an SDK client's token and headers."""

    def __init__(self, client: EmberClient) -> None:
        self.client = client

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        return self.client.call(method, path, **kwargs)

    @staticmethod
    def _model(asset_id: str) -> str:
        return f"/v3/custom-models/{asset_id}"

    def create_project(self, name: str) -> dict[str, Any]:
        existing = [p for p in self._call("GET", "/v3/projects")["projects"] if p["name"] == name]
        return existing[0] if existing else dict(self._call("POST", "/v3/projects", json={"name": name}))

    def create(self, **fields: Any) -> dict[str, Any]:
        body = {key: value for key, value in fields.items() if value is not None}
        return dict(self._call("POST", "/v3/custom-models", json=body))

    def get(self, asset_id: str) -> dict[str, Any]:
        return dict(self._call("GET", self._model(asset_id)))

    def update(self, asset_id: str, **fields: Any) -> dict[str, Any]:
        body = {key: value for key, value in fields.items() if value is not None}
        return dict(self._call("PATCH", self._model(asset_id), json=body))

    def upload(self, asset_id: str, files: Iterable[tuple[str, bytes]]) -> list[dict[str, Any]]:
        """Every file's outcome (stored with its caption, or refused), in batches of UPLOAD_BATCH."""
        pending = list(files)
        outcomes: list[dict[str, Any]] = []
        for start in range(0, len(pending), UPLOAD_BATCH):
            parts = [
                ("files", (name, data, mimetypes.guess_type(name)[0] or "application/octet-stream"))
                for name, data in pending[start : start + UPLOAD_BATCH]
            ]
            outcomes += self._call("POST", f"{self._model(asset_id)}/images", files=parts)["images"]
        return outcomes

    def images(self, asset_id: str) -> list[dict[str, Any]]:
        return list(self._call("GET", f"{self._model(asset_id)}/images")["images"])

    def set_caption(self, asset_id: str, image_id: str, caption: str) -> dict[str, Any]:
        return dict(self._call("PATCH", f"{self._model(asset_id)}/images/{image_id}", json={"caption": caption}))

    def delete_image(self, asset_id: str, image_id: str) -> None:
        self._call("DELETE", f"{self._model(asset_id)}/images/{image_id}")

    def train(self, asset_id: str, **overrides: Any) -> dict[str, Any]:
        body = {key: value for key, value in overrides.items() if value is not None}
        return dict(self._call("POST", f"{self._model(asset_id)}/train-async", json=body))

    def publish(self, asset_id: str, published: bool = True, force: bool = False) -> dict[str, Any]:
        """Publish (or unpublish); `force` publishes a model whose check after training failed."""
        params = {"force": "true"} if force and published else None
        return dict(
            self._call("POST", f"{self._model(asset_id)}/{'publish' if published else 'unpublish'}", params=params)
        )

    def share(self, asset_id: str, principal: str, role: str) -> dict[str, Any]:
        return dict(self._call("POST", f"{self._model(asset_id)}/shares", json={"principal": principal, "role": role}))

    def weights(self, asset_id: str, kohya: bool) -> bytes:
        query = {"format": "kohya" if kohya else "diffusers"}
        data = self._call("GET", f"{self._model(asset_id)}/weights", params=query)
        assert isinstance(data, bytes)
        return data


def _body(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {"message": response.text[:200]}
    return body if isinstance(body, dict) else {"message": str(body)}
