#!/usr/bin/env python
"""Benchmark: latent_inversion (plain and hybrid) against FISTA-TV on held-out 128x128 slices.

Data: the ``val`` split of ``data/prepared/brain-mri-128.h5`` and ``data/prepared/head-ct-128.h5`` (made by
``python scripts/prepare_data.py all``), ``--slices`` evenly spaced slices of each; images are in the priors'
[0, 1] convention (MRI: divided by the volume's 99.5th percentile; CT: ``(HU + 1024) / 4095``), so the
intensity scale is 1 and metrics use ``data_range = 1``.

Scenarios (one measurement per slice and scenario, noise at ``--snr-db`` over the measured entries):
    MRI  single-coil k-space of the real image (zero phase), random Cartesian columns (``MASKS`` "random",
         fastMRI centre fractions) at 4x, 8x, 16x;
    CT   parallel beam, normalised operator (``||A|| = 1``), 15 / 30 / 60 views over 180 degrees and a limited
         angle of 90 views over 90 degrees.

Methods: ``fista_tv`` (100 iterations, the best of ``--tv-lams`` per scenario: an oracle choice that favours the
baseline), ``latent_inversion`` plain and hybrid (TV on ``u`` by default, ``--hybrid-penalty``). Prints PSNR / SSIM (mean over slices) and seconds
per slice, then PSNR against the number of measurements (the curve; a PNG too with ``--png``).

Priors: ``--mri-prior`` / ``--ct-prior`` (defaults ``pretrained:brain-mri-128-generator`` and
``pretrained:head-ct-128-generator``), or ``--prior`` for the one modality selected. A modality without a prior
runs FISTA-TV only and says so (a prior named on the command line that does not load is an error).
``--random-prior`` uses a randomly initialised ConvVAE instead: a smoke test of
the code path, its numbers mean nothing.

    python scripts/bench_latent.py [--modality mri|ct|both] [--slices 8] [--steps 300] [--restarts 4]
        [--prior PATH] [--json out.json] [--png curve.png] [--device cpu]
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
DATA = {"mri": ROOT / "data/prepared/brain-mri-128.h5", "ct": ROOT / "data/prepared/head-ct-128.h5"}
DEFAULT_PRIORS = {"mri": "pretrained:brain-mri-128-generator", "ct": "pretrained:head-ct-128-generator"}
MRI_SCENARIOS = [("4x", 4), ("8x", 8), ("16x", 16)]
CT_SCENARIOS = [("15 views", 15, 180.0), ("30 views", 30, 180.0), ("60 views", 60, 180.0), ("90 deg", 90, 90.0)]
SIZE = 128


def load_slices(modality: str, n: int) -> tuple[torch.Tensor, list[int]]:
    """``n`` evenly spaced held-out slices ``(n, 1, 128, 128)`` float32 and their indices in the val split."""
    import h5py

    path = DATA[modality]
    if not path.is_file():
        sys.exit(f"{path} is missing: run 'python scripts/prepare_data.py all' first")
    with h5py.File(path, "r") as f:
        images = f["val/images"]
        idx = np.unique(((np.arange(n) + 0.5) * images.shape[0] / n).astype(int)).tolist()  # slab midpoints
        data = np.stack([images[i] for i in idx]).astype(np.float32)
    if data.shape[1:] != (SIZE, SIZE):
        sys.exit(f"{path}: expected {SIZE}x{SIZE} slices, got {data.shape[1:]}")
    return torch.from_numpy(data)[:, None], idx


def add_noise(y: torch.Tensor, support: torch.Tensor, snr_db: float, g: torch.Generator) -> tuple[torch.Tensor, float]:
    """``y + sigma n`` on the measured entries, ``sigma^2 = mean|y|^2 / 10^(snr/10)`` (complex: E|n|^2 = sigma^2)."""
    power = float((y.abs() ** 2)[support].mean())
    sigma = math.sqrt(power / 10 ** (snr_db / 10))
    if y.is_complex():
        n = torch.complex(torch.randn(y.shape, generator=g), torch.randn(y.shape, generator=g)) / math.sqrt(2)
    else:
        n = torch.randn(y.shape, generator=g)
    return y + sigma * n.to(y.device, y.dtype) * support, sigma


def scenarios(modality: str, device, g: torch.Generator):
    """Yield ``(name, op, support, n_measurements)``."""
    from genrecon.operators import SingleCoilMRI
    from genrecon.operators.ct import ParallelBeam
    from genrecon.registry import MASKS

    if modality == "mri":
        for name, acc in MRI_SCENARIOS:
            mask = MASKS.build("random", {"acceleration": acc})((SIZE, SIZE), g)
            op = SingleCoilMRI(mask).to(device)
            yield name, op, mask.to(device)[None, None], int(mask.sum())
    else:
        for name, views, span in CT_SCENARIOS:
            angles = torch.arange(views, dtype=torch.float64) * math.radians(span) / views
            op = ParallelBeam(image_size=SIZE, angles=angles, normalize=True)
            with torch.no_grad():
                reach = op(torch.ones(1, 1, SIZE, SIZE, device=device)) != 0
            yield name, op, reach, int(reach.sum())


def make_prior(modality: str, args):
    """``(prior, label)`` or ``(None, reason)``."""
    from genrecon.errors import CheckpointError
    from genrecon.priors import ConvVAE, load_prior

    if args.random_prior:
        vae = ConvVAE.build({"latent_dim": 128, "base_channels": 16, "channel_mults": [1, 2, 4, 8, 8], "groups": 8},
                            image_size=SIZE, generator=torch.Generator().manual_seed(0))
        return vae.requires_grad_(False).eval(), "RANDOM-WEIGHTS ConvVAE (smoke test only: numbers mean nothing)"
    name = args.prior or (args.mri_prior if modality == "mri" else args.ct_prior)
    try:
        model, meta = load_prior(name, kind="generator", image_size=SIZE, purpose="bench_latent")
    except CheckpointError as exc:
        if name != DEFAULT_PRIORS[modality]:  # a prior the user named must load
            sys.exit(f"bench_latent: {exc}")
        return None, str(exc)
    return model, f"{name} ({meta.get('steps')} training steps)"


def metric_pair(x: torch.Tensor, ref: torch.Tensor) -> tuple[float, float]:
    from genrecon.metrics import psnr, ssim

    return psnr(x, ref, 1.0), ssim(x, ref, 1.0)


def run_modality(modality: str, args, device) -> dict:
    from genrecon.reconstructors.latent_inversion import LatentInversion
    from genrecon.registry import RECONSTRUCTORS

    images, idx = load_slices(modality, args.slices)
    prior, prior_label = make_prior(modality, args)
    print(f"\n## {modality.upper()}: {len(idx)} held-out slices {idx} of {DATA[modality].name}")
    if prior is None:
        print(f"NO GENERATOR PRIOR: {prior_label}\n  -> running fista_tv only (pass --{modality}-prior PATH, or train "
              f"one: genrecon train-prior --config configs/train_prior_"
              f"{'brain' if modality == 'mri' else 'ct'}_generator.yaml)")
    else:
        print(f"prior: {prior_label}")
    methods = {}
    if prior is not None:
        common = dict(prior=prior, restarts=args.restarts, steps=args.steps, lam=args.lam, tol=args.tol)
        methods["latent plain"] = LatentInversion(**common).to(device)
        methods["latent hybrid"] = LatentInversion(**common, mode="hybrid", tv_weight=args.tv_weight,
                                                   hybrid_penalty=args.hybrid_penalty).to(device)
    lams = [float(v) for v in args.tv_lams.split(",")]
    rows = []
    g = torch.Generator().manual_seed(args.seed)
    for name, op, support, m in scenarios(modality, device, g):
        res: dict[str, list] = {}
        for i in range(images.shape[0]):
            truth = images[i : i + 1].to(device)
            x_true = truth.to(torch.complex64) if op.complex_domain else truth
            with torch.no_grad():
                y, _ = add_noise(op(x_true), support, args.snr_db, g)
            best = None
            for lam in lams:  # oracle lambda for the baseline
                t0 = time.perf_counter()
                x = RECONSTRUCTORS.build("fista_tv", {"tv_weight": lam, "n_iter": args.tv_iter,
                                                      "nonneg": not op.complex_domain})(y, op)
                sec = time.perf_counter() - t0
                p, s = metric_pair(x, truth)
                if best is None or p > best[0]:
                    best = (p, s, sec, lam)
            res.setdefault("fista_tv", []).append(best)
            for label, method in methods.items():
                t0 = time.perf_counter()
                x = method(y, op, generator=torch.Generator(device=device).manual_seed(args.seed + 1000 * i))
                sec = time.perf_counter() - t0
                p, s = metric_pair(x, truth)
                res.setdefault(label, []).append((p, s, sec, method.info.get("data_misfit")))
        row = {"scenario": name, "measurements": m, "fraction": m / SIZE**2}
        for label, vals in res.items():
            arr = np.array([v[:3] for v in vals], dtype=float)
            row[label] = {"psnr": float(arr[:, 0].mean()), "ssim": float(arr[:, 1].mean()),
                          "seconds": float(arr[:, 2].mean())}
            if label == "fista_tv":
                row[label]["lams"] = [v[3] for v in vals]
            else:
                row[label]["data_misfit"] = float(np.mean([v[3] for v in vals]))
        rows.append(row)
        print_row(row)
    return {"modality": modality, "slices": idx, "prior": prior_label, "rows": rows}


def print_row(row: dict) -> None:
    labels = [k for k in row if isinstance(row[k], dict)]
    cells = "  ".join(f"{k}: {row[k]['psnr']:6.2f} dB / {row[k]['ssim']:.3f} ({row[k]['seconds']:.1f} s)"
                      for k in labels)
    print(f"  {row['scenario']:>9}  m={row['measurements']:6d}  {cells}", flush=True)


def print_curve(result: dict) -> None:
    rows = sorted(result["rows"], key=lambda r: r["measurements"])
    labels = [k for k in rows[0] if isinstance(rows[0][k], dict)]
    print(f"\nPSNR (dB) vs measurements, {result['modality'].upper()} (m / pixels):")
    print("| scenario | m | m/n | " + " | ".join(labels) + " |")
    print("|---|---|---|" + "---|" * len(labels))
    for r in rows:
        print(f"| {r['scenario']} | {r['measurements']} | {r['fraction']:.3f} | "
              + " | ".join(f"{r[k]['psnr']:.2f}" for k in labels) + " |")


def save_png(results: list[dict], path: str) -> None:
    """The PSNR-vs-measurements curve of each modality as a PNG (Pillow, via genrecon.benchmark.plots)."""
    from genrecon.benchmark.plots import line_plot

    panels = []
    for res in results:
        rows = sorted(res["rows"], key=lambda r: r["measurements"])
        labels = [k for k in rows[0] if isinstance(rows[0][k], dict)]
        panels.append({"title": res["modality"].upper(), "x_label": "measurements", "y_label": "PSNR (dB)",
                       "log_x": True, "series": [{"label": label, "x": [r["measurements"] for r in rows],
                                                  "y": [r[label]["psnr"] for r in rows]} for label in labels]})
    line_plot(Path(path), panels, title="latent inversion vs FISTA-TV: PSNR against the number of measurements")
    print(f"wrote {path}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--modality", choices=["mri", "ct", "both"], default="both")
    ap.add_argument("--slices", type=int, default=8, help="held-out slices per modality")
    ap.add_argument("--prior", help="generator prior for the selected modality (with --modality mri or ct)")
    ap.add_argument("--mri-prior", default=DEFAULT_PRIORS["mri"])
    ap.add_argument("--ct-prior", default=DEFAULT_PRIORS["ct"])
    ap.add_argument("--random-prior", action="store_true", help="random-weights ConvVAE: code-path smoke test only")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--restarts", type=int, default=4)
    ap.add_argument("--lam", type=float, default=1e-3)
    ap.add_argument("--tol", type=float, default=1e-6)
    ap.add_argument("--tv-weight", type=float, default=0.003,
                    help="latent hybrid: tv_weight of the penalty on u (fista_tv's scale; the old --hybrid-weight / 2)")
    ap.add_argument("--hybrid-penalty", choices=["tv", "l1"], default="tv")
    ap.add_argument("--tv-lams", default="0.001,0.003,0.01", help="comma-separated FISTA-TV lambdas (best kept)")
    ap.add_argument("--tv-iter", type=int, default=100)
    ap.add_argument("--snr-db", type=float, default=40.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    ap.add_argument("--json", help="write the results here")
    ap.add_argument("--png", help="write the PSNR-vs-measurements curve here (PNG)")
    args = ap.parse_args()
    if args.prior and args.modality == "both":
        ap.error("--prior names one prior: use it with --modality mri or ct (or --mri-prior / --ct-prior)")
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          ("cpu" if args.device == "auto" else args.device))
    print(f"# bench_latent: {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, "
          f"torch {torch.__version__}, device {device}")
    print(f"# latent_inversion: restarts {args.restarts}, steps {args.steps}, lam {args.lam}, hybrid "
          f"{args.hybrid_penalty} tv_weight {args.tv_weight}; fista_tv: {args.tv_iter} iterations, best of tv_weight "
          f"{args.tv_lams}; SNR {args.snr_db} dB; PSNR/SSIM on magnitudes with data_range 1")
    results = []
    for modality in (["mri", "ct"] if args.modality == "both" else [args.modality]):
        res = run_modality(modality, args, device)
        print_curve(res)
        results.append(res)
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "results": results}, indent=2))
        print(f"wrote {args.json}")
    if args.png:
        save_png(results, args.png)


if __name__ == "__main__":
    main()
