"""Full-size CT rows of the ``operators`` suite: 512 x 512 parallel beam with many views (issue #17).

For each (size, views): genrecon on the fly (``matrix: never``), genrecon's stored matrix where its build fits
``Plan.full_matrix_limit_mib``, and ASTRA's CPU kernels ('line', 'linear', 'strip') on the same geometry:
set-up seconds, peak memory of set-up + forward + adjoint, forward / adjoint milliseconds of one image and
of a batch of 8 (ASTRA: 8 calls). Times are CPU seconds of this process (``time.process_time``: the machine
may be shared), median of ``repeats`` runs after a warm-up; the batch of 8 is timed once for ASTRA at
``views > 360`` (8 calls are already 8 repeats).
"""

from __future__ import annotations

import math
import statistics
import time
from typing import Any, Callable

import numpy as np
import torch

from . import peers
from .common import PeakMemory, fmt, table


def _cpu_median(fn: Callable[[], Any], repeats: int) -> float:
    with torch.no_grad():
        fn()
        times = []
        for _ in range(max(1, repeats)):
            t0 = time.process_time()
            fn()
            times.append(time.process_time() - t0)
    return float(statistics.median(times))


def _genrecon_row(n: int, views: int, matrix: str, repeats: int, reference=None) -> dict[str, Any]:
    from ..operators.base import adjoint_error
    from ..operators.ct import ParallelBeam, clear_cache

    clear_cache()
    angles = [math.pi * i / views for i in range(views)]
    g = torch.Generator().manual_seed(0)
    x = torch.rand(1, 1, n, n, generator=g)
    with torch.no_grad(), PeakMemory("cpu") as pm:
        t0, w0 = time.process_time(), time.perf_counter()
        op = ParallelBeam(image_size=n, angles=angles, matrix=matrix).prepare(torch.float32, "cpu")
        setup, setup_wall = time.process_time() - t0, time.perf_counter() - w0
        y = op(x)
        op.adjoint(y)
    row = {"implementation": f"genrecon ({'stored matrix' if matrix == 'always' else 'on the fly'})",
           "setup_s": setup, "setup_wall_s": setup_wall, "peak_mib": pm.mib,
           "forward_ms": 1e3 * _cpu_median(lambda: op(x), repeats),
           "adjoint_ms": 1e3 * _cpu_median(lambda: op.adjoint(y), repeats)}
    x8 = torch.rand(8, 1, n, n, generator=g)
    y8 = op(x8)
    row["batch8_forward_ms"] = 1e3 * _cpu_median(lambda: op(x8), max(1, repeats // 2))
    row["batch8_adjoint_ms"] = 1e3 * _cpu_median(lambda: op.adjoint(y8), max(1, repeats // 2))
    if reference is not None:
        row["max_rel_diff"] = float((y - reference).abs().max() / reference.abs().max())
    if matrix == "never":  # scale-free float64 adjoint error, ||A|| from 5 power steps from a constant image
        v = torch.ones(1, 1, n, n, dtype=torch.float64)
        with torch.no_grad():
            for _ in range(5):
                v = op.adjoint(op(v))
                v /= v.norm()
            norm = math.sqrt(float(op(v).norm() ** 2))
        row["adjoint_error"] = adjoint_error(op, torch.Generator().manual_seed(1), dtype=torch.float64, batch=1,
                                             norm=norm)
    clear_cache()
    return row, y


def _astra_row(kind: str, n: int, views: int, n_det: int, repeats: int) -> dict[str, Any]:
    import astra

    angles = np.arange(views) * math.pi / views
    rng = np.random.default_rng(0)
    x, y = rng.random(n * n).astype(np.float32), rng.random(views * n_det).astype(np.float32)
    with PeakMemory("cpu") as pm:
        t0, w0 = time.process_time(), time.perf_counter()
        pid = astra.create_projector(kind, astra.create_proj_geom("parallel", 1.0, n_det, angles),
                                     astra.create_vol_geom(n, n))
        W = astra.OpTomo(pid)
        setup, setup_wall = time.process_time() - t0, time.perf_counter() - w0
        W.T @ (W @ x)
    try:
        row = {"implementation": f"{peers.label('astra')} CPU '{kind}'", "setup_s": setup, "setup_wall_s": setup_wall,
               "peak_mib": pm.mib, "forward_ms": 1e3 * _cpu_median(lambda: W @ x, repeats),
               "adjoint_ms": 1e3 * _cpu_median(lambda: W.T @ y, repeats)}
        reps8 = 1 if views > 360 else max(1, repeats // 2)
        row["batch8_forward_ms"] = 1e3 * _cpu_median(lambda: [W @ x for _ in range(8)], reps8)
        row["batch8_adjoint_ms"] = 1e3 * _cpu_median(lambda: [W.T @ y for _ in range(8)], reps8)
        return row
    finally:
        astra.projector.delete(pid)


def full_size_records(geometries, repeats: int, matrix_limit_mib: float, log) -> list[dict[str, Any]]:
    """Records for each ``(size, views)`` in ``geometries`` (see the module docstring)."""
    from ..operators.ct import ParallelBeam, default_n_detectors

    records = []
    for n, views in geometries:
        base = {"operator": "ct_parallel", "size": n, "views": views, "n_detectors": default_n_detectors(n)}
        fits = ParallelBeam(image_size=n, angles=[0.0] * views).matrix_bytes() * 2.5 <= matrix_limit_mib * 2**20
        log(f"operators: full-size CT {n}x{n}, {views} views (matrix {'built' if fits else 'not built'})")
        reference = None
        if fits:
            row, reference = _genrecon_row(n, views, "always", repeats)
            records.append({**base, **row})
        else:
            est = ParallelBeam(image_size=n, angles=[0.0] * views).matrix_bytes() / 2**30
            records.append({**base, "implementation": "genrecon (stored matrix)",
                            "missing": f"not built: ~{est:.1f} GiB kept, ~{2.5 * est:.0f} GiB peak (limit "
                                       f"{matrix_limit_mib / 1024:.0f} GiB)"})
        row, _ = _genrecon_row(n, views, "never", repeats, reference)
        records.append({**base, **row})
        for kind in ("line", "linear", "strip"):
            if not peers.available("astra"):
                records.append({**base, "implementation": f"ASTRA CPU '{kind}'", "missing": peers.missing_reason("astra")})
                continue
            records.append({**base, **_astra_row(kind, n, views, base["n_detectors"], repeats)})
    return records


def full_size_table(records: list[dict[str, Any]], repeats: int) -> dict[str, Any]:
    rows = []
    for r in records:
        head = [f"{r['size']}x{r['size']}, {r['views']} views, {r['n_detectors']} bins", r["implementation"]]
        if "missing" in r:
            rows.append([*head, r["missing"], "", "", "", "", "", ""])
            continue
        notes = []
        if r.get("adjoint_error") is not None:
            notes.append(f"adjoint error (f64) {r['adjoint_error']:.1e}")
        if r.get("max_rel_diff") is not None:
            notes.append(f"max |y - y_matrix| / max |y_matrix| = {r['max_rel_diff']:.1e} (float32)")
        rows.append([*head, f"{fmt(r['setup_s'], '.2f')} ({fmt(r['setup_wall_s'], '.2f')})", fmt(r["peak_mib"], ".0f"),
                     fmt(r["forward_ms"], ".0f"), fmt(r["adjoint_ms"], ".0f"), fmt(r["batch8_forward_ms"], ".0f"),
                     fmt(r["batch8_adjoint_ms"], ".0f"), "; ".join(notes)])
    return table("CT at full size: parallel beam 512x512, set-up, memory, forward / adjoint (#17)",
                 ["geometry", "implementation", "set-up CPU s (wall)", "peak MiB", "forward ms", "adjoint ms",
                  "batch-8 forward ms", "batch-8 adjoint ms", "notes"], rows,
                 conventions=(f"float32; times: CPU seconds of the process (time.process_time), median of {repeats} "
                              "runs after a warm-up (batch 8: of half as many; ASTRA at > 360 views: one timed loop of "
                              "8 calls); set-up: building the operator (genrecon's stored matrix: the CSR build and its "
                              "norm) or ASTRA's projector; peak: resident memory above the start during set-up + one "
                              "forward + one adjoint (inputs excluded); ASTRA: its OpTomo on numpy, one call per image"))
