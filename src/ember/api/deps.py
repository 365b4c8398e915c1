"""Request dependencies: the runtime, a database session, and the authenticated caller (gateway checks)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from ember.api.errors import ApiError
from ember.api.rate_limit import RateLimited
from ember.api.runtime import Runtime
from ember.identity import REQUIRED_SCOPES, InvalidToken, decode_token
from ember.store.custom_models import Viewer
from ember.store.tables import ApiClient

# Dependencies that do no I/O are async so they run on the event loop; a sync dependency costs a
# worker-thread hop on every request.


async def get_runtime(request: Request) -> Runtime:
    runtime = request.app.state.runtime
    assert isinstance(runtime, Runtime)
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


async def get_session(runtime: RuntimeDep) -> AsyncIterator[Session]:
    """A session per request, committed when the route returns and rolled back when it raises.

    Creating a session does no I/O (it connects on first use, in the worker thread of the sync route or
    dependency that uses it); ending it does, so that runs in a worker thread too."""
    session = runtime.sessions()
    try:
        yield session
    except BaseException:
        await run_in_threadpool(_rollback_and_close, session)
        raise
    await run_in_threadpool(_commit_and_close, session)


def _commit_and_close(session: Session) -> None:
    try:
        session.commit()
    finally:
        session.close()


def _rollback_and_close(session: Session) -> None:
    try:
        session.rollback()
    finally:
        session.close()


SessionDep = Annotated[Session, Depends(get_session)]


@dataclass(frozen=True)
class Principal:
    """The API client behind a request, as established by its token and API key."""

    client_pk: uuid.UUID
    client_id: str
    org_id: uuid.UUID
    technical_account_id: str
    technical_account_email: str
    scopes: frozenset[str]

    @property
    def viewer(self) -> Viewer:
        return Viewer(self.org_id, (self.technical_account_id, self.technical_account_email))


def _missing_token() -> ApiError:
    return ApiError(403, "403010", "Oauth token is missing.")


def _invalid_token() -> ApiError:
    return ApiError(401, "401013", "Oauth token is not valid")


def _bearer_token(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if not header:
        raise _missing_token()
    if scheme.lower() != "bearer" or not token.strip():
        raise _invalid_token()
    return token.strip()


def current_principal(request: Request, runtime: RuntimeDep, session: SessionDep) -> Principal:
    """The gateway's checks, in order: token present, token valid, API key present and matching, scopes,
    then the organization's rate limit."""
    token = _bearer_token(request)
    try:
        claims = decode_token(token, runtime.token_key)
    except InvalidToken:
        raise _invalid_token() from None
    client = session.scalar(select(ApiClient).where(ApiClient.client_id == claims.client_id))
    if (
        client is None
        or client.revoked_at is not None
        or client.token_generation != claims.generation
        or client.org_id != claims.org_id
    ):
        raise _invalid_token()
    api_key = request.headers.get("x-api-key")
    if not api_key:
        raise ApiError(403, "403000", "Api Key is required")
    if api_key != client.client_id:
        raise ApiError(403, "403003", "Api Key is invalid")
    if not REQUIRED_SCOPES <= claims.scopes:
        raise ApiError(
            403,
            "access_error",
            "The access token does not carry the scopes this API needs.",
            headers={"x-access-error": "invalid_ims_scope"},
        )
    try:
        runtime.rate_limiter.hit(client.org_id)
    except RateLimited as limited:
        raise ApiError(
            429,
            "rate_limited",
            f"Too many requests for this organization ({limited}); retry after {limited.retry_after} s.",
            headers={"retry-after": str(limited.retry_after)},
        ) from None
    return Principal(
        client_pk=client.id,
        client_id=client.client_id,
        org_id=client.org_id,
        technical_account_id=client.technical_account_id,
        technical_account_email=client.technical_account_email,
        scopes=claims.scopes,
    )


PrincipalDep = Annotated[Principal, Depends(current_principal)]


async def public_base_url(request: Request, runtime: RuntimeDep) -> str:
    """The configured public base URL, else the one the request came in on."""
    if runtime.settings.public_base_url:
        return runtime.settings.public_base_url
    return str(request.base_url).rstrip("/")


BaseUrlDep = Annotated[str, Depends(public_base_url)]


async def require_json(request: Request) -> None:
    """For routes with a JSON body: anything but application/json (or +json) is a 415."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if request.headers.get("content-length") in (None, "0") and not content_type:
        return  # no body at all: the route's own validation reports empty_input_body
    if content_type != "application/json" and not content_type.endswith("+json"):
        raise ApiError(415, "invalid_content_type", "The request body must be application/json.")
