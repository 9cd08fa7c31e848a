"""Queries on webhook endpoints, deliveries and attempts."""

from __future__ import annotations

from sqlalchemy import delete, or_, select
from sqlalchemy.orm import Session

from api.tables import FineTuningJob, WebhookAttempt, WebhookDelivery, WebhookEndpoint


def add(session: Session, row: WebhookEndpoint | WebhookDelivery | WebhookAttempt) -> None:
    session.add(row)
    session.flush()


def endpoints_of(session: Session, project_pk: int) -> list[WebhookEndpoint]:
    query = select(WebhookEndpoint).where(WebhookEndpoint.project_pk == project_pk)
    return list(session.scalars(query.order_by(WebhookEndpoint.pk)))


def endpoint(session: Session, project_pk: int, endpoint_id: str) -> WebhookEndpoint | None:
    query = select(WebhookEndpoint).where(
        WebhookEndpoint.project_pk == project_pk, WebhookEndpoint.id == endpoint_id
    )
    return session.scalar(query)


def remove_endpoint(session: Session, row: WebhookEndpoint) -> None:
    # Its deliveries go with it (on SQLite too, where the cascade needs foreign keys on).
    session.execute(delete(WebhookDelivery).where(WebhookDelivery.endpoint_pk == row.pk))
    session.delete(row)
    session.flush()


def delivery_for_update(session: Session, delivery_id: str) -> WebhookDelivery | None:
    query = select(WebhookDelivery).where(WebhookDelivery.id == delivery_id)
    return session.scalar(query.with_for_update(of=WebhookDelivery))


def endpoint_by_pk(session: Session, pk: int) -> WebhookEndpoint | None:
    return session.get(WebhookEndpoint, pk)


def overdue_deliveries(session: Session, *, due_before: int, now: int) -> list[str]:
    """Deliveries whose next attempt was due before `due_before` and that no attempt holds."""
    query = select(WebhookDelivery.id).where(
        WebhookDelivery.next_attempt_at.is_not(None),
        WebhookDelivery.next_attempt_at < due_before,
        or_(WebhookDelivery.claimed_until.is_(None), WebhookDelivery.claimed_until < now),
    )
    return list(session.scalars(query.order_by(WebhookDelivery.pk).limit(500)))


def deliveries_of_job(session: Session, job: FineTuningJob) -> list[tuple[WebhookDelivery, str]]:
    query = (
        select(WebhookDelivery, WebhookEndpoint.url)
        .join(WebhookEndpoint, WebhookEndpoint.pk == WebhookDelivery.endpoint_pk)
        .where(WebhookDelivery.job_pk == job.pk)
        .order_by(WebhookDelivery.pk)
    )
    return [(delivery, url) for delivery, url in session.execute(query).all()]


def attempts_of(session: Session, delivery_pks: list[int]) -> list[WebhookAttempt]:
    if not delivery_pks:
        return []
    query = select(WebhookAttempt).where(WebhookAttempt.delivery_pk.in_(delivery_pks))
    return list(session.scalars(query.order_by(WebhookAttempt.pk)))
