"""Webhook endpoints as the API shows them. Tunery's extension: OpenAI configures these in its console."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from api.tables import WebhookEndpoint


class WebhookCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(max_length=2048, description="An http(s) URL that receives the events by POST.")
    events: list[str] = Field(min_length=1, description="The event types to send it.")


class WebhookEndpointObject(BaseModel):
    id: str
    """The endpoint's id, `we_...`."""
    object: Literal["webhook_endpoint"] = "webhook_endpoint"
    url: str
    events: list[str]
    created_at: int
    """Unix seconds."""

    @classmethod
    def of(cls, row: WebhookEndpoint) -> WebhookEndpointObject:
        return cls(id=row.id, url=row.url, events=list(row.events), created_at=row.created_at)


class WebhookEndpointWithSecret(WebhookEndpointObject):
    secret: str
    """`whsec_...`: the key to verify signatures with (the SDK's `webhooks.unwrap(secret=...)`).
    Only in the answer to the create; never shown again."""

    @classmethod
    def made(cls, row: WebhookEndpoint) -> WebhookEndpointWithSecret:
        return cls(
            id=row.id, url=row.url, events=list(row.events), created_at=row.created_at, secret=row.secret
        )


class DeletedWebhookEndpoint(BaseModel):
    id: str
    object: Literal["webhook_endpoint.deleted"] = "webhook_endpoint.deleted"
    deleted: bool = True
