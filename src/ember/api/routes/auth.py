"""`POST /ims/token/v3`: IMS-compatible client-credentials tokens."""

from __future__ import annotations

import base64

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from ember.api.deps import RuntimeDep
from ember.api.errors import ApiError
from ember.api.runtime import Runtime
from ember.api.schemas import ErrorBody, TokenError, TokenResponse
from ember.identity import KNOWN_SCOPES, REQUIRED_SCOPES, UnknownClient, authenticate_client, issue_token, parse_scopes

router = APIRouter(tags=["auth"])
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


class TokenRequestError(Exception):
    """An OAuth error answered as `{"error", "error_description"}`."""

    def __init__(self, status_code: int, error: str, description: str) -> None:
        super().__init__(description)
        self.status_code = status_code
        self.error = error
        self.description = description

    def response(self) -> JSONResponse:
        body = TokenError.model_validate({"error": self.error, "error_description": self.description})
        headers = {"cache-control": "no-store"}
        if self.status_code == 401:
            headers["www-authenticate"] = 'Basic realm="ims"'
        return JSONResponse(body.model_dump(), status_code=self.status_code, headers=headers)


def _basic_credentials(request: Request) -> tuple[str, str] | None:
    scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        client_id, separator, secret = base64.b64decode(encoded.strip(), validate=True).decode().partition(":")
    except (ValueError, UnicodeDecodeError):  # binascii.Error, or a header that is not even ASCII
        raise TokenRequestError(400, "invalid_request", "Malformed HTTP Basic credentials.") from None
    if not separator:
        raise TokenRequestError(400, "invalid_request", "Malformed HTTP Basic credentials.")
    return client_id, secret


def _form_value(form: dict[str, str], name: str) -> str:
    return form.get(name, "").strip()


def _exchange(runtime: Runtime, client_id: str, client_secret: str, scopes: frozenset[str]) -> TokenResponse:
    with runtime.sessions() as session:
        try:
            client = authenticate_client(session, client_id, client_secret)
        except UnknownClient:
            raise TokenRequestError(401, "invalid_client", "Client authentication failed.") from None
        expires_in = runtime.settings.token_expires_in
        token = issue_token(client, scopes, runtime.token_key, expires_in)
    return TokenResponse(access_token=token, expires_in=expires_in)


@router.post(
    "/ims/token/v3",
    response_model=TokenResponse,
    responses={
        400: {"model": TokenError},
        401: {"model": TokenError},
        415: {"model": ErrorBody, "description": "The body is not a form."},
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/x-www-form-urlencoded": {
                    "schema": {
                        "type": "object",
                        "properties": {
                            "grant_type": {"type": "string", "enum": ["client_credentials"]},
                            "client_id": {"type": "string"},
                            "client_secret": {"type": "string"},
                            "scope": {"type": "string"},
                        },
                        "required": ["grant_type"],
                    }
                }
            },
        }
    },
    summary="Exchange client credentials for an access token",
)
async def create_token(request: Request, runtime: RuntimeDep) -> JSONResponse:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type not in FORM_TYPES:
        raise ApiError(415, "invalid_content_type", "The request body must be application/x-www-form-urlencoded.")
    try:
        async with request.form() as raw_form:
            form = {key: value for key, value in raw_form.items() if isinstance(value, str)}
        grant_type = _form_value(form, "grant_type")
        if not grant_type:
            raise TokenRequestError(400, "invalid_request", "Missing grant_type.")
        if grant_type != "client_credentials":
            raise TokenRequestError(400, "unsupported_grant_type", f"Unsupported grant_type {grant_type!r}.")
        client_id, client_secret = _form_value(form, "client_id"), _form_value(form, "client_secret")
        basic = _basic_credentials(request)
        if basic is not None:
            if (client_id and client_id != basic[0]) or (client_secret and client_secret != basic[1]):
                raise TokenRequestError(400, "invalid_request", "Client credentials given twice, differently.")
            client_id, client_secret = basic
        if not client_id:
            raise TokenRequestError(400, "invalid_request", "Missing client_id.")
        if not client_secret:
            raise TokenRequestError(400, "invalid_request", "Missing client_secret.")
        scopes = parse_scopes(_form_value(form, "scope"))
        unknown = sorted(scopes - KNOWN_SCOPES)
        if unknown:
            raise TokenRequestError(400, "invalid_scope", f"Unknown scope(s): {', '.join(unknown)}.")
        missing = sorted(REQUIRED_SCOPES - scopes)
        if missing:
            raise TokenRequestError(400, "invalid_scope", f"The scope must include {', '.join(missing)}.")
        # Argon2 verification takes tens of milliseconds of CPU: keep it off the event loop.
        token = await run_in_threadpool(_exchange, runtime, client_id, client_secret, scopes)
    except TokenRequestError as error:
        return error.response()
    return JSONResponse(token.model_dump(), headers={"cache-control": "no-store", "pragma": "no-cache"})
