"""Error family of genrecon.

Every error a user can cause is a :class:`GenreconError`. The CLI turns it into a one-line message and
an exit code (2 for usage/config mistakes, 1 for data and runtime problems); anything else is a bug and
keeps its traceback. Messages say what was expected, what was found and how to fix it.
"""

from __future__ import annotations

import difflib
from typing import Iterable


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """Return ``" (did you mean 'x'?)"`` for the closest choice, or an empty string."""
    close = difflib.get_close_matches(str(name), list(choices), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


class GenreconError(Exception):
    """Base class of user-facing errors; ``exit_code`` is what the CLI exits with."""

    exit_code = 1

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class ConfigError(GenreconError, ValueError):
    """The configuration (YAML, --set overrides, CLI options) is invalid. Collects several problems."""

    exit_code = 2

    def __init__(self, problems: str | list[str]):
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        if len(self.problems) == 1:
            message = self.problems[0]
        else:
            message = f"{len(self.problems)} problems in the configuration: " + "; ".join(self.problems)
        super().__init__(message)


class RegistryError(GenreconError, LookupError):
    """An unknown plugin name, or a duplicate registration."""

    exit_code = 2


class ShapeError(GenreconError, ValueError):
    """A tensor's shape or dtype does not fit an operator or a model."""

    exit_code = 2


class DataError(GenreconError):
    """An input file is missing, unreadable, corrupt or holds unusable values."""

    exit_code = 1


class CheckpointError(GenreconError):
    """A prior checkpoint is corrupt, of the wrong kind or of the wrong size."""

    exit_code = 1


class Interrupted(GenreconError):
    """The run was stopped by a signal (Ctrl-C, SIGTERM); finished cases are kept."""

    exit_code = 130
