"""Webhooks named in requests and registered by organizations: the wire fields, the URL checks (the SSRF-safe
address checks of reference images: loopback, private and link-local hosts are refused unless the deployment
allows them), and the rows that make the outbox queue deliveries for a job's events."""

from __future__ import annotations

import uuid
from typing import Any, Literal

from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from ember.jobs.webhook_secrets import new_secret, seal
from ember.safe_fetch import ReferenceRefused, ReferenceUnavailable, Resolve, checked_address, resolve_host
from ember.store.event_tables import JobWebhook, WebhookEndpoint
from ember.validation import validation_entry

Topic = Literal["start", "progress", "completed"]
DEFAULT_TOPICS: list[str] = ["completed"]
MAX_URL_CHARS = 2048
MAX_ENDPOINTS = 20


class WebhookFields(BaseModel):
    """Ember's extension of generation and training request bodies (like Replicate's `webhook`)."""

    webhook: str | None = Field(
        None, max_length=MAX_URL_CHARS, description="An http(s) URL that hears about this job (Standard Webhooks)."
    )
    webhook_events_filter: list[Topic] | None = Field(
        None, alias="webhookEventsFilter", min_length=1,
        description='Which events the webhook hears: "start", "progress", "completed" (default ["completed"]).',
    )


class InvalidWebhook(Exception):
    """A webhook URL that may not be called; carries the Firefly validation errors."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__("; ".join(str(error["msg"]) for error in errors))
        self.errors = errors


def check_url(url: str, *, allow_private: bool, loc: list[str | int], resolve: Resolve = resolve_host) -> None:
    try:
        checked_address(url, allow_private=allow_private, resolve=resolve, subject="webhook")
    except ReferenceRefused as refused:
        raise InvalidWebhook([validation_entry(loc, str(refused))]) from None
    except ReferenceUnavailable:
        message = "the webhook host could not be resolved"
        raise InvalidWebhook([validation_entry(loc, message)]) from None


def checked_fields(fields: WebhookFields, *, allow_private: bool) -> tuple[str, list[str]] | None:
    """The request's webhook URL and topics, checked; None when it names none. A filter without a URL is an
    error rather than silently ignored."""
    if fields.webhook is None:
        if fields.webhook_events_filter is not None:
            raise InvalidWebhook(
                [validation_entry(["body", "webhookEventsFilter"], "webhookEventsFilter needs a webhook URL")]
            )
        return None
    check_url(fields.webhook, allow_private=allow_private, loc=["body", "webhook"])
    topics = list(dict.fromkeys(fields.webhook_events_filter or DEFAULT_TOPICS))
    return fields.webhook, topics


def subscribe(session: Session, job_id: str, url: str, topics: list[str], base_url: str) -> None:
    """Attach a request's webhook to its job (in the transaction that created the job)."""
    session.add(JobWebhook(job_id=job_id, url=url, events=topics, base_url=base_url))
    session.flush()


class TooManyEndpoints(Exception):
    """The organization already has MAX_ENDPOINTS webhook endpoints."""


def add_endpoint(
    session: Session, org_id: uuid.UUID, url: str, topics: list[str], base_url: str, server_key: bytes
) -> tuple[WebhookEndpoint, str]:
    """Register an endpoint; returns it and its signing secret (shown this once)."""
    count = len(list(session.scalars(select(WebhookEndpoint.id).where(WebhookEndpoint.org_id == org_id))))
    if count >= MAX_ENDPOINTS:
        raise TooManyEndpoints(f"an organization may register at most {MAX_ENDPOINTS} webhook endpoints")
    secret = new_secret()
    endpoint = WebhookEndpoint(
        org_id=org_id, url=url, events=list(dict.fromkeys(topics)), secret=seal(server_key, secret),
        base_url=base_url,
    )
    session.add(endpoint)
    session.flush()
    return endpoint, secret


def endpoints_of(session: Session, org_id: uuid.UUID) -> list[WebhookEndpoint]:
    return list(
        session.scalars(
            select(WebhookEndpoint).where(WebhookEndpoint.org_id == org_id).order_by(WebhookEndpoint.created_at)
        )
    )


def remove_endpoint(session: Session, org_id: uuid.UUID, endpoint_id: uuid.UUID) -> bool:
    endpoint = session.get(WebhookEndpoint, endpoint_id)
    if endpoint is None or endpoint.org_id != org_id:
        return False
    session.delete(endpoint)
    session.flush()
    return True
