"""``campus hub sample-config``: a hub.yaml that loads once its password is set, and that
mentions every setting the hub has."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import BaseModel
from typer.testing import CliRunner

from campus_cli.main import app
from campus_config import ConfigError
from cloud_hub.settings import HubSettings, load_hub_settings


def sample() -> str:
    result = CliRunner().invoke(app, ["hub", "sample-config"])
    assert result.exit_code == 0
    return result.output


def test_the_sample_loads_once_its_password_is_set(tmp_path: Path) -> None:
    path = tmp_path / "hub.yaml"
    path.write_text(sample().replace("change-me", "a-real-secret"))
    (tmp_path / "ca.pem").touch()

    settings = load_hub_settings(path)

    assert settings.broker.port == 8883 and settings.broker.tls is not None


def test_the_samples_placeholder_password_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "hub.yaml"
    path.write_text(sample())
    with pytest.raises(ConfigError, match=r"broker\.password: placeholder"):
        load_hub_settings(path)


def field_names(model: type[BaseModel]) -> set[str]:
    names = set()
    for name, info in model.model_fields.items():
        names.add(name)
        for arg in getattr(info.annotation, "__args__", (info.annotation,)):
            if isinstance(arg, type) and issubclass(arg, BaseModel):
                names |= field_names(arg)
    return names


def test_the_sample_mentions_every_setting() -> None:
    keys = set(re.findall(r"^[#\s]*(\w+):", sample(), re.M))
    assert field_names(HubSettings) - keys == set()
