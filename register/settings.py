"""The register's settings: one class, read from ``REGISTER_*`` environment variables.

Every setting is listed in the README's settings table; ``tests/test_settings_doc.py`` keeps the
two in step.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field, field_validator
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
    db_pool_size: int = Field(default=10, ge=1, description="Connections kept per process.")

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
