"""Webhook endpoints of a project: register (URL checked, secret made and shown once), list, remove;
and what was delivered for a job (the dashboard's view)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from api import clock
from api.auth.service import Caller
from api.errors import InvalidRequest, NotFound
from api.ids import new_id
from api.tables import FineTuningJob, WebhookAttempt, WebhookDelivery, WebhookEndpoint
from api.webhooks import repository, signing
from api.webhooks.addresses import RefusedURL, resolve
from api.webhooks.events import EVENT_TYPES
from api.webhooks.schemas import WebhookCreate


def create_endpoint(
    session: Session, caller: Caller, request: WebhookCreate, *, allow_private: bool
) -> WebhookEndpoint:
    unknown = [event for event in request.events if event not in EVENT_TYPES]
    if unknown:
        raise InvalidRequest(
            f"events: {unknown[0]!r} is not an event Tunery sends; it sends {', '.join(EVENT_TYPES)}",
            param="events",
            code="invalid_event_type",
        )
    try:
        resolve(request.url, allow_private=allow_private)
    except RefusedURL as error:
        raise InvalidRequest(f"url: {error}", param="url", code="invalid_url") from None
    row = WebhookEndpoint(
        id=new_id("we_"),
        project_pk=caller.project.pk,
        url=request.url,
        events=list(dict.fromkeys(request.events)),
        secret=signing.new_secret(),
        created_at=clock.now(),
    )
    repository.add(session, row)
    return row


def list_endpoints(session: Session, caller: Caller) -> list[WebhookEndpoint]:
    return repository.endpoints_of(session, caller.project.pk)


def delete_endpoint(session: Session, caller: Caller, endpoint_id: str) -> None:
    row = repository.endpoint(session, caller.project.pk, endpoint_id)
    if row is None:
        raise NotFound(f"No webhook endpoint found with id {endpoint_id}", param="webhook_id")
    repository.remove_endpoint(session, row)


@dataclass(frozen=True)
class DeliveryView:
    delivery: WebhookDelivery
    url: str
    attempts: list[WebhookAttempt]

    @property
    def state(self) -> str:
        if self.delivery.delivered_at is not None:
            return "delivered"
        if self.delivery.given_up_at is not None:
            return "given up"
        return "retrying" if self.delivery.attempts else "pending"


def deliveries_of_job(session: Session, job: FineTuningJob) -> list[DeliveryView]:
    rows = repository.deliveries_of_job(session, job)
    attempts = repository.attempts_of(session, [delivery.pk for delivery, _ in rows])
    return [
        DeliveryView(delivery, url, [a for a in attempts if a.delivery_pk == delivery.pk])
        for delivery, url in rows
    ]
