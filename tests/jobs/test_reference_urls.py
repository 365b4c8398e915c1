"""Reference image URLs: only public http(s) addresses are fetched, every resolved address and every redirect
hop is checked, and the connection goes to the address that was checked."""

from __future__ import annotations

import httpx
import pytest

from ember.safe_fetch import ReferenceRefused, ReferenceUnavailable, fetch_reference

PUBLIC = "93.184.216.34"
PNG = b"\x89PNG\r\n\x1a\n fake image bytes"


def resolver(table: dict[str, list[str]]) -> object:
    def resolve(host: str, port: int) -> list[str]:
        return table[host]

    return resolve


def unreachable(request: httpx.Request) -> httpx.Response:
    raise AssertionError(f"no request may be sent, got one to {request.url}")


def fetch(url: str, *, table: dict[str, list[str]] | None = None, handler: object = unreachable,
          allow_private: bool = False) -> bytes:
    return fetch_reference(
        url, max_bytes=1024, allow_private=allow_private, resolve=resolver(table or {}),  # type: ignore[arg-type]
        transport=httpx.MockTransport(handler),  # type: ignore[arg-type]
    )


@pytest.mark.parametrize("url", ["ftp://images.example/a.png", "file:///etc/passwd", "gopher://x/", "/relative"])
def test_a_scheme_other_than_http_or_https_is_refused(url: str) -> None:
    with pytest.raises(ReferenceRefused, match="http or https"):
        fetch(url)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/a.png",  # loopback
        "http://[::1]/a.png",  # loopback, IPv6
        "http://10.1.2.3/a.png",  # private
        "http://192.168.0.10:8080/a.png",  # private
        "http://169.254.169.254/latest/meta-data/",  # link-local (cloud metadata)
        "http://224.0.0.1/a.png",  # multicast
        "http://240.0.0.1/a.png",  # reserved
        "http://0.0.0.0/a.png",  # unspecified
        "http://[::ffff:127.0.0.1]/a.png",  # loopback behind an IPv4-mapped IPv6 address
    ],
)
def test_an_address_literal_that_is_not_public_is_refused(url: str) -> None:
    with pytest.raises(ReferenceRefused, match="non-public address"):
        fetch(url)


def test_localhost_is_refused_through_the_real_resolver() -> None:
    with pytest.raises(ReferenceRefused, match="non-public address"):
        fetch_reference("http://localhost:9/a.png", max_bytes=1024, transport=httpx.MockTransport(unreachable))


def test_a_name_is_refused_when_any_of_its_addresses_is_private() -> None:
    with pytest.raises(ReferenceRefused, match="10.0.0.5"):
        fetch("https://images.example/a.png", table={"images.example": [PUBLIC, "10.0.0.5"]})


def test_the_connection_goes_to_the_checked_address_with_the_name_as_host() -> None:
    seen: list[httpx.Request] = []

    def serve(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, content=PNG)

    assert fetch("https://images.example/cat.png?size=2", table={"images.example": [PUBLIC]}, handler=serve) == PNG
    [request] = seen
    assert (request.url.scheme, request.url.host, request.url.path) == ("https", PUBLIC, "/cat.png")
    assert request.headers["host"] == "images.example"
    assert request.extensions["sni_hostname"] == "images.example"


def test_a_redirect_to_a_private_host_is_refused() -> None:
    def serve(request: httpx.Request) -> httpx.Response:
        return httpx.Response(302, headers={"location": "http://internal.example/secret"})

    table = {"images.example": [PUBLIC], "internal.example": ["192.168.1.1"]}
    with pytest.raises(ReferenceRefused, match="internal.example"):
        fetch("https://images.example/a.png", table=table, handler=serve)


def test_a_redirect_to_a_public_host_is_followed() -> None:
    def serve(request: httpx.Request) -> httpx.Response:
        if request.headers["host"] == "images.example":
            return httpx.Response(301, headers={"location": "https://cdn.example/a.png"})
        return httpx.Response(200, content=PNG)

    table = {"images.example": [PUBLIC], "cdn.example": ["151.101.1.1"]}
    assert fetch("https://images.example/a.png", table=table, handler=serve) == PNG


def test_private_addresses_are_fetched_when_the_setting_allows_them() -> None:
    def serve(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=PNG)

    assert fetch("http://127.0.0.1:8080/a.png", handler=serve, allow_private=True) == PNG


def test_a_body_over_the_limit_is_refused() -> None:
    def serve(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=b"x" * 4096)

    with pytest.raises(ReferenceUnavailable, match="larger than"):
        fetch("https://images.example/a.png", table={"images.example": [PUBLIC]}, handler=serve)


def test_a_generation_job_with_a_private_reference_url_fails_with_the_reason(live: object) -> None:
    from .conftest import Live
    from .test_end_to_end import wait_final

    assert isinstance(live, Live)
    _, headers = live.client()
    body = {"prompt": "a cat", "style": {"imageReference": {"source": {"url": "http://127.0.0.1:9/cat.png"}}}}
    accepted = live.http.post("/v3/images/generate-async", json=body, headers=headers).json()
    status = wait_final(live.http, headers, accepted["statusUrl"])
    assert (status["status"], status["error_code"]) == ("failed", "invalid_request")
    assert "non-public address" in status["message"]
