#!/usr/bin/env python
"""Quality of the shipped priors on their held-out slices, and their model cards.

For each prior in ``genrecon/data/priors`` (or ``--prior PATH``):
- diffusion: the denoiser's PSNR gain at noise levels 0.05 / 0.1 / 0.2 (image range [0, 1]) on the held-out
  (``val``) slices of its dataset: ``x_noisy = x + sigma n``, denoised by ``E[x0 | x_t]`` at the time whose
  noise matches, gain = PSNR(denoised) - PSNR(noisy);
- generator: the representation error, PSNR of the best ``G(z)`` fit to each held-out slice (latent
  optimisation with restarts, no measurement operator);
- a sample grid (PNG) and, with ``--cards``, the model card ``<name>.md`` next to the weights, with these
  figures, the machine and the grid.

    python scripts/bench_priors.py [--slices 32] [--cards] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
DATASETS = {"mri": ROOT / "data/prepared/brain-mri-128.h5", "ct": ROOT / "data/prepared/head-ct-128.h5"}


def held_out(meta: dict, n: int) -> torch.Tensor:
    path = Path(meta.get("data", {}).get("file") or "")
    if not path.is_absolute():
        path = ROOT / path
    if not path.is_file():
        modality = meta.get("data", {}).get("modality", "mri")
        path = DATASETS.get(modality, path)
    if not path.is_file():
        raise SystemExit(f"held-out data not found ({path}): run python scripts/prepare_data.py all")
    with h5py.File(path, "r") as f:
        images = f["val/images"]
        idx = np.linspace(0, len(images) - 1, min(n, len(images))).round().astype(int)
        return torch.from_numpy(np.stack([images[i] for i in idx]))[:, None].float()


def psnr(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    mse = ((a - b) ** 2).flatten(1).mean(1)
    return 10 * torch.log10(1.0 / mse)


@torch.no_grad()
def denoiser_gain(prior, x: torch.Tensor, sigma: float, gen: torch.Generator) -> tuple[float, float]:
    sched = prior.schedule
    x0 = prior.to_model(x)
    target = 2 * sigma  # noise std in model space ([-1, 1] is twice the image range)
    ts = sched.timesteps(1000)[:-1]
    ratios = []
    for t in ts:
        a, s = sched.coefficients(sched.as_batch(t, x0[:1]), x0[:1])
        ratios.append(float(s.flatten()[0] / a.flatten()[0]))
    t = ts[int(np.argmin([abs(r - target) for r in ratios]))]
    a, s = sched.coefficients(sched.as_batch(t, x0), x0)
    noise = torch.randn(x0.shape, generator=gen)
    noisy_img = x + sigma * noise
    x_t = a * (x0 + (s / a) * noise)
    den = prior.to_image(prior.x0(x_t, t)).clamp(0, 1)
    return psnr(noisy_img, x).mean().item(), psnr(den, x).mean().item()


def representation_psnr(vae, x: torch.Tensor, gen: torch.Generator, steps: int = 300) -> float:
    best = None
    for _ in range(3):
        z = torch.randn(x.shape[0], vae.latent_dim, generator=gen).requires_grad_(True)
        opt = torch.optim.Adam([z], lr=0.05)
        for _ in range(steps):
            opt.zero_grad()
            loss = ((vae.decode(z) - x) ** 2).sum()
            loss.backward()
            opt.step()
        with torch.no_grad():
            p = psnr(vae.decode(z), x)
        best = p if best is None else torch.maximum(best, p)
    return best.mean().item()


def sample_grid(prior, path: Path, gen: torch.Generator) -> None:
    from genrecon.training.state import save_grid

    if prior.kind == "diffusion":
        images = prior.sample(16, steps=50, generator=gen)
    else:
        images = prior.decode(torch.randn(16, prior.latent_dim, generator=gen)).clamp(0, 1)
    save_grid(images, path, nrow=4)


def main() -> int:
    from genrecon.priors.checkpoint import load_prior
    from genrecon.priors.pretrained import available, priors_dir, render_model_card

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    ap.add_argument("--prior", action="append", default=[], help="a prior .pt (default: every shipped prior)")
    ap.add_argument("--slices", type=int, default=32, help="held-out slices per prior")
    ap.add_argument("--cards", action="store_true", help="write <name>.md and <name>.png next to shipped priors")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    refs = args.prior or [f"pretrained:{n}" for n in available()]
    if not refs:
        print("no priors shipped: train them with genrecon train-prior --config configs/train_prior_*.yaml")
        return 1
    machine = f"{platform.machine()}, {torch.get_num_threads()} torch threads, torch {torch.__version__}"
    results = {}
    for ref in refs:
        prior, meta = load_prior(ref)
        name = meta.get("extra", {}).get("name") or Path(meta["path"]).stem
        x = held_out(meta, args.slices)
        gen = torch.Generator().manual_seed(0)
        t0 = time.perf_counter()
        entry = {"kind": meta["kind"], "steps": meta.get("steps"), "held_out_slices": int(x.shape[0])}
        if meta["kind"] == "diffusion":
            for sigma in (0.05, 0.1, 0.2):
                noisy, den = denoiser_gain(prior, x, sigma, gen)
                entry[f"sigma_{sigma}"] = {"noisy_psnr": noisy, "denoised_psnr": den, "gain_db": den - noisy}
        else:
            entry["representation_psnr"] = representation_psnr(prior, x, gen)
        entry["seconds"] = time.perf_counter() - t0
        results[name] = entry
        print(f"{name}: {json.dumps(entry)}")
        if args.cards and str(ref).startswith("pretrained:"):
            folder = priors_dir()
            sample_grid(prior, folder / f"{name}.png", torch.Generator().manual_seed(1))
            lines = [render_model_card(meta, name=name), "", "## Quality on held-out slices", ""]
            lines.append(f"Measured by `python scripts/bench_priors.py --cards` on {entry['held_out_slices']} held-out "
                         f"slices (never trained on) on {machine}.")
            lines.append("")
            if meta["kind"] == "diffusion":
                lines += ["| noise sigma | noisy PSNR (dB) | denoised PSNR (dB) | gain (dB) |", "|---|---|---|---|"]
                for sigma in (0.05, 0.1, 0.2):
                    e = entry[f"sigma_{sigma}"]
                    lines.append(f"| {sigma} | {e['noisy_psnr']:.2f} | {e['denoised_psnr']:.2f} | {e['gain_db']:.2f} |")
            else:
                lines.append(f"Representation error: best G(z) fit PSNR {entry['representation_psnr']:.2f} dB.")
            wall = meta.get("extra", {}).get("seconds")
            lines += ["", f"Training wall time: {wall:.0f} s on a 2-core CPU machine (1 torch thread, shared)."
                      if wall else "", "", (f"Unconditional samples (50 DDIM steps): ![samples]({name}.png)" if meta["kind"] == "diffusion"
                       else f"Samples G(z), z ~ N(0, I): ![samples]({name}.png)"), ""]
            (folder / f"{name}.md").write_text("\n".join(lines))
    if args.json:
        args.json.write_text(json.dumps({"machine": machine, "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
