"""Key sources: static JWK sets and the cached, rate-limited remote JWKS."""

from __future__ import annotations

import httpx
import pytest

from auth.errors import TokenError, TokenErrorReason
from auth.jwks import JwkSet, RemoteJwks
from auth.keys import generate_private_key, jwk_thumbprint, public_jwk
from tests.auth.helpers import FakeClock

URL = "https://idp.example.nhs.uk/jwks"


def new_jwk(alg: str = "ES256") -> dict[str, str]:
    jwk = public_jwk(generate_private_key(alg).public_key())
    return {**jwk, "kid": jwk_thumbprint(jwk)}


class FakeJwksServer:
    """Serves a JWK set that tests can change, counting requests."""

    def __init__(self, *keys: dict[str, str]) -> None:
        self.keys = list(keys)
        self.requests = 0
        self.status = 200
        self.cache_control: str | None = None

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests += 1
        headers = {"cache-control": self.cache_control} if self.cache_control else {}
        if self.status != 200:
            return httpx.Response(self.status)
        return httpx.Response(200, json={"keys": self.keys}, headers=headers)

    def remote(self, clock: FakeClock, **kwargs) -> RemoteJwks:
        client = httpx.Client(transport=httpx.MockTransport(self))
        return RemoteJwks(URL, client=client, clock=clock, **kwargs)


def test_static_set_finds_keys_by_kid() -> None:
    a, b = new_jwk(), new_jwk()
    keys = JwkSet.from_jwks({"keys": [a, b]})
    assert keys.key_for(a["kid"]) == a
    assert keys.key_for("missing") is None
    assert keys.kids == {a["kid"], b["kid"]}


def test_static_set_drops_symmetric_and_kidless_keys() -> None:
    a = new_jwk()
    keys = JwkSet(
        [
            {"kty": "oct", "k": "c2VjcmV0", "kid": "hmac"},
            {k: v for k, v in new_jwk().items() if k != "kid"},
            a,
            "junk",
        ]
    )  # type: ignore[list-item]
    assert keys.kids == {a["kid"]}
    assert keys.key_for("hmac") is None


def test_a_duplicated_kid_matches_nothing() -> None:
    a, b = new_jwk(), new_jwk()
    keys = JwkSet([a, {**b, "kid": a["kid"]}])
    assert keys.key_for(a["kid"]) is None


def test_not_a_jwks_document_is_refused() -> None:
    documents: list[object] = [{}, {"keys": "x"}, [], None]
    for document in documents:
        with pytest.raises(ValueError):
            JwkSet.from_jwks(document)


def test_remote_set_is_fetched_once_and_cached(clock: FakeClock) -> None:
    key = new_jwk()
    server = FakeJwksServer(key)
    remote = server.remote(clock, max_age=300)
    assert remote.key_for(key["kid"]) == key
    clock.advance(299)
    assert remote.key_for(key["kid"]) == key
    assert server.requests == 1
    clock.advance(1)
    remote.key_for(key["kid"])
    assert server.requests == 2


def test_cache_control_max_age_shortens_the_cache(clock: FakeClock) -> None:
    key = new_jwk()
    server = FakeJwksServer(key)
    server.cache_control = "public, max-age=60"
    remote = server.remote(clock, max_age=300, min_refresh_interval=1)
    remote.key_for(key["kid"])
    clock.advance(61)
    remote.key_for(key["kid"])
    assert server.requests == 2


def test_unknown_kid_refreshes_once_and_finds_a_rotated_key(clock: FakeClock) -> None:
    old, new = new_jwk(), new_jwk()
    server = FakeJwksServer(old)
    remote = server.remote(clock, min_refresh_interval=30)
    assert remote.key_for(old["kid"]) == old
    clock.advance(31)
    server.keys = [old, new]  # the provider rotated
    assert remote.key_for(new["kid"]) == new
    assert server.requests == 2


def test_unknown_kid_floods_are_rate_limited(clock: FakeClock) -> None:
    server = FakeJwksServer(new_jwk())
    remote = server.remote(clock, min_refresh_interval=30)
    for i in range(50):
        assert remote.key_for(f"made-up-{i}") is None
        clock.advance(0.5)
    # first fetch, then at most one more per 30 s: 25 s elapsed -> no second fetch
    assert server.requests == 1
    clock.advance(10)
    remote.key_for("made-up-again")
    assert server.requests == 2


def test_failure_without_any_cached_set_is_keys_unavailable(clock: FakeClock) -> None:
    server = FakeJwksServer()
    server.status = 503
    remote = server.remote(clock)
    with pytest.raises(TokenError) as caught:
        remote.key_for("k")
    assert caught.value.reason is TokenErrorReason.KEYS_UNAVAILABLE


def test_failure_after_a_good_fetch_keeps_the_last_good_set(clock: FakeClock) -> None:
    key = new_jwk()
    server = FakeJwksServer(key)
    remote = server.remote(clock, max_age=60, min_refresh_interval=1)
    remote.key_for(key["kid"])
    server.status = 500
    clock.advance(120)
    assert remote.key_for(key["kid"]) == key
    assert server.requests == 2


def test_oversized_or_invalid_documents_are_not_used(clock: FakeClock) -> None:
    def huge(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=b'{"keys": [' + b" " * 600_000 + b"]}")

    remote = RemoteJwks(URL, client=httpx.Client(transport=httpx.MockTransport(huge)), clock=clock)
    with pytest.raises(TokenError):
        remote.key_for("k")

    def not_json(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=b"<html>")

    remote = RemoteJwks(
        URL, client=httpx.Client(transport=httpx.MockTransport(not_json)), clock=clock
    )
    with pytest.raises(TokenError):
        remote.key_for("k")


@pytest.mark.parametrize("url", ["http://idp.example/jwks", "ftp://idp.example/jwks", "jwks"])
def test_remote_jwks_needs_https(url: str) -> None:
    with pytest.raises(ValueError):
        RemoteJwks(url)


def test_plain_http_is_allowed_for_localhost() -> None:
    assert RemoteJwks("http://localhost:8081/jwks").url.startswith("http://localhost")
