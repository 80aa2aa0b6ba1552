"""Where things are in a YAML file: so an error can say ``line 12, column 7`` beside its field
path, suggest the nearest known name for a typo, and turn malformed YAML into one line."""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from pathlib import Path

import yaml
from pydantic import BaseModel

#: ``source: field.path: rule`` as format_validation_error and the cross-checks write it
_ERROR_LINE = re.compile(r"^(?P<source>[^:]+): (?P<path>[\w\[\].<>-]+): (?P<rule>.*)$", re.S)


def field_positions(text: str) -> dict[str, tuple[int, int]]:
    """``field.path`` -> (line, column), 1-based, of every key and list item in a YAML text."""
    positions: dict[str, tuple[int, int]] = {}

    def walk(node: yaml.Node, path: str) -> None:
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                child = f"{path}.{key.value}" if path else str(key.value)
                positions[child] = (key.start_mark.line + 1, key.start_mark.column + 1)
                walk(value, child)
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                child = f"{path}[{index}]"
                positions[child] = (item.start_mark.line + 1, item.start_mark.column + 1)
                walk(item, child)

    root = yaml.compose(text, Loader=yaml.SafeLoader)
    if root is not None:
        walk(root, "")
    return positions


def malformed_yaml_line(path: Path, exc: yaml.YAMLError) -> str:
    """One line for a file that is not YAML at all: where, and what the parser choked on."""
    mark = getattr(exc, "problem_mark", None)
    where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    context = getattr(exc, "context", None)
    detail = f"{problem} {context}" if context else problem
    return f"{path}: not valid YAML{where}: {detail}"


def with_positions(path: Path, lines: Iterable[str]) -> list[str]:
    """``source: field.path: rule`` lines, each with the field's line and column in ``path``
    appended when the field is in the file (a value from the environment is not)."""
    try:
        positions = field_positions(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return list(lines)
    located = []
    for line in lines:
        match = _ERROR_LINE.match(line)
        where = positions.get(match["path"]) if match else None
        located.append(f"{line} (line {where[0]}, column {where[1]})" if where else line)
    return located


def nearest(name: str, known: Iterable[str]) -> str | None:
    """The known name a typo most likely meant, if any is close."""
    matches = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
    return matches[0] if matches else None


def model_at(model: type[BaseModel], loc: tuple[str | int, ...]) -> type[BaseModel] | None:
    """The pydantic model that holds the fields at ``loc`` (list indexes skipped)."""
    current: type[BaseModel] | None = model
    for part in loc:
        if isinstance(part, int) or current is None:
            continue
        info = current.model_fields.get(part)
        if info is None:
            return None
        current = _model_in(info.annotation)
    return current


def _model_in(annotation: object) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _model_in(arg)
        if found is not None:
            return found
    return None
