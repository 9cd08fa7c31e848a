"""One attempt at a webhook delivery: claim it briefly, POST outside any transaction, record the answer.

A 2xx marks the delivery done, and no attempt starts on a done delivery, so a receiver gets an event
once however many messages ring for it. Anything else (no answer, a refused or redirecting URL, a
non-2xx) schedules the next attempt with a doubling wait, until the retry window has passed.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import dataclass

import httpx

from api import clock, queue
from api.config import Settings
from api.db import session_scope
from api.tables import WebhookAttempt
from api.webhooks import repository, signing
from api.webhooks.addresses import RefusedURL, resolve
from worker.runtime import Runtime

log = logging.getLogger("tunery.worker.webhooks")


@dataclass(frozen=True)
class Claimed:
    delivery_id: str
    event_id: str
    url: str
    secret: str
    body: bytes


def retry_delay(settings: Settings, failures: int) -> float:
    """The wait after the `failures`-th failed attempt: doubling from webhook_retry_seconds, capped."""
    return min(settings.webhook_retry_seconds * 2 ** (failures - 1), settings.webhook_retry_max_seconds)


def deliver(rt: Runtime, delivery_id: str) -> str:
    """Make one attempt if the delivery is due and free; returns what happened (for logs and tests)."""
    claimed = _claim(rt, delivery_id)
    if claimed is None:
        return "skipped"
    started, began = clock.now(), time.monotonic()
    status_code, error = _post(rt.settings, claimed)
    duration_ms = int((time.monotonic() - began) * 1000)
    ok = status_code is not None and 200 <= status_code < 300
    retry_in: float | None = None
    with session_scope(rt.sessions) as session:
        delivery = repository.delivery_for_update(session, delivery_id)
        if delivery is None:  # its endpoint was removed meanwhile
            return "gone"
        repository.add(
            session,
            WebhookAttempt(
                delivery_pk=delivery.pk,
                started_at=started,
                duration_ms=duration_ms,
                status_code=status_code,
                error=error[:1024] if error else None,
            ),
        )
        delivery.attempts += 1
        delivery.claimed_until = None
        now = clock.now()
        if ok:
            delivery.delivered_at, delivery.next_attempt_at = now, None
        else:
            delay = retry_delay(rt.settings, delivery.attempts)
            if now + delay > delivery.created_at + rt.settings.webhook_retry_window_seconds:
                delivery.given_up_at, delivery.next_attempt_at = now, None
            else:
                delivery.next_attempt_at = math.ceil(time.time() + delay)
                retry_in = delivery.next_attempt_at - time.time()
    if retry_in is not None:
        queue.enqueue(rt.settings, queue.DELIVER_WEBHOOK, delivery_id, countdown=max(retry_in, 0))
    outcome = "delivered" if ok else ("retrying" if retry_in is not None else "given up")
    log.info("webhook %s to %s: %s (%s)", claimed.event_id, claimed.url, outcome, status_code or error)
    return outcome


def _claim(rt: Runtime, delivery_id: str) -> Claimed | None:
    with session_scope(rt.sessions) as session:
        delivery = repository.delivery_for_update(session, delivery_id)
        now = clock.now()
        if delivery is None or delivery.next_attempt_at is None or delivery.next_attempt_at > now:
            return None  # done, given up, or an early message: the one for its due time will come
        if delivery.claimed_until is not None and delivery.claimed_until >= now:
            return None  # another attempt is in flight
        endpoint = repository.endpoint_by_pk(session, delivery.endpoint_pk)
        if endpoint is None:
            return None
        delivery.claimed_until = now + math.ceil(rt.settings.webhook_timeout_seconds) + 30
        body = json.dumps(delivery.payload, separators=(",", ":")).encode()
        return Claimed(delivery.id, delivery.event_id, endpoint.url, endpoint.secret, body)


def _post(settings: Settings, claimed: Claimed) -> tuple[int | None, str | None]:
    """POST the signed event to the address the check resolved; (status code, None) or (None, why not)."""
    try:
        target = resolve(claimed.url, allow_private=settings.webhook_allow_private)
    except RefusedURL as error:
        return None, f"refused: {error}"
    url = httpx.URL(claimed.url)
    # Connect to the checked address (a second lookup could answer differently), naming the host in
    # the Host header and, for TLS, in SNI and the certificate check.
    pinned = url.copy_with(host=target.address)
    headers = {"host": url.netloc.decode(), "user-agent": "Tunery-Webhooks/1"}
    headers.update(signing.headers(claimed.secret, claimed.event_id, clock.now(), claimed.body))
    extensions = {"sni_hostname": target.host} if target.scheme == "https" else {}
    try:
        with httpx.Client(timeout=settings.webhook_timeout_seconds, follow_redirects=False) as client:
            response = client.post(pinned, content=claimed.body, headers=headers, extensions=extensions)
    except httpx.HTTPError as error:
        return None, f"{type(error).__name__}: {error}"
    return response.status_code, None
