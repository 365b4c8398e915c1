"""Request dependencies: the runtime, a database session, and the authenticated caller (gateway checks)."""

from __future__ import annotations

import hmac
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy import select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError
from starlette.concurrency import run_in_threadpool

from ember.api.errors import ApiError, concurrent_change, database_unavailable
from ember.api.rate_limit import RateLimited
from ember.api.runtime import Runtime
from ember.identity import (
    REQUIRED_SCOPES,
    InvalidToken,
    InvalidUiSession,
    decode_token,
    decode_ui_session,
    ui_session_user,
)
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

    The dependency has function scope (see SessionDep), so the commit runs before the response is sent: a 2xx
    means saved, and a commit that fails answers 503 instead. Creating a session does no I/O (it connects on
    first use, in the worker thread of the sync route or dependency that uses it); ending it does, so that
    runs in a worker thread too."""
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
    except OperationalError as error:
        session.rollback()
        raise database_unavailable() from error
    except StaleDataError as error:  # a row this request updates was deleted by another request meanwhile
        session.rollback()
        raise concurrent_change() from error
    finally:
        session.close()


def _rollback_and_close(session: Session) -> None:
    try:
        session.rollback()
    finally:
        session.close()


SessionDep = Annotated[Session, Depends(get_session, scope="function")]


@dataclass(frozen=True)
class Principal:
    """The API client behind a request, as established by its token and API key; or, for the web UI, a signed-in
    user (`user_email` set, no client)."""

    client_pk: uuid.UUID | None
    client_id: str
    org_id: uuid.UUID
    technical_account_id: str
    technical_account_email: str
    scopes: frozenset[str]
    user_email: str | None = None

    @property
    def viewer(self) -> Viewer:
        if self.user_email is not None:
            return Viewer(self.org_id, (self.user_email,))
        return Viewer(self.org_id, (self.technical_account_id, self.technical_account_email))


SESSION_COOKIE = "ember_session"
CSRF_HEADER = "x-ember-csrf"


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


def _charge_rate_limit(runtime: Runtime, org_id: uuid.UUID) -> None:
    try:
        runtime.rate_limiter.hit(org_id)
    except RateLimited as limited:
        raise ApiError(
            429,
            "rate_limited",
            f"Too many requests for this organization ({limited}); retry after {limited.retry_after} s.",
            headers={"retry-after": str(limited.retry_after)},
        ) from None


def _same_origin(request: Request) -> bool:
    origin = request.headers.get("origin")
    return origin is None or origin.rstrip("/") == str(request.base_url).rstrip("/")


def _session_principal(request: Request, runtime: Runtime, session: Session, cookie: str) -> Principal:
    """A signed-in web UI user. Cookies ride along on any request to this host, so the page must also prove
    it read the session's CSRF token (a header other origins cannot set without a CORS preflight)."""
    try:
        claims = decode_ui_session(cookie, runtime.token_key)
        user = ui_session_user(session, claims)
    except InvalidUiSession:
        raise ApiError(401, "401013", "The sign-in session is not valid or has expired; sign in again.") from None
    sent = request.headers.get(CSRF_HEADER, "")
    valid = sent.isascii() and hmac.compare_digest(sent, claims.csrf_token)  # compare_digest raises on non-ASCII
    if not _same_origin(request) or not sent or not valid:
        raise ApiError(403, "access_error", f"A signed-in request needs the {CSRF_HEADER} header of its session.")
    _charge_rate_limit(runtime, user.org_id)
    return Principal(
        client_pk=None,
        client_id="",
        org_id=user.org_id,
        technical_account_id="",
        technical_account_email="",
        scopes=REQUIRED_SCOPES,
        user_email=user.email,
    )


def current_principal(request: Request, runtime: RuntimeDep, session: SessionDep) -> Principal:
    """The gateway's checks, in order: token present, token valid, API key present and matching, scopes,
    then the organization's rate limit. A request with no Authorization header but a web UI session cookie
    is checked as that signed-in user instead."""
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie and "authorization" not in request.headers:
        return _session_principal(request, runtime, session, cookie)
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
    _charge_rate_limit(runtime, client.org_id)
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
