"""HubSettings: defaults < hub.yaml < CAMPUS_HUB_ environment (``__`` nests) < CLI flags."""

from __future__ import annotations

from datetime import time
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from campus_config import (
    PLACEHOLDER_SECRETS,
    HubBrokerSettings,
    LayeredSettings,
    Section,
    TlsSettings,
    load_layered,
)
from campus_protocol.messages import Severity
from campus_protocol.topics import NODE_ID_PATTERN

DEFAULT_DATABASE_URL = "sqlite:///./var/hub/hub.db"
_POSTGRES_SCHEMES = ("postgres://", "postgresql://", "postgresql+psycopg2://")


class BrokerSettings(Section):
    """The hub broker. The client id is the username (the broker enforces it on the gateway
    listener), so every hub worker connects under its own username; ``client_id`` is only for a
    listener that does not enforce it (e.g. an internal one for several workers of one user)."""

    host: str = "127.0.0.1"
    port: int = Field(default=1883, ge=1, le=65535)
    username: str = "hub"
    password: SecretStr = SecretStr("")
    tls: TlsSettings | None = None
    client_id: str | None = Field(default=None, min_length=1, max_length=64)
    keepalive_s: int = Field(default=30, ge=5, le=3600)


class ApiSettings(Section):
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)


class OidcSettings(Section):
    """An identity provider whose JWTs the API accepts (see ``cloud_hub.auth.oidc``)."""

    issuer: str = Field(min_length=1)
    audience: str = Field(min_length=1)
    public_key_file: Path
    algorithms: list[str] = Field(default_factory=lambda: ["RS256", "ES256"], min_length=1)
    role_claim: str = "campus_role"
    scope_claim: str = "campus_scope"


class AuthSettings(Section):
    """API authentication: token lifetime and login rate limits (always on)."""

    token_ttl_s: float = Field(default=12 * 3600, gt=0, le=366 * 86400)
    login_window_s: float = Field(default=300, gt=0)
    login_max_per_user: int = Field(default=5, ge=1)
    login_max_per_source: int = Field(default=20, ge=1)
    oidc: OidcSettings | None = None


class ProvisioningSettings(Section):
    """Where approving a gateway writes its broker access: the hub broker's password file, and the
    pid file of the Mosquitto to reload (SIGHUP); ``ca_dir`` holds ``ca.crt``/``ca.key`` to sign
    gateway client certificates with (optional)."""

    password_file: Path
    pid_file: Path
    ca_dir: Path | None = None


class InfluxSettings(Section):
    """An InfluxDB 2 bucket every stored window is copied to (``cloud_hub.sinks.influx``)."""

    url: str = Field(min_length=1, examples=["http://influxdb:8086"])
    token: SecretStr
    org: str = Field(min_length=1)
    bucket: str = Field(min_length=1)
    batch_points: int = Field(default=5000, ge=1, le=100_000)
    flush_interval_s: float = Field(default=1.0, gt=0, le=60)
    max_buffer_points: int = Field(default=200_000, ge=1)
    timeout_s: float = Field(default=10.0, gt=0, le=300)
    max_retry_after_s: float = Field(default=60.0, gt=0)
    shutdown_timeout_s: float = Field(default=5.0, ge=0, le=300)


class KpiSettings(Section):
    """When lessons happen, for the lighting-compliance KPI: school days (0 = Monday) and lesson
    periods ``HH:MM-HH:MM`` in the city's time zone."""

    timezone: str = "Asia/Shanghai"
    school_days: list[int] = Field(default_factory=lambda: [0, 1, 2, 3, 4], min_length=1)
    lesson_periods: list[str] = Field(
        default_factory=lambda: ["08:00-12:00", "14:00-17:30"], min_length=1
    )

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, zone: str) -> str:
        try:
            ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {zone!r} (e.g. Asia/Shanghai)") from None
        return zone

    @field_validator("school_days")
    @classmethod
    def _weekdays(cls, days: list[int]) -> list[int]:
        if any(day not in range(7) for day in days):
            raise ValueError("school days are 0 (Monday) to 6 (Sunday)")
        return days

    @field_validator("lesson_periods")
    @classmethod
    def _periods(cls, periods: list[str]) -> list[str]:
        for period in periods:
            start, sep, end = period.partition("-")
            try:
                ok = sep and time.fromisoformat(start) < time.fromisoformat(end)
            except ValueError:
                ok = False
            if not ok:
                raise ValueError(f"lesson period {period!r}: write HH:MM-HH:MM, start first")
        return periods


class EscalationSettings(Section):
    """An open alert at one of ``levels`` nobody acknowledged goes to the district after
    ``district_after_s`` and to the city after ``city_after_s`` (both from when it opened)."""

    levels: list[Severity] = Field(default_factory=lambda: [Severity.I, Severity.II])
    district_after_s: float = Field(default=300.0, gt=0)
    city_after_s: float = Field(default=900.0, gt=0)

    @model_validator(mode="after")
    def _city_after_district(self) -> EscalationSettings:
        if self.city_after_s <= self.district_after_s:
            raise ValueError("escalation.city_after_s: must be later than district_after_s")
        return self


class WebhookSettings(Section):
    """Alert transitions POSTed as JSON to ``url``, signed with HMAC-SHA256 of the body under
    ``secret`` (header ``X-Campus-Signature: sha256=<hex>``), with an ``Idempotency-Key``; retried
    with back-off up to ``max_attempts`` times."""

    name: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    url: str = Field(pattern=r"^https?://")
    secret: SecretStr
    levels: list[Severity] = Field(default_factory=lambda: [Severity.I, Severity.II])
    max_attempts: int = Field(default=8, ge=1, le=100)
    timeout_s: float = Field(default=5.0, gt=0, le=60)


class FederationSettings(Section):
    """A regional hub's forwarding to the central hub (``cloud_hub.federation``): its node id is
    its MQTT username on the central broker; the outbox file keeps what is not yet delivered."""

    node_id: str = Field(pattern=NODE_ID_PATTERN.pattern, examples=["region-d01"])
    central: HubBrokerSettings
    outbox_path: Path = Path("./var/hub/federation-outbox.db")
    every_s: float = Field(default=30.0, gt=0, le=3600)  # how often to look for new work
    fleet_every_s: float = Field(default=60.0, gt=0)
    kpi_every_s: float = Field(default=900.0, gt=0)
    rollup_horizon_s: float = Field(default=7200.0, ge=3600, le=7 * 86400)


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
    escalation: EscalationSettings = EscalationSettings()
    webhooks: list[WebhookSettings] = Field(default_factory=list)
    health_check_s: float = Field(default=5.0, gt=0, le=3600)  # offline alarms checked this often
    #: when set, a device offline this long raises its alarm, whatever its profile's
    #: ``offline_alarm.after_s`` says (a drill or the demo, where minutes are too long to wait)
    device_offline_alarm_s: float | None = Field(default=None, gt=0, le=7 * 86400)
    auth: AuthSettings = AuthSettings()
    provisioning: ProvisioningSettings | None = None
    influx: InfluxSettings | None = None
    kpi: KpiSettings = KpiSettings()
    federation: FederationSettings | None = None  # a regional hub that forwards to a central one
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
        if self.federation is not None and self.role != "regional":
            raise ValueError("federation: only a regional hub forwards (set role: regional)")
        central = self.federation.central.password.get_secret_value() if self.federation else None
        if not self.development and central in PLACEHOLDER_SECRETS:
            raise ValueError(
                "federation.central.password: placeholder or empty password refused outside "
                "development"
            )
        token = self.influx.token.get_secret_value() if self.influx else None
        if not self.development and token in PLACEHOLDER_SECRETS:
            raise ValueError("influx.token: placeholder or empty token refused outside development")
        return self


def load_hub_settings(path: Path | None = None, **overrides: Any) -> HubSettings:
    """Load settings under the layering rules; ``path`` is optional, ``overrides`` are CLI flags
    (nested sections as dicts, e.g. ``broker={"host": "x"}``, merged into the lower layers)."""
    return load_layered(HubSettings, path, **overrides)
