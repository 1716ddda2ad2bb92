"""Shared CLI pieces: the error boundary, consoles, table printing."""

from __future__ import annotations

import functools
import shutil
import signal
import sys
from typing import Any, Callable

import typer
from rich.console import Console
from rich.table import Table

from ..errors import GenreconError


def _width(stream) -> int:
    """Tables need ~100 columns on a terminal; output to a pipe or a file (grep, logs, CI) is not cut to a
    screen at all (rich would fall back to 80 columns and shorten names with '…')."""
    try:
        tty = stream.isatty()
    except (AttributeError, ValueError):
        tty = False
    return max(100, shutil.get_terminal_size((100, 24)).columns) if tty else PIPE_WIDTH


#: the line width of output that does not go to a terminal
PIPE_WIDTH = 400
console = Console(width=_width(sys.stdout))
err_console = Console(stderr=True, width=_width(sys.stderr))


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


def warn_report(report: dict) -> None:
    """Print a warning for each failed, undefined or stale result of a report; exit 1 when a method failed."""
    for f in report.get("failed", []):
        err_console.print(f"[bold yellow]warning:[/] {f['case']} {f['method']} failed: {f['reason']}",
                          highlight=False, soft_wrap=True)
    for u in report.get("undefined", []):
        what = "; ".join(f"{k}: {v}" for k, v in u.items() if k not in ("case", "method"))
        err_console.print(f"[bold yellow]warning:[/] {u['case']} {u['method']}: undefined metric ({what})",
                          highlight=False, soft_wrap=True)
    stale = report.get("stale", [])
    if stale:
        err_console.print(f"[bold yellow]warning:[/] {len(stale)} stale result(s) made with other settings are "
                          f"not counted (e.g. {stale[0]['case']} {stale[0]['method'] or '(case)'})",
                          highlight=False, soft_wrap=True)
    if report.get("failed"):
        raise typer.Exit(1)
