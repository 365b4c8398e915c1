"""Webhook endpoints an organization registers (`/v3/webhooks`), and the secret that signs the webhooks its
requests name (`/v3/webhooks/secret`). Ember extensions; deliveries follow Standard Webhooks."""

from __future__ import annotations

import uuid
from datetime import datetime

from fastapi import APIRouter, Depends, Response
from pydantic import Field

from ember.api.deps import BaseUrlDep, PrincipalDep, RuntimeDep, SessionDep, require_json
from ember.api.errors import ApiError
from ember.api.schemas import ErrorBody, StrictWireModel, WireModel
from ember.config import Settings
from ember.jobs.webhook_secrets import organization_secret
from ember.jobs.webhooks import (
    MAX_URL_CHARS,
    InvalidWebhook,
    TooManyEndpoints,
    Topic,
    WebhookFields,
    add_endpoint,
    check_url,
    checked_fields,
    endpoints_of,
    remove_endpoint,
)
from ember.store.event_tables import WebhookEndpoint

router = APIRouter(prefix="/v3/webhooks", tags=["webhooks"])
ERRORS: dict[int | str, dict[str, object]] = {status: {"model": ErrorBody} for status in (401, 403, 404, 409, 422)}


def _default_topics() -> list[Topic]:
    return ["completed"]


class EndpointCreate(StrictWireModel):
    url: str = Field(min_length=1, max_length=MAX_URL_CHARS)
    events: list[Topic] = Field(default_factory=_default_topics, min_length=1)


class EndpointItem(WireModel):
    id: str
    url: str
    events: list[str]
    createdAt: datetime


class CreatedEndpoint(EndpointItem):
    secret: str = Field(description="The endpoint's whsec_ signing secret; shown only in this response.")


class EndpointList(WireModel):
    webhooks: list[EndpointItem]


class SigningSecret(WireModel):
    secret: str = Field(description="Signs the webhooks that generation and training requests name.")


def _item(endpoint: WebhookEndpoint) -> EndpointItem:
    return EndpointItem(id=str(endpoint.id), url=endpoint.url, events=list(endpoint.events),
                        createdAt=endpoint.created_at)


def invalid_webhook(invalid: InvalidWebhook) -> ApiError:
    return ApiError(422, "validation_error", "Request validation failed.", validation_errors=invalid.errors)


def requested_webhook(fields: WebhookFields, settings: Settings) -> tuple[str, list[str]] | None:
    """A request body's webhook, checked (422 when it may not be called)."""
    try:
        return checked_fields(fields, allow_private=settings.webhook_allow_private)
    except InvalidWebhook as invalid:
        raise invalid_webhook(invalid) from None


@router.post(
    "", status_code=201, response_model=CreatedEndpoint, responses=ERRORS, dependencies=[Depends(require_json)],
    summary="Register a webhook endpoint for every job of the organization",
)
def create_endpoint(
    body: EndpointCreate, principal: PrincipalDep, session: SessionDep, runtime: RuntimeDep, base_url: BaseUrlDep
) -> CreatedEndpoint:
    try:
        check_url(body.url, allow_private=runtime.settings.webhook_allow_private, loc=["body", "url"])
        endpoint, secret = add_endpoint(
            session, principal.org_id, body.url, list(body.events), base_url, runtime.token_key
        )
    except InvalidWebhook as invalid:
        raise invalid_webhook(invalid) from None
    except TooManyEndpoints as too_many:
        raise ApiError(409, "conflict", str(too_many)) from None
    return CreatedEndpoint(**_item(endpoint).model_dump(), secret=secret)


@router.get("", response_model=EndpointList, responses=ERRORS, summary="The organization's webhook endpoints")
def list_endpoints(principal: PrincipalDep, session: SessionDep) -> EndpointList:
    return EndpointList(webhooks=[_item(endpoint) for endpoint in endpoints_of(session, principal.org_id)])


@router.get(
    "/secret", response_model=SigningSecret, responses=ERRORS,
    summary="The secret that signs the webhooks named in requests",
)
def signing_secret(principal: PrincipalDep, session: SessionDep, runtime: RuntimeDep) -> SigningSecret:
    return SigningSecret(secret=organization_secret(session, principal.org_id, runtime.token_key))


# The `uuid` convertor keeps `/v3/webhooks/secret` from also matching this route: a 405 there lists GET only.
@router.delete("/{endpoint_id:uuid}", status_code=204, responses=ERRORS, summary="Remove a webhook endpoint")
def delete_endpoint(endpoint_id: uuid.UUID, principal: PrincipalDep, session: SessionDep) -> Response:
    if not remove_endpoint(session, principal.org_id, endpoint_id):
        raise ApiError(404, "not_found", "The webhook endpoint is unknown.")
    return Response(status_code=204)
