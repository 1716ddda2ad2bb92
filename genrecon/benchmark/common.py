"""What every benchmark suite shares: options, machine description, timing, peak memory, tables, JSON.

A suite returns a *document* (a JSON-serialisable dict) with the machine it ran on, its settings, raw
``records`` (one dict per measurement) and ready-to-print ``tables``; :func:`genrecon.io.writers.write_json` stores it
atomically as ``<out>/<suite>.json`` and :mod:`genrecon.benchmark.results` renders every document found in
the folder into ``RESULTS.md``.

Example:
    >>> t = table("demo", ["method", "PSNR"], [["fista_tv", "30.00"]], conventions="data_range 1")
    >>> t["columns"], t["rows"][0][1]
    (['method', 'PSNR'], '30.00')
"""

from __future__ import annotations

import datetime as _dt
import math
import os
import platform
import statistics
import subprocess
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import torch


#: a progress callback: the CLI prints the lines, library code never does
Log = Callable[[str], None]


def no_log(message: str) -> None:
    """A :data:`Log` that drops every message."""


@dataclass(frozen=True)
class Options:
    """Settings shared by the suites (the ``genrecon benchmark`` options).

    Attributes:
        out: folder of the JSON, PNG and RESULTS.md outputs.
        device: ``cpu``, ``cuda`` or ``cuda:N`` (already resolved; ``auto`` is resolved by the CLI).
        threads: torch CPU threads (None: torch's default); also exported to the peers.
        repeats: timed runs per measurement (median reported, after a warm-up run).
        quick: a short run (fewer sizes, slices and iterations) that checks the code, not the numbers.
        slices: images per modality for the classical/generative suites (None: the suite's default).
        samples: posterior samples per slice for DPS (> 1 gives std maps and 2-sigma coverage).
        data_dir: folder of ``brain-mri-128.h5`` / ``head-ct-128.h5`` (``scripts/prepare_data.py all``).
        seed: base seed of masks, noise and samplers.
        all_devices: the device was chosen automatically: the scaling suite then measures CPU and CUDA.
        jobs: worker processes for the generative suite (slices run in parallel, one torch thread each).
        settings: the generative settings to run (None: all).
        split: generative: the prepared datasets' split: ``val`` (held-out slabs of the training subjects, the
            configs' choice) or ``test_subject`` (whole subjects never used in training).
    """

    out: Path
    device: str = "cpu"
    threads: int | None = None
    repeats: int = 5
    quick: bool = False
    slices: int | None = None
    samples: int = 4
    data_dir: Path = Path("data/prepared")
    seed: int = 0
    all_devices: bool = False
    jobs: int = 1
    settings: tuple[str, ...] | None = None
    split: str = "val"

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["out"], d["data_dir"] = str(self.out), str(self.data_dir)
        d["settings"] = list(self.settings) if self.settings is not None else None
        return d


# -- machine -------------------------------------------------------------------------------------------
def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def _memory_gib() -> float | None:
    try:
        with open("/proc/meminfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("MemTotal:"):
                    return round(int(line.split()[1]) / 2**20, 1)
    except (OSError, ValueError):
        pass
    return None


def git_commit() -> str:
    """The commit of the genrecon checkout in use (``+dirty`` with local changes), or why it is unknown."""
    root = Path(__file__).resolve().parents[2]
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                              timeout=10)
        if head.returncode != 0:
            return "unknown (not a git checkout)"
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10)
        return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError) as exc:
        return f"unknown ({type(exc).__name__})"


def machine_info(device: str) -> dict[str, Any]:
    """Where and with what a suite ran: CPU, cores, memory, GPU, versions, threads, date and commit."""
    from .. import __version__

    dev = torch.device(device)
    gpu = None
    if dev.type == "cuda" or torch.cuda.is_available():
        try:
            gpu = torch.cuda.get_device_name(dev if dev.type == "cuda" else 0)
        except Exception:  # noqa: BLE001 - a broken driver must not stop the benchmark
            gpu = "unknown"
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "memory_gib": _memory_gib(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "device": str(dev),
        "gpu": gpu,
        "cuda": torch.version.cuda if gpu else None,
        "genrecon": __version__,
        "commit": git_commit(),
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "load_start": load_average(),
    }


def load_average() -> float | None:
    """The 1-minute load average (what other processes take from the cores a timing shares), None if unknown."""
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None


def short_commit(commit: str) -> str:
    """``0123456789ab+dirty`` from a full hash (other text unchanged)."""
    head, plus, rest = commit.partition("+")
    return (head[:12] if len(head) == 40 else head) + plus + rest


def machine_line(m: dict[str, Any]) -> str:
    """One line describing :func:`machine_info`'s output."""
    gpu = f", GPU {m['gpu']} (CUDA {m.get('cuda')})" if m.get("gpu") else ", no GPU"
    mem = f", {m['memory_gib']} GiB" if m.get("memory_gib") else ""
    return (f"{m['cpu']}, {m['cores']} cores{mem}{gpu}; torch {m['torch']}, {m['threads']} torch thread(s) "
            f"(OMP_NUM_THREADS={m.get('omp_num_threads') or 'unset'}), device {m['device']}; "
            f"genrecon {m['genrecon']} at {short_commit(m['commit'])}; "
            f"{m['date']}" + _load_note(m))


def _load_note(m: dict[str, Any]) -> str:
    """``; load 1.2 at start, 3.4 at end`` (1-minute averages) when recorded."""
    start, end = m.get("load_start"), m.get("load_end")
    if start is None and end is None:
        return ""
    parts = [f"{v:.1f} at {w}" for v, w in ((start, "start"), (end, "end")) if v is not None]
    return f"; load (1-min average) {', '.join(parts)}"


def apply_threads(threads: int | None) -> None:
    """Use ``threads`` torch threads, and tell the peers (BART's OpenMP, SigPy's numba) the same."""
    if threads is None:
        return
    torch.set_num_threads(threads)
    for var in ("OMP_NUM_THREADS", "NUMBA_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(threads)


# -- timing ----------------------------------------------------------------------------------------------
def sync(device: str | torch.device) -> None:
    """Wait for queued GPU work (no-op on CPU), so wall-clock times are complete."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(torch.device(device))


def median_seconds(fn: Callable[[], Any], repeats: int, device: str | torch.device = "cpu",
                   warmup: int = 1) -> float:
    """Median wall time of ``fn()`` over ``repeats`` runs after ``warmup`` untimed runs (GPU synchronised)."""
    with torch.no_grad():
        for _ in range(warmup):
            fn()
        sync(device)
        times = []
        for _ in range(max(1, repeats)):
            t0 = time.perf_counter()
            fn()
            sync(device)
            times.append(time.perf_counter() - t0)
    return float(statistics.median(times))


def timed(fn: Callable[[], Any], device: str | torch.device = "cpu") -> tuple[Any, float]:
    """``(fn(), seconds)`` for one synchronised run."""
    sync(device)
    t0 = time.perf_counter()
    out = fn()
    sync(device)
    return out, time.perf_counter() - t0


def thread_clock(device: str | torch.device) -> bool:
    """Whether :func:`clocked`'s CPU seconds time all of a run: on the CPU with one torch thread (all the work on
    the calling thread) and a fine ``thread_time``; else use its wall seconds."""
    return str(device) == "cpu" and torch.get_num_threads() == 1 and \
        time.get_clock_info("thread_time").resolution <= 1e-6


def clocked(fn: Callable[[], Any], device: str | torch.device = "cpu") -> tuple[float, float]:
    """``(wall seconds, CPU seconds of the calling thread)`` for one synchronised run of ``fn`` (the CPU time leaves
    out the time other processes held the core: the figure to use on a shared machine, see :func:`thread_clock`)."""
    sync(device)
    w0, c0 = time.perf_counter(), time.thread_time()
    fn()
    sync(device)
    return time.perf_counter() - w0, time.thread_time() - c0


# -- memory ----------------------------------------------------------------------------------------------
def _rss_bytes() -> int | None:
    try:
        with open("/proc/self/statm", encoding="ascii") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError, AttributeError):
        return None


def _malloc_trim() -> None:
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


CPU_MEMORY_METHOD = ("peak resident set size above the level at the start (Linux /proc/self/statm sampled every "
                     "millisecond by a thread, after malloc_trim): includes allocator caching, misses spikes "
                     "shorter than ~1 ms")
CUDA_MEMORY_METHOD = "torch.cuda.max_memory_allocated above the allocation at the start (tensors only)"


class PeakMemory:
    """Context manager measuring the peak memory used inside it, in MiB (``.mib``; None if unavailable).

    CUDA: ``torch.cuda.max_memory_allocated`` after a reset, minus what was allocated at entry. CPU (Linux):
    the resident set size sampled by a background thread, minus the level at entry (see
    :data:`CPU_MEMORY_METHOD`). ``.method`` says which.

    Example:
        >>> with PeakMemory("cpu") as pm:
        ...     _ = torch.zeros(1 << 22)
        >>> pm.mib is None or pm.mib >= 0
        True
    """

    def __init__(self, device: str | torch.device = "cpu", interval: float = 1e-3):
        self.device = torch.device(device)
        self.interval = interval
        self.mib: float | None = None
        self.method = CUDA_MEMORY_METHOD if self.device.type == "cuda" else CPU_MEMORY_METHOD
        self._stop = threading.Event()
        self._peak = 0
        self._base = 0
        self._thread: threading.Thread | None = None

    def _sample(self) -> None:
        while not self._stop.is_set():
            rss = _rss_bytes() or 0
            if rss > self._peak:
                self._peak = rss
            time.sleep(self.interval)

    def __enter__(self) -> "PeakMemory":
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self._base = torch.cuda.memory_allocated(self.device)
            return self
        _malloc_trim()
        base = _rss_bytes()
        if base is None:
            self.method = "unavailable (no /proc/self/statm on this system)"
            return self
        self._base = self._peak = base
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.mib = (torch.cuda.max_memory_allocated(self.device) - self._base) / 2**20
            return
        if self._thread is None:
            return
        self._stop.set()
        self._thread.join()
        self._peak = max(self._peak, _rss_bytes() or 0)
        self.mib = max(self._peak - self._base, 0) / 2**20


# -- numbers and tables ----------------------------------------------------------------------------------
def mean_std(values) -> tuple[float, float]:
    """Mean and sample standard deviation of the finite values (nan, nan if none; std 0 for one value)."""
    vals = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    if not vals:
        return math.nan, math.nan
    return statistics.fmean(vals), (statistics.stdev(vals) if len(vals) > 1 else 0.0)


def fmt(value, spec: str = ".2f", missing: str = "-") -> str:
    """``format(value, spec)`` for numbers, ``missing`` for None/nan."""
    if value is None or isinstance(value, bool):
        return missing
    try:
        v = float(value)
    except (TypeError, ValueError):
        return str(value)
    return missing if math.isnan(v) else format(v, spec)


def pm(mean: float, std: float, spec: str = ".2f") -> str:
    """``"mean ± std"`` (just the mean when std is nan)."""
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "-"
    return fmt(mean, spec) if std is None or math.isnan(std) else f"{fmt(mean, spec)} ± {fmt(std, spec)}"


def table(title: str, columns: list[str], rows: list[list[str]], *, conventions: str | None = None,
          notes: list[str] | tuple[str, ...] = ()) -> dict[str, Any]:
    """A printable table: ``title``, ``columns``, ``rows`` of strings, the metric ``conventions`` and ``notes``."""
    return {"title": title, "columns": list(columns), "rows": [[str(c) for c in r] for r in rows],
            "conventions": conventions, "notes": list(notes)}


def metric_conventions(*, data_range: str, magnitude: bool, crop: str = "none (the whole image)",
                       averaging: str | None = None) -> str:
    """The metric conventions printed with every quality table, so numbers can be compared across reports."""
    parts = [
        "PSNR = 10 log10(data_range^2 / MSE); SSIM: scikit-image, 7x7 uniform window (as fastMRI's evaluation)",
        "metrics on magnitudes |x| of complex images (MRI), real images as they are (CT)" if magnitude
        else "metrics on the real image (no magnitude, no clipping)",
        f"data_range: {data_range}",
        f"cropping: {crop}",
    ]
    if averaging:
        parts.append(averaging)
    return "; ".join(parts)


def data_range_note(volume_max: float, volume_min: float) -> str:
    """How PSNR converts to fastMRI-style (data_range = volume max) and DIVal-style (max - min) ranges."""
    def shift(r: float) -> str:  # 10 log10(r^2 / MSE) = 10 log10(1 / MSE) + 20 log10(r)
        return f"{20 * math.log10(r):+.2f} dB" if r > 0 else "n/a"

    return (f"the references' max is {volume_max:.4g} and min {volume_min:.4g}: PSNR with data_range = volume max "
            f"(fastMRI) = this PSNR {shift(volume_max)}; with max - min (DIVal) = this PSNR "
            f"{shift(volume_max - volume_min)}; SSIM changes too but no simple conversion exists")


# -- documents -------------------------------------------------------------------------------------------
def new_document(suite: str, title: str, opts: Options, settings: dict[str, Any]) -> dict[str, Any]:
    """The skeleton of a suite's JSON document."""
    from .peers import peer_status

    return {
        "suite": suite,
        "title": title,
        "quick": opts.quick,
        "machine": machine_info(opts.device),
        "options": opts.as_dict(),
        "peers": peer_status(),
        "settings": settings,
        "tables": [],
        "records": [],
        "plots": [],
        "missing": [],
    }
