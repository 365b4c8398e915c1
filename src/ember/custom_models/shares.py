"""Sharing a custom model with technical accounts and users of other organizations."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ember.custom_models.lifecycle import InvalidInput, ShareNotFound, problem, touch
from ember.store.tables import (
    ApiClient,
    CustomModel,
    PrincipalKind,
    Share,
    ShareRole,
    User,
    utcnow,
)

if TYPE_CHECKING:
    pass



# --- shares -------------------------------------------------------------------------------------------------


def list_shares(session: Session, model: CustomModel) -> list[Share]:
    return list(session.scalars(select(Share).where(Share.model_id == model.id).order_by(Share.created_at, Share.id)))


def _resolve_principal(session: Session, name: str) -> tuple[PrincipalKind, str, uuid.UUID] | None:
    """A technical account id, technical account email or user email, as stored, with its organization."""
    text = name.strip()
    client = session.scalar(
        select(ApiClient).where(ApiClient.technical_account_id == text, ApiClient.revoked_at.is_(None))
    )
    if client is not None:
        return PrincipalKind.technical_account_id, client.technical_account_id, client.org_id
    client = session.scalar(
        select(ApiClient).where(
            func.lower(ApiClient.technical_account_email) == text.lower(), ApiClient.revoked_at.is_(None)
        )
    )
    if client is not None:
        return PrincipalKind.technical_account_email, client.technical_account_email, client.org_id
    user = session.scalar(select(User).where(func.lower(User.email) == text.lower(), User.disabled_at.is_(None)))
    if user is not None:
        return PrincipalKind.user_email, user.email, user.org_id
    return None


def add_share(session: Session, model: CustomModel, principal: str, role: str) -> tuple[Share, bool]:
    """Share with a principal of another organization, or change its role; True when the share is new."""
    resolved = _resolve_principal(session, principal)
    if resolved is None:
        raise InvalidInput(
            [problem(["principal"], "No technical account or user has that id or email.", "unknown_principal")],
            in_request=True,
        )
    kind, value, principal_org = resolved
    if principal_org == model.org_id:
        raise InvalidInput(
            [
                problem(
                    ["principal"],
                    "That principal belongs to the organization that owns the model and has full access already.",
                    "principal_in_owning_organization",
                )
            ],
            in_request=True,
        )
    share = session.scalar(
        select(Share).where(Share.model_id == model.id, Share.principal_kind == kind, Share.principal_value == value)
    )
    created = share is None
    if share is None:
        share = Share(model_id=model.id, principal_kind=kind, principal_value=value, role=ShareRole(role))
        share.created_at = utcnow()
        session.add(share)
    elif share.role is not ShareRole(role):
        share.role = ShareRole(role)
    else:
        return share, False
    touch(model)
    session.flush()
    return share, created


def remove_share(session: Session, model: CustomModel, principal: str) -> None:
    text = principal.strip()
    shares = session.scalars(
        select(Share).where(Share.model_id == model.id, func.lower(Share.principal_value) == text.lower())
    ).all()
    if not shares:
        raise ShareNotFound(text)
    for share in shares:
        session.delete(share)
    touch(model)
