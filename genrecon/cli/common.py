"""Shared CLI pieces: the error boundary, consoles, table printing."""

from __future__ import annotations

import functools
import shutil
import signal
from typing import Any, Callable

import typer
from rich.console import Console
from rich.table import Table

from ..errors import GenreconError

# tables need ~100 columns; rich falls back to 80 when output is not a terminal (logs, pipes, CI)
_WIDTH = max(100, shutil.get_terminal_size((100, 24)).columns)
console = Console(width=_WIDTH)
err_console = Console(stderr=True, width=_WIDTH)


def _sigterm(signum, frame):  # SLURM preemption / time limit: stop like Ctrl-C
    raise KeyboardInterrupt


def handle_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn user-facing errors into a one-line message and an exit code (no traceback).

    GenreconError -> its ``exit_code`` (2 usage/config, 1 data); OSError -> 1; Ctrl-C or SIGTERM -> 130.
    Anything else is a bug in genrecon and keeps its traceback.
    """

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            previous = signal.signal(signal.SIGTERM, _sigterm)
        except ValueError:  # not in the main thread
            previous = None
        try:
            return fn(*args, **kwargs)
        except GenreconError as exc:
            err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
            raise typer.Exit(exc.exit_code) from None
        except OSError as exc:
            err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            err_console.print(
                "[bold yellow]interrupted:[/] finished work is kept; rerun the same command to resume",
                highlight=False,
            )
            raise typer.Exit(130) from None
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)

    return wrapper


def print_table(title: str, header: list[str], rows: list[list[str]], caption: str | None = None) -> None:
    table = Table(title=title, caption=caption, caption_justify="left")
    for i, h in enumerate(header):
        table.add_column(h, justify="left" if i == 0 else "right", no_wrap=True)
    for row in rows:
        table.add_row(*row)
    console.print(table)


def parse_shard(text: str | None) -> tuple[int, int]:
    """``"i/n"`` (0-based shard index i of n) -> (i, n)."""
    from ..errors import ConfigError

    if text is None:
        return 0, 1
    try:
        i, n = (int(v) for v in text.split("/"))
    except ValueError:
        raise ConfigError(f"--shard: expected I/N with 0 <= I < N, e.g. 0/4, got {text!r}") from None
    if n < 1 or not 0 <= i < n:
        raise ConfigError(f"--shard: expected I/N with 0 <= I < N, got {text!r}")
    return i, n
