"""Benchmark diffusion posterior sampling (DPS) against classical baselines on held-out slices.

Settings: MRI single-coil random Cartesian 4x and 8x (8% centre, complex Gaussian noise sigma 0.002) and
parallel-beam CT with 60 and 30 views over 180 deg and 90 views over [0, 90) deg (Poisson noise, i0 = 1e5,
on the line integrals of mu = 0.15 * image). Images are the ``val/images`` slices of
``data/prepared/{brain-mri,head-ct}-128.h5`` (never used for prior training), in [0, 1].

Methods: zero-filled (MRI) / FBP ramp (CT), ``fista_tv`` (lam tuned on training slices, or ``--lam-file``),
``dps`` (gradient guidance), ``dps`` with ``consistency: project`` and, with ``--generator``,
``latent_inversion``. Metrics: PSNR and SSIM with data range 1 in image units (CT: mu / 0.15), mean and std
over slices; seconds per slice; NFE; 2-sigma coverage of the per-pixel std map (fraction of pixels with
``|mean - truth| <= 2 std``, methods with ``samples > 1``); peak memory (CUDA allocations, or the CPU's
resident set size). The settings, defaults and per-slice measurement are those of ``genrecon benchmark
generative`` (``benchmarks/configs/generative/``); this script adds tuning and the --generator option.

``--tune`` first picks FISTA-TV's lam per setting and runs a small DPS grid on TRAINING slices
(``train/images``), prints the choices and uses them for the val run.

Examples:
    python scripts/bench_dps.py --quick
    python scripts/bench_dps.py --slices 4 --samples 2 --threads 1 --json runs/bench_dps.json
    python scripts/bench_dps.py --tune --tune-slices 2 --settings mri8,ct30 --slices 0
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from genrecon.benchmark.common import PeakMemory, mean_std  # noqa: E402  (shared with the generative suite)
from genrecon.benchmark.generative import SETTINGS as SETTING_NAMES  # noqa: E402
from genrecon.benchmark.generative import method_params, setting_config  # noqa: E402
from genrecon.benchmark.images import held_out  # noqa: E402

DATA_DIR = ROOT / "data/prepared"

# The settings and tuned values are those of the generative suite's configs (benchmarks/configs/generative/,
# the README there says where each value comes from); this script re-tunes them on training slices.
SETTINGS = {s: (sim["modality"], sim) for s in SETTING_NAMES for sim in [setting_config(s)["simulate"]]}
#: each setting's methods, read once (every value below comes from here)
_METHODS = {s: method_params(s) for s in SETTING_NAMES}
#: settings where DPS runs (16x and 15 views are latent-inversion settings)
DPS_SETTINGS = tuple(s for s in SETTING_NAMES if "dps" in _METHODS[s])
LAM_DEFAULT = {s: _METHODS[s]["fista_tv"][1]["tv_weight"] for s in SETTING_NAMES}
FISTA_ITER = _METHODS["mri8"]["fista_tv"][1]["n_iter"]
MU_PER_UNIT = SETTINGS["ct30"][1]["hu_to_mu"]["mu_per_unit"]
#: gradient-DPS step size per modality (it acts on model-space gradients that scale with intensity_scale)
ZETA = {"mri": _METHODS["mri8"]["dps"][1]["zeta"], "ct": _METHODS["ct30"]["dps"][1]["zeta"]}
DPS_GRAD = {k: _METHODS["mri8"]["dps"][1][k] for k in ("steps", "eta")}
DPS_PROJECT = {k: _METHODS["mri8"]["dps_project"][1][k] for k in ("consistency", "steps", "eta", "gamma", "cg_iter")}
#: FISTA-TV weight grids for tuning (MRI: image units in [0, 1]; CT: mu units, ||A|| = 1)
LAM_GRID = {"mri": [5e-4, 1e-3, 2e-3, 5e-3, 1e-2], "ct": [2e-6, 5e-6, 1e-5, 2e-5, 5e-5, 1e-4]}


def dps_tv_params(setting: str) -> dict:
    """What ``dps_project_tv`` adds to :data:`DPS_PROJECT` in ``setting``'s config (tv_weight, schedule)."""
    params = _METHODS[setting]["dps_project_tv"][1]
    return {k: v for k, v in params.items() if k not in ("prior", "samples", "intensity_scale")
            and (k not in DPS_PROJECT or DPS_PROJECT[k] != v)}


def simulate(setting: str, key: str, image: torch.Tensor, seed: int, device):
    """The measurement of one slice: ``(y, op, truth (1, 1, H, W) in image units, intensity scale)``."""
    from genrecon.errors import ConfigError
    from genrecon.schema import parse
    from genrecon.simulate import ct as ct_sim
    from genrecon.simulate import mri as mri_sim
    from genrecon.types import Case

    modality, raw = SETTINGS[setting]
    module = mri_sim if modality == "mri" else ct_sim
    problems: list[str] = []
    cfg = parse(module.Config, raw, "simulate", problems)
    if problems:
        raise ConfigError(problems)
    m = module.simulate(Case(key, image, {"units": "normalised"}), cfg, generator=torch.Generator().manual_seed(seed),
                        device=device)
    scale = 1.0 if modality == "mri" else MU_PER_UNIT
    return m.y, m.op, image[None].to(device), scale


def run_method(name: str, params: dict, y, op, truth, scale: float, seed: int, device, cache: dict) -> dict:
    """Reconstruct one measurement: ``psnr``, ``ssim`` (data range 1, image units; CT values as they are),
    ``seconds``, ``nfe``, ``coverage`` (2-sigma, with a std map) and ``peak_mb``."""
    from genrecon.metrics import coverage, psnr, ssim
    from genrecon.registry import RECONSTRUCTORS

    key = (name, json.dumps(params, sort_keys=True, default=str))
    if key not in cache:  # a prior is loaded once per configuration
        recon = RECONSTRUCTORS.build(name, params)
        cache[key] = recon.to(device) if hasattr(recon, "to") else recon
    recon = cache[key]
    with PeakMemory(device) as mem:
        t0 = time.perf_counter()
        with torch.enable_grad() if name in ("dps", "latent_inversion") else torch.no_grad():
            x = recon(y, op, generator=torch.Generator().manual_seed(seed + 1))
        if torch.device(device).type == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - t0
    est = (x.detach().abs() if x.is_complex() else x.detach()) / scale
    row = {"psnr": psnr(est, truth, 1.0), "ssim": ssim(est, truth, 1.0), "seconds": seconds,
           "nfe": recon.info.get("nfe", recon.info.get("iterations", 0)), "coverage": None, "peak_mb": mem.mib}
    std = recon.info.get("std")
    if isinstance(std, torch.Tensor):
        row["coverage"] = coverage(est, truth, std.detach() / scale)
    return row
PRIORS = {
    "mri": ROOT / "genrecon/data/priors/brain-mri-128-diffusion.pt",
    "ct": ROOT / "genrecon/data/priors/head-ct-128-diffusion.pt",
}


def load_slices(modality: str, split: str, n: int) -> list[tuple[str, torch.Tensor]]:
    """``n`` evenly spaced interior images ``(1, 128, 128)`` float32 in [0, 1] from ``split`` (``train``/``val``)."""
    return held_out(DATA_DIR, modality, n, split)


def methods_for(setting: str, args, lams: dict, dps_grad: dict, dps_proj: dict) -> list[tuple[str, str, dict]]:
    """``(label, registry name, params)`` for every method run on ``setting``."""
    modality = SETTINGS[setting][0]
    out: list[tuple[str, str, dict]] = []
    out.append(("zero_filled", "zero_filled", {}) if modality == "mri" else ("fbp", "fbp", {"filter": "ramp"}))
    out.append(("fista_tv", "fista_tv", {"tv_weight": lams[setting], "n_iter": FISTA_ITER,
                                         "nonneg": modality == "ct"}))
    prior = PRIORS[modality]
    if prior.exists():
        common = {"prior": str(prior), "samples": args.samples,
                  "intensity_scale": 1.0 if modality == "mri" else MU_PER_UNIT}
        grad = {"zeta": ZETA[modality], **dps_grad, **common}
        proj = {**dps_proj, **common}
        if args.steps is not None:
            grad["steps"] = proj["steps"] = args.steps
        if not args.no_grad_dps:
            out.append(("dps", "dps", grad))
        out.append(("dps_project", "dps", proj))
    else:
        print(f"[{setting}] diffusion prior MISSING: {prior} -- dps rows skipped", flush=True)
    if args.generator:
        out.append(("latent_inversion", "latent_inversion", {"prior": args.generator, "restarts": 2, "steps": 200}))
    return out


def evaluate(setting: str, images, methods, args, device, cache) -> dict[str, list[dict]]:
    """Run ``methods`` on every image of ``images``; per-method lists of per-slice rows."""
    rows: dict[str, list[dict]] = {label: [] for label, _, _ in methods}
    for j, (key, image) in enumerate(images):
        y, op, truth, scale = simulate(setting, key, image, args.seed + j, device)
        for label, name, params in methods:
            r = run_method(name, params, y, op, truth, scale, args.seed + 1000 * j, device, cache)
            rows[label].append(r)
            if args.verbose:
                print(f"  {setting} {key} {label}: {r['psnr']:.2f} dB {r['ssim']:.3f} {r['seconds']:.1f}s", flush=True)
    return rows


def summarise(results: dict) -> list[dict]:
    table = []
    for setting, per_method in results.items():
        for label, rows in per_method.items():
            if not rows:
                continue
            p, ps = mean_std([r["psnr"] for r in rows])
            s, ss = mean_std([r["ssim"] for r in rows])
            cov = [r["coverage"] for r in rows if r["coverage"] is not None]
            mem = [r["peak_mb"] for r in rows if r["peak_mb"] is not None]
            table.append({"setting": setting, "method": label, "n": len(rows), "psnr": p, "psnr_std": ps,
                          "ssim": s, "ssim_std": ss, "seconds": statistics.fmean(r["seconds"] for r in rows),
                          "nfe": rows[0]["nfe"], "coverage": statistics.fmean(cov) if cov else None,
                          "peak_mb": max(mem) if mem else None})
    return table


def print_table(table: list[dict]) -> None:
    head = f"{'setting':9} {'method':17} {'n':>2} {'PSNR dB':>14} {'SSIM':>14} {'s/slice':>8} {'NFE':>5} " \
           f"{'cov2s':>6} {'peakMB':>7}"
    print(head)
    print("-" * len(head))
    for r in table:
        cov = f"{r['coverage']:.3f}" if r["coverage"] is not None else "-"
        mem = f"{r['peak_mb']:.0f}" if r["peak_mb"] is not None else "-"
        print(f"{r['setting']:9} {r['method']:17} {r['n']:>2} {r['psnr']:7.2f} ±{r['psnr_std']:5.2f} "
              f"{r['ssim']:7.3f} ±{r['ssim_std']:5.3f} {r['seconds']:8.1f} {r['nfe']:>5} {cov:>6} {mem:>7}")


def tune(args, device, settings, cache) -> tuple[dict, dict, dict]:
    """Pick FISTA-TV's lam per setting and the DPS defaults on training slices (mean PSNR)."""
    lams = dict(LAM_DEFAULT)
    dps_settings = [s for s in args.tune_dps_settings.split(",") if s]
    log: dict = {"lam": {}, "dps_project": [], "dps": []}
    train = {m: load_slices(m, "train", args.tune_slices) for m in ("mri", "ct")}
    for setting in settings if "lam" in args.tune_what else []:
        modality = SETTINGS[setting][0]
        scores = {}
        for lam in LAM_GRID[modality]:
            rows = evaluate(setting, train[modality],
                            [("fista_tv", "fista_tv", {"tv_weight": lam, "n_iter": FISTA_ITER,
                                                       "nonneg": modality == "ct"})],
                            args, device, cache)
            scores[lam] = mean_std([r["psnr"] for r in rows["fista_tv"]])[0]
        lams[setting] = max(scores, key=scores.get)
        log["lam"][setting] = {"grid": scores, "chosen": lams[setting]}
        print(f"[tune] {setting} fista_tv lam: " + ", ".join(f"{k:g}={v:.2f}" for k, v in scores.items())
              + f" -> {lams[setting]:g}", flush=True)

    def dps_grid(base: dict, grid: list[dict], tag: str) -> dict:
        best, best_score = dict(base), -math.inf
        for change in grid:
            params = {**base, **change}
            per_setting, seconds = [], []
            for setting in dps_settings:
                modality = SETTINGS[setting][0]
                if not PRIORS[modality].exists():
                    continue
                p = {"zeta": ZETA[modality], **params, "prior": str(PRIORS[modality]), "samples": 1,
                     "intensity_scale": 1.0 if modality == "mri" else MU_PER_UNIT}
                rows = evaluate(setting, train[modality], [(tag, "dps", p)], args, device, cache)
                per_setting.append(mean_std([r["psnr"] for r in rows[tag]])[0])
                seconds += [r["seconds"] for r in rows[tag]]
            if not per_setting:
                print(f"[tune] {tag}: no prior available, defaults kept", flush=True)
                return best
            score, secs = statistics.fmean(per_setting), statistics.fmean(seconds)
            log[tag].append({"params": change, "psnr": per_setting, "mean": score, "seconds": secs})
            print(f"[tune] {tag} {change}: " + " ".join(f"{v:.2f}" for v in per_setting)
                  + f" (mean {score:.2f} dB, {secs:.1f} s/slice)", flush=True)
            if score > best_score:
                best, best_score = params, score
        return best

    proj = dict(DPS_PROJECT)
    if "project" not in args.tune_what:
        tune_proj = []
    else:
        tune_proj = [("steps", args.tune_steps), ("eta", args.tune_etas), ("gamma", args.tune_gammas),
                     ("cg_iter", args.tune_cg)]
    # one factor at a time around the current defaults (small grids: the machine is shared)
    for name, values in tune_proj:
        proj = dps_grid(proj, [{name: v} for v in values], "dps_project")
    grad = dict(DPS_GRAD)
    if not args.no_grad_dps and "grad" in args.tune_what:
        grad = dps_grid(grad, [{"zeta": z, "steps": s} for s in args.tune_grad_steps for z in args.tune_zetas], "dps")
    print(f"[tune] chosen dps_project: {proj}", flush=True)
    print(f"[tune] chosen dps:         {grad}", flush=True)
    print(f"[tune] chosen fista_tv lam: {lams}", flush=True)
    if args.tune_log:
        Path(args.tune_log).write_text(json.dumps(log, indent=2, default=str))
    return lams, grad, proj


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--slices", type=int, default=4, help="held-out val slices per modality (evenly spaced)")
    ap.add_argument("--settings", default=",".join(DPS_SETTINGS), help=f"comma list of {', '.join(SETTINGS)}")
    ap.add_argument("--samples", type=int, default=1, help="DPS posterior samples per slice (>1: std map, coverage)")
    ap.add_argument("--steps", type=int, default=None, help="override the DPS steps of both variants")
    ap.add_argument("--no-grad-dps", action="store_true", help="skip gradient DPS (slow: backprop per step)")
    ap.add_argument("--lam-file", help="JSON {setting: lam} for FISTA-TV (skips lam tuning)")
    ap.add_argument("--prior-mri", help="diffusion prior .pt for MRI (default: the shipped brain-mri-128-diffusion)")
    ap.add_argument("--prior-ct", help="diffusion prior .pt for CT (default: the shipped head-ct-128-diffusion)")
    ap.add_argument("--generator", help="generator prior .pt for latent_inversion (skipped without it)")
    ap.add_argument("--json", help="write per-slice rows and the summary table here")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tune", action="store_true", help="tune on training slices first and print the choices")
    ap.add_argument("--tune-slices", type=int, default=2, help="training slices per modality for --tune")
    ap.add_argument("--tune-what", default="lam,project,grad", help="what --tune tunes: lam, project, grad")
    ap.add_argument("--tune-dps-settings", default="mri8,ct30,ct_lim90",
                    help="settings whose mean training PSNR the DPS grids maximise")
    ap.add_argument("--tune-steps", type=lambda s: [int(v) for v in s.split(",")], default=[20, 50, 100])
    ap.add_argument("--tune-etas", type=lambda s: [float(v) for v in s.split(",")], default=[0.5, 0.85, 1.0])
    ap.add_argument("--tune-gammas", type=lambda s: [float(v) for v in s.split(",")],
                    default=[0.002, 0.01, 0.05, 0.2])
    ap.add_argument("--tune-cg", type=lambda s: [int(v) for v in s.split(",")], default=[3, 5, 10])
    ap.add_argument("--tune-zetas", type=lambda s: [float(v) for v in s.split(",")], default=[0.3, 1.0, 3.0])
    ap.add_argument("--tune-grad-steps", type=lambda s: [int(v) for v in s.split(",")], default=[100, 200])
    ap.add_argument("--tune-log", help="write the tuning scores (JSON) here")
    ap.add_argument("--quick", action="store_true", help="smoke test: 1 slice, mri8 + ct30, 5 steps")
    ap.add_argument("-v", "--verbose", action="store_true", help="print every slice")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = args.device
    settings = [s.strip() for s in args.settings.split(",") if s.strip()]
    unknown = [s for s in settings if s not in SETTINGS]
    if unknown:
        raise SystemExit(f"unknown settings {unknown}; choose from {', '.join(SETTINGS)}")
    if args.quick:
        args.slices, settings = 1, ["mri8", "ct30"]
        args.steps = args.steps or 5
        args.tune_slices, args.tune_steps, args.tune_grad_steps = 1, [5], [5]
        args.tune_dps_settings = "mri8,ct30"
    for modality in ("mri", "ct"):
        override = getattr(args, f"prior_{modality}")
        if override:
            PRIORS[modality] = Path(override).resolve()
    for modality, path in PRIORS.items():
        print(f"prior {modality}: {path}" + ("" if path.exists() else "  (MISSING)"), flush=True)

    cache: dict = {}
    lams, grad, proj = dict(LAM_DEFAULT), dict(DPS_GRAD), dict(DPS_PROJECT)
    if args.lam_file:
        lams.update({k: float(v) for k, v in json.loads(Path(args.lam_file).read_text()).items()})
    if args.tune:
        lams, grad, proj = tune(args, device, settings, cache)
    results = {}
    t0 = time.perf_counter()
    if args.slices > 0:
        val = {m: load_slices(m, "val", args.slices) for m in ("mri", "ct")}
        for setting in settings:
            methods = methods_for(setting, args, lams, grad, proj)
            results[setting] = evaluate(setting, val[SETTINGS[setting][0]], methods, args, device, cache)
            print(f"[{setting}] done ({time.perf_counter() - t0:.0f} s)", flush=True)
        table = summarise(results)
        print(f"\n{args.slices} held-out val slice(s) per setting, torch threads {args.threads}, device {device}")
        print_table(table)
    else:
        table = []
    if args.json:
        out = {"args": vars(args), "lam": lams, "dps": grad, "dps_project": proj, "table": table,
               "rows": results}
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(out, indent=2, default=str))


if __name__ == "__main__":
    main()
