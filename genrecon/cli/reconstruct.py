"""``genrecon reconstruct``: run a configured comparison of reconstruction methods."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from ..config import deprecations, load_config
from ..report import summary_table
from .common import console, err_console, handle_errors, parse_shard, print_table, warn_report


@handle_errors
def reconstruct(
    config: Path = typer.Option(..., "--config", "-c", help="run config (YAML)"),
    set_: Optional[list[str]] = typer.Option(None, "--set", help="override a key: a.b.c=value (repeatable)"),
    dry_run: bool = typer.Option(False, "--dry-run", help="validate the config and list the cases, run nothing"),
    shard: Optional[str] = typer.Option(None, "--shard", help="process shard I/N of the cases (0-based I)"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress bar"),
    no_evaluate: bool = typer.Option(
        False, "--no-evaluate", help="only reconstruct (e.g. one shard of many); run 'genrecon evaluate' later"
    ),
    overwrite: bool = typer.Option(
        False, "--overwrite", help="replace results in output.dir that were made with other settings"
    ),
) -> None:
    """Simulate measurements and reconstruct them with each configured method; print the comparison."""
    from ..pipeline import make_loader, plan, run, shard as take_shard

    cfg = load_config(config, set_ or [])
    for note in deprecations(cfg):
        err_console.print(f"[bold yellow]deprecated:[/] {note}", highlight=False, soft_wrap=True)
    i, n = parse_shard(shard)
    if dry_run:
        refs = take_shard(plan(cfg, make_loader(cfg)), i, n)
        console.print(
            f"config OK: {len(refs)} case(s) x {len(cfg.reconstructors)} method(s) "
            f"({', '.join(cfg.labels())}), modality {cfg.modality}; outputs would go to {cfg.output.dir}"
        )
        return
    total = None
    with Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=console, disable=quiet, transient=True,
    ) as bar:
        task = bar.add_task("starting", total=None)

        def progress(event: str, **kw) -> None:
            nonlocal total
            if event == "plan":
                total = kw["cases"] * len(kw["methods"])
                bar.update(task, total=total, description=f"{kw['cases']} cases on {kw['device']}")
            elif event == "method_start":
                bar.update(task, description=f"{kw['key']} {kw['label']}")
            elif event == "method_done":
                bar.advance(task)
            elif event == "case_skip":
                bar.advance(task, len(cfg.reconstructors))
            elif event == "overwritten":
                err_console.print(f"[bold yellow]overwrite:[/] removed results of other settings: "
                                  f"{', '.join(kw['removed'])}", highlight=False, soft_wrap=True)
            elif event == "method_failed":
                err_console.print(f"[bold yellow]warning:[/] {kw['key']} {kw['label']} failed: {kw['reason']}",
                                  highlight=False, soft_wrap=True)

        report = run(cfg, progress=progress, shard_index=i, shard_count=n, evaluate=not no_evaluate,
                     overwrite=overwrite)
    if report is None:
        console.print(f"reconstructions written to {Path(cfg.output.dir).resolve()}; "
                      f"merge and score them with: genrecon evaluate {cfg.output.dir}")
        return
    header, rows = summary_table(report, list(cfg.evaluate.metrics))
    print_table(
        f"{cfg.modality.upper()} reconstruction, {report['cases']} case(s)",
        header, rows, caption=report["conventions"],
    )
    meas = report["measurement"]
    facts = ", ".join(f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}" for k, v in meas.items())
    if facts:
        console.print(f"measurement: {facts}")
    console.print(f"outputs: {Path(cfg.output.dir).resolve()} (report.md, report.csv, cases/)")
    warn_report(report)
