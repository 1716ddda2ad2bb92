"""Running a benchmark suite's settings through the pipeline ``genrecon reconstruct`` uses.

A suite's settings are run configs in ``benchmarks/configs/<suite>/<setting>.yaml``; a suite reads one
(:func:`setting_config`), overrides what its options say, runs it with :func:`run_setting`
(:func:`genrecon.pipeline.execute.run`, then :func:`genrecon.report.evaluate_run` for the metrics) and turns the
report's rows into its own records.
"""

from __future__ import annotations

import copy
import functools
from pathlib import Path

from ..io.atomic import remove_path
from .common import Options, PeakMemory


def config_path(directory: Path, setting: str) -> Path:
    """``<directory>/<setting>.yaml`` under the working folder, else in the source checkout this package runs from."""
    local = Path(directory) / f"{setting}.yaml"
    if local.is_file():
        return local
    return Path(__file__).resolve().parents[2] / directory / f"{setting}.yaml"


@functools.lru_cache(maxsize=None)
def _read(path: str, directory: str, suite: str) -> dict:
    from ..errors import DataError
    from ..yamlio import read_yaml

    if not Path(path).is_file():
        raise DataError(f"{path}: the {suite} suite's config is missing (a source checkout has {directory}/)")
    return read_yaml(path)


def setting_config(directory: Path, setting: str, suite: str) -> dict:
    """The config of ``setting`` as written (a fresh copy to modify)."""
    return copy.deepcopy(_read(str(config_path(directory, setting)), str(directory), suite))


@functools.lru_cache(maxsize=None)
def prior_problem(prior: str | None) -> str | None:
    """Why a prior cannot be used (not shipped, unreadable), or None."""
    from ..errors import GenreconError
    from ..priors.checkpoint import read_checkpoint

    if prior is None:
        return None
    try:
        read_checkpoint(prior)
    except GenreconError as exc:
        return str(exc)
    return None


# -- running a setting through the pipeline -------------------------------------------------------------------
def run_shard(raw: dict, index: int, count: int) -> dict[str, float | None]:
    """Shard ``index`` of ``count`` of a config (:func:`genrecon.pipeline.execute.run`, no evaluation); returns
    the peak memory (MiB, :class:`~genrecon.benchmark.common.PeakMemory`) of each ``case|label``."""
    from ..config import load_config_dict
    from ..pipeline.execute import run

    cfg = load_config_dict(raw)
    peaks: dict[str, float | None] = {}
    active: dict[str, PeakMemory] = {}

    def progress(event: str, **kw) -> None:
        if event == "method_start":
            active["mem"] = PeakMemory(cfg.device).__enter__()  # run_config wrote the suite's resolved device
        elif event in ("method_done", "method_failed") and "mem" in active:
            mem = active.pop("mem")
            mem.__exit__(None, None, None)
            peaks[f"{kw['key']}|{kw['label']}"] = mem.mib

    run(cfg, progress=progress, shard_index=index, shard_count=count, evaluate=False)
    return peaks


def _worker_init() -> None:
    """A worker process of ``--jobs``: one torch thread (the processes share the cores)."""
    import torch

    torch.set_num_threads(1)


def run_setting(raw: dict, opts: Options, out: Path) -> tuple[dict, dict]:
    """Run ``raw`` into a fresh ``out`` (``opts.jobs`` shards in parallel on CPU); ``(report, peaks)``."""
    import torch

    from ..report import evaluate_run

    remove_path(out)  # the suite's own folder: timings come from this run, never a resumed one
    jobs = max(1, min(opts.jobs, len(raw["data"]["slices"]) if isinstance(raw["data"]["slices"], list) else 1))
    peaks: dict[str, float | None] = {}
    if jobs > 1 and torch.device(opts.device).type == "cpu":
        import concurrent.futures as cf
        import multiprocessing as mp

        raw = {**raw, "threads": 1}
        with cf.ProcessPoolExecutor(max_workers=jobs, mp_context=mp.get_context("spawn"),
                                    initializer=_worker_init) as pool:
            for part in pool.map(run_shard, [raw] * jobs, range(jobs), [jobs] * jobs):
                peaks.update(part)
    else:
        peaks = run_shard(raw, 0, 1)
    return evaluate_run(out), peaks


def references(out: Path, data_range: float) -> tuple[list[str], float, float]:
    """The case keys of a run folder and the max/min of its references in units of ``data_range``."""
    import json

    import numpy as np

    keys, hi, lo = [], -np.inf, np.inf
    for case in sorted((out / "cases").glob("*/case.json")):
        keys.append(json.loads(case.read_text())["key"])
        truth = np.abs(np.load(case.parent / "truth.npy")) / data_range
        hi, lo = max(hi, float(truth.max())), min(lo, float(truth.min()))
    return keys, hi, lo
