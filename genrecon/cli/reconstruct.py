"""``genrecon reconstruct``: run a configured comparison of reconstruction methods.

Heavy modules (torch, the pipeline, the report) are imported inside the command, so ``--help`` answers fast.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

import typer

from .common import console, err_console, handle_errors, parse_shard, print_table, warn_report

#: measurement facts shown under another name (the config's value is the requested one)
FACT_NAMES = {"acceleration": "realised acceleration"}


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}" if seconds >= 3600 \
        else f"{seconds // 60}:{seconds % 60:02d}"


class CaseLines:
    """Plain progress lines, for logs (SLURM, a file, a pipe) and ``--verbose``: the plan, then one line per
    finished case with each method's seconds, the elapsed time and an ETA from the cases done so far."""

    def __init__(self, echo) -> None:
        self.echo = echo
        self.total = self.done = 0
        self.t0 = time.perf_counter()
        self.seconds: dict[str, float] = {}

    def __call__(self, event: str, **kw) -> None:
        if event == "plan":
            self.total = kw["cases"]
        elif event == "method_done":
            self.seconds[kw["label"]] = kw["seconds"]
        elif event == "method_failed":
            self.seconds[kw["label"]] = float("nan")
        elif event in ("case_done", "case_skip"):
            self.done += 1
            elapsed = time.perf_counter() - self.t0
            eta = elapsed / self.done * (self.total - self.done)
            what = ("skipped (done with these settings)" if event == "case_skip" else
                    ", ".join(f"{lab} {sec:.1f} s" for lab, sec in self.seconds.items()))
            self.echo(f"[{self.done}/{self.total}] {kw['key']}: {what}; elapsed {_duration(elapsed)}, "
                      f"ETA {_duration(eta)}")
            self.seconds = {}


@handle_errors
def reconstruct(
    config: Path = typer.Option(..., "--config", "-c", help="run config (YAML)"),
    set_: Optional[list[str]] = typer.Option(None, "--set", help="override a key: a.b.c=value (repeatable)"),
    dry_run: bool = typer.Option(False, "--dry-run", help="validate the config and list the cases, run nothing"),
    shard: Optional[str] = typer.Option(None, "--shard", help="process shard I/N of the cases (0-based I)"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress output"),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="a line per finished case, also on a terminal"),
    no_evaluate: bool = typer.Option(
        False, "--no-evaluate", help="only reconstruct (e.g. one shard of many); run 'genrecon evaluate' later"
    ),
    overwrite: bool = typer.Option(
        False, "--overwrite", help="replace results in output.dir that were made with other settings"
    ),
) -> None:
    """Simulate measurements and reconstruct them with each configured method; print the comparison."""
    from ..config import deprecations, load_config
    from ..pipeline import make_loader, plan, shard as take_shard

    cfg = load_config(config, set_ or [])
    for note in deprecations(cfg):
        err_console.print(f"[bold yellow]deprecated:[/] {note}", highlight=False, soft_wrap=True)
    i, n = parse_shard(shard)
    if dry_run:
        refs = take_shard(plan(cfg, make_loader(cfg)), i, n)
        for item in set_ or []:
            key = item.split("=", 1)[0].strip()
            console.print(f"override: {key} = {_resolved(cfg, key)}", highlight=False)
        console.print(
            f"config OK: {len(refs)} case(s) x {len(cfg.reconstructors)} method(s) "
            f"({', '.join(cfg.labels())}), modality {cfg.modality}; outputs would go to {cfg.output.dir}"
        )
        return
    run_and_report(cfg, quiet=quiet, verbose=verbose, shard=(i, n), evaluate=not no_evaluate, overwrite=overwrite)


def run_and_report(cfg, *, quiet: bool = False, verbose: bool = False, shard: tuple[int, int] = (0, 1),
                   evaluate: bool = True, overwrite: bool = False) -> None:
    """Run a validated config with progress output, then print the comparison table, the measurement and where
    the outputs are (``genrecon reconstruct`` and ``genrecon recon``)."""
    from ..pipeline import run

    report = _run_with_progress(cfg, run, quiet=quiet, verbose=verbose, shard=shard, evaluate=evaluate,
                                overwrite=overwrite)
    if report is None:
        console.print(f"reconstructions written to {Path(cfg.output.dir).resolve()}; "
                      f"merge and score them with: genrecon evaluate {cfg.output.dir}")
        return
    from ..report import summary_table

    header, rows = summary_table(report, list(cfg.evaluate.metrics))
    print_table(
        f"{cfg.modality.upper()} reconstruction, {report['cases']} case(s)",
        header, rows, caption=report["conventions"],
    )
    meas = report["measurement"]
    facts = ", ".join(f"{FACT_NAMES.get(k, k)} {v:.3g}" if isinstance(v, float) else f"{FACT_NAMES.get(k, k)} {v}"
                      for k, v in meas.items())
    if facts:
        console.print(f"measurement: {facts}", highlight=False)
    extra = ", recon/" if {"nifti", "h5"} & set(cfg.output.save) else ""
    console.print(f"outputs: {Path(cfg.output.dir).resolve()} (report.md, report.csv, report.json, cases/{extra})",
                  highlight=False)
    warn_report(report)


def _resolved(cfg, key: str):
    """The value of dotted ``key`` in the validated config (what ``--set`` made of it)."""
    value = cfg
    for part in key.split("."):
        if isinstance(value, dict):
            value = value.get(part)
        elif isinstance(value, (list, tuple)) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            value = getattr(value, part, None)
    return value


def _run_with_progress(cfg, run, *, quiet: bool, verbose: bool, shard: tuple[int, int], evaluate: bool,
                       overwrite: bool):
    """Run with a progress bar on a terminal (steps inside a method, an ETA over (case, method) pairs) and plain
    lines per finished case in logs or with ``--verbose``; warnings go to stderr either way."""
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                               TimeRemainingColumn)

    bar_on = not quiet and console.is_terminal
    lines = CaseLines(lambda text: console.print(text, highlight=False, soft_wrap=True)) \
        if not quiet and (verbose or not bar_on) else None
    with Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        TextColumn("ETA"), TimeRemainingColumn(), console=console, disable=not bar_on, transient=True,
    ) as bar:
        task = bar.add_task("starting", total=None)
        n_methods = len(cfg.reconstructors)

        def progress(event: str, **kw) -> None:
            if lines is not None:
                lines(event, **kw)
            if event == "plan":
                bar.update(task, total=kw["cases"] * n_methods, description=f"{kw['cases']} cases on {kw['device']}")
                if not quiet:
                    err_console.print(f"plan: {kw['cases']} case(s) x {n_methods} method(s) on {kw['device']}, "
                                      f"{kw['threads']} torch thread(s) ({kw['threads_why']})", highlight=False,
                                      soft_wrap=True)
            elif event == "method_start":
                bar.update(task, description=f"{kw['key']} {kw['label']}")
            elif event == "step":
                bar.update(task, description=f"{kw['key']} {kw['label']} step {kw['step'] + 1}")
            elif event == "method_done":
                bar.advance(task)
            elif event == "case_skip":
                bar.advance(task, n_methods)
            elif event == "overwritten":
                err_console.print(f"[bold yellow]overwrite:[/] removed results of other settings: "
                                  f"{', '.join(kw['removed'])}", highlight=False, soft_wrap=True)
            elif event == "method_failed":
                err_console.print(f"[bold yellow]warning:[/] {kw['key']} {kw['label']} failed: {kw['reason']}",
                                  highlight=False, soft_wrap=True)

        return run(cfg, progress=progress, shard_index=shard[0], shard_count=shard[1], evaluate=evaluate,
                   overwrite=overwrite)
