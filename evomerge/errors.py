"""User-facing errors.

Every error a user can cause by bad input is an :class:`EvomergeError`; the command line
prints its message and exits with status 2. Messages name the file, the field, the value
and the rule, so the user can fix the input without reading code.
"""

from __future__ import annotations

from typing import Any


class EvomergeError(Exception):
    """An error caused by the user's input; the CLI exits with status 2."""

    exit_code = 2


class ConfigError(EvomergeError):
    """A value in a config file (or a command-line option) breaks a rule.

    >>> str(ConfigError("recipe.yaml", "models[1].density", 1.5, "must lie in [0, 1]"))
    "recipe.yaml: field 'models[1].density' = 1.5: must lie in [0, 1]"
    """

    def __init__(self, file: Any, field: str | None, value: Any, rule: str):
        self.file, self.field, self.value, self.rule = file, field, value, rule
        where = f"{file}: " if file else ""
        if field is None:
            super().__init__(f"{where}{rule}")
        else:
            super().__init__(f"{where}field {field!r} = {value!r}: {rule}")


class CheckpointError(EvomergeError):
    """A model folder is missing, unreadable, unsafe, or incompatible with the others."""


class UnknownNameError(EvomergeError, KeyError):
    """A name looked up in a registry does not exist."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])
