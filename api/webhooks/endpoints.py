"""/v1/webhooks: a project's webhook endpoints (Tunery's extension). Thin routes over the service."""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import CallerDep, SessionDep, SettingsDep
from api.one_hop import OneHopRoute
from api.pagination import Page
from api.webhooks import service
from api.webhooks.schemas import (
    DeletedWebhookEndpoint,
    WebhookCreate,
    WebhookEndpointObject,
    WebhookEndpointWithSecret,
)

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"], route_class=OneHopRoute)


@router.post("", response_model=WebhookEndpointWithSecret)
def create_webhook(
    session: SessionDep, caller: CallerDep, settings: SettingsDep, body: WebhookCreate
) -> WebhookEndpointWithSecret:
    row = service.create_endpoint(session, caller, body, allow_private=settings.webhook_allow_private)
    return WebhookEndpointWithSecret.made(row)


@router.get("", response_model=Page[WebhookEndpointObject])
def list_webhooks(session: SessionDep, caller: CallerDep) -> Page[WebhookEndpointObject]:
    return Page.of([WebhookEndpointObject.of(row) for row in service.list_endpoints(session, caller)], False)


@router.delete("/{webhook_id}", response_model=DeletedWebhookEndpoint)
def delete_webhook(session: SessionDep, caller: CallerDep, webhook_id: str) -> DeletedWebhookEndpoint:
    service.delete_endpoint(session, caller, webhook_id)
    return DeletedWebhookEndpoint(id=webhook_id)
