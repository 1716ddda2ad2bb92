"""``genrecon check-operator``: adjoint error, norm and speed of the operator a config builds."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from ..config import load_config
from .common import console, handle_errors, print_table


@handle_errors
def check_operator(
    config: Path = typer.Option(..., "--config", "-c", help="run config (YAML)"),
    set_: Optional[list[str]] = typer.Option(None, "--set", help="override a key: a.b.c=value (repeatable)"),
    as_json: bool = typer.Option(False, "--json", help="print JSON instead of a table"),
    repeats: int = typer.Option(5, "--repeats", min=1, help="timing repeats (median)"),
) -> None:
    """Build the configured forward operator on the first case; print its adjoint error, norm and speed."""
    import torch  # here, not at the top: --help stays fast

    from ..operators.check import check_operator as check
    from ..pipeline import derive_seed, load_case, make_loader, plan, resolve_device
    from ..simulate import modality_module

    cfg = load_config(config, set_ or [])
    device = resolve_device(cfg.device)
    loader = make_loader(cfg)
    ref = plan(cfg, loader)[0]
    case = load_case(cfg, loader, ref, {})
    gen = torch.Generator().manual_seed(derive_seed(cfg.seed, "check-operator"))
    op = modality_module(cfg.modality).build_operator(cfg.simulate, case, generator=gen, device=device)
    result = check(op, generator=gen, repeats=repeats, device=device)
    result["device"] = str(device)
    if as_json:
        console.print_json(json.dumps(result, default=str))
        return
    rows = [[k, f"{v:.3g}" if isinstance(v, float) else str(v)] for k, v in result.items()]
    print_table(f"operator check: {config}", ["property", "value"], rows,
                caption="adjoint error = |<Ax,y> - <x,A^H y>| / (||A|| ||x|| ||y||), zero-mean Gaussian x, y")
