"""Suite ``classical``: zero-filled / FBP / FISTA-TV against BART, SigPy, ASTRA and scikit-image.

Each setting is a run config in ``benchmarks/configs/classical/<setting>.yaml``, run through the pipeline
``genrecon reconstruct`` uses (:mod:`genrecon.benchmark.suite_runs`); the peers are reconstructors there too
(:mod:`genrecon.peers`), so every method sees the same images, masks, angles, seeds, iteration budget and
metric code. A TV method's weight grid is one config entry per weight, labelled ``<method>@<weight>``; the
suite reports each method at the weight with the best mean PSNR over the images of a setting (an oracle
choice, the same for everyone). Measurements are noiseless.

- **MRI** (``mri4``, ``mri8``): the bundled brain T1 slices (MNI152 2009a, ``sample:brain-mri``), 256x256 on
  their native 1 mm grid, in [0, 1]; single-coil k-space by the centred orthonormal FFT; random Cartesian
  columns with an 8% centre at 4x and 8x, one mask per image (seeded by the pipeline from the case), shared by
  all methods. Methods: zero-filled, genrecon ``fista_tv``, BART ``pics -R T`` (ADMM), SigPy
  ``TotalVariationRecon`` (primal-dual).
- **CT** (``ct_*``, ``astra_*``): the bundled head CT slices (``(HU + 1024) / 4095``) and the modified
  Shepp-Logan phantom, 256x256, parallel beam, 363 bins of 1 pixel, 60 views over 180 degrees and 90 views
  over 90 degrees. Each projector reconstructs data simulated with itself (``ct_*``: genrecon's projector with
  genrecon ``fbp`` and ``fista_tv`` and scikit-image ``iradon``; ``astra_*``: ``simulate.projector:
  astra_linear`` with ASTRA's CPU FBP and SIRT and genrecon's ``fista_tv`` on ASTRA's projector), so no
  projector is favoured by a model mismatch.

The suite overrides only what its options say: ``--quick`` (128x128 resized, one image, 20 iterations, two
weights), ``--slices N`` (the first N images), ``--settings``, ``--seed``, ``--device``, ``--threads`` and the
output folder (``<out>/runs/classical-<setting>``: the run folders, with every reconstruction and report).
A peer that is not installed is reported ``missing (reason)``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import suite_runs
from .common import Log, Options, data_range_note, fmt, mean_std, metric_conventions, new_document, pm, table

NAME = "classical"
TITLE = "Classical reconstruction: genrecon against BART, SigPy, ASTRA and scikit-image"
CONFIG_DIR = Path("benchmarks/configs/classical")

#: setting -> (modality, dataset, setting text in the tables); in report order
SETTINGS: dict[str, tuple[str, str, str]] = {
    "mri4": ("mri", "brain T1", "4x"),
    "mri8": ("mri", "brain T1", "8x"),
    "ct_head60": ("ct", "head CT", "60 views"),
    "astra_head60": ("ct", "head CT", "60 views"),
    "ct_head_lim90": ("ct", "head CT", "90 views / 90 deg"),
    "astra_head_lim90": ("ct", "head CT", "90 views / 90 deg"),
    "ct_phantom60": ("ct", "Shepp-Logan", "60 views"),
    "astra_phantom60": ("ct", "Shepp-Logan", "60 views"),
    "ct_phantom_lim90": ("ct", "Shepp-Logan", "90 views / 90 deg"),
    "astra_phantom_lim90": ("ct", "Shepp-Logan", "90 views / 90 deg"),
}
#: registry name -> the peer it needs (None: genrecon's own)
PEER_OF = {"bart_pics_tv": "bart", "sigpy_tv": "sigpy", "astra_fbp": "astra", "astra_sirt": "astra",
           "skimage_iradon": "skimage"}


@dataclass
class Plan:
    settings: tuple[str, ...] = tuple(SETTINGS)
    size: int | None = None             # None: the configs' 256 (crop_pad)
    resize: str | None = None           # with size: crop_pad keeps the 1 mm grid, resize resamples
    slices: tuple[int, ...] | None = None   # None: the configs' (every bundled slice); the phantom is one image
    n_iter: int | None = None           # None: the configs' 100
    weights: dict[str, tuple[float, ...]] | None = None   # modality -> grid weights to keep (None: all)
    peers: bool = True                  # False: genrecon's own methods only


def default_plan(opts: Options) -> Plan:
    from .images import mid_axial_index

    settings = tuple(s for s in opts.settings if s in SETTINGS) if opts.settings else tuple(SETTINGS)
    if opts.quick:
        return Plan(settings=settings, size=128, resize="resize", slices=(mid_axial_index(),), n_iter=20,
                    weights={"mri": (3e-3, 1e-2), "ct": (1e-4, 3e-4)})
    if opts.slices is not None:
        return Plan(settings=settings, slices=tuple(range(max(1, min(opts.slices, 5)))))
    return Plan(settings=settings)


def check_settings(names: list[str]) -> list[str]:
    """Problems with ``--settings`` names (unknown ones, with a suggestion)."""
    from ..registry import did_you_mean

    return [f"classical: unknown setting '{n}'{did_you_mean(n, SETTINGS)}; choose from {', '.join(SETTINGS)}"
            for n in names if n not in SETTINGS]


def setting_config(setting: str) -> dict:
    """The config of ``setting`` as written (a fresh copy to modify)."""
    return suite_runs.setting_config(CONFIG_DIR, setting, NAME)


def preflight(opts: Options, plan: Plan | None = None) -> list[str]:
    """Problems that stop the suite before it starts (its configs missing)."""
    from ..errors import GenreconError

    problems = []
    for s in (plan or default_plan(opts)).settings:
        try:
            setting_config(s)
        except GenreconError as exc:
            problems.append(f"classical: {exc}")
    return problems


def weight_of(params: dict) -> float | None:
    """The TV weight of a grid entry (``tv_weight`` of genrecon's methods, a peer's own ``lam``)."""
    value = params.get("tv_weight", params.get("lam"))
    return None if value is None else float(value)


def display(name: str, params: dict, projector: str) -> tuple[str, str]:
    """``(method name in the tables, note)`` of a reconstructor entry."""
    from ..peers.status import label

    astra = label("astra")
    return {
        "zero_filled": ("zero-filled", ""),
        "fbp": ("genrecon fbp (ramp)", ""),
        "fista_tv": ((f"{astra} + TV (genrecon fista_tv on {astra} 'linear')", "the same FISTA-TV and weights as "
                      "genrecon's, on ASTRA's CPU projector") if projector != "genrecon" else
                     ("genrecon fista_tv", "distance-driven projector, non-negative") if params.get("nonneg") else
                     ("genrecon fista_tv", "FISTA, isotropic TV (warm-started dual prox, 5 inner iterations)")),
        "bart_pics_tv": (f"{label('bart')} pics -R T", "ADMM; seconds: the whole bart process, file I/O included"),
        "sigpy_tv": (f"{label('sigpy')} TotalVariationRecon", "primal-dual hybrid gradient"),
        "astra_fbp": (f"{astra} FBP (CPU, ram-lak)", "'linear' (Joseph) projector"),
        "astra_sirt": (f"{astra} SIRT (CPU, {params.get('n_iter', 100)} it, >= 0)", "'linear' (Joseph) projector"),
        "skimage_iradon": (f"{label('skimage')} iradon (ramp)", "on genrecon's line integrals, moved to its centres"),
    }.get(name, (name, ""))


# -- the config a setting runs -------------------------------------------------------------------------------
def run_config(setting: str, plan: Plan, opts: Options, out: Path) -> tuple[dict, dict[str, tuple], list[dict]]:
    """``setting``'s config with the suite's overrides, ``label -> (method, weight, note)`` of the entries it
    runs, and the records of the methods whose peer is missing."""
    import torch

    from ..peers.status import available, missing_reason

    raw = setting_config(setting)
    modality, dataset, text = SETTINGS[setting]
    data = raw["data"]
    phantom = str(data["source"]).startswith("phantom:")
    if plan.size is not None:
        if phantom:
            data.setdefault("params", {})["size"] = plan.size
        else:
            data.update(size=plan.size, resize=plan.resize or "crop_pad")
    if plan.slices is not None and not phantom:
        data["slices"] = list(plan.slices)
    raw.update(seed=opts.seed, device=opts.device)
    raw["threads"] = opts.threads if opts.threads is not None else torch.get_num_threads()
    raw["output"] = {"dir": str(out), "save": ["npy"], "resume": False}
    projector = raw["simulate"].get("projector", "genrecon")
    methods, missing, kept = {}, [], []
    for rc in raw["reconstructors"]:
        params = rc.setdefault("params", {})
        if plan.n_iter is not None and "n_iter" in params:
            params["n_iter"] = plan.n_iter
        weight = weight_of(params)
        if plan.weights is not None and weight is not None and not any(
                abs(weight - w) <= 1e-12 * max(1.0, w) for w in plan.weights[modality]):
            continue
        shown, note = display(rc["name"], params, projector)
        peer = PEER_OF.get(rc["name"])
        if peer is not None and not plan.peers:
            continue
        if projector != "genrecon" and not available("astra"):
            peer = "astra"
        if peer is not None and not available(peer):
            if shown not in {m["method"] for m in missing}:
                missing.append({"modality": modality, "setting": f"{dataset}, {text}", "method": shown,
                                "missing": missing_reason(peer)})
            continue
        methods[rc.get("label") or rc["name"]] = (shown, weight, note)
        kept.append(rc)
    raw["reconstructors"] = kept
    return raw, methods, missing


def records_of(setting: str, report: dict, methods: dict[str, tuple]) -> list[dict]:
    """The suite's per-image records from a run's report rows."""
    modality, dataset, text = SETTINGS[setting]
    out = []
    for row in report["rows"]:
        shown, weight, note = methods[row["method"]]
        base = {"modality": modality, "setting": f"{dataset}, {text}", "method": shown, "image": row["case"],
                "lam": weight, "note": note}
        if row.get("status", "ok") != "ok":
            out.append({**base, "failed": row.get("reason", "failed")})
        else:
            out.append({**base, "psnr": row["psnr"], "ssim": row["ssim"], "seconds": row["seconds"]})
    return out


def _deepinverse_rows(doc: dict) -> None:
    """DeepInverse: not a peer of this suite yet; a row per setting says so (with why, when not installed)."""
    from ..peers.status import available, missing_reason

    reason = missing_reason("deepinv") if not available("deepinv") else "not wired into this suite yet"
    seen = []
    for r in list(doc["records"]):
        key = (r["modality"], r["setting"])
        if key not in seen:
            seen.append(key)
    for modality, setting in seen:
        name = "DeepInverse FISTA + TV" if modality == "mri" else "DeepInverse Tomography + TV"
        doc["records"].append({"modality": modality, "setting": setting, "method": name, "missing": reason})


def run(opts: Options, log: Log, plan: Plan | None = None) -> dict[str, Any]:
    plan = plan or default_plan(opts)
    doc = new_document(NAME, TITLE, opts, {"settings": list(plan.settings), "configs": {}, "noise": "none",
                                           "peers": plan.peers, "datasets": {}, "mri_lams": [], "ct_lams": [],
                                           "n_iter": None})
    s = doc["settings"]
    t_start = time.perf_counter()
    for setting in plan.settings:
        out = Path(opts.out) / "runs" / f"{NAME}-{setting}"
        raw, methods, missing = run_config(setting, plan, opts, out)
        modality, dataset, text = SETTINGS[setting]
        s["configs"][setting] = raw
        doc["records"] += missing
        for _, weight, _ in methods.values():
            if weight is not None and weight not in s[f"{modality}_lams"]:
                s[f"{modality}_lams"] = sorted([*s[f"{modality}_lams"], weight])
        s["n_iter"] = s["n_iter"] or next((rc["params"]["n_iter"] for rc in raw["reconstructors"]
                                           if "n_iter" in rc["params"]), None)
        if not methods:
            continue
        report, _ = suite_runs.run_setting(raw, opts, out)
        records = records_of(setting, report, methods)
        doc["records"] += records
        keys, hi, lo = suite_runs.references(out, float(raw["evaluate"]["data_range"]))
        old = s["datasets"].get(dataset, {"images": keys, "max": hi, "min": lo})
        s["datasets"][dataset] = {"images": old["images"], "max": max(old["max"], hi), "min": min(old["min"], lo)}
        best = {m: _best(doc["records"], modality, f"{dataset}, {text}", m) for m in dict.fromkeys(
            r["method"] for r in records)}
        log(f"classical: {setting} ({len(keys)} image(s), {time.perf_counter() - t_start:.0f} s so far): "
            + ", ".join(f"{m} {fmt(p)} dB" + (f" @ {w:g}" if w is not None else "") for m, (p, w) in best.items()))
    _deepinverse_rows(doc)
    doc["tables"] = make_tables(doc)
    return doc


# -- tables ------------------------------------------------------------------------------------------------
def _best(records, modality, setting, label) -> tuple[float, float | None]:
    """``(mean PSNR, weight)`` of the best weight of a method in a setting."""
    by_lam: dict = {}
    for r in records:
        if r["modality"] == modality and r["setting"] == setting and r["method"] == label and "psnr" in r:
            by_lam.setdefault(r["lam"], []).append(r["psnr"])
    scored = [(mean_std(v)[0], lam) for lam, v in by_lam.items()]
    return max(scored, key=lambda t: (t[0], -1 if t[1] is None else 0)) if scored else (float("nan"), None)


def summary(records: list[dict[str, Any]], modality: str) -> list[dict[str, Any]]:
    """Per (setting, method): the best weight's mean ± std PSNR/SSIM and seconds, or the missing reason."""
    out, seen = [], []
    for r in records:
        if r["modality"] != modality or (r["setting"], r["method"]) in seen:
            continue
        seen.append((r["setting"], r["method"]))
        if "missing" in r:
            out.append({"setting": r["setting"], "method": r["method"], "missing": r["missing"]})
            continue
        _, lam = _best(records, modality, r["setting"], r["method"])
        rows = [x for x in records if x["modality"] == modality and x["setting"] == r["setting"]
                and x["method"] == r["method"] and x.get("lam") == lam and "psnr" in x]
        failed = [x for x in records if x["modality"] == modality and x["setting"] == r["setting"]
                  and x["method"] == r["method"] and "failed" in x]
        if not rows:
            out.append({"setting": r["setting"], "method": r["method"],
                        "missing": f"failed ({failed[0]['failed'] if failed else 'no result'})"})
            continue
        p, ps = mean_std([x["psnr"] for x in rows])
        s, ss = mean_std([x["ssim"] for x in rows])
        out.append({"setting": r["setting"], "method": r["method"], "lam": lam, "n": len(rows), "psnr": p,
                    "psnr_std": ps, "ssim": s, "ssim_std": ss, "seconds": mean_std([x["seconds"] for x in rows])[0],
                    "note": r.get("note", "")})
    return out


def _order(records: list[dict], modality: str) -> list[dict]:
    """Records sorted by setting in report order (``SETTINGS``), keeping each setting's method order."""
    texts = list(dict.fromkeys(f"{d}, {t}" for m, d, t in SETTINGS.values() if m == modality))
    return sorted((r for r in records if r["modality"] == modality),
                  key=lambda r: texts.index(r["setting"]) if r["setting"] in texts else len(texts))


def make_tables(doc: dict[str, Any]) -> list[dict[str, Any]]:
    s = doc["settings"]
    tables = []
    for modality, title in (("mri", "MRI (bundled brain T1 slices, single coil, noiseless)"),
                            ("ct", "CT (bundled head CT slices and Shepp-Logan, parallel beam, noiseless)")):
        rows = []
        for r in summary(_order(doc["records"], modality), modality):
            if "missing" in r:
                rows.append([r["setting"], r["method"], r["missing"], "", "", "", ""])
                continue
            lam = "-" if r["lam"] is None else f"{r['lam']:g}"
            rows.append([r["setting"], r["method"], pm(r["psnr"], r["psnr_std"]), pm(r["ssim"], r["ssim_std"], ".3f"),
                         fmt(r["seconds"], ".2f"), lam, r.get("note", "")])
        if not rows:
            continue
        datasets = {name: d for name, d in s.get("datasets", {}).items()
                    if any(r["setting"].startswith(name + ",") for r in doc["records"] if r["modality"] == modality)}
        ranges = "; ".join(f"{name}: {data_range_note(d['max'], d['min'])}" for name, d in datasets.items())
        images = "; ".join(f"{name}: {', '.join(d['images'])}" for name, d in datasets.items())
        conv = metric_conventions(
            data_range="1 (images in [0, 1]: brain clip(I / p99.5, 0, 1); CT (HU + 1024) / 4095, phantom [0, 1]); "
                       + ranges,
            magnitude=modality == "mri",
            averaging=f"mean ± std over the images of each dataset ({images}) at each method's best weight "
                      f"(the best mean PSNR of its grid: {s[modality + '_lams']}; BART's and SigPy's weights on their "
                      f"own objective scales); {s['n_iter']} iterations for every iterative method; seconds: the "
                      f"pipeline's time per image and method, one run each (a first call pays one-off set-up)")
        tables.append(table(title, ["setting", "method", "PSNR dB", "SSIM", "s / image", "weight", "notes"], rows,
                            conventions=conv))
    return tables
