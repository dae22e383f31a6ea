"""SMART Backend Services client assertions (private_key_jwt): the happy path and each attack."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from auth import jws
from auth.client_assertion import (
    CLIENT_ASSERTION_TYPE,
    ClientAssertionValidator,
    ClientKeys,
    InMemoryJtiStore,
    StaticClients,
)
from auth.errors import TokenError, TokenErrorReason
from auth.jwks import JwkSet, RemoteJwks
from auth.keys import generate_private_key, jwk_thumbprint, public_jwk
from tests.auth.helpers import AUDIENCE, START, TOKEN_ENDPOINT, FakeClock, b64url_json, sign_raw

LAB_JWKS_URL = "https://lab.example.nhs.uk/.well-known/jwks.json"


@dataclass
class Client:
    """A backend client as the tests see it: its id and its private key."""

    client_id: str
    private: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
    alg: str

    @property
    def jwk(self) -> dict[str, str]:
        return public_jwk(self.private.public_key())

    @property
    def kid(self) -> str:
        return jwk_thumbprint(self.jwk)

    def assertion(self, *, header: dict[str, Any] | None = None, **claims: Any) -> str:
        body: dict[str, Any] = {
            "iss": self.client_id,
            "sub": self.client_id,
            "aud": TOKEN_ENDPOINT,
            "exp": int(START) + 240,
            "iat": int(START),
            "jti": f"jti-{self.client_id}-1",
        }
        body.update(claims)
        body = {k: v for k, v in body.items() if v is not None}
        head = {"alg": self.alg, "typ": "JWT", "kid": self.kid}
        head.update(header or {})
        return sign_raw(head, body, self.private)


@pytest.fixture(scope="module")
def lab() -> Client:
    return Client("lab-feed", generate_private_key("ES384"), "ES384")


@pytest.fixture(scope="module")
def gp_system() -> Client:
    return Client("gp-system", generate_private_key("RS384"), "RS384")


@pytest.fixture
def jti_store(clock: FakeClock) -> InMemoryJtiStore:
    return InMemoryJtiStore(clock)


@pytest.fixture
def validator(
    lab: Client, gp_system: Client, jti_store: InMemoryJtiStore, clock: FakeClock
) -> ClientAssertionValidator:
    clients = StaticClients(
        {
            lab.client_id: ClientKeys(
                lab.client_id, JwkSet([{**lab.jwk, "kid": lab.kid}]), jwks_url=LAB_JWKS_URL
            ),
            gp_system.client_id: ClientKeys(
                gp_system.client_id, JwkSet([{**gp_system.jwk, "kid": gp_system.kid}])
            ),
        }
    )
    return ClientAssertionValidator(
        clients, jti_store, token_endpoint=TOKEN_ENDPOINT, clock_skew=60, clock=clock
    )


def refused(validator: ClientAssertionValidator, assertion: str, **kwargs: Any) -> TokenErrorReason:
    kwargs.setdefault("assertion_type", CLIENT_ASSERTION_TYPE)
    with pytest.raises(TokenError) as caught:
        validator.validate(assertion, **kwargs)
    assert assertion.split(".")[1] not in str(caught.value)
    return caught.value.reason


def accept(validator: ClientAssertionValidator, assertion: str, **kwargs: Any):
    return validator.validate(assertion, assertion_type=CLIENT_ASSERTION_TYPE, **kwargs)


# -- accepted --------------------------------------------------------------------------------


def test_es384_assertion_authenticates_the_client(validator, lab: Client) -> None:
    verified = accept(validator, lab.assertion())
    assert verified.client_id == "lab-feed"
    assert verified.kid == lab.kid and verified.alg == "ES384"
    assert verified.jti == "jti-lab-feed-1"


def test_rs384_assertion_authenticates_the_client(validator, gp_system: Client) -> None:
    assert accept(validator, gp_system.assertion(), client_id="gp-system").client_id == (
        "gp-system"
    )


def test_assertion_signed_by_our_own_api_is_accepted(validator, lab: Client) -> None:
    from cryptography.hazmat.primitives import serialization

    pem = lab.private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    claims = {
        "iss": lab.client_id,
        "sub": lab.client_id,
        "aud": TOKEN_ENDPOINT,
        "exp": int(START) + 60,
        "jti": "via-auth-jws",
    }
    token = jws.sign(claims, pem, alg="ES384", kid=lab.kid)
    assert accept(validator, token).jti == "via-auth-jws"


def test_audience_may_be_a_list_containing_the_token_endpoint(validator, lab: Client) -> None:
    assert accept(validator, lab.assertion(aud=[TOKEN_ENDPOINT, "https://x.example"]))


def test_assertion_without_iat_is_judged_by_exp_alone(validator, lab: Client) -> None:
    assert accept(validator, lab.assertion(iat=None, exp=int(START) + 300))


def test_matching_jku_is_accepted(validator, lab: Client) -> None:
    assert accept(validator, lab.assertion(header={"jku": LAB_JWKS_URL}))


def test_client_keys_behind_a_jwks_url(lab: Client, clock: FakeClock) -> None:
    calls: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request.headers["accept"])
        return httpx.Response(200, json={"keys": [{**lab.jwk, "kid": lab.kid}]})

    remote = RemoteJwks(
        LAB_JWKS_URL, client=httpx.Client(transport=httpx.MockTransport(handler)), clock=clock
    )
    validator = ClientAssertionValidator(
        StaticClients({lab.client_id: ClientKeys(lab.client_id, remote, LAB_JWKS_URL)}),
        InMemoryJtiStore(clock),
        token_endpoint=TOKEN_ENDPOINT,
        clock=clock,
    )
    assert accept(validator, lab.assertion()).client_id == lab.client_id
    assert calls == ["application/json"]


# -- the attacks -----------------------------------------------------------------------------


def test_replayed_assertion_is_refused(validator, lab: Client) -> None:
    assertion = lab.assertion()
    accept(validator, assertion)
    assert refused(validator, assertion) is TokenErrorReason.REPLAYED
    # a new assertion reusing the jti is a replay too
    assert refused(validator, lab.assertion(exp=int(START) + 200)) is TokenErrorReason.REPLAYED


def test_jti_is_tracked_per_client(validator, lab: Client, gp_system: Client) -> None:
    accept(validator, lab.assertion(jti="shared"))
    assert accept(validator, gp_system.assertion(jti="shared"))


def test_a_forged_assertion_does_not_use_up_the_jti(
    validator, lab: Client, gp_system: Client
) -> None:
    forged = sign_raw(
        {"alg": "ES384", "kid": lab.kid},
        {
            "iss": lab.client_id,
            "sub": lab.client_id,
            "aud": TOKEN_ENDPOINT,
            "exp": int(START) + 60,
            "jti": "precious",
        },
        generate_private_key("ES384"),
    )
    assert refused(validator, forged) is TokenErrorReason.BAD_SIGNATURE
    assert accept(validator, lab.assertion(jti="precious"))


@pytest.mark.parametrize(
    ("claims", "expected"),
    [
        ({"exp": int(START) + 301 + 60}, TokenErrorReason.LIFETIME_TOO_LONG),  # > 5 min from now
        ({"exp": int(START) + 3600}, TokenErrorReason.LIFETIME_TOO_LONG),
        ({"iat": None, "exp": int(START) + 3600}, TokenErrorReason.LIFETIME_TOO_LONG),
        (
            {"iat": int(START) + 3000, "exp": int(START) + 3200},  # short, but far ahead
            TokenErrorReason.LIFETIME_TOO_LONG,
        ),
        ({"iat": int(START) - 100, "exp": int(START) + 201}, TokenErrorReason.LIFETIME_TOO_LONG),
        ({"iat": int(START) + 120}, TokenErrorReason.ISSUED_IN_FUTURE),
    ],
)
def test_assertion_living_longer_than_five_minutes_is_refused(
    validator, lab: Client, claims, expected
) -> None:
    assert refused(validator, lab.assertion(**claims)) is expected


def test_assertion_at_exactly_five_minutes_is_accepted(validator, lab: Client) -> None:
    assert accept(validator, lab.assertion(iat=int(START), exp=int(START) + 300))


def test_assertion_signed_with_another_clients_key_is_refused(
    validator, lab: Client, gp_system: Client
) -> None:
    claims = {
        "iss": lab.client_id,
        "sub": lab.client_id,
        "aud": TOKEN_ENDPOINT,
        "exp": int(START) + 60,
        "jti": "x",
    }
    # gp-system's key and kid, claiming to be lab-feed: that kid is not in lab-feed's set
    with_other_kid = sign_raw({"alg": "RS384", "kid": gp_system.kid}, claims, gp_system.private)
    assert refused(validator, with_other_kid) is TokenErrorReason.UNKNOWN_KID
    # another client's key presented under lab-feed's kid: the signature does not verify
    other_es = Client("other", generate_private_key("ES384"), "ES384")
    with_our_kid = sign_raw({"alg": "ES384", "kid": lab.kid}, claims, other_es.private)
    assert refused(validator, with_our_kid) is TokenErrorReason.BAD_SIGNATURE


def test_expired_assertion_is_refused(validator, lab: Client, clock: FakeClock) -> None:
    assertion = lab.assertion(exp=int(START) + 60)
    clock.advance(121)
    assert refused(validator, assertion) is TokenErrorReason.EXPIRED


def test_not_yet_valid_assertion_is_refused(validator, lab: Client) -> None:
    assert refused(validator, lab.assertion(nbf=int(START) + 120)) is (
        TokenErrorReason.NOT_YET_VALID
    )


@pytest.mark.parametrize("aud", [AUDIENCE, TOKEN_ENDPOINT + "/", "https://evil.example/token"])
def test_wrong_audience_is_refused(validator, lab: Client, aud: str) -> None:
    assert refused(validator, lab.assertion(aud=aud)) is TokenErrorReason.WRONG_AUDIENCE


def test_sub_must_equal_iss(validator, lab: Client) -> None:
    assert refused(validator, lab.assertion(sub="gp-system")) is TokenErrorReason.INVALID_CLAIM


def test_client_id_parameter_must_match_the_issuer(validator, lab: Client) -> None:
    assert refused(validator, lab.assertion(), client_id="gp-system") is (
        TokenErrorReason.WRONG_ISSUER
    )


def test_unknown_or_disabled_client_is_refused(validator, clock: FakeClock) -> None:
    stranger = Client("stranger", generate_private_key("ES384"), "ES384")
    assert refused(validator, stranger.assertion()) is TokenErrorReason.UNKNOWN_CLIENT


@pytest.mark.parametrize("missing", ["jti", "exp", "iss", "aud"])
def test_missing_claims_are_refused(validator, lab: Client, missing: str) -> None:
    assert refused(validator, lab.assertion(**{missing: None})) is TokenErrorReason.MISSING_CLAIM


def test_wrong_assertion_type_is_refused(validator, lab: Client) -> None:
    assert refused(
        validator,
        lab.assertion(),
        assertion_type="urn:ietf:params:oauth:client-assertion-type:saml2-bearer",
    ) is (TokenErrorReason.WRONG_ASSERTION_TYPE)


def test_unregistered_jku_is_refused(validator, lab: Client, gp_system: Client) -> None:
    assert refused(validator, lab.assertion(header={"jku": "https://evil.example/jwks"})) is (
        TokenErrorReason.KEY_MISMATCH
    )
    # gp-system registered a JWK set, no URL: any jku is refused
    assert refused(validator, gp_system.assertion(header={"jku": LAB_JWKS_URL})) is (
        TokenErrorReason.KEY_MISMATCH
    )


def test_typ_other_than_jwt_is_refused(validator, lab: Client) -> None:
    assert refused(validator, lab.assertion(header={"typ": "at+jwt"})) is (
        TokenErrorReason.WRONG_TYPE
    )


@pytest.mark.parametrize("alg", ["none", "HS256"])
def test_unsigned_or_hmac_assertions_are_refused(validator, lab: Client, alg: str) -> None:
    header = {"alg": alg, "typ": "JWT", "kid": lab.kid}
    body = {
        "iss": lab.client_id,
        "sub": lab.client_id,
        "aud": TOKEN_ENDPOINT,
        "exp": int(START) + 60,
        "jti": "x",
    }
    token = f"{b64url_json(header)}.{b64url_json(body)}.c2lnbmF0dXJl"
    assert refused(validator, token) is TokenErrorReason.ALGORITHM_NOT_ALLOWED


def test_validator_refuses_symmetric_configuration(jti_store) -> None:
    with pytest.raises(ValueError):
        ClientAssertionValidator(
            StaticClients({}),
            jti_store,
            token_endpoint=TOKEN_ENDPOINT,
            allowed_algorithms=["HS256"],
        )
    with pytest.raises(ValueError):
        ClientAssertionValidator(
            StaticClients({}), jti_store, token_endpoint=TOKEN_ENDPOINT, max_lifetime=600
        )


def test_in_memory_jti_store_forgets_expired_entries(clock: FakeClock) -> None:
    store = InMemoryJtiStore(clock)
    assert store.remember("c", "j", START + 10)
    assert not store.remember("c", "j", START + 10)
    clock.advance(11)
    assert store.remember("c", "other", START + 100)
    assert len(store) == 1
    assert store.remember("c", "j", START + 100)
