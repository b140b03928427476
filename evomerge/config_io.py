"""Reading YAML configs into pydantic models with errors that name file, field, value, rule.

>>> from pydantic import BaseModel, ConfigDict
>>> class C(BaseModel):
...     model_config = ConfigDict(extra="forbid")
...     density: float
>>> try:
...     validate_config(C, {"densty": 0.5}, "r.yaml")
... except ConfigError as e:
...     print(e)
r.yaml: field 'densty' = 0.5: unknown field (did you mean 'density'?)
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from evomerge.errors import ConfigError

M = TypeVar("M", bound=BaseModel)


def read_yaml(path: Path | str) -> dict[str, Any]:
    """Parse a YAML mapping with ``safe_load``; malformed or non-mapping files raise."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(path, None, None, "file does not exist")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(path, None, None, f"malformed YAML{where}: {problem}") from None
    if not isinstance(data, dict):
        raise ConfigError(path, None, data, "the file must hold a YAML mapping (key: value)")
    return data


def _field_path(loc: tuple) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif not out:
            out = str(part)
        else:
            out += f".{part}"
    return out


def _allowed_fields(model: type[BaseModel], loc: tuple) -> list[str]:
    """Field names allowed at ``loc`` (best effort, for 'did you mean' hints)."""
    current: Any = model
    for part in loc[:-1]:
        if isinstance(part, int) or current is None:
            continue
        field = getattr(current, "model_fields", {}).get(part)
        if field is None:
            return []
        current = _first_model(field.annotation)
    return list(getattr(current, "model_fields", {}))


def _first_model(annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _first_model(arg)
        if found is not None:
            return found
    return None


def validate_config(model: type[M], data: dict[str, Any], file: Path | str | None) -> M:
    """``model.model_validate(data)`` with the first error raised as a :class:`ConfigError`."""
    try:
        return model.model_validate(data)
    except ConfigError as exc:  # a model's own checks, which name the field themselves
        if exc.file is None and file is not None:
            raise ConfigError(file, exc.field, exc.value, exc.rule) from None
        raise
    except ValidationError as exc:
        # A misspelled field also shows up as a missing one; the misspelling is the news.
        errors = sorted(exc.errors(), key=lambda e: e["type"] != "extra_forbidden")
        err = errors[0]
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        field = _field_path(loc) or None
        if err["type"] == "extra_forbidden":
            close = difflib.get_close_matches(str(loc[-1]), _allowed_fields(model, loc), n=1)
            rule = "unknown field" + (f" (did you mean {close[0]!r}?)" if close else "")
        else:
            rule = err["msg"]
            ctx_error = (err.get("ctx") or {}).get("error")
            if isinstance(ctx_error, ConfigError):
                raise ConfigError(file, ctx_error.field or field, ctx_error.value,
                                  ctx_error.rule) from None
            if rule.startswith("Value error, "):
                rule = rule[len("Value error, "):]
        raise ConfigError(file, field, err.get("input"), rule) from None


def load_config(model: type[M], path: Path | str) -> M:
    """Read a YAML file and validate it into ``model``."""
    return validate_config(model, read_yaml(path), path)
