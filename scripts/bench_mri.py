#!/usr/bin/env python
"""Benchmark: genrecon FISTA-TV against BART, SigPy (and DeepInverse) on one real brain slice.

The issue's protocol: the mid-axial MNI152 2009a T1 slice (bundled sample), padded to 256x256 and scaled
to [0, 1], noiseless single-coil k-space from the centred orthonormal FFT, random Cartesian columns with an
8% fully sampled centre (fastMRI RandomMaskFunc rules) at 4x and 8x, 100 iterations, best of 5 lambdas
(1e-3 ... 1e-1), PSNR/SSIM with data_range 1. Every method sees the same mask and k-space. Seconds are the
wall time of the best lambda's run (BART: the whole `bart pics` process, as a user runs it).

    python scripts/bench_mri.py [--json out.json] [--repeats 3]

A peer that is not installed is printed as "missing" with how to install it. The peers are run by
``genrecon.benchmark.peers`` (shared with ``genrecon benchmark classical``, which runs this comparison on
all five bundled slices).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

LAMBDAS = [1e-3, 3e-3, 1e-2, 3e-2, 1e-1]


def mid_axial_slice() -> np.ndarray:
    """The mid-axial MNI152 slice of the bundled sample (``samples.json``), 256x256, divided by its maximum."""
    from genrecon.benchmark.images import bundled_slices, mid_axial_index

    img = bundled_slices("brain-mri", 256, indices=[mid_axial_index()])[0][1]
    img = img / img.max()
    return img[0].numpy().astype(np.float64)


def metrics(est: np.ndarray, ref: np.ndarray) -> tuple[float, float]:
    from genrecon.metrics import psnr, ssim

    return psnr(est, ref, 1.0), ssim(est, ref, 1.0)


def timed(fn, repeats: int):
    best, out = float("inf"), None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return out, best


# -- methods -------------------------------------------------------------------------------------
def run_genrecon(ksp: torch.Tensor, mask: torch.Tensor, lam: float, n_iter: int):
    from genrecon.operators.mri import SingleCoilMRI
    from genrecon.registry import RECONSTRUCTORS

    op = SingleCoilMRI(mask)
    recon = RECONSTRUCTORS.build("fista_tv", {"tv_weight": lam, "n_iter": n_iter})
    return lambda: recon(ksp, op).abs()[0, 0].numpy()


def run_zero_filled(ksp: torch.Tensor, mask: torch.Tensor):
    from genrecon.operators.fft import ifft2c

    return ifft2c(ksp).abs()[0, 0].numpy()


def run_bart(ksp: np.ndarray, lam: float, n_iter: int, workdir: Path):
    """A callable running ``bart pics -R T`` (the whole process, file I/O included); the magnitude image."""
    from genrecon.peers.bart import pics_tv

    return lambda: np.abs(pics_tv(ksp, lam, n_iter, workdir))


def run_sigpy(ksp: np.ndarray, mask: np.ndarray, lam: float, n_iter: int):
    """A callable running SigPy's TotalVariationRecon; the magnitude image."""
    import sigpy.mri.app as app

    y = ksp[None].astype(np.complex64)
    weights = np.asarray(mask, dtype=np.float32)
    return lambda: np.abs(app.TotalVariationRecon(y, np.ones_like(y), lam, weights=weights, max_iter=n_iter,
                                                  show_pbar=False).run())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    ap.add_argument("--json", type=Path, help="write the results here")
    ap.add_argument("--repeats", type=int, default=3, help="timing repeats of the best lambda (min is kept)")
    ap.add_argument("--iters", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0, help="mask seed")
    ap.add_argument("--threads", type=int, default=None,
                    help="CPU threads for every method (torch, BART's OpenMP, SigPy's numba); default: all cores")
    args = ap.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
        for var in ("OMP_NUM_THREADS", "NUMBA_NUM_THREADS"):
            os.environ[var] = str(args.threads)  # read by the bart subprocess; numba reads it at import

    from genrecon.operators.fft import fft2c
    from genrecon.registry import MASKS
    from genrecon.simulate.masks import achieved_acceleration

    from genrecon.benchmark import peers

    x = mid_axial_slice()
    have_bart, have_sigpy = peers.available("bart"), peers.available("sigpy")
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch "
          f"{torch.__version__}, {torch.get_num_threads()} threads")
    print("image: mid-axial MNI152 2009a T1 slice, 256x256, [0,1]; noiseless; data_range 1; "
          f"{args.iters} iterations; best of lambdas {LAMBDAS}")
    if not have_bart:
        print(f"BART: {peers.missing_reason('bart')}")
    if not have_sigpy:
        print(f"SigPy: {peers.missing_reason('sigpy')}")
    results = []
    for acc in (4, 8):
        mask = MASKS.build("random", {"acceleration": acc, "center_fraction": 0.08})(
            (256, 256), torch.Generator().manual_seed(args.seed))
        ksp_t = fft2c(torch.from_numpy(x).to(torch.complex64)[None, None]) * mask
        ksp = ksp_t[0, 0].numpy()
        print(f"\n{acc}x: achieved acceleration {achieved_acceleration(mask):.2f}")
        zf = run_zero_filled(ksp_t, mask)
        rows = [("zero-filled", *metrics(zf, x), 0.0, None)]
        methods = [("genrecon fista_tv", lambda lam: run_genrecon(ksp_t, mask, lam, args.iters))]
        tmp = Path(tempfile.mkdtemp(prefix="bench_bart_"))
        if have_bart:
            methods.append(("BART pics -R T (ADMM)", lambda lam: run_bart(ksp, lam, args.iters, tmp)))
        if have_sigpy:
            methods.append(("SigPy TotalVariationRecon", lambda lam: run_sigpy(ksp, mask.numpy(), lam, args.iters)))
        for name, make in methods:
            best = None
            for lam in LAMBDAS:
                fn = make(lam)
                est, _ = timed(fn, 1)
                p, s = metrics(est, x)
                if best is None or p > best[0]:
                    best = (p, s, lam, fn)
            _, sec = timed(best[3], args.repeats)
            rows.append((name, best[0], best[1], sec, best[2]))
        shutil.rmtree(tmp, ignore_errors=True)
        print(f"{'method':28s} {'PSNR':>7s} {'SSIM':>7s} {'seconds':>8s} {'lambda':>8s}")
        for name, p, s, sec, lam in rows:
            print(f"{name:28s} {p:7.2f} {s:7.3f} {sec:8.2f} {lam if lam is not None else '-':>8}")
            results.append({"acceleration": acc, "method": name, "psnr": p, "ssim": s, "seconds": sec,
                            "lambda": lam})
    if args.json:
        args.json.write_text(json.dumps({"machine": platform.platform(), "cores": os.cpu_count(),
                                         "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
