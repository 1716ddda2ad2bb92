"""Progress messages of data preparation: library code never prints, it calls an optional ``log``."""

from __future__ import annotations

from typing import Callable

#: optional callback that receives one-line progress messages
Log = Callable[[str], None] | None


def say(log: Log, message: str) -> None:
    """Pass ``message`` to ``log`` if there is one."""
    if log is not None:
        log(message)
