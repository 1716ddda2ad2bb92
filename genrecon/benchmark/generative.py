"""Suite ``generative``: FISTA-TV against latent inversion (plain, hybrid) and DPS (gradient, projected).

Images: held-out (``val``) slices of ``data/prepared/{brain-mri,head-ct}-128.h5`` (never used to train the
shipped priors; ``python scripts/prepare_data.py all`` builds them), evenly spaced interior slices, 128x128
in [0, 1] (MRI: ``clip(I / p99.5, 0, 1)``; CT: ``(clip(HU, -1024, 3071) + 1024) / 4095``).

Settings (the DPS issue's, simulated by :func:`genrecon.simulate.simulate` with the slice number as seed):
MRI single coil, random Cartesian columns with an 8% centre at 4x, 8x (and 16x, 4% centre), complex Gaussian noise
sigma 0.002; CT parallel beam, normalised operator, 60 and 30 (and 15) views over 180 degrees and 90 views
over 90 degrees, Poisson noise (i0 = 1e5) on the line integrals of ``mu = 0.15 x image``. MRI 16x and CT 15
views run the baselines and latent inversion only (as in the latent-inversion issue).

Methods: zero-filled (MRI) / FBP ramp (CT); ``fista_tv`` (100 iterations, weights tuned on training slices,
:data:`LAM_DEFAULT`); ``latent_inversion`` plain, hybrid and anchored with the shipped generator priors (MAP only:
posterior sampling needs a Hessian, about a minute per slice); ``dps`` with gradient guidance and with
``consistency: project``, without and with TV in the projection (``tv_weight``: a tuned factor x the setting's
FISTA-TV ``tv_weight``; on CT also 5 rounds and, for sparse views, a late start: :data:`DPS_TV_SCHEDULE`), with the
shipped diffusion priors and ``samples`` posterior samples (mean reported, std map and 2-sigma coverage when
samples > 1). A prior that is not shipped is reported missing with the
reason.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

import torch

from .common import Log, Options, PeakMemory, fmt, mean_std, metric_conventions, new_document, pm, table

NAME = "generative"
TITLE = "Generative reconstruction: FISTA-TV, latent inversion and DPS on held-out slices"

MU_PER_UNIT = 0.15
_MRI_NOISE = {"sigma": 0.002}
_CT_COMMON = {"noise": {"kind": "poisson", "i0": 100000}, "hu_to_mu": {"kind": "linear", "mu_per_unit": MU_PER_UNIT},
              "normalize": True}


def _mri(acc: int, center: float = 0.08) -> dict:
    return {"modality": "mri", "mask": {"name": "random", "acceleration": acc, "center_fraction": center},
            "noise": dict(_MRI_NOISE)}


def _ct(angles: dict) -> dict:
    return {"modality": "ct", "angles": angles, **json.loads(json.dumps(_CT_COMMON))}


#: setting -> (modality, ``simulate:`` section); ``scripts/bench_dps.py`` uses the same
SETTINGS: dict[str, tuple[str, dict]] = {
    "mri4": ("mri", _mri(4)),
    "mri8": ("mri", _mri(8)),
    "mri16": ("mri", _mri(16, 0.04)),  # an 8% centre does not fit in 1/16 of the lines
    "ct60": ("ct", _ct({"kind": "sparse", "n_views": 60})),
    "ct30": ("ct", _ct({"kind": "sparse", "n_views": 30})),
    "ct15": ("ct", _ct({"kind": "sparse", "n_views": 15})),
    "ct_lim90": ("ct", _ct({"kind": "limited", "span_deg": 90, "n_views": 90})),
}
#: settings where DPS runs (16x and 15 views are latent-inversion settings)
DPS_SETTINGS = ("mri4", "mri8", "ct60", "ct30", "ct_lim90")
#: (x-axis value for the PSNR plot, label); None: not on the curve (limited angle)
AXIS = {"mri4": (4, "MRI 4x"), "mri8": (8, "MRI 8x"), "mri16": (16, "MRI 16x"), "ct60": (60, "CT 60 views"),
        "ct30": (30, "CT 30 views"), "ct15": (15, "CT 15 views"), "ct_lim90": (None, "CT 90 views / 90 deg")}

#: FISTA-TV weight grids for tuning (MRI: image units in [0, 1]; CT: mu units, ||A|| = 1) and the weights
#: tuned on training slices (benchmarks/dps.md). 16x and 15 views: `scripts/bench_dps.py --tune --tune-what lam
#: --tune-slices 3 --slices 0`, mean training PSNR: mri16 5e-4 16.80, 1e-3 17.06, 2e-3 17.29, 5e-3 17.55,
#: 1e-2 17.68, 2e-2 17.34; ct15 2e-6 33.50, 5e-6 33.87, 1e-5 34.20, 2e-5 34.35, 5e-5 33.88, 1e-4 32.99
#: (the same run reproduced mri8's 2e-3 and ct30's 1e-5)
LAM_GRID = {"mri": [5e-4, 1e-3, 2e-3, 5e-3, 1e-2], "ct": [2e-6, 5e-6, 1e-5, 2e-5, 5e-5, 1e-4]}
LAM_DEFAULT = {"mri4": 2e-3, "mri8": 2e-3, "mri16": 1e-2, "ct60": 5e-6, "ct30": 1e-5, "ct15": 2e-5,
               "ct_lim90": 1e-5}
FISTA_ITER = 100
#: DPS defaults chosen on training slices (benchmarks/dps.md)
DPS_GRAD = {"steps": 100, "eta": 1.0}
#: gradient-DPS step size per modality (it acts on model-space gradients that scale with intensity_scale)
ZETA = {"mri": 10.0, "ct": 30.0}
DPS_PROJECT = {"consistency": "project", "steps": 100, "eta": 1.0, "gamma": 0.002, "cg_iter": 10}
#: ``dps project+tv``: the project step with TV at this factor x the setting's FISTA-TV weight (non-negative for CT).
#: A tuned multiplier, not a change of scale (dps's ``tv_weight`` has fista_tv's scale); chosen on training slices
#: (benchmarks/dps.md): CT 30 views 1/2/4/8 -> 40.03/40.22/40.08/39.16 dB (no TV 39.22),
#: limited 90 1/2/4 -> 32.48/32.60/32.73 (31.89); MRI 8x 0.5/1/2 -> 24.52/23.81/22.71 (24.17)
DPS_TV_FACTOR = {"mri": 0.5, "ct": 2.0}
#: CT's sampling schedule for ``dps project+tv`` (benchmarks/dps.md, 3 training slices, 4 samples): gamma 0.0005;
#: ``rounds: 5`` (each round restarts from the previous mean noised to ``refine_time`` 0.05); sparse views start
#: from the TV-regularised least-squares image at ``init_time`` 0.05 of a 400-step grid (20 network evaluations per
#: round): CT 30 views 40.79 (100 steps from noise) -> 41.28 (one round from init_time 0.15) -> 41.78 dB, in 2/3
#: of the time; limited angle keeps the start from noise (a TV start there lost 5 dB): 34.89 -> 36.03 dB. MRI keeps
#: one round from noise (rounds: 3 lost 0.4 dB at 8x, a late start 2.5 dB).
DPS_TV_SCHEDULE = {
    "mri": {},
    "ct_sparse": {"gamma": 0.0005, "steps": 400, "init_time": 0.05, "rounds": 5},
    "ct_limited": {"gamma": 0.0005, "rounds": 5},
}


def dps_tv_params(setting: str) -> dict:
    """The parameters ``dps project+tv`` adds to :data:`DPS_PROJECT` for a setting (the figure script uses them too)."""
    modality, sim = SETTINGS[setting]
    kind = modality if modality == "mri" else f"ct_{sim['angles']['kind']}"
    return {"tv_weight": DPS_TV_FACTOR[modality] * LAM_DEFAULT[setting], "nonneg": modality == "ct",
            **DPS_TV_SCHEDULE[kind]}

#: latent inversion: MAP, 2 restarts of 200 Adam steps; hybrid with TV on u (anchored: on x) at the setting's
#: FISTA-TV ``tv_weight`` (the same scale in both: the same TV strength, now on the deviation from G(z)); TV beat L1
#: on u on training slices (benchmarks/latent.md)
#: ``init: encoder`` (the VAE's encoder on the zero-filled / least-squares image) beat random starts on training
#: slices with the spatial-latent generators (MRI 8x plain 18.96 -> 23.26 dB at 200 steps; 500 random-start steps:
#: 20.58); lam 1e-5 / 1e-4 / 1e-3 changed nothing (23.27 / 23.26 / 23.23)
LATENT = {"restarts": 2, "steps": 200, "lam": 1e-3, "init": "encoder", "hybrid_penalty": "tv"}
#: ``latent anchored`` (TV on x, ``anchor_weight x ||A||^2 ||x - T(G(z))||^2``, 2 rounds): the weight per modality,
#: chosen on 7 *other* held-out slices (val 6, 18, 25, 37, 49, 56, 68 CT; 12, 35, 58, 94, 129, 164, 175 MRI; never
#: trained on, at least 3 slices from the benchmark's): training slices overrate the generator, which memorised
#: them (CT 30 views: 0.01 best on training slices, 1 dB below FISTA-TV held out). CT 0.0003 / 0.001 / 0.003:
#: 60 views 41.61 / 41.75 / 41.03 (FISTA-TV 41.36), 30 views - / 38.89 / 38.55 (38.32), 15 views - / 33.84 / 34.04
#: (32.82), limited 90 28.20 / 28.23 / 28.11 (27.65); MRI 0.001 / 0.003 / 0.01: 4x 24.55 / 24.81 / 25.06 (24.48),
#: 8x 21.38 / 21.49 / 21.61 (21.21), 16x 17.34 / 17.42 / 17.55 (17.29) (benchmarks/latent.md)
ANCHOR_WEIGHT = {"mri": 0.01, "ct": 0.001}
DIFFUSION_PRIORS = {"mri": "pretrained:brain-mri-128-diffusion", "ct": "pretrained:head-ct-128-diffusion"}
GENERATOR_PRIORS = {"mri": "pretrained:brain-mri-128-generator", "ct": "pretrained:head-ct-128-generator"}


@dataclass
class Plan:
    settings: tuple[str, ...] = tuple(SETTINGS)
    slices: int = 12
    source: str = "prepared"          # "prepared": held-out val slices; "bundled": the bundled samples (smoke)
    bundled_indices: tuple[int, ...] = (2,)   # the bundled slices used with source "bundled"
    dps_steps: int | None = None      # None: the tuned defaults (100)
    latent: dict[str, Any] = field(default_factory=lambda: dict(LATENT))
    samples: int = 2
    priors: dict[str, dict[str, str]] = field(
        default_factory=lambda: {"diffusion": dict(DIFFUSION_PRIORS), "generator": dict(GENERATOR_PRIORS)})


def default_plan(opts: Options) -> Plan:
    settings = tuple(opts.settings) if opts.settings else tuple(SETTINGS)
    if opts.quick:
        return Plan(settings=settings, slices=1, dps_steps=5, latent={**LATENT, "restarts": 1, "steps": 10},
                    samples=opts.samples)
    return Plan(settings=settings, slices=opts.slices if opts.slices is not None else 12, samples=opts.samples)


def check_settings(names: list[str]) -> list[str]:
    """Problems with ``--settings`` names (unknown ones, with a suggestion)."""
    from ..registry import did_you_mean

    return [f"generative: unknown setting '{n}'{did_you_mean(n, tuple(SETTINGS))}; choose from {', '.join(SETTINGS)}"
            for n in names if n not in SETTINGS]


def preflight(opts: Options, plan: Plan | None = None) -> list[str]:
    """Problems that stop the suite before it starts (missing held-out data)."""
    from .images import dataset_path

    plan = plan or default_plan(opts)
    if plan.source != "prepared":
        return []
    need = {SETTINGS[s][0] for s in plan.settings}
    return [f"generative: {dataset_path(opts.data_dir, m)} is missing: build the held-out datasets with "
            f"'python scripts/prepare_data.py all' (or pass --data DIR)"
            for m in sorted(need) if not dataset_path(opts.data_dir, m).is_file()]


# -- simulation and one method on one slice -----------------------------------------------------------------
def simulate(setting: str, key: str, image: torch.Tensor, seed: int, device):
    """The measurement of one slice: ``(y, op, truth (1, 1, H, W) in image units, intensity scale)``."""
    from ..errors import ConfigError
    from ..schema import parse
    from ..simulate import ct as ct_sim
    from ..simulate import mri as mri_sim
    from ..types import Case

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
    """Reconstruct one measurement; ``psnr``, ``ssim`` (data range 1, magnitudes), ``seconds``, ``nfe``,
    ``coverage`` (2-sigma, with a std map) and ``peak_mb`` (see :class:`~genrecon.benchmark.common.PeakMemory`)."""
    from ..metrics import coverage, psnr, ssim
    from ..registry import RECONSTRUCTORS

    key = (name, json.dumps(params, sort_keys=True, default=str))
    if key not in cache:  # a prior is loaded once per configuration
        recon = RECONSTRUCTORS.build(name, params)
        if hasattr(recon, "to") and name in ("dps", "latent_inversion"):
            recon = recon.to(device)
        cache[key] = recon
    recon = cache[key]
    grad = name in ("dps", "latent_inversion")
    with PeakMemory(device) as mem:
        if torch.device(device).type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        with torch.enable_grad() if grad else torch.no_grad():
            x = recon(y, op, generator=torch.Generator().manual_seed(seed + 1))
        if torch.device(device).type == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - t0
    est_mag = x.detach().abs() / scale
    row = {"psnr": psnr(est_mag, truth, 1.0), "ssim": ssim(est_mag, truth, 1.0), "seconds": seconds,
           "nfe": recon.info.get("nfe", recon.info.get("iterations", 0)), "coverage": None, "peak_mb": mem.mib}
    std = recon.info.get("std")
    if isinstance(std, torch.Tensor):
        row["coverage"] = coverage(est_mag, truth, std.detach() / scale)
    return row


# -- the methods of a setting ----------------------------------------------------------------------------------
def methods_for(setting: str, plan: Plan) -> list[tuple[str, str, dict]]:
    """``(label, registry name, params)`` of every method run on ``setting``."""
    modality = SETTINGS[setting][0]
    scale = 1.0 if modality == "mri" else MU_PER_UNIT
    out = [("zero_filled", "zero_filled", {}) if modality == "mri" else ("fbp", "fbp", {"filter": "ramp"}),
           ("fista_tv", "fista_tv", {"tv_weight": LAM_DEFAULT[setting], "n_iter": FISTA_ITER,
                                     "nonneg": modality == "ct"})]
    gen = plan.priors["generator"][modality]
    lat = {"prior": gen, **{k: v for k, v in plan.latent.items() if not k.startswith("hybrid_")},
           "intensity_scale": scale}
    # the hybrid's penalty on u is the anchored mode's penalty on x, at FISTA-TV's weight
    penalty = {"hybrid_penalty": plan.latent["hybrid_penalty"], "nonneg": modality == "ct",
               "tv_weight": LAM_DEFAULT[setting]}
    out.append(("latent plain", "latent_inversion", {**lat, "mode": "plain"}))
    out.append(("latent hybrid", "latent_inversion", {**lat, "mode": "hybrid", **penalty}))
    out.append(("latent anchored", "latent_inversion", {**lat, "mode": "anchored", **penalty,
                                                        "anchor_weight": ANCHOR_WEIGHT[modality]}))
    if setting in DPS_SETTINGS:
        common = {"prior": plan.priors["diffusion"][modality], "samples": plan.samples, "intensity_scale": scale}
        grad = {"zeta": ZETA[modality], **DPS_GRAD, **common}
        proj = {**DPS_PROJECT, **common}
        proj_tv = {**proj, **dps_tv_params(setting)}
        if plan.dps_steps is not None:
            grad["steps"] = proj["steps"] = proj_tv["steps"] = plan.dps_steps
        out.append(("dps", "dps", grad))
        out.append(("dps project", "dps", proj))
        out.append(("dps project+tv", "dps", proj_tv))
    return out


def _prior_problem(params: dict, cache: dict) -> str | None:
    """Why a method's prior cannot be used (not shipped, wrong kind or size), or None."""
    from ..errors import GenreconError
    from ..priors.checkpoint import read_checkpoint

    prior = params.get("prior")
    if prior is None:
        return None
    if prior not in cache:
        try:
            read_checkpoint(prior)
            cache[prior] = None
        except GenreconError as exc:
            cache[prior] = str(exc)
    return cache[prior]


def _images(plan: Plan, opts: Options, modality: str) -> list[tuple[str, torch.Tensor]]:
    from .images import bundled_slices, held_out

    if plan.source == "prepared":
        return held_out(opts.data_dir, modality, plan.slices)
    return bundled_slices("brain-mri" if modality == "mri" else "head-ct", 128, mode="resize",
                          indices=list(plan.bundled_indices))


# -- the suite ----------------------------------------------------------------------------------------------
def run(opts: Options, log: Log, plan: Plan | None = None) -> dict[str, Any]:
    plan = plan or default_plan(opts)
    device = opts.device
    doc = new_document(NAME, TITLE, opts, {
        "settings": {s: SETTINGS[s][1] for s in plan.settings}, "slices": plan.slices, "source": plan.source,
        "data_dir": str(opts.data_dir), "samples": plan.samples, "dps_settings": list(DPS_SETTINGS),
        "fista_lam": {s: LAM_DEFAULT[s] for s in plan.settings}, "fista_iter": FISTA_ITER,
        "dps_grad": {**DPS_GRAD, "zeta": ZETA, **({"steps": plan.dps_steps} if plan.dps_steps else {})},
        "dps_project": {**DPS_PROJECT, **({"steps": plan.dps_steps} if plan.dps_steps else {})},
        "anchor_weight": ANCHOR_WEIGHT, "dps_tv_factor": DPS_TV_FACTOR, "dps_tv_schedule": DPS_TV_SCHEDULE,
        "latent": plan.latent, "priors": plan.priors, "mu_per_unit": MU_PER_UNIT})
    images = {m: _images(plan, opts, m) for m in sorted({SETTINGS[s][0] for s in plan.settings})}
    doc["settings"]["images"] = {m: [k for k, _ in v] for m, v in images.items()}
    doc["settings"]["reference_max_min"] = {m: [max(float(x.max()) for _, x in v), min(float(x.min()) for _, x in v)]
                                            for m, v in images.items()}
    doc["settings"]["methods"] = {s: [lab for lab, _, _ in methods_for(s, plan)] for s in plan.settings}
    problems: dict = {}
    runnable: dict[str, list] = {}
    for setting in plan.settings:
        methods = methods_for(setting, plan)
        for label, name, params in methods:
            why = _prior_problem(params, problems)
            if why:
                doc["records"].append({"setting": setting, "method": label, "missing": why})
        runnable[setting] = [m for m in methods if not _prior_problem(m[2], problems)]
    tasks = [(setting, j, key, image, runnable[setting]) for setting in plan.settings
             for j, (key, image) in enumerate(images[SETTINGS[setting][0]])]
    t_start = time.perf_counter()
    results: dict[tuple[str, int], list[dict]] = {}
    left = {s: len(images[SETTINGS[s][0]]) for s in plan.settings}

    def finished(setting: str, j: int, rows: list[dict]) -> None:
        results[(setting, j)] = rows
        left[setting] -= 1
        if left[setting] == 0:
            done = [r for (s, _), rs in results.items() if s == setting for r in rs]
            log(f"generative: {setting} done ({len(images[SETTINGS[setting][0]])} slice(s), "
                f"{len(runnable[setting])} methods, {time.perf_counter() - t_start:.0f} s so far): "
                + ", ".join(f"{lab} {fmt(mean_std([r['psnr'] for r in done if r['method'] == lab])[0])} dB"
                            for lab, _, _ in runnable[setting]))

    if opts.jobs > 1 and torch.device(device).type == "cpu":
        import concurrent.futures as cf
        import multiprocessing as mp

        with cf.ProcessPoolExecutor(max_workers=opts.jobs, mp_context=mp.get_context("spawn"),
                                    initializer=_worker_init) as pool:
            futures = {pool.submit(_run_slice, s, j, key, image, methods, opts.seed, device): (s, j)
                       for s, j, key, image, methods in tasks}
            for fut in cf.as_completed(futures):
                finished(*futures[fut], fut.result())
    else:
        for s, j, key, image, methods in tasks:
            finished(s, j, _run_slice(s, j, key, image, methods, opts.seed, device))
    for s, j, _, _, _ in tasks:  # records in a fixed order, however the work was scheduled
        doc["records"] += results[(s, j)]
    doc["settings"]["jobs"] = opts.jobs
    doc["tables"] = make_tables(doc)
    return doc


_WORKER_CACHE: dict = {}


def _worker_init() -> None:
    """A worker process of ``--jobs``: one torch thread (the processes share the cores)."""
    torch.set_num_threads(1)


def _run_slice(setting: str, j: int, key: str, image: torch.Tensor, methods: list, seed: int, device) -> list[dict]:
    """Every method of ``setting`` on slice ``j``: its records (priors are loaded once per process)."""
    y, op, truth, scale = simulate(setting, key, image, seed + j, device)
    rows = []
    for label, name, params in methods:
        r = run_method(name, params, y, op, truth, scale, seed + 1000 * j, device, _WORKER_CACHE)
        rows.append({"setting": setting, "method": label, "image": key, **r})
    return rows


def summarise(records: list[dict]) -> list[dict]:
    """Per (setting, method): mean ± std PSNR/SSIM, seconds, NFE, coverage, peak memory; or the missing reason."""
    out, seen = [], []
    for r in records:
        k = (r["setting"], r["method"])
        if k in seen:
            continue
        seen.append(k)
        if "missing" in r:
            out.append({"setting": k[0], "method": k[1], "missing": r["missing"]})
            continue
        rows = [x for x in records if (x["setting"], x["method"]) == k and "psnr" in x]
        p, ps = mean_std([x["psnr"] for x in rows])
        s, ss = mean_std([x["ssim"] for x in rows])
        cov = [x["coverage"] for x in rows if x.get("coverage") is not None]
        mem = [x["peak_mb"] for x in rows if x.get("peak_mb") is not None]
        out.append({"setting": k[0], "method": k[1], "n": len(rows), "psnr": p, "psnr_std": ps, "ssim": s,
                    "ssim_std": ss, "seconds": mean_std([x["seconds"] for x in rows])[0], "nfe": rows[0]["nfe"],
                    "coverage": mean_std(cov)[0] if cov else None, "peak_mb": max(mem) if mem else None})
    return out


BASELINE = "zero-filled / FBP"


def _ordered(doc: dict[str, Any]) -> list[dict]:
    """:func:`summarise` in the order of the settings and of each setting's methods."""
    s = doc["settings"]
    order = {(st, lab): (i, j) for i, st in enumerate(s["settings"]) for j, lab in enumerate(s.get("methods", {})
                                                                                         .get(st, []))}
    return sorted(summarise(doc["records"]), key=lambda r: order.get((r["setting"], r["method"]), (99, 99)))


def make_tables(doc: dict[str, Any]) -> list[dict[str, Any]]:
    from .common import data_range_note

    s = doc["settings"]
    summ = _ordered(doc)
    n = {m: len(v) for m, v in s.get("images", {}).items()}
    source = ("held-out val slices of " + s["data_dir"] if s["source"] == "prepared"
              else "bundled sample slices resized to 128x128 (smoke: not held out from anything)")
    ranges = "; ".join(f"{m.upper()}: {data_range_note(*v)}" for m, v in s.get("reference_max_min", {}).items())
    conv = metric_conventions(
        data_range="1 in image units ([0, 1]: MRI clip(I / p99.5, 0, 1), CT (HU + 1024) / 4095; CT estimates are "
                   "divided by mu_per_unit 0.15 first), the intensity range of the normalisation; " + ranges,
        magnitude=True,
        averaging=f"mean ± std over {n.get('mri', 0)} MRI / {n.get('ct', 0)} CT slice(s) ({source}); "
                  "seconds and peak memory per slice; NFE: network evaluations per sample (FISTA-TV: iterations); "
                  "2-sigma coverage: fraction of pixels with ||mean| - |truth|| <= 2 std over the posterior samples")
    rows = []
    for r in summ:
        label = AXIS.get(r["setting"], (None, r["setting"]))[1]
        if "missing" in r:
            rows.append([label, r["method"], "missing (" + r["missing"] + ")", "", "", "", "", "", ""])
            continue
        rows.append([label, r["method"], str(r["n"]), pm(r["psnr"], r["psnr_std"]), pm(r["ssim"], r["ssim_std"], ".3f"),
                     fmt(r["seconds"], ".1f"), str(r["nfe"]), fmt(r["coverage"], ".2f"), fmt(r["peak_mb"], ".0f")])
    full = table("Per setting and method", ["setting", "method", "slices", "PSNR dB", "SSIM", "s / slice", "NFE",
                                           "2-sigma coverage", "peak MiB"], rows, conventions=conv)
    def column(method: str) -> str:
        return BASELINE if method in ("zero_filled", "fbp") else method

    methods = list(dict.fromkeys(column(r["method"]) for r in summ))
    pivot = []
    for setting in s["settings"]:
        cells = []
        for m in methods:
            r = next((x for x in summ if x["setting"] == setting and column(x["method"]) == m), None)
            cells.append("missing" if r is not None and "missing" in r else
                         ("-" if r is None else pm(r["psnr"], r["psnr_std"])))
        pivot.append([AXIS.get(setting, (None, setting))[1], *cells])
    head = table("PSNR (dB), mean ± std over slices", ["setting", *methods], pivot, conventions=conv,
                 notes=["missing: see the per-setting table for the reason"])
    return [head, full]


def plot(doc: dict[str, Any], out_dir, prefix: str = NAME) -> list[dict[str, Any]]:
    """Write ``<prefix>_psnr.png`` (PSNR against acceleration / views); returns the plot entries."""
    from pathlib import Path

    from .plots import COLOURS, MARKERS, line_plot

    summ = [r for r in (_ordered(doc) if "methods" in doc.get("settings", {}) else summarise(doc["records"]))
            if "missing" not in r]
    # one colour and marker per method in both panels (the MRI and CT baselines share the first)
    slots = list(dict.fromkeys("baseline" if r["method"] in ("zero_filled", "fbp") else r["method"] for r in summ))

    def style(method: str) -> dict:
        i = slots.index("baseline" if method in ("zero_filled", "fbp") else method)
        return {"colour": COLOURS[i % len(COLOURS)], "marker": MARKERS[i % len(MARKERS)]}

    panels = []
    for modality, xlabel in (("mri", "acceleration (x)"), ("ct", "views over 180 deg")):
        series = []
        for m in dict.fromkeys(r["method"] for r in summ):
            pts = sorted((AXIS[r["setting"]][0], r["psnr"]) for r in summ
                         if r["method"] == m and SETTINGS.get(r["setting"], ("",))[0] == modality
                         and AXIS.get(r["setting"], (None,))[0] is not None)
            if pts:
                series.append({"label": m, "x": [p[0] for p in pts], "y": [p[1] for p in pts], **style(m)})
        panels.append({"title": f"{modality.upper()}: PSNR vs {'acceleration' if modality == 'mri' else 'views'}",
                       "x_label": xlabel, "y_label": "PSNR (dB)", "log_x": True, "series": series,
                       "legend": "upper right" if modality == "mri" else "lower right"})
    path = Path(out_dir) / f"{prefix}_psnr.png"
    line_plot(path, panels, title="generative: mean PSNR over slices (data_range 1)")
    return [{"file": path.name, "caption": "PSNR (mean over slices) against MRI acceleration and CT views "
                                          "(the limited-angle setting is not on these axes)"}]
