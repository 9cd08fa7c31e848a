"""Which webhook URLs may be called: http(s) only, and not into the internal network.

Checked when an endpoint is registered and again when each delivery resolves the host, since a name
that pointed outside yesterday may point at 10.0.0.5 today. A delivery then connects to the very
address that was checked (`resolve`), so a second lookup cannot swap it.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

SCHEMES = ("http", "https")


class RefusedURL(ValueError):
    """A URL a webhook may not use; the message says why."""


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str
    port: int
    address: str  # the resolved IP a delivery connects to


def check_form(url: str) -> tuple[str, str, int]:
    """The URL's scheme, host and port, or RefusedURL: only absolute http(s) URLs without credentials."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as error:
        raise RefusedURL(f"{url!r} is not a valid URL: {error}") from None
    if parts.scheme not in SCHEMES:
        raise RefusedURL(f"webhook URLs must be http or https, not {parts.scheme or 'schemeless'!r}")
    if not parts.hostname:
        raise RefusedURL(f"{url!r} names no host")
    if parts.username or parts.password:
        raise RefusedURL("webhook URLs may not carry credentials")
    return parts.scheme, parts.hostname, port or (443 if parts.scheme == "https" else 80)


def is_internal(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return not ip.is_global or ip.is_multicast


def resolve(url: str, *, allow_private: bool) -> Target:
    """Check the URL's form, resolve its host, and refuse it if any address is internal."""
    scheme, host, port = check_form(url)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as error:
        raise RefusedURL(f"the host {host!r} does not resolve: {error.strerror}") from None
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    if not allow_private:
        internal = [address for address in addresses if is_internal(address)]
        if internal:
            raise RefusedURL(
                f"the host {host!r} resolves to {internal[0]}, a loopback, link-local or private address; "
                "set TUNERY_WEBHOOK_ALLOW_PRIVATE=1 to allow such receivers"
            )
    return Target(scheme, host, port, addresses[0])
