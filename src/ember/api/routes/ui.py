"""The web UI: its page and static files, sign-in and sign-out (`/ui/session`), and the base models it labels."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool

from ember.api.deps import SESSION_COOKIE, PrincipalDep, RuntimeDep, SessionDep
from ember.api.errors import ApiError
from ember.custom_models.lifecycle import base_model_choices
from ember.identity import (
    InvalidCredentials,
    InvalidUiSession,
    authenticate_user,
    decode_ui_session,
    issue_ui_session,
    ui_session_user,
)
from ember.store.tables import Organization, User

WEB_DIR = Path(__file__).resolve().parents[2] / "web"
STATIC_DIR = WEB_DIR / "static"
INDEX_FILE = WEB_DIR / "templates" / "index.html"
# Output URLs may point at an S3-compatible store on another host, so images may come from anywhere over HTTP(S).
PAGE_HEADERS = {
    "content-security-policy": (
        "default-src 'self'; img-src 'self' blob: data: http: https:; style-src 'self'; script-src 'self'; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    ),
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "cache-control": "no-store",
}

router = APIRouter(tags=["web UI"], include_in_schema=False)
static_files = StaticFiles(directory=STATIC_DIR)


@router.get("/")
async def root() -> RedirectResponse:
    return RedirectResponse("/ui/", status_code=307)


@router.get("/ui")
async def ui_without_slash() -> RedirectResponse:
    return RedirectResponse("/ui/", status_code=307)


@router.get("/ui/")
async def ui_page() -> FileResponse:
    """One page for every view: the script routes on the URL fragment, so a reload keeps the view."""
    return FileResponse(INDEX_FILE, media_type="text/html", headers=PAGE_HEADERS)


def _session_body(user: User, organization: str, csrf_token: str, expires_at: int) -> dict[str, Any]:
    return {"email": user.email, "organization": organization, "csrfToken": csrf_token, "expiresAt": expires_at}


def _sign_in(session: SessionDep, runtime: RuntimeDep, email: str, password: str) -> tuple[dict[str, Any], str]:
    try:
        user = authenticate_user(session, email, password)
    except InvalidCredentials:
        raise ApiError(401, "invalid_credentials", "The email or the password is not right.") from None
    ui_session = issue_ui_session(user, runtime.token_key, runtime.settings.ui_session_ttl_s)
    organization = session.get(Organization, user.org_id)
    body = _session_body(
        user, organization.name if organization else "", ui_session.csrf_token, ui_session.expires_at
    )
    return body, ui_session.cookie


@router.post("/ui/session")
async def sign_in(
    request: Request,
    session: SessionDep,
    runtime: RuntimeDep,
    email: Annotated[str, Form(max_length=320)],
    password: Annotated[str, Form(max_length=1024)],
) -> JSONResponse:
    """Check the email and password (argon2, as slow for an unknown email as for a wrong password), then set
    the session cookie. The answer carries the CSRF token the page sends back in `x-ember-csrf`."""
    body, cookie = await run_in_threadpool(_sign_in, session, runtime, email, password)
    response = JSONResponse(body)
    response.set_cookie(
        SESSION_COOKIE,
        cookie,
        max_age=runtime.settings.ui_session_ttl_s,
        path="/",
        httponly=True,
        samesite="strict",
        secure=runtime.settings.ui_cookie_secure or request.url.scheme == "https",
    )
    return response


def _current(session: SessionDep, runtime: RuntimeDep, cookie: str) -> dict[str, Any]:
    try:
        claims = decode_ui_session(cookie, runtime.token_key)
        user = ui_session_user(session, claims)
    except InvalidUiSession:
        raise ApiError(401, "not_signed_in", "Sign in to use the web UI.") from None
    organization = session.get(Organization, user.org_id)
    return _session_body(user, organization.name if organization else "", claims.csrf_token, claims.expires_at)


@router.get("/ui/session")
def current_session(request: Request, session: SessionDep, runtime: RuntimeDep) -> JSONResponse:
    """Who is signed in, with the session's CSRF token (readable by same-origin pages only: no CORS)."""
    cookie = request.cookies.get(SESSION_COOKIE)
    if not cookie:
        raise ApiError(401, "not_signed_in", "Sign in to use the web UI.")
    return JSONResponse(_current(session, runtime, cookie), headers={"cache-control": "no-store"})


@router.delete("/ui/session", status_code=204)
async def sign_out(request: Request) -> Response:
    response = Response(status_code=204)
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")
    return response


@router.get("/ui/base-models")
async def base_models(principal: PrincipalDep, runtime: RuntimeDep) -> JSONResponse:
    """The base models the UI offers and labels; test models make images that mean nothing, and a model whose
    weights are not on this machine is shown with the reason instead of being offered."""
    return JSONResponse({"baseModels": base_model_choices(Path(runtime.settings.model_dir or "."))})


