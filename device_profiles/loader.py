"""Read profile YAML files, validate them, and report errors as ``file: field.path: rule``."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import yaml
from pydantic import ValidationError

from campus_config import format_validation_error
from device_profiles.errors import ProfileError
from device_profiles.schema import Profile

__all__ = [
    "PROFILES_DIR",
    "ProfileError",
    "format_validation_error",
    "load_profile",
    "load_profiles",
]

PROFILES_DIR = Path(__file__).parent


def load_profile(path: Path) -> Profile:
    """Load and validate one profile file."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ProfileError(f"{path}: cannot read YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ProfileError(f"{path}: <root>: must be a mapping")
    try:
        return Profile.model_validate(data)
    except ValidationError as exc:
        raise ProfileError(format_validation_error(str(path), exc)) from None


def profile_files(root: Path = PROFILES_DIR) -> list[Path]:
    return sorted(p for p in root.rglob("*.yaml") if p.is_file())


def load_profiles(paths: Iterable[Path] | None = None) -> dict[str, Profile]:
    """Load every profile (by default the bundled ones) keyed by id; ids must be unique."""
    profiles: dict[str, Profile] = {}
    for path in paths if paths is not None else profile_files():
        profile = load_profile(path)
        if profile.id in profiles:
            raise ProfileError(f"{path}: id: {profile.id!r} already defined by another profile")
        profiles[profile.id] = profile
    return profiles
