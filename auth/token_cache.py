"""Verified tokens remembered until they expire, so a request costs a lookup, not a signature.

A bearer token is sent with every request; verifying an ES384 signature each time costs more
than reading the resource it asks for. :class:`VerifiedTokens` keeps the :class:`Principal` of
each token that passed :meth:`TokenVerifier.verify` until the token's own expiry (plus the same
clock skew the verifier allows), so a cached answer is exactly the answer verification would give
again: nothing about a token changes while it is valid, and the keys that verified it keep
verifying for longer than any token they signed lives (``KeyStore.verify_grace``).

Failures are never cached (a flood of bad tokens cannot evict good ones by filling the cache with
themselves), and the cache is bounded: the oldest entry goes first.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from auth.claims import required_date
from auth.clock import Clock, system_clock
from auth.principal import Principal
from auth.tokens import TokenVerifier


class VerifiedTokens:
    """A bounded cache in front of a :class:`TokenVerifier`."""

    def __init__(
        self, verifier: TokenVerifier, *, max_entries: int = 4096, clock: Clock = system_clock
    ) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be positive")
        self.verifier = verifier
        self._max = max_entries
        self._clock = clock
        self._entries: OrderedDict[str, tuple[Principal, float]] = OrderedDict()
        self._lock = threading.Lock()

    def cached(self, token: str) -> Principal | None:
        """The principal of a token verified before and still valid, or None (verify it)."""
        entry = self._entries.get(token)
        if entry is None:
            return None
        principal, valid_until = entry
        if self._clock() >= valid_until:
            with self._lock:
                self._entries.pop(token, None)
            return None
        return principal

    def principal(self, token: str) -> Principal:
        """The principal of ``token``: from the cache, or verified now (``TokenError`` if not)."""
        found = self.cached(token)
        if found is not None:
            return found
        claims = self.verifier.verify(token)
        principal = Principal.from_claims(claims)
        valid_until = required_date(claims, "exp") + self.verifier.clock_skew
        with self._lock:
            self._entries[token] = (principal, valid_until)
            while len(self._entries) > self._max:
                self._entries.popitem(last=False)
        return principal

    def __len__(self) -> int:
        return len(self._entries)
