#!/usr/bin/env python
"""The README's DPS figure: ground truth, FISTA-TV, DPS posterior mean and DPS std map, one MRI and one CT case.

Uses the settings, tuned defaults and simulation of ``scripts/bench_dps.py`` on one held-out (``val``) slice of
each modality (the middle one), with the shipped diffusion priors:

- MRI: single-coil random Cartesian 8x, ``dps`` with gradient guidance (the better variant on MRI);
- CT: 90 views over [0, 90) deg, ``dps`` with ``consistency: project`` and TV in the projection (the better
  variant on CT; ``tv_weight`` = 2 x the setting's FISTA-TV ``tv_weight``, ``nonneg``).

Images are shown on [0, 1] (image units); the std map and |error| maps are shown on [0, 0.2] (x5). PSNR / SSIM
(data range 1) and the 2-sigma coverage are written under each tile.

    python scripts/figure_dps.py [--samples 4] [--out benchmarks/figures/dps_examples.png] [--threads 1]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

import bench_dps as bd  # noqa: E402

from genrecon.io.atomic import atomic_write  # noqa: E402
from genrecon.metrics import coverage, psnr, ssim  # noqa: E402
from genrecon.registry import RECONSTRUCTORS  # noqa: E402

CASES = [("MRI 8x", "mri8", "grad"), ("CT 90 deg", "ct_lim90", "project_tv")]
ERR_SCALE = 0.2


def reconstruct(setting: str, variant: str, samples: int, seed: int) -> dict:
    """Truth, FISTA-TV and DPS (mean and std) for the middle val slice of ``setting``'s modality."""
    modality = bd.SETTINGS[setting][0]
    key, image = bd.load_slices(modality, "val", 1)[0]
    y, op, truth, scale = bd.simulate(setting, key, image, seed, "cpu")
    tv = RECONSTRUCTORS.build("fista_tv", {"tv_weight": bd.LAM_DEFAULT[setting], "n_iter": bd.FISTA_ITER,
                                           "nonneg": modality == "ct"})
    params = {"prior": str(bd.PRIORS[modality]), "samples": samples,
              "intensity_scale": 1.0 if modality == "mri" else bd.MU_PER_UNIT}
    params.update({"zeta": bd.ZETA[modality], **bd.DPS_GRAD} if variant == "grad" else bd.DPS_PROJECT)
    if variant == "project_tv":
        params.update(bd.dps_tv_params(setting))
    dps = RECONSTRUCTORS.build("dps", params)
    with torch.no_grad():
        x_tv = tv(y, op).abs() / scale
    t0 = time.perf_counter()
    with torch.enable_grad():
        x_dps = dps(y, op, generator=torch.Generator().manual_seed(seed + 1)).detach().abs() / scale
    seconds = time.perf_counter() - t0
    std = dps.info["std"].detach().reshape(truth.shape[-2:]) / scale
    t2 = truth.reshape(truth.shape[-2:])
    cover = coverage(x_dps.reshape(t2.shape), t2, std)
    return {"key": key, "truth": t2.numpy(), "fista_tv": x_tv.reshape(t2.shape).numpy(),
            "dps": x_dps.reshape(t2.shape).numpy(), "std": std.numpy(), "coverage": cover,
            "seconds": seconds, "psnr": {m: psnr(x, truth, 1.0) for m, x in (("fista_tv", x_tv), ("dps", x_dps))},
            "ssim": {m: ssim(x, truth, 1.0) for m, x in (("fista_tv", x_tv), ("dps", x_dps))}}


def tile(a: np.ndarray, vmax: float, zoom: int) -> "Image.Image":
    from PIL import Image

    u8 = (np.clip(a / vmax, 0, 1) * 255).astype(np.uint8)
    return Image.fromarray(np.ascontiguousarray(u8)).resize((a.shape[1] * zoom, a.shape[0] * zoom), Image.NEAREST)


def compose(rows: list[tuple[str, str, dict]], path: Path, zoom: int = 2) -> None:
    """A grid: one row per case; columns truth, FISTA-TV, DPS mean, DPS std (x5), |DPS error| (x5)."""
    from PIL import Image, ImageDraw

    h, w = rows[0][2]["truth"].shape
    th, tw = h * zoom, w * zoom
    pad, label_h, head_w = 6, 30, 70
    cols = ["ground truth", "FISTA-TV", "DPS mean", f"DPS std x{1 / ERR_SCALE:g}", f"|DPS err| x{1 / ERR_SCALE:g}"]
    canvas = Image.new("L", (head_w + len(cols) * (tw + pad) + pad, 16 + len(rows) * (th + label_h + pad)), 0)
    draw = ImageDraw.Draw(canvas)
    for c, name in enumerate(cols):
        draw.text((head_w + pad + c * (tw + pad), 2), name, fill=255)
    for r, (title, variant, res) in enumerate(rows):
        y0 = 16 + r * (th + label_h + pad)
        draw.text((4, y0 + th // 2 - 12), title, fill=255)
        draw.text((4, y0 + th // 2 + 2), f"dps {variant}", fill=255)
        err = np.abs(res["dps"] - res["truth"])
        images = [(res["truth"], 1.0, res["key"]),
                  (res["fista_tv"], 1.0, f"{res['psnr']['fista_tv']:.2f} dB, SSIM {res['ssim']['fista_tv']:.3f}"),
                  (res["dps"], 1.0, f"{res['psnr']['dps']:.2f} dB, SSIM {res['ssim']['dps']:.3f}"),
                  (res["std"], ERR_SCALE, f"2-sigma cover {res['coverage']:.2f}"),
                  (err, ERR_SCALE, f"{res['seconds']:.0f} s / slice")]
        for c, (img, vmax, label) in enumerate(images):
            x0 = head_w + pad + c * (tw + pad)
            canvas.paste(tile(img, vmax, zoom), (x0, y0))
            draw.text((x0 + 2, y0 + th + 4), label, fill=255)
    with atomic_write(path) as tmp:
        canvas.save(tmp, format="PNG")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=4, help="DPS posterior samples (std map over them)")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks/figures/dps_examples.png")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    from genrecon.benchmark.images import dataset_path

    for modality in ("mri", "ct"):
        path = dataset_path(bd.DATA_DIR, modality)
        if not path.is_file():
            sys.exit(f"{path} is missing: run 'python scripts/prepare_data.py all' first")
    rows = []
    for title, setting, variant in CASES:
        res = reconstruct(setting, variant, args.samples, args.seed)
        print(f"{title} ({res['key']}): FISTA-TV {res['psnr']['fista_tv']:.2f} dB, DPS {variant} mean "
              f"{res['psnr']['dps']:.2f} dB, coverage {res['coverage']:.2f}, {res['seconds']:.1f} s", flush=True)
        rows.append((title, variant, res))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    compose(rows, args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
