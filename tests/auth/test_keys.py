"""The embedded issuer's keys: files and permissions, kids, rotation and expiry."""

from __future__ import annotations

import json
import os
import stat
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from auth.errors import TokenError, TokenErrorReason
from auth.keys import KeyStore, KeyStoreError, jwk_thumbprint
from auth.tokens import TokenIssuer, TokenVerifier
from tests.auth.helpers import FakeClock, segments


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def key_files(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.json"))


def test_rfc7638_example_thumbprint() -> None:
    # The worked example of RFC 7638 section 3.1.
    jwk = {
        "kty": "RSA",
        "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSo"
        "c_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65Y"
        "GjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrd"
        "kt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnq"
        "DKgw",
        "e": "AQAB",
        "alg": "RS256",
        "kid": "2011-04-29",
    }
    assert jwk_thumbprint(jwk) == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


def test_first_use_creates_private_directory_and_key_file(
    key_store: KeyStore, key_dir: Path
) -> None:
    assert not key_dir.exists()
    key = key_store.current()
    assert key_dir.is_dir()
    assert mode(key_dir) == 0o700
    files = key_files(key_dir)
    assert [f.name for f in files] == [f"{key.kid}.json"]
    assert mode(files[0]) == 0o600
    assert mode(key_dir / ".lock") == 0o600


def test_files_are_0600_even_with_a_permissive_umask(key_dir: Path, clock: FakeClock) -> None:
    old = os.umask(0)
    try:
        store = KeyStore(key_dir, clock=clock)
        store.current()
        store.rotate()
    finally:
        os.umask(old)
    assert mode(key_dir) == 0o700
    assert {mode(f) for f in key_files(key_dir)} == {0o600}


def test_kid_is_the_thumbprint_of_the_published_key(key_store: KeyStore) -> None:
    key = key_store.current()
    (published,) = key_store.jwks()["keys"]
    assert published["kid"] == key.kid == jwk_thumbprint(published)
    assert published["alg"] == "ES384" and published["use"] == "sig"
    assert published["crv"] == "P-384"
    assert "d" not in published  # never the private part


def test_a_second_store_on_the_same_directory_reuses_the_key(
    key_store: KeyStore, key_dir: Path, clock: FakeClock
) -> None:
    first = key_store.current()
    again = KeyStore(key_dir, clock=clock).current()
    assert again.kid == first.kid
    assert len(key_files(key_dir)) == 1


def test_refuses_a_key_file_readable_by_others(
    key_store: KeyStore, key_dir: Path, clock: FakeClock
) -> None:
    key = key_store.current()
    os.chmod(key_dir / f"{key.kid}.json", 0o644)
    with pytest.raises(KeyStoreError, match="chmod 600"):
        KeyStore(key_dir, clock=clock).current()


def test_refuses_a_key_directory_open_to_others(
    key_store: KeyStore, key_dir: Path, clock: FakeClock
) -> None:
    key_store.current()
    os.chmod(key_dir, 0o755)
    with pytest.raises(KeyStoreError, match="chmod 700"):
        KeyStore(key_dir, clock=clock).current()


def test_refuses_a_key_file_whose_kid_does_not_match(
    key_store: KeyStore, key_dir: Path, clock: FakeClock
) -> None:
    key = key_store.current()
    path = key_dir / f"{key.kid}.json"
    data = json.loads(path.read_text())
    data["kid"] = "someone-elses-kid"
    path.write_text(json.dumps(data))
    with pytest.raises(KeyStoreError, match="not a usable signing key"):
        KeyStore(key_dir, clock=clock).current()


def test_rotation_keeps_old_tokens_valid_and_signs_with_the_new_kid(
    key_store: KeyStore,
    issuer: TokenIssuer,
    verifier: TokenVerifier,
    clock: FakeClock,
    clinician_token,
) -> None:
    old_token = clinician_token()
    old_kid = segments(old_token)[0]["kid"]

    clock.advance(10)
    new_key = key_store.rotate()
    new_token = clinician_token()

    assert new_key.kid != old_kid
    assert segments(new_token)[0]["kid"] == new_key.kid
    assert {k["kid"] for k in key_store.jwks()["keys"]} == {old_kid, new_key.kid}
    assert verifier.verify(old_token)["sub"] == "user-123"
    assert verifier.verify(new_token)["sub"] == "user-123"


def test_retired_key_leaves_the_jwks_once_its_tokens_cannot_be_valid(
    key_store: KeyStore,
    verifier: TokenVerifier,
    clock: FakeClock,
    key_dir: Path,
    clinician_token,
) -> None:
    old_token = clinician_token()
    old_kid = segments(old_token)[0]["kid"]
    key_store.rotate()

    clock.advance(360)  # exactly the grace (token lifetime 300 + skew 60): still published
    assert old_kid in {k["kid"] for k in key_store.jwks()["keys"]}

    clock.advance(1)
    assert old_kid not in {k["kid"] for k in key_store.jwks()["keys"]}
    with pytest.raises(TokenError) as caught:
        verifier.verify(old_token)
    # refused as expired before any key is looked up (no signature work for old tokens)
    assert caught.value.reason is TokenErrorReason.EXPIRED

    assert key_store.prune() == [old_kid]
    assert not (key_dir / f"{old_kid}.json").exists()


def test_a_key_past_not_after_is_replaced_automatically(key_dir: Path, clock: FakeClock) -> None:
    store = KeyStore(key_dir, key_lifetime=3600, verify_grace=360, clock=clock)
    first = store.current()
    clock.advance(3599)
    assert store.current().kid == first.kid
    clock.advance(1)
    second = store.current()
    assert second.kid != first.kid
    assert {k.kid for k in store.verification_keys()} == {first.kid, second.kid}


def test_rotation_by_another_process_is_picked_up(key_dir: Path, clock: FakeClock) -> None:
    serving = KeyStore(key_dir, clock=clock)
    cli = KeyStore(key_dir, clock=clock)
    before = serving.current()
    rotated = cli.rotate()
    assert serving.current().kid == rotated.kid != before.kid
    assert serving.key_for(rotated.kid) is not None


def test_changing_the_algorithm_generates_a_key_of_that_kind(
    key_store: KeyStore, key_dir: Path, clock: FakeClock
) -> None:
    es = key_store.current()
    rs = KeyStore(key_dir, algorithm="RS384", clock=clock).current()
    assert (es.alg, rs.alg) == ("ES384", "RS384")
    published = {k["kid"]: k for k in KeyStore(key_dir, clock=clock).jwks()["keys"]}
    assert published[rs.kid]["kty"] == "RSA"
    assert published[rs.kid]["kid"] == jwk_thumbprint(published[rs.kid])


def test_refuses_symmetric_or_unknown_algorithms(key_dir: Path) -> None:
    for alg in ("HS256", "none", "PS256"):
        with pytest.raises(ValueError):
            KeyStore(key_dir, algorithm=alg)


def test_concurrent_first_use_generates_one_key(key_dir: Path, clock: FakeClock) -> None:
    """Workers starting together (separate stores, one directory) agree on a single key."""
    stores = [KeyStore(key_dir, clock=clock) for _ in range(8)]
    barrier = threading.Barrier(len(stores))

    def first_use(store: KeyStore) -> str:
        barrier.wait()
        return store.current().kid

    with ThreadPoolExecutor(len(stores)) as pool:
        kids = set(pool.map(first_use, stores))
    assert len(kids) == 1
    assert len(key_files(key_dir)) == 1


def test_one_store_is_safe_to_share_between_threads(key_store: KeyStore) -> None:
    def work(i: int) -> int:
        if i % 10 == 0:
            key_store.rotate()
        return len(key_store.jwks()["keys"]) + len(key_store.current().kid)

    with ThreadPoolExecutor(8) as pool:
        assert all(n > 0 for n in pool.map(work, range(40)))


def test_refuses_a_key_file_whose_algorithm_does_not_fit_the_key(
    key_store: KeyStore, key_dir: Path, clock: FakeClock
) -> None:
    key = key_store.current()  # an ES384 (P-384) key
    path = key_dir / f"{key.kid}.json"
    for wrong in ("RS384", "ES256"):
        data = json.loads(path.read_text())
        data["alg"] = wrong
        path.write_text(json.dumps(data))
        with pytest.raises(KeyStoreError, match="not a usable signing key"):
            KeyStore(key_dir, clock=clock).current()
