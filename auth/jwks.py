"""Where verification keys come from: a JWK set held in memory, or one fetched from a URL.

A verifier asks a :class:`KeySource` for the public key with a given ``kid`` and gets a JWK
mapping or ``None``. Three sources exist: the embedded issuer's key store (``auth.keys``), a
static set (a client's JWKS registered with the register), and :class:`RemoteJwks` (an external
identity provider's or a client's JWKS URL, cached and refreshed once on an unknown kid).
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterable, Mapping
from typing import Any, Protocol
from urllib.parse import urlsplit

import httpx

from auth.clock import Clock, system_clock
from auth.errors import TokenError, TokenErrorReason

log = logging.getLogger(__name__)

_ASYMMETRIC_KTY = frozenset({"RSA", "EC"})
_MAX_AGE = re.compile(r"(?:^|,)\s*max-age\s*=\s*(\d+)\s*(?:,|$)", re.IGNORECASE)


class KeySource(Protocol):
    """Anything that can find a public JWK by key id."""

    def key_for(self, kid: str) -> Mapping[str, Any] | None:
        """The one public JWK with this ``kid``, or ``None`` when there is none or it is
        ambiguous (two keys share the kid)."""
        ...


class JwkSet:
    """An immutable set of public JWKs, looked up by ``kid``.

    Symmetric keys (``kty: oct``) and keys without a ``kid`` are dropped on the way in: they
    can never verify a token here. A kid that occurs twice matches nothing, so an ambiguous set
    fails closed (SMART: "If no keys match, or more than one key matches, the verification
    fails").
    """

    def __init__(self, keys: Iterable[Mapping[str, Any]]) -> None:
        by_kid: dict[str, list[Mapping[str, Any]]] = {}
        for key in keys:
            if not isinstance(key, Mapping):
                continue
            kid = key.get("kid")
            if not isinstance(kid, str) or not kid or key.get("kty") not in _ASYMMETRIC_KTY:
                continue
            by_kid.setdefault(kid, []).append(dict(key))
        self._by_kid = by_kid

    @classmethod
    def from_jwks(cls, document: Any) -> JwkSet:
        """Build a set from a JWKS document (``{"keys": [...]}``); ``ValueError`` if it is not
        one."""
        if not isinstance(document, Mapping) or not isinstance(document.get("keys"), list):
            raise ValueError("not a JWK set: expected an object with a 'keys' array")
        return cls(document["keys"])

    def key_for(self, kid: str) -> Mapping[str, Any] | None:
        """The one key with this kid, or ``None`` (absent or ambiguous)."""
        found = self._by_kid.get(kid, [])
        return found[0] if len(found) == 1 else None

    @property
    def kids(self) -> frozenset[str]:
        """Every kid in the set (including ambiguous ones)."""
        return frozenset(self._by_kid)


def _cache_seconds(cache_control: str | None, ceiling: float) -> float:
    """How long a fetched set may be used: the server's max-age, never above ``ceiling``."""
    if cache_control is None:
        return ceiling
    lowered = cache_control.lower()
    if "no-store" in lowered or "no-cache" in lowered:
        return 0.0
    match = _MAX_AGE.search(cache_control)
    return min(float(match.group(1)), ceiling) if match else ceiling


class RemoteJwks:
    """A JWK set behind a URL: fetched lazily, cached, refreshed once on an unknown kid.

    - The set is reused until the server's ``Cache-Control: max-age`` (capped at ``max_age``)
      runs out.
    - An unknown kid triggers one refetch (the issuer may have rotated), but fetches are at
      least ``min_refresh_interval`` seconds apart, so a flood of tokens with made-up kids
      cannot turn the register into a request amplifier.
    - If a refresh fails, the last good set stays in use; with no good set, ``TokenError
      (keys_unavailable)``.

    The URL must be ``https`` (``http`` is allowed for localhost only). Thread-safe.
    """

    def __init__(
        self,
        url: str,
        *,
        client: httpx.Client | None = None,
        clock: Clock = system_clock,
        max_age: float = 300.0,
        min_refresh_interval: float = 30.0,
        timeout: float = 5.0,
        max_bytes: int = 512 * 1024,
    ) -> None:
        parts = urlsplit(url)
        local = parts.hostname in {"localhost", "127.0.0.1", "::1"}
        if parts.scheme != "https" and not (parts.scheme == "http" and local):
            raise ValueError("a JWKS URL must use https (http only for localhost)")
        self.url = url
        self._client = client or httpx.Client(follow_redirects=False)
        self._clock = clock
        self._max_age = max_age
        self._min_refresh = min_refresh_interval
        self._timeout = timeout
        self._max_bytes = max_bytes
        self._lock = threading.Lock()
        self._set: JwkSet | None = None
        self._fresh_until = float("-inf")
        self._last_attempt = float("-inf")

    def close(self) -> None:
        """Close the HTTP client (at application shutdown)."""
        self._client.close()

    def key_for(self, kid: str) -> Mapping[str, Any] | None:
        """The key with this kid, fetching or refreshing the set when that is allowed."""
        with self._lock:
            now = self._clock()
            if self._set is None or now >= self._fresh_until:
                self._refresh_if_allowed(now)
            key = self._set.key_for(kid) if self._set is not None else None
            if key is None and self._refresh_if_allowed(now):
                key = self._set.key_for(kid) if self._set is not None else None
            if self._set is None:
                raise TokenError(TokenErrorReason.KEYS_UNAVAILABLE)
            return key

    def _refresh_if_allowed(self, now: float) -> bool:
        """Fetch again unless the last attempt was too recent; whether a fetch was made."""
        if now - self._last_attempt < self._min_refresh:
            return False
        self._last_attempt = now
        try:
            fetched, ttl = self._fetch()
        except (httpx.HTTPError, ValueError) as exc:
            log.warning("JWKS fetch from %s failed: %s", self.url, type(exc).__name__)
            return False
        self._set = fetched
        self._fresh_until = now + ttl
        return True

    def _fetch(self) -> tuple[JwkSet, float]:
        response = self._client.get(
            self.url, headers={"Accept": "application/json"}, timeout=self._timeout
        )
        if response.status_code != 200:
            raise ValueError(f"JWKS endpoint answered {response.status_code}")
        if len(response.content) > self._max_bytes:
            raise ValueError("JWKS document too large")
        document = response.json()
        ttl = _cache_seconds(response.headers.get("cache-control"), self._max_age)
        return JwkSet.from_jwks(document), ttl
