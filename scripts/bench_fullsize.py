"""Generative methods at full size (issue 17 part 3): the shipped 128x128 priors on 256, 320 (MRI) and 512 (CT) images.

Compares, on real slices simulated as the pipeline does (same seeds):
  fista_tv            the baseline (its tv_weight picked from a small grid on a slice NOT in the evaluation set)
  dps_upsample        (a) dps with grid: upsample: sampling on the prior's 128 grid through A U, then the full-size
                      TV-regularised refinement (what genrecon implements)
  dps_fullconv        (b) the same sampler with the UNet applied to the whole full-size image (fully convolutional)
  dps_patches         (c) the same sampler with the UNet applied to overlapping 128 tiles, blended (linear ramps)
  latent_upsample     latent_inversion (hybrid, TV on u) with grid: upsample
Seconds (wall and CPU) and peak memory (genrecon.benchmark.common.PeakMemory: resident set size above the level at
entry) per slice, on 1 torch thread; ``--part time320`` times the methods alone at 320x320.

    python scripts/bench_fullsize.py --part mri --out runs/bench_fullsize_mri.json
    python scripts/bench_fullsize.py --part ct --out runs/bench_fullsize_ct.json

Slices: sample:brain-mri (MNI152 2009a axial slices from the slab the brain priors did not train on; the priors
trained on the rest of the same template, so not an unseen subject) at its native 256 grid and resized to 320;
sample:head-ct (native 256x256, 0.96 mm pixels) resized to 512 (attenuation 0.0375 per pixel at hu_unit 1: the 128 configs' 0.15 per
128-grid pixel, the same per mm).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time

import torch
from torch import nn

from genrecon.benchmark.common import PeakMemory
from genrecon.config import load_config_dict
from genrecon.metrics import psnr, ssim
from genrecon.pipeline.plan import case_key, load_case, make_loader, plan
from genrecon.registry import RECONSTRUCTORS
from genrecon.seeding import derive_seed
from genrecon.simulate import simulate

BRAIN_DPS = "pretrained:brain-mri-128-diffusion"
BRAIN_GEN = "pretrained:brain-mri-128-generator"
CT_DPS = "pretrained:head-ct-128-diffusion"
CT_MU = 0.15 * 128 / 512


class FullConv(nn.Module):
    """(b): the prior's UNet applied to the whole image (its own size is ignored)."""

    kind = "diffusion"

    def __init__(self, prior: nn.Module, size: int):
        super().__init__()
        self.prior, self.image_size, self.channels = prior, size, prior.channels
        self.schedule, self.to_image, self.to_model = prior.schedule, prior.to_image, prior.to_model

    def predict(self, x, t):
        return self.prior.predict(x, t)


class Patches(FullConv):
    """(c): the prior's UNet on overlapping ``tile`` x ``tile`` tiles (stride ``stride``), blended with linear ramps."""

    def __init__(self, prior: nn.Module, size: int, stride: int = 64):
        super().__init__(prior, size)
        tile = prior.image_size
        starts = list(range(0, size - tile + 1, stride))
        if starts[-1] != size - tile:
            starts.append(size - tile)
        self.tile, self.starts = tile, starts
        ramp = torch.minimum(torch.arange(tile) + 1.0, tile - torch.arange(tile).float()).clamp(max=stride / 2)
        self.weight = ramp[:, None] * ramp[None, :]

    def predict(self, x, t):
        n, tile = x.shape[0], self.tile
        boxes = [(i, j) for i in self.starts for j in self.starts]
        tiles = torch.cat([x[..., i:i + tile, j:j + tile] for i, j in boxes], 0)
        x0s, epss = [], []
        for chunk in tiles.split(8 * n):
            a, b = self.prior.predict(chunk, t)
            x0s.append(a)
            epss.append(b)
        x0s, epss = torch.cat(x0s, 0), torch.cat(epss, 0)
        w = self.weight.to(x.dtype)
        acc0, acce, wsum = torch.zeros_like(x), torch.zeros_like(x), torch.zeros_like(x[:1])
        for k, (i, j) in enumerate(boxes):
            acc0[..., i:i + tile, j:j + tile] += w * x0s[k * n:(k + 1) * n]
            acce[..., i:i + tile, j:j + tile] += w * epss[k * n:(k + 1) * n]
            wsum[..., i:i + tile, j:j + tile] += w
        return acc0 / wsum, acce / wsum


def cases(cfg_dict: dict, slices: list[int]):
    """``(key, measurement)`` of the selected slices, simulated as the pipeline does."""
    cfg = load_config_dict(cfg_dict, build=False)
    loader = make_loader(cfg)
    scale: dict = {}
    for ref in plan(cfg, loader):
        if ref.index not in slices:
            continue
        case = load_case(cfg, loader, ref, scale)
        key = case_key(ref)
        case.key = key
        yield key, simulate(case, cfg.simulate, generator=torch.Generator().manual_seed(derive_seed(cfg.seed, key)))


def mri_cfg(size: int, acc: int) -> dict:
    data = {"source": "sample:brain-mri", "slices": "all", "normalize": "volume_max"}
    if size != 256:
        data.update(size=size, resize="resize")
    return {"version": 1, "seed": 0, "threads": 1, "data": data,
            "simulate": {"modality": "mri", "mask": {"name": "random", "acceleration": acc, "center_fraction": 0.08},
                         "noise": {"sigma": 0.002}},
            "reconstructors": [{"name": "zero_filled"}], "output": {"dir": "runs/unused"}}


def ct_cfg(views: int) -> dict:
    return {"version": 1, "seed": 0, "threads": 1,
            "data": {"source": "sample:head-ct", "slices": "all", "normalize": "hu_unit", "size": 512,
                     "resize": "resize"},
            "simulate": {"modality": "ct", "geometry": "parallel", "angles": {"kind": "sparse", "n_views": views},
                         "noise": {"kind": "poisson", "i0": 100000}, "hu_to_mu": {"kind": "linear",
                                                                                  "mu_per_unit": CT_MU},
                         "normalize": True},
            "reconstructors": [{"name": "zero_filled"}], "output": {"dir": "runs/unused"}}


def run_method(name: str, params: dict, meas, data_range: float, seed: int = 1) -> dict:
    method = RECONSTRUCTORS.build(name, params)
    gen = torch.Generator().manual_seed(seed)
    with PeakMemory("cpu") as pm:
        start, cpu = time.perf_counter(), time.process_time()
        x = method(meas.y, meas.op, generator=gen)
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    truth = meas.x_true
    xa, ta = x.abs() if x.is_complex() else x, truth.abs() if truth.is_complex() else truth
    a, b = xa[0, 0].double().numpy(), ta[0, 0].double().numpy()
    return {"psnr": psnr(a, b, data_range), "ssim": ssim(a, b, data_range), "seconds": seconds, "cpu_seconds": cpu,
            "peak_mib": pm.mib}


def mri_methods(size: int, tv: float, which: set[str], samples: int = 1) -> dict[str, tuple[str, dict]]:
    dps = {"consistency": "project", "steps": 50, "gamma": 0.002, "cg_iter": 10, "tv_weight": 0.001,
           "samples": samples}
    from genrecon.priors.checkpoint import load_prior

    prior = load_prior(BRAIN_DPS, kind="diffusion", purpose="dps")[0]
    out = {"fista_tv": ("fista_tv", {"tv_weight": tv, "n_iter": 100}),
           "dps_upsample": ("dps", {"prior": BRAIN_DPS, **dps, "grid": "upsample", "refine_tv_weight": tv}),
           "dps_fullconv": ("dps", {"prior": FullConv(prior, size), **dps}),
           "dps_patches": ("dps", {"prior": Patches(prior, size), **dps}),
           "latent_upsample": ("latent_inversion", {"prior": BRAIN_GEN, "init": "encoder", "restarts": 2, "steps": 200,
                                                    "lam": 0.001, "mode": "hybrid", "hybrid_penalty": "tv",
                                                    "tv_weight": tv, "grid": "upsample"})}
    tag = "" if samples == 1 else f"_s{samples}"
    return {k + (tag if k.startswith("dps") else ""): v for k, v in out.items() if k in which}


def tune_tv(cfg: dict, slice_: int, grid: list[float], data_range_of, extra: dict | None = None) -> tuple[float, dict]:
    """fista_tv's tv_weight: the best of ``grid`` on one slice kept out of the evaluation."""
    (_, meas), = list(cases(cfg, [slice_]))
    scores = {tv: run_method("fista_tv", {"tv_weight": tv, "n_iter": 100, **(extra or {})}, meas,
                             data_range_of(meas))["psnr"] for tv in grid}
    return max(scores, key=scores.get), scores


def summarize(paths: list[str]) -> str:
    """A Markdown table of the runs in ``paths``: mean over slices per (scenario, method); CPU seconds are the mean
    of the rows that have them."""
    latest: dict[tuple[str, str, str], dict] = {}  # a later file's row replaces an earlier one of the same case
    tvs = {}
    for path in paths:
        with open(path) as f:
            for r in json.load(f)["results"]:
                if "tv_grid" in r:
                    tvs[r["scenario"]] = r["tv_weight"]
                else:
                    latest[(r["scenario"], r["method"], r["case"])] = r
    rows: dict[tuple[str, str], list[dict]] = {}
    for (scen, method, _), r in sorted(latest.items()):
        rows.setdefault((scen, method), []).append(r)
    out = ["| setting | method | PSNR dB | SSIM | wall s / slice | CPU s / slice | peak MiB | slices |",
           "|---|---|---|---|---|---|---|---|"]
    for (scen, method), rs in rows.items():
        mean = lambda k: sum(r[k] for r in rs if r.get(k) is not None) / max(1, sum(r.get(k) is not None for r in rs))  # noqa: E731
        cpu = f"{mean('cpu_seconds'):.0f}" if any("cpu_seconds" in r for r in rs) else "-"
        out.append(f"| {scen} (fista_tv tv_weight {tvs.get(scen)}) | {method} | {mean('psnr'):.2f} | {mean('ssim'):.3f} "
                   f"| {mean('seconds'):.0f} | {cpu} | {mean('peak_mib'):.0f} | "
                   f"{', '.join(r['case'].split('/')[-1] for r in rs)} |")
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    if len(sys.argv) > 1 and sys.argv[1] == "--summarize":
        print(summarize(sys.argv[2:]))
        return
    ap.add_argument("--part", choices=["mri", "ct", "time320"], required=True)
    ap.add_argument("--slices", default="1,3", help="evaluation slices (indices)")
    ap.add_argument("--tune-slice", type=int, default=2, help="slice for fista_tv's tv_weight grid")
    ap.add_argument("--methods", default="fista_tv,dps_upsample,dps_fullconv,dps_patches,latent_upsample")
    ap.add_argument("--scenarios", default="", help="e.g. 256x4,256x8,320x4 (mri) or 60 (ct)")
    ap.add_argument("--dps-samples", type=int, default=1, help="dps posterior samples (their mean is scored)")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    torch.set_num_threads(1)
    slices = [int(s) for s in args.slices.split(",")]
    which = set(args.methods.split(","))
    doc = {"argv": sys.argv, "threads": 1, "python": platform.python_version(), "torch": torch.__version__,
           "slices": slices, "tune_slice": args.tune_slice, "results": []}

    def save() -> None:
        with open(args.out, "w") as f:
            json.dump(doc, f, indent=1)

    if args.part in ("mri", "time320"):
        scen = args.scenarios or ("320x4" if args.part == "time320" else "256x4,256x8,320x4")
        for item in scen.split(","):
            size, acc = (int(v) for v in item.split("x"))
            cfg = mri_cfg(size, acc)
            tv, scores = tune_tv(cfg, args.tune_slice, [0.001, 0.002, 0.004], lambda m: 1.0)
            doc["results"].append({"scenario": item, "tv_grid": scores, "tv_weight": tv})
            for key, meas in cases(cfg, slices):
                for label, (name, params) in mri_methods(size, tv, which, args.dps_samples).items():
                    row = {"scenario": item, "case": key, "method": label,
                           **run_method(name, params, meas, 1.0)}  # volume_max normalised: data_range 1
                    doc["results"].append(row)
                    print(json.dumps(row), flush=True)
                    save()
    else:
        views = int(args.scenarios or 60)
        cfg = ct_cfg(views)
        tv, scores = tune_tv(cfg, args.tune_slice, [2e-6, 5e-6, 1e-5], lambda m: CT_MU, {"nonneg": True})
        doc["results"].append({"scenario": f"ct{views}", "tv_grid": scores, "tv_weight": tv})
        from genrecon.priors.checkpoint import load_prior

        prior = load_prior(CT_DPS, kind="diffusion", purpose="dps")[0]
        dps = {"consistency": "project", "steps": 50, "gamma": 0.0005, "cg_iter": 10, "tv_weight": 2 * tv,
               "nonneg": True, "samples": 1, "intensity_scale": CT_MU}
        methods = {"fista_tv": ("fista_tv", {"tv_weight": tv, "n_iter": 100, "nonneg": True}),
                   "dps_upsample": ("dps", {"prior": CT_DPS, **dps, "grid": "upsample", "refine_tv_weight": tv}),
                   "dps_fullconv": ("dps", {"prior": FullConv(prior, 512), **dps})}
        for key, meas in cases(cfg, slices):
            for label, (name, params) in methods.items():
                if label not in which:
                    continue
                row = {"scenario": f"ct{views}", "case": key, "method": label, **run_method(name, params, meas, CT_MU)}
                doc["results"].append(row)
                print(json.dumps(row), flush=True)
                save()
    save()


if __name__ == "__main__":
    main()
