"""Settings shared by every campus program: layering, shared sections, and error messages.

Every program reads its settings in one order: defaults < YAML file < ``CAMPUS_…`` environment
(``__`` nests) < command-line flags; and reports a bad value as ``source: field.path: rule``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

from campus_config.yaml_locations import malformed_yaml_line, model_at, nearest, with_positions

#: refused as a broker password outside development
PLACEHOLDER_SECRETS = frozenset({"", "changeme", "change-me", "password"})


class ConfigError(ValueError):
    """Settings are invalid; the message names the file, field path and rule."""


class Section(BaseModel):
    """A settings section: unknown keys are errors (typos never pass silently)."""

    model_config = ConfigDict(extra="forbid")


class TlsSettings(Section):
    ca_file: Path
    cert_file: Path | None = None
    key_file: Path | None = None


class HubBrokerSettings(Section):
    """The broker of the hub above that a node forwards to (a gateway to its regional hub, a
    regional hub to the central hub); ``username`` must equal the node id."""

    host: str = "127.0.0.1"
    port: int = Field(default=1883, ge=1, le=65535)
    username: str | None = None  # default: the gateway id
    password: SecretStr = SecretStr("")
    tls: TlsSettings | None = None
    keepalive_s: int = Field(default=30, ge=5, le=3600)


#: a cross-field rule names the field it is about first: "scale: must be non-zero"
_NAME = r"[A-Za-z_]\w*(?:\[\d+\])*"
_FIELD_PREFIX = re.compile(rf"^({_NAME}(?:\.{_NAME})*): (.+)$", re.S)


def format_validation_error(
    source: str, exc: ValidationError, *, model: type[BaseModel] | None = None
) -> str:
    """One line per error: ``source: field.path: rule``.

    A model validator's message that starts with a field name is folded into the path, so
    ``modbus.points[0]`` + ``scale: must be non-zero`` reads ``modbus.points[0].scale: must be …``.
    With ``model``, an unknown key gets the nearest known one: ``did you mean unit_id?``.
    """
    lines = []
    for err in exc.errors(include_url=False):
        loc = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in err["loc"])
        loc = loc.lstrip(".")
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "value_error" and (field := _FIELD_PREFIX.match(msg)):
            loc = f"{loc}.{field.group(1)}" if loc else field.group(1)
            msg = field.group(2)
        if err["type"] == "extra_forbidden" and model is not None and err["loc"]:
            msg += _did_you_mean(model, err["loc"])
        lines.append(f"{source}: {loc or '<root>'}: {msg}")
    return "\n".join(lines)


def _did_you_mean(model: type[BaseModel], loc: tuple[str | int, ...]) -> str:
    parent = model_at(model, loc[:-1])
    guess = nearest(str(loc[-1]), parent.model_fields) if parent is not None else None
    return f"; did you mean {guess}?" if guess else ""


class LayeredSettings(BaseSettings):
    """Base of program settings: init (CLI flags) < environment < YAML file < defaults."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        yaml_file = settings_cls.model_config.get("yaml_file")
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if yaml_file:
            sources.append(YamlConfigSettingsSource(settings_cls, yaml_file=yaml_file))
        return tuple(sources)


SettingsT = TypeVar("SettingsT", bound=LayeredSettings)


def load_layered(settings_cls: type[SettingsT], path: Path | None, **overrides: Any) -> SettingsT:
    """Load ``settings_cls`` from ``path`` (optional), the environment and ``overrides`` (flags)."""
    if path is not None and not path.is_file():
        raise ConfigError(f"{path}: no such file")
    from_file = type(
        f"{settings_cls.__name__}FromFile",
        (settings_cls,),
        {"model_config": SettingsConfigDict(yaml_file=path), "__module__": __name__},
    )
    try:
        loaded = from_file(**overrides)
    except ValidationError as exc:
        source = str(path) if path is not None else "settings"
        lines = format_validation_error(source, exc, model=settings_cls).splitlines()
        if path is not None:
            lines = with_positions(path, lines)
        raise ConfigError("\n".join(lines)) from None
    except yaml.YAMLError as exc:
        assert path is not None  # only a file is parsed as YAML
        raise ConfigError(malformed_yaml_line(path, exc)) from None
    return settings_cls.model_validate(loaded.model_dump())
