"""Fetching by URL without letting a request reach the server's own network (SSRF): reference images on the
engine workers (`ember.worker`) and webhook deliveries in the API process (`ember.jobs.webhooks`). It imports
nothing else of Ember, so both sides may import it.

Every address a host name resolves to is checked, the connection goes to the checked address (so a second,
different DNS answer cannot slip in), and each redirect hop is checked the same way."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable
from urllib.parse import urljoin, urlsplit, urlunsplit

import httpx

MAX_REDIRECTS = 5
ALLOWED_SCHEMES = {"http": 80, "https": 443}
Resolve = Callable[[str, int], list[str]]
IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class ReferenceUnavailable(Exception):
    """A style or structure reference image could not be read."""


class ReferenceRefused(ReferenceUnavailable):
    """The URL names a scheme or an address a reference image may not come from."""


def resolve_host(host: str, port: int) -> list[str]:
    """Every address the system resolver gives for `host`."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as error:
        raise ReferenceUnavailable(f"the reference image host {host!r} could not be resolved") from error
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def is_public(address: IpAddress) -> bool:
    """False for loopback, private, link-local, multicast, reserved, unspecified and other non-global ranges."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return is_public(address.ipv4_mapped)
    return not (
        address.is_loopback
        or address.is_private
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
        or not address.is_global
    )


def checked_address(
    url: str, *, allow_private: bool, resolve: Resolve, subject: str = "reference image"
) -> tuple[str, str, int, str]:
    """The URL's scheme, host, port and the one address to connect to; ReferenceRefused when not allowed.
    `subject` names what the URL is for in the messages (a reference image, a webhook)."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ALLOWED_SCHEMES:
        raise ReferenceRefused(f"{subject} URLs must be http or https, not {scheme or 'schemeless'!r}")
    host = parts.hostname
    if not host:
        raise ReferenceRefused(f"the {subject} URL has no host")
    try:
        port = parts.port or ALLOWED_SCHEMES[scheme]
    except ValueError:
        raise ReferenceRefused(f"the {subject} URL has an invalid port") from None
    try:
        addresses = [ipaddress.ip_address(host)]
    except ValueError:
        addresses = [ipaddress.ip_address(found.split("%", 1)[0]) for found in resolve(host, port)]
    if not addresses:
        raise ReferenceUnavailable(f"the {subject} host {host!r} has no address")
    if not allow_private:
        refused = [address for address in addresses if not is_public(address)]
        if refused:
            raise ReferenceRefused(
                f"the {subject} host {host!r} resolves to a non-public address ({refused[0]}); "
                f"{subject} URLs must point to the public internet"
            )
    return scheme, host, port, str(addresses[0])


def pinned_url(url: str, address: str, port: int) -> str:
    """The URL with its host replaced by the checked address (the Host header and TLS name keep the name)."""
    parts = urlsplit(url)
    literal = f"[{address}]" if ":" in address else address
    return urlunsplit((parts.scheme, f"{literal}:{port}", parts.path or "/", parts.query, ""))


def fetch_reference(
    url: str,
    *,
    max_bytes: int,
    timeout_s: float = 30.0,
    allow_private: bool = False,
    resolve: Resolve = resolve_host,
    transport: httpx.BaseTransport | None = None,
) -> bytes:
    """The body of `url` (at most `max_bytes`), following up to MAX_REDIRECTS redirects, each one checked."""
    with httpx.Client(timeout=timeout_s, follow_redirects=False, transport=transport, trust_env=False) as client:
        for _ in range(MAX_REDIRECTS + 1):
            scheme, host, port, address = checked_address(url, allow_private=allow_private, resolve=resolve)
            name = f"[{host}]" if ":" in host else host
            host_header = name if port == ALLOWED_SCHEMES[scheme] else f"{name}:{port}"
            request = client.build_request(
                "GET", pinned_url(url, address, port), headers={"Host": host_header},
                extensions={"sni_hostname": host} if scheme == "https" else {},
            )
            try:
                response = client.send(request, stream=True)
            except httpx.HTTPError as error:
                raise ReferenceUnavailable(f"the reference image URL could not be read: {error}") from None
            try:
                if response.is_redirect:
                    location = response.headers.get("location")
                    if not location:
                        raise ReferenceUnavailable("the reference image URL redirected without a location")
                    url = urljoin(url, location)
                    continue
                if response.status_code >= 400:
                    raise ReferenceUnavailable(f"the reference image URL answered HTTP {response.status_code}")
                data = bytearray()
                for chunk in response.iter_bytes():
                    data += chunk
                    if len(data) > max_bytes:
                        raise ReferenceUnavailable(
                            f"the reference image is larger than {max_bytes // (1024 * 1024)} MB"
                        )
                return bytes(data)
            except httpx.HTTPError as error:
                raise ReferenceUnavailable(f"the reference image URL could not be read: {error}") from None
            finally:
                response.close()
    raise ReferenceUnavailable(f"the reference image URL redirected more than {MAX_REDIRECTS} times")
