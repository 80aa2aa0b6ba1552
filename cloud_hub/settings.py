"""HubSettings: defaults < hub.yaml < CAMPUS_HUB_ environment (``__`` nests) < CLI flags."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from campus_config import (
    PLACEHOLDER_SECRETS,
    LayeredSettings,
    Section,
    TlsSettings,
    load_layered,
)

DEFAULT_DATABASE_URL = "sqlite:///./var/hub/hub.db"
_POSTGRES_SCHEMES = ("postgres://", "postgresql://", "postgresql+psycopg2://")


class BrokerSettings(Section):
    """The hub broker. ``client_id`` must be stable (persistent session) and unique per worker."""

    host: str = "127.0.0.1"
    port: int = Field(default=1883, ge=1, le=65535)
    username: str = "hub"
    password: SecretStr = SecretStr("")
    tls: TlsSettings | None = None
    client_id: str = Field(default="campus-hub", min_length=1, max_length=64)
    keepalive_s: int = Field(default=30, ge=5, le=3600)


class ApiSettings(Section):
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)


class HubSettings(LayeredSettings):
    """Everything one hub process needs; ``role`` picks the tier it runs at."""

    model_config = SettingsConfigDict(
        env_prefix="CAMPUS_HUB_", env_nested_delimiter="__", extra="forbid"
    )

    role: Literal["regional", "central"] = "regional"
    database_url: str = DEFAULT_DATABASE_URL
    broker: BrokerSettings = BrokerSettings()
    share_group: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_-]{1,64}$")
    api: ApiSettings = ApiSettings()
    offline_after_s: float = Field(default=30.0, gt=0)
    development: bool = False  # allows placeholder broker passwords

    @field_validator("database_url")
    @classmethod
    def _psycopg3(cls, url: str) -> str:
        """Route every PostgreSQL URL through psycopg 3."""
        for scheme in _POSTGRES_SCHEMES:
            if url.startswith(scheme):
                return "postgresql+psycopg://" + url.removeprefix(scheme)
        return url

    @model_validator(mode="after")
    def _no_placeholder_secret(self) -> HubSettings:
        if not self.development and self.broker.password.get_secret_value() in PLACEHOLDER_SECRETS:
            raise ValueError(
                "broker.password: placeholder or empty password refused outside development"
            )
        return self


def load_hub_settings(path: Path | None = None, **overrides: Any) -> HubSettings:
    """Load settings under the layering rules; ``path`` is optional, ``overrides`` are CLI flags
    (nested sections as dicts, e.g. ``broker={"host": "x"}``, merged into the lower layers)."""
    return load_layered(HubSettings, path, **overrides)
