"""Every package of the repository is installed (and type-checked): a package missing from
pyproject's lists imports in the checkout, where tests run, but not from an installed `campus`."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_every_top_level_package_is_installed_and_type_checked() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = {
        p.parent.name for p in ROOT.glob("*/__init__.py") if p.parent.name not in {"tests", "bench"}
    }
    included = pyproject["tool"]["setuptools"]["packages"]["find"]["include"]
    assert {f"{name}*" for name in packages} <= set(included)
    assert packages <= set(pyproject["tool"]["mypy"]["packages"])
