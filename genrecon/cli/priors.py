"""``genrecon priors``: the shipped and local priors, with their model cards."""

from __future__ import annotations

import json
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
    as_json: bool = typer.Option(False, "--json", help="print the list (or NAME's checkpoint facts) as JSON"),
) -> None:
    """List the priors shipped with genrecon (and in --dir folders); with a NAME, show its model card."""
    from ..errors import CheckpointError
    from ..priors.checkpoint import read_checkpoint
    from ..priors.pretrained import PREFIX, available, model_card, render_model_card

    if name is not None:
        ref = name if name.endswith(".pt") or name.startswith(PREFIX) else PREFIX + name
        if as_json:
            meta, path = read_checkpoint(ref)
            typer.echo(json.dumps({"name": name, "file": str(path), **meta}, indent=2, default=str))
            return
        card = model_card(name) if not name.endswith(".pt") else None
        if card is None:
            meta, _ = read_checkpoint(ref)
            card = render_model_card(meta, name=name)
        console.print(Markdown(card))
        return
    table = Table(title="priors", title_justify="left")
    for col in ("name", "kind", "size", "steps", "parameters", "file"):
        table.add_column(col)
    entries = [(f"{PREFIX}{n}", PREFIX + n) for n in available()]
    for f in folder:
        entries += [(str(p), str(p)) for p in sorted(Path(f).glob("**/*.pt"))]
    skipped, found = [], []
    for label, ref in entries:
        try:
            meta, path = read_checkpoint(ref)
        except CheckpointError:
            if label.startswith(PREFIX):
                raise
            skipped.append(label)  # a training checkpoint or another .pt file: not a prior
            continue
        found.append({"name": label, "kind": meta.get("kind"), "image_size": meta.get("image_size"),
                      "steps": meta.get("steps"), "parameters": meta.get("param_count"), "file": str(path)})
        params = f"{meta['param_count']:,}" if meta.get("param_count") else ""
        table.add_row(label, str(meta.get("kind")), str(meta.get("image_size")), str(meta.get("steps")),
                      str(params), str(path))
    if as_json:
        typer.echo(json.dumps({"priors": found, "not_priors": skipped}, indent=2, default=str))
        return
    if not entries:
        console.print("no priors found: train one with 'genrecon train-prior --config configs/train_prior_*.yaml'")
        return
    console.print(table)
    if skipped:
        console.print(f"not priors (training checkpoints or other files): {', '.join(skipped)}")
