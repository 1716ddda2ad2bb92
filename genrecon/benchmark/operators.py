"""Suite ``operators``: speed, adjoint error and batch memory of every registered operator, against peers.

For each registered operator (MRI single-coil, SENSE multi-coil, CT parallel and fan beam, and any plugin
that provides ``example(size)``) at each image size: forward and adjoint milliseconds (median after a
warm-up, batch 1), the scale-free adjoint error ``|<Ax,y> - <x,A^H y>| / (||A|| ||x|| ||y||)`` in float64 and
float32, and the peak memory of a forward + adjoint on a batch. Peers on the same geometry: SigPy's SENSE
operator (MRI), ASTRA's CPU projectors and its GPU projector when CUDA is present, scikit-image's
``radon``/``iradon`` (parallel beam) and DeepInverse's ``MRI``/``Tomography`` when importable.
"""

from __future__ import annotations

import inspect
import math
import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch

from . import peers
from .common import Log, Options, PeakMemory, fmt, median_seconds, new_document, table

NAME = "operators"
TITLE = "Operators: forward/adjoint speed, adjoint error and batch memory"


@dataclass
class Plan:
    """What the suite measures (the defaults are the full suite)."""

    sizes: tuple[int, ...] = (128, 256, 512)
    batch: int = 8
    coils: int = 8
    acceleration: int = 4
    parallel_views: int = 180   # over 180 degrees
    fan_views: int = 180        # over 360 degrees; source at 2N, detector at N beyond the isocentre
    peers: bool = True
    operators: tuple[str, ...] | None = None  # None: every registered operator
    full_size: tuple[tuple, ...] = ()  # CT rows of set-up and memory, #17: (size, views) parallel, (size, views, "fan")
    full_matrix_limit_mib: float = 8192.0  # build genrecon's stored matrix at full size when its peak fits this


def default_plan(opts: Options) -> Plan:
    if opts.quick:
        return Plan(sizes=(64, 128), full_size=((64, 45),))
    return Plan(full_size=((512, 180), (512, 720), (512, 720, "fan")))


# -- building the operators ----------------------------------------------------------------------------
def _mask(n: int, acceleration: int) -> torch.Tensor:
    from ..registry import MASKS

    return MASKS.build("random", {"acceleration": acceleration, "center_fraction": 0.08})(
        (n, n), torch.Generator().manual_seed(n))


def _coil_maps(n: int, coils: int) -> torch.Tensor:
    from ..simulate.coils import simulate_coil_maps

    return simulate_coil_maps(coils, (n, n), generator=torch.Generator().manual_seed(n))


def _parallel_angles(views: int) -> np.ndarray:
    return np.arange(views) * math.pi / views


def _fan_angles(views: int) -> np.ndarray:
    return np.arange(views) * 2 * math.pi / views


def build(name: str, n: int, plan: Plan):
    """``(operator, description)`` for registered operator ``name`` at size ``n``; None if it cannot be built."""
    from ..operators.ct import FanBeam, ParallelBeam
    from ..operators.mri import MultiCoilMRI, SingleCoilMRI
    from ..registry import OPERATORS

    if name == "mri_single":
        return SingleCoilMRI(_mask(n, plan.acceleration)), f"random columns {plan.acceleration}x, 8% centre"
    if name == "mri_multi":
        return (MultiCoilMRI(_coil_maps(n, plan.coils), _mask(n, plan.acceleration)),
                f"{plan.coils} simulated coils, random columns {plan.acceleration}x")
    if name == "ct_parallel":  # this table: the stored matrix (the full-size table has the on-the-fly path)
        return (ParallelBeam(image_size=n, angles=_parallel_angles(plan.parallel_views).tolist(), matrix="always"),
                f"{plan.parallel_views} views / 180 deg")
    if name == "ct_fan":
        return (FanBeam(image_size=n, angles=_fan_angles(plan.fan_views).tolist(), source_distance=2.0 * n,
                        detector_distance=1.0 * n, matrix="always"), f"{plan.fan_views} views / 360 deg, flat detector")
    cls = OPERATORS.get(name)
    example = getattr(cls, "example", None)
    if example is not None and "size" in inspect.signature(example).parameters:
        return example(size=n), "its example(size)"
    return None


def _csr_bytes(*mats: torch.Tensor) -> int:
    total = 0
    for m in mats:
        for t in (m.values(), m.col_indices(), m.crow_indices()):
            total += t.numel() * t.element_size()
    return total


# -- measuring -----------------------------------------------------------------------------------------
def measure_genrecon(op, n: int, plan: Plan, opts: Options, device: str) -> dict[str, Any]:
    """genrecon's own operator: timing and adjoint errors (``check_operator``), CT build time, batch memory."""
    from ..operators.check import check_operator
    from ..operators.ct import clear_cache

    row: dict[str, Any] = {"implementation": "genrecon", "device": device}
    if hasattr(op, "matrices") and not op.uses_matrix:
        row["note"] = f"on the fly (a stored matrix would be ~{op.matrix_bytes() / 2**20:.0f} MiB)"
    elif hasattr(op, "matrices"):  # CT: build the float32 matrices first, timed separately
        clear_cache()
        t0 = time.perf_counter()
        mats = op.matrices(torch.float32, device)
        row["build_s"] = time.perf_counter() - t0
        row["matrix_mib"] = _csr_bytes(*mats) / 2**20
    op = op.to(device)
    res = check_operator(op, generator=torch.Generator().manual_seed(n), dtype=torch.float32, repeats=opts.repeats,
                         device=device)
    row.update(forward_ms=res["forward_ms"], adjoint_ms=res["adjoint_ms"],
               adjoint_error=res["adjoint_error_float64"], adjoint_error_float32=res["adjoint_error_float32"],
               norm=res["norm"])
    x = op.random_domain(plan.batch, torch.Generator().manual_seed(1), dtype=torch.float32, device=device)
    with torch.no_grad(), PeakMemory(device) as pm:
        op.adjoint(op(x))
    row["batch_peak_mib"] = pm.mib
    row["memory_method"] = pm.method
    if hasattr(op, "matrices"):
        clear_cache()  # the float64 matrices of the adjoint test are large at 512
    return row


def measure_numpy(label: str, fwd: Callable, adj: Callable, shape_x, shape_y, *, is_complex: bool, plan: Plan,
                  opts: Options, scale: float = 1.0, note: str = "") -> dict[str, Any]:
    """Time and adjoint-test a peer given as numpy callables (float32/complex64, batch 1)."""
    rng = np.random.default_rng(0)

    def rand(shape):
        a = rng.standard_normal(shape).astype(np.float32)
        return (a + 1j * rng.standard_normal(shape).astype(np.float32)).astype(np.complex64) if is_complex else a

    x, y = rand(shape_x), rand(shape_y)
    err, rel = peers.numpy_adjoint_errors(fwd, adj, shape_x, shape_y, is_complex=is_complex, scale=scale)
    row = {"implementation": label, "device": "cpu", "forward_ms": 1e3 * median_seconds(lambda: fwd(x), opts.repeats),
           "adjoint_ms": 1e3 * median_seconds(lambda: adj(y), opts.repeats), "adjoint_error_float32": err,
           "adjoint_rel": rel, "note": note}
    xb = [rand(shape_x) for _ in range(plan.batch)]
    with PeakMemory("cpu") as pm:
        for v in xb:
            adj(fwd(v))
    row["batch_peak_mib"] = pm.mib
    return row


def _missing(label: str, reason: str) -> dict[str, Any]:
    return {"implementation": label, "missing": reason}


def _failed(label: str, exc: BaseException) -> dict[str, Any]:
    return {"implementation": label, "missing": f"failed ({type(exc).__name__}: {str(exc).splitlines()[0][:200]})"}


def peer_rows(name: str, op, n: int, plan: Plan, opts: Options) -> list[dict[str, Any]]:
    """The peers' rows for operator ``name`` at size ``n`` (present ones measured, missing ones with why)."""
    rows: list[dict[str, Any]] = []
    if name in ("mri_single", "mri_multi"):
        if peers.available("sigpy"):
            try:
                if name == "mri_single":
                    maps = np.ones((1, n, n), np.complex64)
                else:
                    maps = op.maps.cpu().numpy().astype(np.complex64)
                mask = op.mask.cpu().numpy().astype(np.float32)
                A = peers.sigpy_sense(maps, mask)
                rows.append(measure_numpy(f"{peers.label('sigpy')} mri.linop.Sense", A.apply, A.H.apply,
                                          tuple(A.ishape), tuple(A.oshape), is_complex=True, plan=plan, opts=opts))
            except Exception as exc:  # noqa: BLE001 - a peer failing is a result, not a crash
                rows.append(_failed("SigPy mri.linop.Sense", exc))
        else:
            rows.append(_missing("SigPy mri.linop.Sense", peers.missing_reason("sigpy")))
        rows.append(deepinv_row(name, op, n, plan, opts))
        return rows
    if name not in ("ct_parallel", "ct_fan"):
        return rows
    fan = name == "ct_fan"
    angles = _fan_angles(plan.fan_views) if fan else _parallel_angles(plan.parallel_views)
    geometry = (op.source_distance, op.detector_distance, op.detector_spacing) if fan else None
    kinds = ["line_fanflat", "strip_fanflat"] if fan else ["line", "linear", "strip"]
    for kind in kinds:
        lab = f"{peers.label('astra')} CPU '{kind}'" if peers.available("astra") else f"ASTRA CPU '{kind}'"
        if not peers.available("astra"):
            rows.append(_missing(lab, peers.missing_reason("astra")))
            continue
        rows.append(_astra_row(lab, kind, n, angles, op.n_detectors, geometry, plan, opts))
    if peers.available("astra_gpu"):
        rows.append(_astra_row(f"{peers.label('astra')} GPU 'cuda'", "cuda", n, angles, op.n_detectors, geometry,
                               plan, opts))
    else:
        rows.append(_missing("ASTRA GPU 'cuda'", peers.missing_reason("astra_gpu")))
    if fan:
        rows.append(_missing("scikit-image radon/iradon", "n/a (parallel beam only)"))
    elif peers.available("skimage"):
        try:
            fwd, adj, bins = peers.skimage_radon(n, np.degrees(angles))
            x1 = np.random.default_rng(2).standard_normal(n * n).astype(np.float32)
            ax = fwd(x1)
            c = float(np.vdot(ax, ax)) / float(np.vdot(x1, adj(ax)))  # best constant making iradon ~ radon^T
            row = measure_numpy(f"{peers.label('skimage')} radon/iradon", fwd, lambda v: c * adj(v), (n * n,),
                                (bins * len(angles),), is_complex=False, plan=plan, opts=opts,
                                note=f"{bins} bins; not a matched pair: iradon(filter_name=None) x {c:.4g}")
            rows.append(row)
        except Exception as exc:  # noqa: BLE001
            rows.append(_failed("scikit-image radon/iradon", exc))
    else:
        rows.append(_missing("scikit-image radon/iradon", peers.missing_reason("skimage")))
    rows.append(deepinv_row(name, op, n, plan, opts))
    return rows


def _astra_row(lab, kind, n, angles, n_det, geometry, plan, opts) -> dict[str, Any]:
    try:
        A = peers.AstraProjector(image_size=n, angles=angles, n_detectors=n_det, kind=kind, fan=geometry)
    except Exception as exc:  # noqa: BLE001
        return _failed(lab, exc)
    try:
        W = A._W
        row = measure_numpy(lab, lambda v: W @ np.ravel(v), lambda v: W.T @ np.ravel(v), (n * n,),
                            (len(angles) * n_det,), is_complex=False, plan=plan, opts=opts)
        if kind == "cuda":
            row["device"] = "cuda (numpy in/out)"
        return row
    except Exception as exc:  # noqa: BLE001
        return _failed(lab, exc)
    finally:
        A.release()


def deepinv_row(name: str, op, n: int, plan: Plan, opts: Options) -> dict[str, Any]:
    """DeepInverse's operator for the same geometry, when importable (only parallel CT and MRI have one)."""
    lab = "DeepInverse " + ("MRI" if name.startswith("mri") else "Tomography")
    if not peers.available("deepinv"):
        return _missing(lab, peers.missing_reason("deepinv"))
    if name in ("mri_multi", "ct_fan"):
        return _missing(lab, "not compared (no matching geometry wired here)")
    try:
        import deepinv.physics as phys

        from ..operators.base import inner

        if name == "mri_single":
            p = phys.MRI(mask=op.mask.float()[None], img_size=(2, n, n), device="cpu")
            shape_x = (1, 2, n, n)
        else:
            p = phys.Tomography(angles=torch.tensor(np.degrees(_parallel_angles(plan.parallel_views)),
                                                    dtype=torch.float32), img_width=n, circle=False, device="cpu")
            shape_x = (1, 1, n, n)
        g = torch.Generator().manual_seed(0)
        x = torch.randn(shape_x, generator=g)
        yy = torch.randn(p.A(x).shape, generator=g)
        norm = math.sqrt(float(p.compute_norm(torch.randn(shape_x, generator=g), max_iter=20, verbose=False)))
        lhs, rhs = float(inner(p.A(x), yy)), float(inner(x, p.A_adjoint(yy)))
        return {"implementation": f"{peers.label('deepinv')} {lab.split()[-1]}", "device": "cpu",
                "forward_ms": 1e3 * median_seconds(lambda: p.A(x), opts.repeats),
                "adjoint_ms": 1e3 * median_seconds(lambda: p.A_adjoint(yy), opts.repeats),
                "adjoint_error_float32": abs(lhs - rhs) / (norm * float(x.norm()) * float(yy.norm()))}
    except Exception as exc:  # noqa: BLE001
        return _failed(lab, exc)


# -- the suite -------------------------------------------------------------------------------------------
def run(opts: Options, log: Log, plan: Plan | None = None) -> dict[str, Any]:
    """Run the suite; returns its document (see :mod:`genrecon.benchmark.common`)."""
    from ..registry import OPERATORS

    plan = plan or default_plan(opts)
    device = opts.device
    names = list(plan.operators) if plan.operators is not None else OPERATORS.names()
    names = sorted(names, key=lambda n: (ORDER.index(n) if n in ORDER else len(ORDER), n))
    doc = new_document(NAME, TITLE, opts, {
        "sizes": list(plan.sizes), "batch": plan.batch, "coils": plan.coils, "acceleration": plan.acceleration,
        "parallel_views": plan.parallel_views, "fan_views": plan.fan_views, "repeats": opts.repeats,
        "operators": names, "peers": plan.peers, "full_size": [list(g) for g in plan.full_size]})
    for name in names:
        for n in plan.sizes:
            built = build(name, n, plan)
            if built is None:
                doc["records"].append({"operator": name, "size": n, "implementation": "genrecon",
                                       "missing": "no benchmark geometry (give the class example(size=...))"})
                continue
            op, desc = built
            log(f"operators: {name} {n}x{n} ({desc})")
            base = {"operator": name, "size": n, "geometry": desc}
            doc["records"].append({**base, **measure_genrecon(op, n, plan, opts, device)})
            if plan.peers:
                for row in peer_rows(name, op, n, plan, opts):
                    doc["records"].append({**base, **row})
    if plan.full_size and (plan.operators is None or "ct_parallel" in plan.operators):
        from .ct_full import full_size_records

        full = full_size_records(plan.full_size, opts.repeats, plan.full_matrix_limit_mib, log)
        doc["records"] += [{**r, "full_size": True} for r in full]
    doc["tables"] = make_tables(doc)
    return doc


#: the order of the operators in the table (others follow, by name)
ORDER = ("mri_single", "mri_multi", "ct_parallel", "ct_fan")


def make_tables(doc: dict[str, Any]) -> list[dict[str, Any]]:
    s = doc["settings"]
    memory = next((r.get("memory_method") for r in doc["records"] if r.get("memory_method")), "")
    conventions = (
        f"float32 / complex64, batch 1; times: median of {s['repeats']} runs after one warm-up (GPU synchronised); "
        "adjoint error = |<Ax,y> - <x,A^H y>| / (||A|| ||x|| ||y||) with zero-mean Gaussian x, y (complex for MRI), "
        "||A|| by a power method; genrecon: float64 / float32, peers: in their float32; "
        f"batch memory: forward + adjoint of a batch of {s['batch']} (genrecon: one batched call; peers: a loop over "
        f"the batch; inputs excluded; CT matrices already built, their size is in the notes), measured as {memory}")
    names = sorted(s["operators"], key=lambda n: (ORDER.index(n) if n in ORDER else len(ORDER), n))
    rows = []
    for name in names:
        for r in doc["records"]:
            if r["operator"] != name or r.get("full_size"):
                continue
            head = [name, str(r["size"]), r["implementation"]]
            if "missing" in r:
                rows.append([*head, r["missing"], "", "", "", ""])
                continue
            err = fmt(r.get("adjoint_error"), ".1e")
            err32 = fmt(r.get("adjoint_error_float32"), ".1e")
            extra = [r["geometry"]] if r["implementation"] == "genrecon" and r.get("geometry") else []
            if r.get("build_s") is not None:
                extra.append(f"matrix {fmt(r['matrix_mib'], '.0f')} MiB built in {fmt(r['build_s'], '.2f')} s")
            if r.get("note"):
                extra.append(r["note"])
            if r.get("device") not in (None, "cpu"):
                extra.append(str(r["device"]))
            rows.append([*head, fmt(r["forward_ms"], ".2f"), fmt(r["adjoint_ms"], ".2f"),
                         f"{err} / {err32}" if r.get("adjoint_error") is not None else err32,
                         fmt(r.get("batch_peak_mib"), ".0f"), "; ".join(extra)])
    tables = [table("Forward / adjoint speed, adjoint error and batch memory",
                    ["operator", "size", "implementation", "forward ms", "adjoint ms", "adjoint error (f64 / f32)",
                     f"batch-{s['batch']} peak MiB", "notes"], rows, conventions=conventions)]
    full = [r for r in doc["records"] if r.get("full_size")]
    if full:
        from .ct_full import full_size_table

        tables.append(full_size_table(full, s["repeats"]))
    return tables
