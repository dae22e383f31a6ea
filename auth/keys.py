"""The embedded issuer's signing keys: generated on first use, kept on disk, rotated.

Layout under ``<data_dir>/keys/`` (directory 0700, files 0600, refused if looser)::

    keys/
      .lock                 serialises generation and rotation across processes
      <kid>.json            {"kid", "alg", "created_at", "not_after", "private_key" (PKCS#8 PEM)}

Each key's ``kid`` is its RFC 7638 JWK thumbprint (SHA-256, base64url), so a kid names exactly one
public key. ``not_after`` is the last moment the key may *sign*; it keeps *verifying* for
``verify_grace`` seconds more (the access token lifetime plus clock skew), which is exactly as
long as a token it signed can still be valid. After that it leaves the JWKS and ``prune()``
deletes it.

Key generation uses ``cryptography``; signing and verification happen in ``auth.jws``.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import json
import logging
import os
import stat
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from auth.clock import Clock, system_clock, to_datetime
from auth.jws import EC_CURVES

log = logging.getLogger(__name__)

SIGNING_ALGORITHMS: frozenset[str] = frozenset({"RS256", "RS384", "ES256", "ES384"})
"""Algorithms the embedded issuer can generate keys for."""

RSA_BITS = 3072
DEFAULT_KEY_LIFETIME = 90 * 24 * 3600.0

_CURVES: dict[str, type[ec.EllipticCurve]] = {
    "P-256": ec.SECP256R1,
    "P-384": ec.SECP384R1,
    "P-521": ec.SECP521R1,
}
_CURVE_BY_NAME = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}
_COORDINATE_BYTES = {"P-256": 32, "P-384": 48, "P-521": 66}


class KeyStoreError(RuntimeError):
    """The key directory or a key file cannot be used safely (permissions, corrupt file)."""


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _int_bytes(value: int, length: int | None = None) -> bytes:
    size = length if length is not None else max(1, (value.bit_length() + 7) // 8)
    return value.to_bytes(size, "big")


def public_jwk(public_key: rsa.RSAPublicKey | ec.EllipticCurvePublicKey) -> dict[str, str]:
    """The bare public JWK (RFC 7517/7518 members only) of an RSA or EC public key."""
    if isinstance(public_key, rsa.RSAPublicKey):
        numbers = public_key.public_numbers()
        return {
            "kty": "RSA",
            "n": _b64url(_int_bytes(numbers.n)),
            "e": _b64url(_int_bytes(numbers.e)),
        }
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        crv = _CURVE_BY_NAME.get(public_key.curve.name)
        if crv is None:
            raise ValueError("unsupported curve")
        point = public_key.public_numbers()
        size = _COORDINATE_BYTES[crv]
        return {
            "kty": "EC",
            "crv": crv,
            "x": _b64url(_int_bytes(point.x, size)),
            "y": _b64url(_int_bytes(point.y, size)),
        }
    raise TypeError("only RSA and EC public keys have a JWK here")


def jwk_thumbprint(jwk: Mapping[str, Any]) -> str:
    """The RFC 7638 SHA-256 thumbprint of a public JWK, base64url: used as the key's ``kid``.

    Only the required members, in lexicographic order, without whitespace, are hashed, so the
    same public key always gets the same kid whoever computes it.
    """
    members = {"RSA": ("e", "kty", "n"), "EC": ("crv", "kty", "x", "y")}.get(jwk.get("kty", ""))
    if members is None:
        raise ValueError("thumbprints are defined here for RSA and EC keys only")
    canonical = json.dumps({m: jwk[m] for m in members}, separators=(",", ":"), sort_keys=True)
    return _b64url(hashlib.sha256(canonical.encode("utf-8")).digest())


def generate_private_key(alg: str) -> rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey:
    """A fresh private key for ``alg`` (RSA 3072 bits for RS*, the matching curve for ES*)."""
    if alg not in SIGNING_ALGORITHMS:
        raise ValueError(f"cannot generate a signing key for {alg}")
    if alg.startswith("RS"):
        return rsa.generate_private_key(public_exponent=65537, key_size=RSA_BITS)
    return ec.generate_private_key(_CURVES[EC_CURVES[alg]]())


@dataclass(frozen=True, eq=False)
class SigningKey:
    """One of the issuer's keys: signs until ``not_after``, verifies until ``not_after`` +
    grace."""

    kid: str
    alg: str
    created_at: float
    not_after: float
    private_pem: bytes = field(repr=False)
    public: Mapping[str, str] = field(repr=False)

    def can_sign(self, now: float) -> bool:
        """Whether this key may sign a token issued at ``now``."""
        return now < self.not_after

    def public_jwk(self) -> dict[str, str]:
        """The public JWK as published: bare key members plus kid, alg and use."""
        return {**self.public, "kid": self.kid, "alg": self.alg, "use": "sig"}


def _check_private(path: Path, *, directory: bool) -> None:
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        wanted = "700" if directory else "600"
        raise KeyStoreError(
            f"{path} is readable by other users (mode {mode:o}); run chmod {wanted} on it"
        )


def _iso(epoch: float) -> str:
    return to_datetime(epoch).isoformat()


def _epoch(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


class KeyStore:
    """The issuer's signing keys in one directory; also a ``KeySource`` for verification.

    ``current()`` returns the key to sign with, generating one on first use or when the
    current key has reached ``not_after`` (or the configured algorithm changed). ``rotate()``
    retires every signing key now and creates a new one. Other processes sharing the directory
    (``careregister keys rotate``, other workers) are picked up: the directory is re-read when
    its modification time changes.
    """

    def __init__(
        self,
        directory: Path,
        *,
        algorithm: str = "ES384",
        key_lifetime: float = DEFAULT_KEY_LIFETIME,
        verify_grace: float = 3600.0,
        clock: Clock = system_clock,
    ) -> None:
        if algorithm not in SIGNING_ALGORITHMS:
            raise ValueError(f"signing algorithm must be one of {sorted(SIGNING_ALGORITHMS)}")
        if key_lifetime <= 0 or verify_grace < 0:
            raise ValueError("key_lifetime must be positive and verify_grace not negative")
        self.directory = Path(directory)
        self.algorithm = algorithm
        self.key_lifetime = key_lifetime
        self.verify_grace = verify_grace
        self._clock = clock
        self._keys: dict[str, SigningKey] = {}
        self._seen_mtime: int | None = None
        self._mutex = threading.RLock()  # threads of one process; the file lock covers others

    # -- public API ---------------------------------------------------------------------

    def current(self) -> SigningKey:
        """The key to sign with now; generated (under a lock) when there is none."""
        with self._mutex:
            self._reload_if_changed()
            key = self._newest_signer(self._clock())
            if key is not None:
                return key
            with self._locked():
                self._reload()
                now = self._clock()
                key = self._newest_signer(now)
                if key is None:
                    key = self._create(now)
                return key

    def rotate(self) -> SigningKey:
        """Retire every key that can still sign and make a new current key.

        Retired keys keep verifying for ``verify_grace`` seconds, so tokens they signed stay
        valid until they expire. Keys past that horizon are deleted.
        """
        with self._mutex, self._locked():
            self._reload()
            now = self._clock()
            for key in list(self._keys.values()):
                if key.not_after > now:
                    self._write(replace(key, not_after=now))
            new_key = self._create(now)
            self._prune_locked(now)
            return new_key

    def prune(self) -> list[str]:
        """Delete keys that can no longer verify any valid token; their kids."""
        with self._mutex, self._locked():
            self._reload()
            return self._prune_locked(self._clock())

    def verification_keys(self) -> list[SigningKey]:
        """Keys whose signatures are still accepted, newest first."""
        with self._mutex:
            self._reload_if_changed()
            now = self._clock()
            live = [k for k in self._keys.values() if now <= k.not_after + self.verify_grace]
        return sorted(live, key=lambda k: (k.created_at, k.kid), reverse=True)

    def jwks(self) -> dict[str, list[dict[str, str]]]:
        """The public JWK set to publish at ``/auth/jwks``: every key that still verifies."""
        return {"keys": [key.public_jwk() for key in self.verification_keys()]}

    def key_for(self, kid: str) -> Mapping[str, Any] | None:
        """``KeySource``: the public JWK with this kid if it still verifies, else ``None``."""
        for key in self.verification_keys():
            if key.kid == kid:
                return key.public_jwk()
        return None

    # -- internals ----------------------------------------------------------------------

    def _newest_signer(self, now: float) -> SigningKey | None:
        signers = [k for k in self._keys.values() if k.alg == self.algorithm and k.can_sign(now)]
        return max(signers, key=lambda k: (k.created_at, k.kid), default=None)

    def _ensure_directory(self) -> None:
        if not self.directory.exists():
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            os.chmod(self.directory, 0o700)
        _check_private(self.directory, directory=True)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self._ensure_directory()
        fd = os.open(self.directory / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def _reload_if_changed(self) -> None:
        try:
            mtime = self.directory.stat().st_mtime_ns
        except FileNotFoundError:
            return
        if mtime != self._seen_mtime:
            self._reload()

    def _reload(self) -> None:
        if not self.directory.exists():
            self._keys = {}
            return
        _check_private(self.directory, directory=True)
        mtime = self.directory.stat().st_mtime_ns
        keys: dict[str, SigningKey] = {}
        for path in sorted(self.directory.glob("*.json")):
            key = self._read(path)
            keys[key.kid] = key
        self._keys = keys
        self._seen_mtime = mtime

    def _read(self, path: Path) -> SigningKey:
        _check_private(path, directory=False)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            pem = data["private_key"].encode("ascii")
            private = serialization.load_pem_private_key(pem, password=None)
            public = public_jwk(private.public_key())  # type: ignore[arg-type]
            kid = jwk_thumbprint(public)
            alg = data["alg"]
            if kid != data["kid"] or path.stem != kid or alg not in SIGNING_ALGORITHMS:
                raise ValueError("kid or algorithm does not match the key")
            fits = (
                (public.get("crv") == EC_CURVES[alg])
                if alg.startswith("ES")
                else (public["kty"] == "RSA")
            )
            if not fits:
                raise ValueError("the key is not of the kind its algorithm needs")
            return SigningKey(
                kid=kid,
                alg=data["alg"],
                created_at=_epoch(data["created_at"]),
                not_after=_epoch(data["not_after"]),
                private_pem=pem,
                public=public,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise KeyStoreError(f"{path} is not a usable signing key: {exc}") from None

    def _create(self, now: float) -> SigningKey:
        private = generate_private_key(self.algorithm)
        pem = private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        public = public_jwk(private.public_key())
        key = SigningKey(
            kid=jwk_thumbprint(public),
            alg=self.algorithm,
            created_at=now,
            not_after=now + self.key_lifetime,
            private_pem=pem,
            public=public,
        )
        self._write(key)
        log.info("generated signing key %s (%s)", key.kid, key.alg)
        return key

    def _write(self, key: SigningKey) -> None:
        """Write a key file atomically with mode 0600 (temp file, fsync, rename)."""
        self._ensure_directory()
        body = json.dumps(
            {
                "kid": key.kid,
                "alg": key.alg,
                "created_at": _iso(key.created_at),
                "not_after": _iso(key.not_after),
                "private_key": key.private_pem.decode("ascii"),
            },
            indent=2,
        ).encode("utf-8")
        final = self.directory / f"{key.kid}.json"
        temp = self.directory / f".{key.kid}.json.tmp"
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.fchmod(fd, 0o600)
            os.write(fd, body)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temp, final)
        self._keys[key.kid] = key

    def _prune_locked(self, now: float) -> list[str]:
        gone = [k.kid for k in self._keys.values() if now > k.not_after + self.verify_grace]
        for kid in gone:
            with contextlib.suppress(FileNotFoundError):
                (self.directory / f"{kid}.json").unlink()
            del self._keys[kid]
            log.info("deleted expired signing key %s", kid)
        return gone
