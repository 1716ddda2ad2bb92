"""``genrecon benchmark``: run named benchmark suites, write their JSON, PNG plots and RESULTS.md."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table
from rich.text import Text

from .common import console, handle_errors

DEVICES = ("auto", "cpu", "cuda")


def _device(text: str) -> tuple[str, bool]:
    """``(device, all_devices)`` from ``--device``; a one-line ConfigError for a bad or unavailable device."""
    import torch

    from ..errors import ConfigError
    from ..registry import did_you_mean

    name = text.strip().lower()
    if name == "auto":
        return ("cuda" if torch.cuda.is_available() else "cpu"), True
    base, _, index = name.partition(":")
    if base not in ("cpu", "cuda") or (index and (base == "cpu" or not index.isdigit())):
        hint = " (did you mean 'cuda'?)" if base == "gpu" else did_you_mean(text, DEVICES)
        raise ConfigError(f"--device: unknown device '{text}'{hint}; use auto, cpu, cuda or cuda:N")
    if base == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"--device {text}: no CUDA device is available here (torch.cuda.is_available() is False); "
                          "use --device cpu")
    if index and int(index) >= torch.cuda.device_count():
        raise ConfigError(f"--device {text}: there are {torch.cuda.device_count()} CUDA device(s)")
    return name, False


def _natural_width(t: dict) -> int:
    """The width a table needs without wrapping a cell (rich's borders and padding: 3 per column + 1)."""
    widths = [max([len(str(col))] + [len(str(row[i])) for row in t["rows"] if i < len(row)])
              for i, col in enumerate(t["columns"])]
    return sum(widths) + 3 * len(widths) + 1


def _print_records(t: dict) -> None:
    """A table too wide for the screen, one block per row (``column: value``), so no cell wraps letter by letter."""
    console.print(f"{t['title']}", style="bold", highlight=False, soft_wrap=True)
    for row in t["rows"]:
        head = " / ".join(str(c) for c in row[:2])
        rest = ", ".join(f"{col} {cell}" for col, cell in zip(t["columns"][2:], row[2:]) if str(cell) not in ("", "-"))
        console.print(f"  {head}: {rest}", highlight=False, soft_wrap=True, markup=False)
    if t.get("conventions"):
        console.print(f"  conventions: {t['conventions']}", highlight=False, soft_wrap=True, markup=False)


def _print_doc(doc: dict) -> None:
    """The suite's tables; long "missing (reason)" cells become "missing [k]" with the reasons listed below.
    A table wider than the screen is printed as one line per row instead."""
    if doc.get("suite") == "smoke" or doc.get("quick"):
        console.print(f"{doc['suite']}: a code-path check at tiny sizes and step counts: its numbers say the code "
                      "runs, not how good a method is (e.g. DPS with 2 steps)", highlight=False, soft_wrap=True)
    for t in doc.get("tables", []):
        if _natural_width(t) > console.width:
            _print_records({**t, "title": f"{doc['suite']}: {t['title']}"})
            continue
        reasons: list[str] = []
        table = Table(title=f"{doc['suite']}: {t['title']}", title_justify="left", caption_justify="left",
                      caption=(f"conventions: {t['conventions']}" if t.get("conventions") else None))
        for i, col in enumerate(t["columns"]):
            table.add_column(col, justify="left" if i < 3 else "right", overflow="fold")
        for row in t["rows"]:
            cells = []
            for cell in row:
                if cell.startswith("missing (") and len(cell) > 20:
                    if cell not in reasons:
                        reasons.append(cell)
                    cell = f"missing [{reasons.index(cell) + 1}]"
                cells.append(cell)
            table.add_row(*(Text(c) for c in cells))
        console.print(table)
        for k, reason in enumerate(reasons, 1):
            console.print(f"  [{k}] {reason}", highlight=False, soft_wrap=True, markup=False)


@handle_errors
def benchmark(
    suites: str = typer.Argument(..., metavar="SUITE[,SUITE...]",
                                 help="operators, classical, generative, scaling, smoke, or all (the four full ones)"),
    out: Optional[Path] = typer.Option(None, "--out", "-o",
                                       help="output folder (default: benchmarks/; a new temporary folder for smoke)"),
    threads: Optional[int] = typer.Option(None, "--threads", min=1,
                                          help="CPU threads for torch and the peers (default: torch's)"),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda | cuda:N (auto: scaling measures both)"),
    repeats: int = typer.Option(5, "--repeats", min=1, help="timed runs per measurement (median reported)"),
    quick: bool = typer.Option(False, "--quick", help="fewer sizes, slices and steps: checks the code in minutes"),
    slices: Optional[int] = typer.Option(None, "--slices", min=1,
                                         help="images per modality (generative default 12, classical all 5)"),
    samples: int = typer.Option(4, "--samples", min=1, help="DPS posterior samples per slice (> 1: coverage)"),
    data: Path = typer.Option(Path("data/prepared"), "--data",
                              help="folder of brain-mri-128.h5 / head-ct-128.h5 (scripts/prepare_data.py all)"),
    seed: int = typer.Option(0, "--seed", help="base seed of masks, noise and samplers"),
    jobs: int = typer.Option(1, "--jobs", "-j", min=1,
                             help="generative: worker processes (slices in parallel, 1 thread each; CPU only)"),
    split: str = typer.Option("val", "--split", help="generative: val (held-out slabs of the training subjects) or "
                                                  "test_subject (whole subjects never trained on)"),
    settings: Optional[str] = typer.Option(None, "--settings",
                                           help="generative / classical: comma list of their settings (generative: "
                                                "mri4, mri8, mri16, ct60, ct30, ct15, ct_lim90; classical: mri4, mri8, "
                                                "ct_head60, astra_head60, ...; default: all)"),
) -> None:
    """Measure genrecon against its peers; write <out>/<suite>.json, PNG plots and <out>/RESULTS.md."""
    from .. import benchmark as bench
    from ..benchmark.common import Options, apply_threads

    names = bench.parse_suites(suites)
    picked = tuple(s.strip() for s in settings.split(",") if s.strip()) if settings else None
    if picked:  # each suite runs the picked settings it has; a name none of the chosen suites has is an error
        from ..benchmark import classical, generative
        from ..errors import ConfigError

        checks = [m.check_settings for name, m in (("classical", classical), ("generative", generative))
                  if name in names] or [generative.check_settings]
        unknown = [n for n in picked if all(check([n]) for check in checks)]
        if unknown:
            raise ConfigError([p for check in checks for p in check(unknown)])
    from ..io.prepared import SPLITS

    if split not in SPLITS:
        from ..errors import ConfigError

        raise ConfigError(f"--split: {split!r} is not one of {', '.join(SPLITS)}")
    dev, all_devices = _device(device)
    if out is None:
        out = Path(tempfile.mkdtemp(prefix="genrecon-benchmark-smoke-")) if names == ["smoke"] else Path("benchmarks")
    apply_threads(threads)
    opts = Options(out=out, device=dev, threads=threads, repeats=repeats, quick=quick, slices=slices,
                   samples=samples, data_dir=data, seed=seed, all_devices=all_devices, jobs=jobs,
                   settings=picked, split=split)
    problems = bench.preflight(names, opts)
    if problems:
        from ..errors import DataError

        raise DataError("; ".join(problems))
    start = time.perf_counter()

    def log(message: str) -> None:
        console.print(f"[dim]{time.perf_counter() - start:7.1f}s[/] {message}", highlight=False)

    console.print(f"benchmark {', '.join(names)} -> {out}" + (" (quick)" if quick else ""), highlight=False)
    written: list[Path] = []
    for name in names:
        doc = bench.run_suite(name, opts, log)
        written += [out / f"{bench.doc_stem(name, doc)}.json"] + [out / p["file"] for p in doc.get("plots", [])]
        results = bench.write_results(out)
        _print_doc(doc)
    console.print(f"results: {results.resolve()}", highlight=False, soft_wrap=True)
    for path in written:
        console.print(f"  {path.resolve()}", highlight=False, soft_wrap=True)
