"""``genrecon design``: choose the next k-space columns or CT views where the posterior is least sure.

Heavy modules (torch, the design loop) are imported inside the command, so ``--help`` answers fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from .common import console, err_console, handle_errors


class RoundLines:
    """One plain line per design round: the image, the round, what was chosen with its gain, seconds."""

    def __init__(self, echo) -> None:
        self.echo = echo

    def __call__(self, event: str, **kw) -> None:
        if event == "plan":
            self.echo(f"design ({kw['mode']}): {kw['cases']} slice(s), {kw['candidates']} candidates, budget "
                      f"{kw['budget']}, {kw['threads']} thread(s) -> {kw['out']}")
        elif event == "round_done":
            gains = ", ".join(f"{c} ({g:.2f})" for c, g in zip(kw["chosen"], kw["gains"]))
            self.echo(f"  {kw['key']} round {kw['round']}: + {gains} nats; {kw['seconds']:.1f} s")


@handle_errors
def design(
    config: Path = typer.Option(..., "--config", "-c", help="design config (YAML)"),
    set_: Optional[list[str]] = typer.Option(None, "--set", help="override a key: a.b.c=value (repeatable)"),
    dry_run: bool = typer.Option(False, "--dry-run", help="validate the config, run nothing"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress output"),
    overwrite: bool = typer.Option(False, "--overwrite", help="replace a design of other settings in output.dir"),
) -> None:
    """Design a sampling pattern (MRI columns / CT view angles) from posterior samples; write it and a report."""
    from ..design.config import load_design
    from ..design.run import run_design
    from ..pipeline.plan import case_dirname

    cfg = load_design(config, set_ or [])
    if dry_run:
        console.print(f"config OK: {cfg.modality} {cfg.design.mode} design, sampler {cfg.sampler.get('name')}, "
                      f"output {cfg.output.dir}", highlight=False)
        return
    echo = (lambda text: None) if quiet else (lambda text: err_console.print(text, highlight=False, soft_wrap=True))
    report = run_design(cfg, progress=RoundLines(echo), overwrite=overwrite)
    out = Path(cfg.output.dir)
    if quiet:
        return
    for d in report["designs"]:
        where = out if report["mode"] == "population" else out / "cases" / case_dirname(d["key"])
        console.print(f"{d['key']}: {d['rounds']} rounds, {d['seconds']:.1f} s, pattern {d['pattern']} -> "
                      f"{where / d['files'][0]}", highlight=False, soft_wrap=True)
    console.print(f"report: {out / 'report.md'}; baselines of the same budget: {out / 'baselines'}", highlight=False)
