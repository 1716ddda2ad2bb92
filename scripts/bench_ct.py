#!/usr/bin/env python
"""Benchmark: genrecon's CT projector against ASTRA, DeepInverse and scikit-image; FBP and FISTA-TV quality.

Section 1 (speed): 256x256 float32 image, 363 detector bins of 1 pixel, parallel beam; 180 views over 180
degrees, 60 views over 180 degrees, 90 views over 90 degrees. Forward and adjoint (backprojection) times
are the median of ``--repeats`` runs after one warm-up, one image; the adjoint error is
``|<Ax, y> - <x, A^T y>| / (||A|| ||x|| ||y||)`` with zero-mean Gaussian ``x``, ``y`` in float32
(``||A||`` by a power method), and the same mismatch relative to ``|<Ax, y>|`` ("rel err"). genrecon's
matrix build time (both directions, normalisation included) is reported too. scikit-image's ``iradon(filter_name=None)`` is not an adjoint of ``radon``; it is rescaled by
the best constant before its error is computed. A peer that is not installed prints "missing" and why.

Section 2 (quality): the 256x256 modified Shepp-Logan phantom, noiseless, normalised operator; FBP (ramp)
and FISTA-TV (``RECONSTRUCTORS.build("fista_tv")``, non-negative, 100 iterations, the best of a few
lambdas) at 60 views and at 90 views over 0-90 degrees; PSNR with data_range 1 (the phantom's maximum).

Section 3 (``--full-size 512x720,512x720xfan``, instead of sections 1-2): the operators suite's full-size rows
(:mod:`genrecon.benchmark.ct_full`): genrecon on the fly (and its stored matrix where it fits 8 GiB) against
ASTRA's CPU kernels on the same parallel or fan geometry: set-up, peak memory (one image and a batch of 8),
CPU ms of one image and of a batch of 8 (ASTRA: 8 calls) in interleaved rounds, the load average.

    python scripts/bench_ct.py [--json out.json] [--repeats 5] [--threads 1] [--skip-quality]
    python scripts/bench_ct.py --full-size 512x720,512x720xfan --threads 1 --repeats 3 [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import time

import numpy as np
import torch

N, N_DET = 256, 363
CASES = [("180 views / 180 deg", 180, 180.0), ("60 views / 180 deg", 60, 180.0), ("90 views / 90 deg", 90, 90.0)]
LAMBDAS = [1e-4, 3e-4, 1e-3]


def degrees(n_views: int, span: float) -> np.ndarray:
    return np.arange(n_views) * span / n_views


def median_ms(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def adjoint_errors(fwd, adj, shape_x, shape_y, scale: float = 1.0, seed: int = 0) -> tuple[float, float]:
    """Adjoint errors of numpy callables (``adj`` multiplied by ``scale``), zero-mean Gaussian x, y in float32.

    Returns ``(scale_free, relative)``: ``|<Ax,y> - <x,A'y>| / (||A|| ||x|| ||y||)`` (genrecon's measure) and
    ``|<Ax,y> - <x,A'y>| / |<Ax,y>|`` (the mismatch relative to the inner product itself). The measure is
    shared with ``genrecon benchmark operators`` (``genrecon.benchmark.peers.numpy_adjoint_errors``).
    """
    from genrecon.benchmark.peers import numpy_adjoint_errors

    return numpy_adjoint_errors(fwd, adj, shape_x, shape_y, scale=scale, seed=seed)


def bench_genrecon(repeats: int) -> list[dict]:
    from genrecon.operators.ct import ParallelBeam, clear_cache

    rows = []
    for label, n_views, span in CASES:
        clear_cache()
        op = ParallelBeam(image_size=N, angles=np.radians(degrees(n_views, span)).tolist(), n_detectors=N_DET,
                          normalize=True)
        t0 = time.perf_counter()
        a, _ = op.matrices(torch.float32, "cpu")
        build = time.perf_counter() - t0
        g = torch.Generator().manual_seed(0)
        x = torch.randn(1, 1, N, N, generator=g)
        y = torch.randn(1, 1, n_views, N_DET, generator=g)
        err, rel = adjoint_errors(
            lambda v: op(torch.from_numpy(v).view(1, 1, N, N)).numpy().ravel(),
            lambda v: op.adjoint(torch.from_numpy(v).view(1, 1, n_views, N_DET)).numpy().ravel(),
            N * N, n_views * N_DET,
        )
        rows.append({
            "projector": "genrecon (sparse CSR, distance-driven)", "case": label,
            "forward_ms": median_ms(lambda: op(x), repeats), "adjoint_ms": median_ms(lambda: op.adjoint(y), repeats),
            "adjoint_error": err, "adjoint_rel": rel, "build_s": build, "nnz": int(a.values().numel()),
        })
    clear_cache()
    return rows


def bench_astra(repeats: int) -> list[dict]:
    try:
        import astra
    except Exception as exc:  # noqa: BLE001 - any import failure means "missing"
        return [{"projector": "ASTRA CPU", "missing": f"{exc} (pip install astra-toolbox)"}]
    rows = []
    for kind in ("line", "linear"):
        for label, n_views, span in CASES:
            vol = astra.create_vol_geom(N, N)
            proj = astra.create_proj_geom("parallel", 1.0, N_DET, np.radians(degrees(n_views, span)))
            pid = astra.create_projector(kind, proj, vol)
            W = astra.OpTomo(pid)
            x = np.random.default_rng(0).standard_normal(N * N).astype(np.float32)
            y = np.random.default_rng(1).standard_normal(n_views * N_DET).astype(np.float32)
            err, rel = adjoint_errors(lambda v: W @ v, lambda v: W.T @ v, N * N, n_views * N_DET)
            rows.append({
                "projector": f"ASTRA {astra.__version__} CPU '{kind}'", "case": label,
                "forward_ms": median_ms(lambda: W @ x, repeats), "adjoint_ms": median_ms(lambda: W.T @ y, repeats),
                "adjoint_error": err, "adjoint_rel": rel,
            })
            astra.projector.delete(pid)
    return rows


def bench_deepinv(repeats: int) -> list[dict]:
    try:
        from deepinv.physics import Tomography
    except Exception as exc:  # noqa: BLE001
        return [{"projector": "DeepInverse", "missing": f"{type(exc).__name__}: {exc} (pip install deepinv; "
                 "deepinv 0.5 imports torchvision, which genrecon does not install)"}]
    from genrecon.operators.base import inner

    rows = []
    for label, n_views, span in CASES:
        phys = Tomography(angles=torch.tensor(degrees(n_views, span), dtype=torch.float32), img_width=N,
                          circle=False, device="cpu")
        x = torch.randn(1, 1, N, N)
        y = phys.A(x)
        yy = torch.randn_like(y)
        norm = math.sqrt(phys.compute_norm(torch.randn(1, 1, N, N), max_iter=20, verbose=False))
        lhs, rhs = float(inner(phys.A(x), yy)), float(inner(x, phys.A_adjoint(yy)))
        err = abs(lhs - rhs) / (norm * float(x.norm()) * float(yy.norm()))
        rows.append({
            "projector": "DeepInverse Tomography", "case": label,
            "forward_ms": median_ms(lambda: phys.A(x), repeats),
            "adjoint_ms": median_ms(lambda: phys.A_adjoint(yy), repeats), "adjoint_error": err,
            "adjoint_rel": abs(lhs - rhs) / abs(lhs),
        })
    return rows


def bench_skimage(repeats: int) -> list[dict]:
    try:
        import skimage
        from skimage.transform import iradon, radon
    except Exception as exc:  # noqa: BLE001
        return [{"projector": "scikit-image", "missing": f"{exc} (pip install scikit-image)"}]
    rows = []
    for label, n_views, span in CASES:
        theta = degrees(n_views, span)

        def fwd(v, theta=theta):
            return radon(v.reshape(N, N), theta=theta, circle=False).astype(np.float32).ravel()

        def adj(v, theta=theta, n_views=n_views):
            sino = v.reshape(-1, n_views)
            return iradon(sino, theta=theta, filter_name=None, circle=False, output_size=N).astype(np.float32).ravel()

        rng = np.random.default_rng(2)
        x1 = rng.standard_normal(N * N).astype(np.float32)
        ax = fwd(x1)
        bins = ax.size // n_views
        c = float(np.vdot(ax, ax)) / float(np.vdot(x1, adj(ax)))  # best constant making iradon ~ radon^T
        err, rel = adjoint_errors(fwd, adj, N * N, bins * n_views, scale=c)
        x = rng.standard_normal((N, N)).astype(np.float32)
        y = rng.standard_normal((bins, n_views)).astype(np.float32)
        rows.append({
            "projector": f"scikit-image {skimage.__version__} radon/iradon", "case": label,
            "forward_ms": median_ms(lambda: radon(x, theta=theta, circle=False), repeats),
            "adjoint_ms": median_ms(
                lambda: iradon(y, theta=theta, filter_name=None, circle=False, output_size=N), repeats),
            "adjoint_error": err, "adjoint_rel": rel, "note": f"{bins} bins, iradon x {c:.4g}",
        })
    return rows


def quality() -> list[dict]:
    from genrecon.operators.ct import ParallelBeam
    from genrecon.phantoms import shepp_logan
    from genrecon.reconstructors.fbp import FBP
    from genrecon.registry import RECONSTRUCTORS

    def psnr(a, b):
        return 10 * math.log10(1.0 / float(((a - b) ** 2).mean()))

    x = shepp_logan(N).view(1, 1, N, N)
    rows = []
    for label, n_views, span in CASES[1:]:
        op = ParallelBeam(image_size=N, angles=np.radians(degrees(n_views, span)).tolist(), n_detectors=N_DET,
                          normalize=True)
        y = op(x)
        t0 = time.perf_counter()
        x_fbp = FBP(filter="ramp")(y, op)
        rows.append({"method": "FBP (ramp)", "case": label, "psnr_db": psnr(x_fbp, x),
                     "seconds": time.perf_counter() - t0})
        if "fista_tv" not in RECONSTRUCTORS:
            rows.append({"method": "FISTA-TV", "case": label, "missing": "fista_tv is not registered yet"})
            continue
        best = None
        for lam in LAMBDAS:
            recon = RECONSTRUCTORS.build("fista_tv", {"tv_weight": lam, "n_iter": 100, "nonneg": True})
            t0 = time.perf_counter()
            x_tv = recon(y, op)
            row = {"method": f"FISTA-TV (lam {lam:g}, 100 it)", "case": label, "psnr_db": psnr(x_tv, x),
                   "seconds": time.perf_counter() - t0, "lam": lam}
            if best is None or row["psnr_db"] > best["psnr_db"]:
                best = row
        rows.append(best)
    return rows


def fmt(value, spec: str) -> str:
    return format(value, spec) if isinstance(value, (int, float)) else "-"


def full_size(args) -> int:
    from genrecon.benchmark.ct_full import full_size_records, full_size_table
    from genrecon.benchmark.operators import Plan

    geometries = []
    for spec in args.full_size.split(","):
        n, views, *fan = spec.split("x")
        geometries.append((int(n), int(views), *(["fan"] if fan == ["fan"] else [])))
    records = full_size_records(geometries, args.repeats, Plan.full_matrix_limit_mib, lambda m: print(m, flush=True))
    t = full_size_table(records, args.repeats)
    print(f"\n{t['title']}\n" + " | ".join(t["columns"]))
    for row in t["rows"]:
        print(" | ".join(str(c) for c in row))
    print(t["conventions"] or "")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(records, fh, indent=2, default=str)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", help="write the results to this JSON file")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--skip-quality", action="store_true", help="only the projector speed table")
    parser.add_argument("--threads", type=int, default=0,
                        help="torch threads (0: torch's default); 1 is steadier on a machine shared with other jobs")
    parser.add_argument("--full-size", default="", metavar="NxV[xfan],...",
                        help="only the full-size rows for these geometries, e.g. 512x720,512x720xfan")
    args = parser.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    if args.full_size:
        return full_size(args)

    rows = []
    for bench in (bench_genrecon, bench_astra, bench_deepinv, bench_skimage):
        rows += bench(args.repeats)
    print(f"CT projectors: {N}x{N}, {N_DET} bins, parallel beam, float32, median of {args.repeats} "
          f"({platform.machine()}, {os.cpu_count()} CPUs, {torch.get_num_threads()} torch threads, torch {torch.__version__})")
    print(f"{'projector':44s} {'case':20s} {'fwd ms':>8s} {'adj ms':>8s} {'adj err':>9s} {'rel err':>9s} "
          f"{'build s':>8s}")
    for r in rows:
        if "missing" in r:
            print(f"{r['projector']:44s} MISSING: {r['missing']}")
            continue
        print(f"{r['projector']:44s} {r['case']:20s} {fmt(r['forward_ms'], '8.1f')} {fmt(r['adjoint_ms'], '8.1f')} "
              f"{fmt(r['adjoint_error'], '9.1e')} {fmt(r['adjoint_rel'], '9.1e')} {fmt(r.get('build_s'), '8.2f')}")
    results = {"speed": rows}
    if not args.skip_quality:
        q = quality()
        print("\nReconstruction of the 256x256 modified Shepp-Logan phantom, noiseless, PSNR (data_range 1)")
        print(f"{'method':36s} {'case':20s} {'PSNR dB':>8s} {'seconds':>8s}")
        for r in q:
            if "missing" in r:
                print(f"{r['method']:36s} {r['case']:20s} MISSING: {r['missing']}")
            else:
                print(f"{r['method']:36s} {r['case']:20s} {r['psnr_db']:8.2f} {r['seconds']:8.2f}")
        results["quality"] = q
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(results, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
