from typing import Any

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from api.tables.base import Base, JSONType, PrimaryKey


class WebhookDelivery(Base):
    """One event owed to one endpoint, written in the transaction of the state change it reports.

    Delivered once: `delivered_at` set by the attempt that got a 2xx, after which no attempt starts.
    """

    __tablename__ = "webhook_deliveries"
    __table_args__ = (UniqueConstraint("event_id", "endpoint_pk"),)

    pk: Mapped[int] = mapped_column(PrimaryKey, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(64), unique=True)
    # The event's id (evt_...), the same for every endpoint told of it: the receivers' webhook-id.
    event_id: Mapped[str] = mapped_column(String(64), index=True)
    event_type: Mapped[str] = mapped_column(String(64))
    endpoint_pk: Mapped[int] = mapped_column(
        ForeignKey("webhook_endpoints.pk", ondelete="CASCADE"), index=True
    )
    job_pk: Mapped[int | None] = mapped_column(
        ForeignKey("fine_tuning_jobs.pk", ondelete="CASCADE"), index=True
    )
    payload: Mapped[dict[str, Any]] = mapped_column(JSONType)
    created_at: Mapped[int]
    attempts: Mapped[int] = mapped_column(default=0)
    # When the next attempt is due; None once delivered or given up.
    next_attempt_at: Mapped[int | None] = mapped_column(index=True)
    # An attempt in flight holds the delivery until then, so a second message for it sends nothing.
    claimed_until: Mapped[int | None]
    delivered_at: Mapped[int | None]
    given_up_at: Mapped[int | None]


class WebhookAttempt(Base):
    """One try at a delivery, as the receiver answered it (or why no answer came)."""

    __tablename__ = "webhook_attempts"

    pk: Mapped[int] = mapped_column(PrimaryKey, primary_key=True, autoincrement=True)
    delivery_pk: Mapped[int] = mapped_column(
        ForeignKey("webhook_deliveries.pk", ondelete="CASCADE"), index=True
    )
    started_at: Mapped[int]
    duration_ms: Mapped[int]
    status_code: Mapped[int | None]
    error: Mapped[str | None] = mapped_column(String(1024))
