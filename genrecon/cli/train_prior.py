"""``genrecon train-prior``: train a generator (VAE) or diffusion prior from a YAML config."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from .common import console, handle_errors, print_table


@handle_errors
def train_prior(
    config: Path = typer.Option(..., "--config", "-c", help="training config (YAML), e.g. configs/train_prior_*.yaml"),
    resume: bool = typer.Option(False, "--resume", help="continue from the run folder's checkpoint"),
    set_: Optional[list[str]] = typer.Option(None, "--set", help="override a key: a.b.c=value (repeatable)"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress bar"),
) -> None:
    """Train a prior (checkpoints, --resume, time budget) and export it as a self-describing .pt file.

    Under torchrun (several processes) use 'python -m genrecon.training' with the same options.
    """
    from ..training.config import load_train_config
    from ..training.loop import train_prior as run_training

    cfg = load_train_config(config, set_ or [])
    with Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        TextColumn("{task.fields[loss]}"), console=console, disable=quiet, transient=True,
    ) as bar:
        task = bar.add_task(f"training {cfg.kind}", total=None, loss="")

        def progress(step: int, total: int, metrics: dict) -> None:
            loss = metrics.get("train_loss")
            bar.update(task, completed=step, total=total, **({"loss": f"loss {loss:.4g}"} if loss is not None else {}))

        summary = run_training(cfg, resume=resume, progress=progress)
    rows = [[k, f"{v:.4g}" if isinstance(v, float) else str(v)] for k, v in summary.items()
            if isinstance(v, (int, float, str)) and not isinstance(v, bool)]
    print_table(f"train-prior: {config}", ["", ""], rows)
