"""Webhook signing secrets (`whsec_…`, Standard Webhooks). Ember must sign with them, so it cannot keep only a
hash: each is sealed with Fernet (AES-128-CBC and HMAC-SHA256) under a key derived from the server's token
secret, so a copy of the database alone does not reveal them."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import uuid

from cryptography.fernet import Fernet
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ember.store.event_tables import WebhookSigningKey

PREFIX = "whsec_"
SECRET_BYTES = 32


def new_secret() -> str:
    return PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def _fernet(server_key: bytes) -> Fernet:
    derived = hmac.new(server_key, b"ember webhook signing secrets", hashlib.sha256).digest()
    return Fernet(base64.urlsafe_b64encode(derived))


def seal(server_key: bytes, secret: str) -> bytes:
    return _fernet(server_key).encrypt(secret.encode())


def unseal(server_key: bytes, sealed: bytes) -> str:
    return _fernet(server_key).decrypt(sealed).decode()


def organization_secret(session: Session, org_id: uuid.UUID, server_key: bytes) -> str:
    """The secret that signs the webhooks an organization's requests name; made on first use."""
    key = session.get(WebhookSigningKey, org_id)
    if key is None:
        secret = new_secret()
        try:
            with session.begin_nested():  # two first uses at once: one row wins, the other reads it
                session.add(WebhookSigningKey(org_id=org_id, secret=seal(server_key, secret)))
            return secret
        except IntegrityError:
            key = session.get(WebhookSigningKey, org_id, populate_existing=True)
            assert key is not None
    return unseal(server_key, key.secret)
