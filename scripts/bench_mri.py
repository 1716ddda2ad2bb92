#!/usr/bin/env python
"""Benchmark: genrecon FISTA-TV against BART, SigPy (and DeepInverse) on one real brain slice.

The issue's protocol: the mid-axial MNI152 2009a T1 slice (bundled sample), padded to 256x256 and scaled
to [0, 1], noiseless single-coil k-space from the centred orthonormal FFT, random Cartesian columns with an
8% fully sampled centre (fastMRI RandomMaskFunc rules) at 4x and 8x, 100 iterations, best of 5 lambdas
(1e-3 ... 1e-1), PSNR/SSIM with data_range 1. Every method sees the same mask and k-space. Seconds are the
wall time of the best lambda's run (BART: the whole `bart pics` process, as a user runs it).

    python scripts/bench_mri.py [--json out.json] [--repeats 3]

A peer that is not installed is printed as "missing" with how to install it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

LAMBDAS = [1e-3, 3e-3, 1e-2, 3e-2, 1e-1]


def mid_axial_slice() -> np.ndarray:
    from importlib import resources

    from genrecon.io.transforms import fit_size
    from genrecon.registry import LOADERS

    info = json.loads(resources.files("genrecon.data.samples").joinpath("samples.json").read_text())
    entry = info["brain-mri"] if "brain-mri" in info else next(v for v in info.values() if "brain" in str(v))
    index = entry.get("mid_axial_index", 0)
    loader = LOADERS.build("sample", {})
    img = loader.load("sample:brain-mri", index).image.abs().float()
    img = fit_size(img, 256, "crop_pad")
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
    recon = RECONSTRUCTORS.build("fista_tv", {"lam": lam, "n_iter": n_iter})
    return lambda: recon(ksp, op).abs()[0, 0].numpy()


def run_zero_filled(ksp: torch.Tensor, mask: torch.Tensor):
    from genrecon.operators.fft import ifft2c

    return ifft2c(ksp).abs()[0, 0].numpy()


def _write_cfl(path: Path, arr: np.ndarray) -> None:
    arr = np.asarray(arr, dtype=np.complex64)
    dims = list(arr.shape) + [1] * (16 - arr.ndim)
    path.with_suffix(".hdr").write_text("# Dimensions\n" + " ".join(map(str, dims)) + "\n")
    arr.T.astype(np.complex64).tofile(path.with_suffix(".cfl"))  # BART is column-major


def _read_cfl(path: Path) -> np.ndarray:
    dims = [int(d) for d in path.with_suffix(".hdr").read_text().splitlines()[1].split()]
    n = int(np.prod(dims))
    data = np.fromfile(path.with_suffix(".cfl"), dtype=np.complex64, count=n)
    shape = [d for d in dims]
    while len(shape) > 2 and shape[-1] == 1:
        shape.pop()
    return data.reshape(shape, order="F")


def run_bart(ksp: np.ndarray, lam: float, n_iter: int, workdir: Path):
    # BART's k-space centre convention matches the centred FFT: write k-space as (x, y) = (H, W)
    _write_cfl(workdir / "ksp", ksp)
    _write_cfl(workdir / "sens", np.ones_like(ksp))
    cmd = ["bart", "pics", "-S", "-d0", "-i", str(n_iter), "-R", f"T:3:0:{lam}",
           str(workdir / "ksp"), str(workdir / "sens"), str(workdir / "out")]

    def go():
        subprocess.run(cmd, check=True, capture_output=True)
        return np.abs(_read_cfl(workdir / "out"))

    return go


def run_sigpy(ksp: np.ndarray, mask: np.ndarray, lam: float, n_iter: int):
    import sigpy.mri.app as app

    y = ksp[None].astype(np.complex64)
    mps = np.ones_like(y)
    return lambda: np.abs(app.TotalVariationRecon(y, mps, lam, weights=mask.astype(np.float32), max_iter=n_iter,
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

    x = mid_axial_slice()
    have_bart = shutil.which("bart") is not None
    try:
        import sigpy  # noqa: F401

        have_sigpy = True
    except ImportError:
        have_sigpy = False
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch "
          f"{torch.__version__}, {torch.get_num_threads()} threads")
    print("image: mid-axial MNI152 2009a T1 slice, 256x256, [0,1]; noiseless; data_range 1; "
          f"{args.iters} iterations; best of lambdas {LAMBDAS}")
    if not have_bart:
        print("BART: missing (apt-get install bart)")
    if not have_sigpy:
        print("SigPy: missing (pip install sigpy)")
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
