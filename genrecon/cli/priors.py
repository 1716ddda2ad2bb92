"""``genrecon priors``: the shipped and local priors, with their model cards."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.markdown import Markdown
from rich.table import Table

from .common import console, handle_errors


@handle_errors
def priors(
    name: Optional[str] = typer.Argument(None, help="show the model card of this prior (name or .pt path)"),
    folder: list[Path] = typer.Option([], "--dir", help="also list the .pt priors in this folder (repeatable)"),
) -> None:
    """List the priors shipped with genrecon (and in --dir folders); with a NAME, show its model card."""
    from ..errors import CheckpointError
    from ..priors.checkpoint import read_checkpoint
    from ..priors.pretrained import PREFIX, available, model_card, render_model_card

    if name is not None:
        card = model_card(name) if not name.endswith(".pt") else None
        if card is None:
            meta, _ = read_checkpoint(name if name.endswith(".pt") or name.startswith(PREFIX) else PREFIX + name)
            card = render_model_card(meta, name=name)
        console.print(Markdown(card))
        return
    table = Table(title="priors", title_justify="left")
    for col in ("name", "kind", "size", "steps", "parameters", "file"):
        table.add_column(col)
    entries = [(f"{PREFIX}{n}", PREFIX + n) for n in available()]
    for f in folder:
        entries += [(str(p), str(p)) for p in sorted(Path(f).glob("**/*.pt"))]
    skipped = []
    for label, ref in entries:
        try:
            meta, path = read_checkpoint(ref)
        except CheckpointError:
            if label.startswith(PREFIX):
                raise
            skipped.append(label)  # a training checkpoint or another .pt file: not a prior
            continue
        params = f"{meta['param_count']:,}" if meta.get("param_count") else ""
        table.add_row(label, str(meta.get("kind")), str(meta.get("image_size")), str(meta.get("steps")),
                      str(params), str(path))
    if not entries:
        console.print("no priors found: train one with 'genrecon train-prior --config configs/train_prior_*.yaml'")
        return
    console.print(table)
    if skipped:
        console.print(f"not priors (training checkpoints or other files): {', '.join(skipped)}")
