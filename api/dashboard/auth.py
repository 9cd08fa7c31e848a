"""The dashboard's sign-in: an admin key in a form, then a cookie session.

The cookie holds no secret: `key_id.expiry.signature`, signed with HMAC keyed by the key's stored hash.
Any API process checks it against the database (no shared session store, no process secret), and
revoking the key ends its sessions at once.
"""

from __future__ import annotations

import hashlib
import hmac
import time

from fastapi import Request
from sqlalchemy.orm import Session

from api.auth import repository
from api.auth.service import authenticate
from api.errors import AuthenticationFailed
from api.tables import ApiKey

COOKIE = "tunery_dashboard"
LIFETIME_SECONDS = 12 * 3600


class NotSignedIn(Exception):
    """The request has no valid admin session: the dashboard answers with the sign-in page."""


def sign_in(session: Session, key: str) -> str | None:
    """A session cookie's value for an admin key; None for any other key or none."""
    try:
        caller = authenticate(session, f"Bearer {key.strip()}")
    except AuthenticationFailed:
        return None
    if not caller.is_admin:
        return None
    row = repository.key_by_id(session, caller.key_id)
    return None if row is None else _token(row, int(time.time()) + LIFETIME_SECONDS)


def signed_in_key(session: Session, request: Request) -> ApiKey:
    value = request.cookies.get(COOKIE, "")
    key_id, _, rest = value.partition(".")
    expiry, _, _signature = rest.partition(".")
    if not key_id or not expiry.isdigit() or int(expiry) < time.time():
        raise NotSignedIn
    row = repository.key_by_id(session, key_id)
    if row is None or row.revoked_at is not None or not row.is_admin:
        raise NotSignedIn
    if not hmac.compare_digest(value, _token(row, int(expiry))):
        raise NotSignedIn
    return row


def _token(row: ApiKey, expiry: int) -> str:
    signature = hmac.new(row.key_hash.encode(), f"{row.id}.{expiry}".encode(), hashlib.sha256).hexdigest()
    return f"{row.id}.{expiry}.{signature}"
