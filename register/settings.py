"""The register's settings: one class, read from ``REGISTER_*`` environment variables.

Every setting is listed in the README's settings table; ``tests/test_deployment_files.py`` keeps the
two in step.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Configuration of one register instance."""

    model_config = SettingsConfigDict(env_prefix="REGISTER_", env_file=None, extra="ignore")

    data_dir: Path = Field(
        default=Path("./var"),
        description="Directory for the embedded database, signing keys and other local state.",
    )
    database_url: str | None = Field(
        default=None,
        description=(
            "SQLAlchemy URL of the store: `sqlite:///path` (embedded default, under the data "
            "directory) or `postgresql+psycopg://user:pass@host/db`."
        ),
    )
    base_url: str | None = Field(
        default=None,
        description=(
            "Public base URL of the FHIR API (e.g. `https://register.example.nhs.uk/fhir`). "
            "Unset: taken from each request, so links follow the address the client used."
        ),
    )
    max_body_bytes: int = Field(
        default=10 * 1024 * 1024, ge=1024, description="Largest request body accepted (413 above)."
    )
    max_json_depth: int = Field(
        default=64, ge=8, le=512, description="Deepest JSON nesting accepted in a request body."
    )
    default_page_size: int = Field(default=20, ge=1, description="`_count` when none is given.")
    max_page_size: int = Field(default=1000, ge=1, description="Largest `_count` honoured.")
    host: str = Field(default="127.0.0.1", description="Address `careregister serve` binds to.")
    port: int = Field(default=8080, ge=1, le=65535, description="Port `careregister serve` binds.")
    workers: int = Field(default=1, ge=1, description="Processes `careregister serve` starts.")
    log_level: str = Field(default="info", description="Log level: debug, info, warning, error.")
    db_pool_size: int = Field(
        default=10,
        ge=1,
        description=(
            "Connections kept per process, and how many requests' database work runs at once."
        ),
    )
    audit_enabled: bool = Field(
        default=True,
        description=(
            "Record an audit event for every FHIR request and load step. Only for measuring "
            "what auditing costs (benchmarks/bench_audit.py); a production register never "
            "turns it off."
        ),
    )
    duplicates_dir: Path | None = Field(
        default=None,
        description=(
            "Folder of the duplicate rules' data files (retest intervals, medicines, question "
            "concepts). Unset: the files shipped in register/data/duplicates."
        ),
    )

    # ---- auth: identity settings (owned by auth/; keep this block together) ------------------
    auth_issuer: str | None = Field(
        default=None,
        description=(
            "`iss` of the register's own access tokens (the embedded issuer). Unset: "
            "`<base_url>/auth`."
        ),
    )
    auth_audience: str | None = Field(
        default=None,
        description="`aud` access tokens must carry: the FHIR base URL. Unset: `base_url`.",
    )
    auth_allowed_algorithms: list[str] = Field(
        default=["RS256", "RS384", "ES256", "ES384"],
        description=(
            "JWS algorithms accepted on access tokens and client assertions. Only RS256/384/512 "
            "and ES256/384/512 may be listed; `none` and HS* are refused at start-up."
        ),
    )
    auth_signing_algorithm: Literal["ES384", "RS384", "ES256", "RS256"] = Field(
        default="ES384", description="Algorithm of the embedded issuer's signing keys."
    )
    auth_signing_key_days: int = Field(
        default=90,
        ge=1,
        le=3650,
        description="Days a signing key signs before a new one is generated automatically.",
    )
    auth_clock_skew_seconds: int = Field(
        default=60,
        ge=0,
        le=300,
        description="Leeway allowed on `exp`, `nbf` and `iat` for clocks that disagree.",
    )
    auth_token_lifetime_seconds: int = Field(
        default=300, ge=60, le=24 * 3600, description="Lifetime of issued access tokens."
    )
    auth_external_issuer: str | None = Field(
        default=None,
        description="`iss` of an external identity provider whose tokens are also accepted.",
    )
    auth_external_jwks_url: str | None = Field(
        default=None,
        description="JWKS URL (https) of that provider; cached, refetched once on an unknown kid.",
    )
    auth_jwks_cache_seconds: int = Field(
        default=300,
        ge=0,
        le=86400,
        description="Longest a fetched JWKS is reused (less if its Cache-Control says so).",
    )
    auth_jwks_min_refresh_seconds: int = Field(
        default=30,
        ge=1,
        le=3600,
        description="Fewest seconds between two fetches of one JWKS URL (unknown-kid floods).",
    )
    auth_break_glass_minutes: int = Field(
        default=240,
        ge=5,
        le=24 * 60,
        description="How long emergency (break-glass) access lasts once declared (4 hours).",
    )
    auth_relationship_window_days: int = Field(
        default=30,
        ge=1,
        le=3650,
        description="Days after an encounter ends that it still counts as a care relationship.",
    )
    consent_default_model: Literal["opt-out", "opt-in"] = Field(
        default="opt-out",
        description=(
            "Sharing when a patient's Consent says nothing: `opt-out` (implied consent for "
            "direct care, shared unless withheld) or `opt-in` (shared only where permitted)."
        ),
    )

    auth_password_login: bool = Field(
        default=True,
        description=(
            "Whether `/auth/token` accepts `grant_type=password` for users on the register "
            "(the embedded login the demo's people use). Switch off when people sign in "
            "through an external identity provider."
        ),
    )

    @field_validator("auth_allowed_algorithms")
    @classmethod
    def _only_asymmetric_algorithms(cls, value: list[str]) -> list[str]:
        allowed = {"RS256", "RS384", "RS512", "ES256", "ES384", "ES512"}
        refused = sorted(set(value) - allowed)
        if refused or not value:
            raise ValueError(
                f"auth_allowed_algorithms may list only {sorted(allowed)}; refused: {refused}"
            )
        return value

    @field_validator("auth_issuer", "auth_audience", "auth_external_issuer")
    @classmethod
    def _strip_auth_url_slash(cls, value: str | None) -> str | None:
        return value.rstrip("/") if value else value

    @model_validator(mode="after")
    def _external_issuer_pairs(self) -> Settings:
        if (self.auth_external_issuer is None) != (self.auth_external_jwks_url is None):
            raise ValueError("auth_external_issuer and auth_external_jwks_url go together")
        return self

    # ---- end of auth block ---------------------------------------------------------------------

    # ---- web: the pages (owned by register/web/; keep this block together) --------------------
    web_assets_dir: Path = Field(
        default=Path("var/web-assets"),
        description="Folder `careregister assets` unpacks the npm front-end packages into.",
    )
    web_session_minutes: int = Field(
        default=30, ge=1, le=24 * 60, description="Minutes a page session lasts without use."
    )
    web_demo_login: bool = Field(
        default=True,
        description="Whether the sign-in page offers the embedded login (and lists demo users).",
    )
    web_oidc_issuer: str | None = Field(
        default=None,
        description="External OpenID Connect provider (e.g. NHS login) for patients: its `iss`.",
    )
    web_oidc_client_id: str | None = Field(default=None, description="Client id at the provider.")
    web_oidc_client_secret: str | None = Field(
        default=None, description="Client secret at the provider (unset: a public client, PKCE)."
    )
    web_oidc_authorization_endpoint: str | None = Field(
        default=None, description="The provider's authorization endpoint (https)."
    )
    web_oidc_token_endpoint: str | None = Field(
        default=None, description="The provider's token endpoint (https)."
    )
    web_oidc_jwks_url: str | None = Field(
        default=None, description="The provider's JWKS URL the id_token is verified against."
    )
    web_oidc_scope: str = Field(
        default="openid profile", description="Scopes asked of the provider."
    )
    web_oidc_nhs_number_claim: str = Field(
        default="nhs_number",
        description="id_token claim holding the NHS number that names the patient's record.",
    )

    @property
    def web_oidc_enabled(self) -> bool:
        """Whether an external OpenID Connect provider is configured (all its settings set)."""
        return all(
            (
                self.web_oidc_issuer,
                self.web_oidc_client_id,
                self.web_oidc_authorization_endpoint,
                self.web_oidc_token_endpoint,
                self.web_oidc_jwks_url,
            )
        )

    # ---- end of web block ----------------------------------------------------------------------

    @field_validator("base_url")
    @classmethod
    def _strip_trailing_slash(cls, value: str | None) -> str | None:
        return value.rstrip("/") if value else value

    @property
    def resolved_database_url(self) -> str:
        """The database URL in use: the configured one, or the embedded SQLite file."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'register.sqlite3').resolve()}"

    @property
    def is_sqlite(self) -> bool:
        """Whether the store is the embedded SQLite database."""
        return self.resolved_database_url.startswith("sqlite")


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment."""
    return Settings()
