"""Full-size CT rows of the ``operators`` suite: 512 x 512 with many views (issue #17).

For each ``(size, views)`` (a parallel beam over 180 degrees) or ``(size, views, "fan")`` (a fan beam over 360
degrees, source at 2N, detector N beyond the isocentre; ASTRA's kernels 'line_fanflat' and 'strip_fanflat'):
genrecon on the fly (``matrix: never``), genrecon's stored matrix where its build fits
``Plan.full_matrix_limit_mib``, and ASTRA's CPU kernels ('line', 'linear', 'strip') on the same geometry:
set-up seconds and the peak memory of set-up + one forward + one adjoint (each implementation on its own),
then forward / adjoint milliseconds of one image and of a batch of 8 (ASTRA: 8 calls), timed in interleaved
rounds (every implementation once per round) so that a shared machine's load falls on all alike. Times are
CPU seconds of this process (``time.process_time``), medians over the rounds; the 1-minute load average
before and after the rounds is recorded (the machine may be shared). genrecon's rows also give the peak
memory of a batch-8 forward + adjoint and, in the table, the batch-8 speed-up over 8 calls of each ASTRA kernel.
"""

from __future__ import annotations

import math
import os
import statistics
import time
from typing import Any, Callable

import numpy as np
import torch

from . import peers
from .common import PeakMemory, fmt, table


def _cpu(fn: Callable[[], Any]) -> float:
    t0 = time.process_time()
    fn()
    return time.process_time() - t0


def _operator(n: int, views: int, fan: bool, matrix: str = "auto"):
    """The parallel beam (views over 180 degrees) or the fan beam (over 360 degrees, source at 2N, detector N
    beyond the isocentre, as the operators table)."""
    from ..operators.ct import FanBeam, ParallelBeam

    if fan:
        return FanBeam(image_size=n, angles=[2 * math.pi * i / views for i in range(views)],
                       source_distance=2.0 * n, detector_distance=1.0 * n, matrix=matrix)
    return ParallelBeam(image_size=n, angles=[math.pi * i / views for i in range(views)], matrix=matrix)


def _genrecon(n: int, views: int, matrix: str, fan: bool = False) -> tuple[dict[str, Any], dict[str, Callable]]:
    g = torch.Generator().manual_seed(0)
    x, x8 = torch.rand(1, 1, n, n, generator=g), torch.rand(8, 1, n, n, generator=g)
    with torch.no_grad(), PeakMemory("cpu") as pm:
        t0, w0 = time.process_time(), time.perf_counter()
        op = _operator(n, views, fan, matrix)
        op.prepare(torch.float32, "cpu")
        setup, wall = time.process_time() - t0, time.perf_counter() - w0
        y = op(x)
        op.adjoint(y)
    with torch.no_grad(), PeakMemory("cpu") as pm8:
        y8 = op(x8)
        op.adjoint(y8)
    row = {"implementation": f"genrecon ({'stored matrix' if matrix == 'always' else 'on the fly'})",
           "setup_s": setup, "setup_wall_s": wall, "peak_mib": pm.mib, "batch8_peak_mib": pm8.mib, "y": y}
    return row, {"forward": lambda: op(x), "adjoint": lambda: op.adjoint(y), "batch8_forward": lambda: op(x8),
                 "batch8_adjoint": lambda: op.adjoint(y8), "op": op}


def _astra(kind: str, n: int, views: int, n_det: int, op=None):
    """ASTRA's CPU projector ``kind`` on the parallel beam of ``_operator``, or on the fan beam ``op``."""
    import astra

    rng = np.random.default_rng(0)
    x, y = rng.random(n * n).astype(np.float32), rng.random(views * n_det).astype(np.float32)
    with PeakMemory("cpu") as pm:
        t0, w0 = time.process_time(), time.perf_counter()
        if op is None:
            geometry = astra.create_proj_geom("parallel", 1.0, n_det, np.arange(views) * math.pi / views)
        else:
            geometry = astra.create_proj_geom("fanflat", op.detector_spacing, n_det, np.array(op.angles),
                                              op.source_distance, op.detector_distance)
        pid = astra.create_projector(kind, geometry,
                                     astra.create_vol_geom(n, n))
        W = astra.OpTomo(pid)
        setup, wall = time.process_time() - t0, time.perf_counter() - w0
        W.T @ (W @ x)
    row = {"implementation": f"{peers.label('astra')} CPU '{kind}'", "setup_s": setup, "setup_wall_s": wall,
           "peak_mib": pm.mib}
    return row, {"forward": lambda: W @ x, "adjoint": lambda: W.T @ y,
                 "batch8_forward": lambda: [W @ x for _ in range(8)],
                 "batch8_adjoint": lambda: [W.T @ y for _ in range(8)], "release": lambda: astra.projector.delete(pid)}


def _adjoint_error(op) -> float:
    """Scale-free float64 adjoint error, ``||A||`` from the operator's own cached ``norm_squared()``."""
    from ..operators.base import adjoint_error

    norm = math.sqrt(op.norm_squared(dtype=torch.float64))
    return adjoint_error(op, torch.Generator().manual_seed(1), dtype=torch.float64, batch=1, norm=norm)


def full_size_records(geometries, repeats: int, matrix_limit_mib: float, log) -> list[dict[str, Any]]:
    """Records for each ``(size, views)`` in ``geometries`` (see the module docstring)."""
    from ..operators.ct import clear_cache
    from ..operators.ct.matrix import BUILD_PEAK_FACTOR

    records = []
    for n, views, *kind in geometries:
        fan = kind == ["fan"]
        probe = _operator(n, views, fan)
        n_det = probe.n_detectors
        base = {"operator": "ct_fan" if fan else "ct_parallel", "size": n, "views": views, "n_detectors": n_det}
        est = probe.matrix_bytes()
        log(f"operators: full-size CT {n}x{n}, {views} views{', fan beam' if fan else ''}")
        clear_cache()
        impls, rows = [], []
        if est * BUILD_PEAK_FACTOR <= matrix_limit_mib * 2**20:
            impls.append(_genrecon(n, views, "always", fan))
        else:
            rows.append({**base, "implementation": "genrecon (stored matrix)",
                         "missing": f"not built: ~{est / 2**30:.1f} GiB kept, "
                                    f"~{BUILD_PEAK_FACTOR * est / 2**30:.0f} GiB peak "
                                    f"(over the suite's {matrix_limit_mib / 1024:.0f} GiB)"})
        impls.append(_genrecon(n, views, "never", fan))
        for kind in ("line_fanflat", "strip_fanflat") if fan else ("line", "linear", "strip"):
            if peers.available("astra"):
                impls.append(_astra(kind, n, views, n_det, probe if fan else None))
            else:
                rows.append({**base, "implementation": f"ASTRA CPU '{kind}'", "missing": peers.missing_reason("astra")})
        times: dict[tuple[int, str], list[float]] = {}
        load = [os.getloadavg()[0]]
        with torch.no_grad():
            for r in range(repeats + 1):  # round 0 is the warm-up
                for i, (_, fns) in enumerate(impls):
                    for what in ("forward", "adjoint"):
                        t = _cpu(fns[what])
                        if r:
                            times.setdefault((i, what), []).append(t)
            for _ in range(max(1, repeats // 3)):
                for i, (_, fns) in enumerate(impls):
                    for what in ("batch8_forward", "batch8_adjoint"):
                        times.setdefault((i, what), []).append(_cpu(fns[what]))
        load.append(os.getloadavg()[0])
        reference = impls[0][0]["y"] if impls[0][0]["implementation"].endswith("matrix)") else None
        for i, (row, fns) in enumerate(impls):
            y = row.pop("y", None)
            row.update({f"{k}_ms": 1e3 * statistics.median(times[(i, k)])
                        for k in ("forward", "adjoint", "batch8_forward", "batch8_adjoint")})
            if row["implementation"] == "genrecon (on the fly)":
                row["adjoint_error"] = _adjoint_error(fns["op"])
                if reference is not None:
                    row["max_rel_diff"] = float((y - reference).abs().max() / reference.abs().max())
            if "release" in fns:
                fns["release"]()
            rows.append({**base, **row, "load": load})
        clear_cache()
        records += rows
    return records


def _speedups(r: dict[str, Any], records: list[dict[str, Any]]) -> str:
    """Batch-8 forward / adjoint speed-up of genrecon row ``r`` over 8 calls of each ASTRA kernel (same geometry)."""
    parts = []
    for a in records:
        if a.get("missing") or not a["implementation"].startswith("ASTRA") or (
                a["operator"], a["size"], a["views"]) != (r["operator"], r["size"], r["views"]):
            continue
        kind = a["implementation"].rsplit(" ", 1)[-1]
        parts.append(f"{kind} {a['batch8_forward_ms'] / r['batch8_forward_ms']:.1f}x / "
                     f"{a['batch8_adjoint_ms'] / r['batch8_adjoint_ms']:.1f}x")
    return ("batch 8 vs 8 ASTRA calls (fwd / adj): " + ", ".join(parts)) if parts else ""


def full_size_table(records: list[dict[str, Any]], repeats: int) -> dict[str, Any]:
    rows = []
    for r in records:
        beam = "fan beam, " if r["operator"] == "ct_fan" else ""
        head = [f"{r['size']}x{r['size']}, {beam}{r['views']} views, {r['n_detectors']} bins", r["implementation"]]
        if "missing" in r:
            rows.append([*head, r["missing"], "", "", "", "", "", ""])
            continue
        notes = []
        if r.get("adjoint_error") is not None:
            notes.append(f"adjoint error (f64) {r['adjoint_error']:.1e}")
        if r.get("max_rel_diff") is not None:
            notes.append(f"max |y - y_matrix| / max |y_matrix| = {r['max_rel_diff']:.1e} (float32)")
        if r["implementation"].startswith("genrecon"):
            if speedups := _speedups(r, records):
                notes.append(speedups)
            if r.get("batch8_peak_mib") is not None:
                notes.append(f"batch-8 peak {r['batch8_peak_mib']:.0f} MiB")
        if r.get("load"):
            notes.append("load {:.1f} -> {:.1f}".format(*r["load"]))
        rows.append([*head, f"{fmt(r['setup_s'], '.2f')} ({fmt(r['setup_wall_s'], '.2f')})", fmt(r["peak_mib"], ".0f"),
                     fmt(r["forward_ms"], ".0f"), fmt(r["adjoint_ms"], ".0f"), fmt(r["batch8_forward_ms"], ".0f"),
                     fmt(r["batch8_adjoint_ms"], ".0f"), "; ".join(notes)])
    return table("CT at full size: 512x512 parallel (and fan) beams, set-up, memory, forward / adjoint (#17)",
                 ["geometry", "implementation", "set-up CPU s (wall)", "peak MiB", "forward ms", "adjoint ms",
                  "batch-8 forward ms", "batch-8 adjoint ms", "notes"], rows,
                 conventions=(f"float32; times: CPU seconds of the process (time.process_time), medians of {repeats} "
                              "interleaved rounds after a warm-up round (batch 8: of a third as many; ASTRA: 8 calls); "
                              "set-up: building the operator (genrecon's stored matrix: the CSR build and its norm) or "
                              "ASTRA's projector; peak: resident memory above the start during set-up + one forward + "
                              "one adjoint of one image (inputs excluded; genrecon's notes: of a batch of 8); ASTRA: "
                              "its OpTomo on numpy; load: the 1-minute load average before -> after the timed rounds"))
