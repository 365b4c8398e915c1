"""Tenants and credentials: organizations, API clients, users, secret hashing and signed access tokens."""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from ember.config import Settings
from ember.data_dir import write_private_bytes
from ember.store.tables import ApiClient, Organization, Project, User

# OWASP's recommended argon2id floor (19 MiB, 2 passes, 1 lane): tens of milliseconds per check on one core.
PASSWORD_HASHER = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)
# Verified against when a client id is unknown, so a miss costs as much as a wrong secret.
_DECOY_HASH = PASSWORD_HASHER.hash(secrets.token_urlsafe(16))

TOKEN_ALGORITHM = "HS256"
TOKEN_SECRET_FILE = "token-secret"
REQUIRED_SCOPES = frozenset({"firefly_api", "ff_apis"})
KNOWN_SCOPES = REQUIRED_SCOPES | {
    "openid",
    "AdobeID",
    "session",
    "additional_info",
    "additional_info.projectedProductContext",
    "additional_info.roles",
    "read_organizations",
    "email",
    "profile",
}
TECHNICAL_ACCOUNT_DOMAIN = "techacct.ember.local"


class IdentityError(Exception):
    """Base of the identity errors below."""


class UnknownClient(IdentityError):
    """No active client has this id."""


class UserExists(IdentityError):
    """A user with this email exists already."""


class InvalidToken(IdentityError):
    """The access token is malformed, forged, expired or no longer valid for its client."""


class InvalidCredentials(IdentityError):
    """No active user has this email and password."""


class InvalidUiSession(IdentityError):
    """The web UI session cookie is malformed, forged, expired, or its user is gone, disabled or re-keyed."""


@dataclass(frozen=True)
class ClientCredentials:
    """What a client is told once, at creation or rotation: the secret is not stored anywhere readable."""

    client_id: str
    client_secret: str
    technical_account_id: str
    technical_account_email: str
    org: str

    def as_dict(self) -> dict[str, str]:
        return {
            "client_id": self.client_id,
            "client_secret": self.client_secret,
            "technical_account_id": self.technical_account_id,
            "technical_account_email": self.technical_account_email,
            "org": self.org,
        }


@dataclass(frozen=True)
class TokenClaims:
    client_id: str
    org_id: uuid.UUID
    generation: int
    scopes: frozenset[str]
    expires_at: int


def hash_secret(secret: str) -> str:
    return PASSWORD_HASHER.hash(secret)


def verify_secret(secret_hash: str, secret: str) -> bool:
    try:
        return PASSWORD_HASHER.verify(secret_hash, secret)
    except (VerificationError, InvalidHashError):
        return False


def ensure_organization(session: Session, name: str) -> Organization:
    org = session.scalar(select(Organization).where(Organization.name == name))
    if org is None:
        org = Organization(name=name)
        session.add(org)
        session.flush()
    return org


def ensure_project(session: Session, org: Organization, name: str) -> Project:
    project = session.scalar(select(Project).where(Project.org_id == org.id, Project.name == name))
    if project is None:
        project = Project(org_id=org.id, name=name)
        session.add(project)
        session.flush()
    return project


def create_client(session: Session, org_name: str, project_name: str | None = None) -> ClientCredentials:
    """A new API client in `org_name` (created with its project when missing); returns its one-time secret."""
    org = ensure_organization(session, org_name)
    project = ensure_project(session, org, project_name) if project_name else None
    secret = new_client_secret()
    account = uuid.uuid4()
    client = ApiClient(
        client_id=secrets.token_hex(16),
        secret_hash=hash_secret(secret),
        org_id=org.id,
        project_id=project.id if project else None,
        technical_account_id=f"{account.hex[:24].upper()}@{TECHNICAL_ACCOUNT_DOMAIN}",
        technical_account_email=f"{account}@{TECHNICAL_ACCOUNT_DOMAIN}",
    )
    session.add(client)
    session.flush()
    return _credentials(client, org, secret)


def new_client_secret() -> str:
    return "p8e-" + secrets.token_urlsafe(32)


def rotate_client(session: Session, client_id: str) -> ClientCredentials:
    """A new secret for an active client; its earlier secret and every token issued so far stop working."""
    client = _active_client(session, client_id)
    secret = new_client_secret()
    client.secret_hash = hash_secret(secret)
    client.token_generation += 1
    client.rotated_at = datetime.now(UTC)
    session.flush()
    return _credentials(client, client.organization, secret)


def revoke_client(session: Session, client_id: str) -> None:
    """Disable a client for good; its tokens are refused from the next request on."""
    client = _active_client(session, client_id)
    client.revoked_at = datetime.now(UTC)
    client.token_generation += 1
    session.flush()


def list_clients(session: Session, org_name: str | None = None) -> list[ApiClient]:
    query = select(ApiClient).join(Organization).order_by(Organization.name, ApiClient.created_at)
    if org_name is not None:
        query = query.where(Organization.name == org_name)
    return list(session.scalars(query))


def authenticate_client(session: Session, client_id: str, client_secret: str) -> ApiClient:
    """The active client with this id and secret, or UnknownClient (timing alike for both failures)."""
    client = session.scalar(select(ApiClient).where(ApiClient.client_id == client_id))
    if client is None or client.revoked_at is not None:
        verify_secret(_DECOY_HASH, client_secret)
        raise UnknownClient(client_id)
    if not verify_secret(client.secret_hash, client_secret):
        raise UnknownClient(client_id)
    return client


def create_user(session: Session, org_name: str, email: str, password: str) -> User:
    org = ensure_organization(session, org_name)
    normalized = email.strip().lower()
    if session.scalar(select(User).where(User.email == normalized)) is not None:
        raise UserExists(normalized)
    user = User(org_id=org.id, email=normalized, password_hash=hash_secret(password))
    session.add(user)
    session.flush()
    return user


def set_user_password(session: Session, email: str, password: str) -> User:
    """A new password for an existing user; its web UI sessions signed before end with the change."""
    user = session.scalar(select(User).where(User.email == email.strip().lower()))
    if user is None:
        raise InvalidCredentials(email)
    user.password_hash = hash_secret(password)
    session.flush()
    return user


def authenticate_user(session: Session, email: str, password: str) -> User:
    """The active user with this email and password, or InvalidCredentials (timing alike for every failure)."""
    user = session.scalar(select(User).where(User.email == email.strip().lower()))
    if user is None or user.disabled_at is not None:
        verify_secret(_DECOY_HASH, password)
        raise InvalidCredentials(email)
    if not verify_secret(user.password_hash, password):
        raise InvalidCredentials(email)
    return user


# --- web UI sessions ---------------------------------------------------------------------------------------

UI_SESSION_TYPE = "ui_session"


@dataclass(frozen=True)
class UiSession:
    """A signed-in browser: the cookie value, and the CSRF token the page must echo in a header."""

    cookie: str
    csrf_token: str
    expires_at: int


@dataclass(frozen=True)
class UiSessionClaims:
    user_id: uuid.UUID
    csrf_token: str
    credential: str
    expires_at: int


def ui_session_key(token_key: bytes) -> bytes:
    """A key of its own for session cookies, so a cookie can never pass as an access token or the reverse."""
    return hmac.new(token_key, b"ember ui session", hashlib.sha256).digest()


def _credential_fingerprint(user: User) -> str:
    # Changing the password changes the hash, which ends every session signed before it.
    return hashlib.sha256(user.password_hash.encode()).hexdigest()[:16]


def issue_ui_session(user: User, token_key: bytes, ttl_s: int, now: float | None = None) -> UiSession:
    issued_at = int(time.time() if now is None else now)
    csrf_token = secrets.token_urlsafe(24)
    claims: dict[str, Any] = {
        "type": UI_SESSION_TYPE,
        "sub": str(user.id),
        "csrf": csrf_token,
        "cred": _credential_fingerprint(user),
        "iat": issued_at,
        "exp": issued_at + ttl_s,
    }
    cookie = jwt.encode(claims, ui_session_key(token_key), algorithm=TOKEN_ALGORITHM)
    return UiSession(cookie=cookie, csrf_token=csrf_token, expires_at=issued_at + ttl_s)


def decode_ui_session(cookie: str, token_key: bytes) -> UiSessionClaims:
    """The claims of a well-signed, unexpired session cookie; InvalidUiSession otherwise."""
    try:
        claims = jwt.decode(
            cookie,
            ui_session_key(token_key),
            algorithms=[TOKEN_ALGORITHM],
            options={"require": ["exp", "iat", "sub", "csrf", "cred"]},
        )
        if claims.get("type") != UI_SESSION_TYPE:
            raise InvalidUiSession("not a session cookie")
        return UiSessionClaims(
            user_id=uuid.UUID(str(claims["sub"])),
            csrf_token=str(claims["csrf"]),
            credential=str(claims["cred"]),
            expires_at=int(claims["exp"]),
        )
    except (jwt.PyJWTError, ValueError, TypeError) as error:
        raise InvalidUiSession(str(error)) from error


def ui_session_user(session: Session, claims: UiSessionClaims) -> User:
    """The user a session belongs to, while that user is active and has not changed its password since."""
    user = session.get(User, claims.user_id)
    if user is None or user.disabled_at is not None:
        raise InvalidUiSession("the user is gone or disabled")
    if not hmac.compare_digest(_credential_fingerprint(user), claims.credential):
        raise InvalidUiSession("the password changed after sign-in")
    return user


def has_organizations(session: Session) -> bool:
    return session.scalar(select(Organization.id).limit(1)) is not None


def _active_client(session: Session, client_id: str) -> ApiClient:
    client = session.scalar(select(ApiClient).where(ApiClient.client_id == client_id))
    if client is None or client.revoked_at is not None:
        raise UnknownClient(client_id)
    return client


def _credentials(client: ApiClient, org: Organization, secret: str) -> ClientCredentials:
    return ClientCredentials(
        client_id=client.client_id,
        client_secret=secret,
        technical_account_id=client.technical_account_id,
        technical_account_email=client.technical_account_email,
        org=org.name,
    )


def token_secret(settings: Settings) -> bytes:
    """The configured signing key, or one generated once into the data directory (mode 0600)."""
    if settings.token_secret is not None:
        return settings.token_secret.get_secret_value().encode()
    path = settings.data_dir / TOKEN_SECRET_FILE
    if not path.exists():
        # Servers sharing a data directory may start together: the first secret written wins, never replaced.
        staging = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        write_private_file(staging, secrets.token_urlsafe(48))
        try:
            os.link(staging, path)
        except FileExistsError:
            pass
        finally:
            staging.unlink()
    return path.read_text().strip().encode()


def write_private_file(path: Path, text: str) -> None:
    """Create `path` readable by its owner only, without a window where it is world-readable."""
    write_private_bytes(path, text.encode())


def issue_token(
    client: ApiClient, scopes: frozenset[str], key: bytes, expires_in: int, now: float | None = None
) -> str:
    issued_at = int(time.time() if now is None else now)
    claims: dict[str, Any] = {
        "type": "access_token",
        "sub": client.technical_account_id,
        "client_id": client.client_id,
        "org": str(client.org_id),
        "gen": client.token_generation,
        "scope": ",".join(sorted(scopes)),
        "iat": issued_at,
        "exp": issued_at + expires_in,
        "jti": uuid.uuid4().hex,
    }
    return jwt.encode(claims, key, algorithm=TOKEN_ALGORITHM)


def decode_token(token: str, key: bytes) -> TokenClaims:
    """The claims of a well-signed, unexpired token; InvalidToken otherwise (the database is not consulted)."""
    try:
        claims = jwt.decode(
            token, key, algorithms=[TOKEN_ALGORITHM], options={"require": ["exp", "iat", "client_id", "org"]}
        )
        return TokenClaims(
            client_id=str(claims["client_id"]),
            org_id=uuid.UUID(str(claims["org"])),
            generation=int(claims.get("gen", 0)),
            scopes=frozenset(str(claims.get("scope", "")).split(",")) - {""},
            expires_at=int(claims["exp"]),
        )
    except (jwt.PyJWTError, ValueError, TypeError) as error:
        raise InvalidToken(str(error)) from error


def parse_scopes(scope: str) -> frozenset[str]:
    """Scopes as sent by IMS clients: comma-separated (spaces tolerated)."""
    return frozenset(part.strip() for part in scope.replace(" ", ",").split(",")) - {""}
