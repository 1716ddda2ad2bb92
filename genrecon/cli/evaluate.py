"""``genrecon evaluate``: recompute metrics from a run folder's saved reconstructions."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from .common import console, handle_errors, print_table, warn_report


@handle_errors
def evaluate(
    run_dir: Path = typer.Argument(..., help="a run folder written by genrecon reconstruct"),
    as_json: bool = typer.Option(False, "--json", help="print the report as JSON"),
) -> None:
    """Recompute metrics from saved reconstructions (all shards), rewrite the reports, print the table."""
    from ..report import evaluate_run, summary_table  # here, not at the top: --help stays fast (no torch)

    report = evaluate_run(run_dir)
    if as_json:
        console.print_json(json.dumps(report, default=str))
        if report.get("failed"):
            raise typer.Exit(1)
        return
    metrics = [k for k in ("psnr", "ssim", "nmse") if any(k in r for r in report["rows"])]
    header, rows = summary_table(report, metrics)
    print_table(f"{run_dir}: {report['cases']} case(s)", header, rows, caption=report["conventions"])
    warn_report(report)
