"""Suite ``generative``: FISTA-TV against latent inversion (plain, hybrid, anchored) and DPS (gradient, projected).

Each setting is a run config in ``benchmarks/configs/generative/<setting>.yaml`` (MRI single coil at 4x, 8x
and 16x; CT parallel beam with 60, 30 and 15 views and 90 views over 90 degrees), run through the pipeline
``genrecon reconstruct`` uses (:func:`genrecon.pipeline.execute.run`, then :func:`genrecon.report.evaluate_run`
for the metrics): the tuned parameters live in those files, with where they come from
(``benchmarks/configs/generative/README.md``). The suite overrides only what its options say: the data folder
(``--data``), the number of slices (``--slices N``: N evenly spaced interior ``val`` slices), ``--quick`` (1
slice, 5 DPS steps, 1 latent restart of 10 steps), ``--samples``, ``--seed``, ``--device``, ``--threads`` and the
output folder (``<out>/runs/generative-<setting>``: the run folders, with every reconstruction and report).
``--jobs N`` runs N shards of a setting in parallel processes (one torch thread each), as a SLURM array would.

Images: held-out (``val``) slices of ``data/prepared/{brain-mri,head-ct}-128.h5`` (never used to train the
shipped priors; ``python scripts/prepare_data.py all`` builds them), in [0, 1]. Seeds derive from (seed, case,
method) as in every run. A method whose prior is not available is reported missing with the reason; one that
returns NaN/Inf is reported failed (the pipeline's record).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import suite_runs
from .common import Log, Options, fmt, mean_std, new_document
from .suite_runs import prior_problem, references, run_setting
from .generative_tables import AXIS, make_tables, plot, stem, summarise  # noqa: F401  (the suite's tables, plot, file)

NAME = "generative"
TITLE = "Generative reconstruction: FISTA-TV, latent inversion and DPS on held-out slices"

#: the settings, in report order: one config file each
SETTINGS = ("mri4", "mri8", "mri16", "ct60", "ct30", "ct15", "ct_lim90")
#: where the settings' configs live, relative to the working folder or to the source checkout
CONFIG_DIR = Path("benchmarks/configs/generative")
#: --quick: what the latent_inversion and dps methods run (checks the code, not the methods)
QUICK_LATENT = {"restarts": 1, "steps": 10}
QUICK_DPS_STEPS = 5


def config_path(setting: str) -> Path:
    """The run config of ``setting`` (:func:`genrecon.benchmark.suite_runs.config_path`)."""
    return suite_runs.config_path(CONFIG_DIR, setting)


def setting_config(setting: str) -> dict:
    """The config of ``setting`` as written (a fresh copy to modify)."""
    return suite_runs.setting_config(CONFIG_DIR, setting, NAME)


def modality(setting: str) -> str:
    return str(setting_config(setting)["simulate"]["modality"])


def method_params(setting: str) -> dict[str, tuple[str, dict]]:
    """``label -> (registry name, params)`` of the methods ``setting``'s config runs (tuning scripts read these)."""
    from ..config import load_config_dict

    cfg = load_config_dict(setting_config(setting), check_files=False, build=False)
    return {r.label: (r.name, dict(r.params)) for r in cfg.reconstructors}


@dataclass
class Plan:
    settings: tuple[str, ...] = SETTINGS
    slices: int | None = None         # None: the config's slices; N: N evenly spaced interior val slices
    source: str = "prepared"          # "prepared": the configs' held-out slices; "bundled": the bundled samples
    bundled_indices: tuple[int, ...] = (2,)   # the bundled slices used with source "bundled"
    dps_steps: int | None = None      # None: the configs'
    latent: dict[str, Any] = field(default_factory=dict)   # latent_inversion parameters to override
    samples: int | None = None        # None: the configs'


def default_plan(opts: Options) -> Plan:
    settings = tuple(s for s in opts.settings if s in SETTINGS) if opts.settings else SETTINGS
    if opts.quick:
        return Plan(settings=settings, slices=1, dps_steps=QUICK_DPS_STEPS, latent=dict(QUICK_LATENT),
                    samples=opts.samples)
    return Plan(settings=settings, slices=opts.slices, samples=opts.samples)


def check_settings(names: list[str]) -> list[str]:
    """Problems with ``--settings`` names (unknown ones, with a suggestion)."""
    from ..registry import did_you_mean

    return [f"generative: unknown setting '{n}'{did_you_mean(n, SETTINGS)}; choose from {', '.join(SETTINGS)}"
            for n in names if n not in SETTINGS]


def _source(setting: str, opts: Options) -> Path:
    """The prepared dataset ``setting`` reads, in ``--data``'s folder."""
    return Path(opts.data_dir) / Path(setting_config(setting)["data"]["source"]).name


def preflight(opts: Options, plan: Plan | None = None) -> list[str]:
    """Problems that stop the suite before it starts (missing configs or held-out data)."""
    from ..errors import GenreconError

    plan = plan or default_plan(opts)
    problems: list[str] = []
    for s in plan.settings:
        try:
            setting_config(s)
        except GenreconError as exc:
            problems.append(f"generative: {exc}")
    if problems or plan.source != "prepared":
        return problems
    need = sorted({_source(s, opts) for s in plan.settings})
    return [f"generative: {p} is missing: build the held-out datasets with 'python scripts/prepare_data.py all' "
            f"(or pass --data DIR)" for p in need if not p.is_file()]


# -- the config a setting runs -------------------------------------------------------------------------------
def run_config(setting: str, plan: Plan, opts: Options, out: Path) -> tuple[dict, list[dict]]:
    """``setting``'s config with the suite's overrides, and the missing-method records (prior not available)."""
    from ..io.prepared import PreparedLoader
    from .images import slice_indices

    raw = setting_config(setting)
    data = raw["data"]
    if plan.source == "prepared":
        data["source"] = str(_source(setting, opts))
        written_split = data.get("params", {}).get("split", "val")
        data["params"] = {**data.get("params", {}), "split": opts.split}
        if plan.slices is not None or opts.split != written_split:  # the configs list val slices
            n = PreparedLoader(**data["params"]).n_slices(data["source"])
            data["slices"] = slice_indices(n, plan.slices if plan.slices is not None else len(data["slices"]))
    else:  # the bundled samples resized to the priors' 128 (smoke: not held out from anything)
        ct = raw["simulate"]["modality"] == "ct"
        raw["data"] = {"source": "sample:head-ct" if ct else "sample:brain-mri", "slices": list(plan.bundled_indices),
                       "size": 128, "resize": "resize", "normalize": "hu_unit" if ct else "none"}
    raw.update(seed=opts.seed, device=opts.device)
    import torch

    raw["threads"] = opts.threads if opts.threads is not None else torch.get_num_threads()  # the suite's count
    raw["output"] = {"dir": str(out), "save": ["npy"], "resume": False}
    missing, kept = [], []
    for rc in raw["reconstructors"]:
        params = rc.setdefault("params", {})
        if rc["name"] == "latent_inversion":
            params.update(plan.latent)
        if rc["name"] == "dps":
            if plan.dps_steps is not None:
                params["steps"] = plan.dps_steps
            if plan.samples is not None:
                params["samples"] = plan.samples
        why = prior_problem(params.get("prior"))
        if why:
            missing.append({"setting": setting, "method": rc.get("label") or rc["name"], "missing": why})
        else:
            kept.append(rc)
    raw["reconstructors"] = kept
    return raw, missing


def records_of(setting: str, report: dict, peaks: dict) -> list[dict]:
    """The suite's per-slice records from a run's report rows (metrics from :func:`~genrecon.report.evaluate_run`)."""
    out = []
    for row in report["rows"]:
        base = {"setting": setting, "method": row["method"], "image": row["case"]}
        if row.get("status", "ok") != "ok":
            out.append({**base, "failed": row.get("reason", "failed")})
            continue
        out.append({**base, "psnr": row.get("psnr"), "ssim": row.get("ssim"), "seconds": row.get("seconds"),
                    "nfe": row.get("nfe", row.get("iterations", 0)), "coverage": row.get("coverage_2sigma"),
                    "peak_mb": row.get("peak_memory_mb", peaks.get(f"{row['case']}|{row['method']}"))})
    return out


def run(opts: Options, log: Log, plan: Plan | None = None) -> dict[str, Any]:
    plan = plan or default_plan(opts)
    doc = new_document(NAME, TITLE, opts, {"settings": list(plan.settings), "source": plan.source, "split": opts.split,
                                           "data_dir": str(opts.data_dir), "jobs": opts.jobs, "configs": {},
                                           "images": {}, "reference_max_min": {}, "methods": {}})
    s = doc["settings"]
    t_start = time.perf_counter()
    for setting in plan.settings:
        out = Path(opts.out) / "runs" / f"{NAME}-{setting}"
        raw, missing = run_config(setting, plan, opts, out)
        s["configs"][setting] = raw
        s["methods"][setting] = [r.get("label") or r["name"] for r in setting_config(setting)["reconstructors"]]
        doc["records"] += missing
        report, peaks = run_setting(raw, opts, out)
        records = records_of(setting, report, peaks)
        doc["records"] += records
        keys, hi, lo = references(out, float(raw["evaluate"]["data_range"]))
        m = modality(setting)
        s["images"].setdefault(m, keys)
        old = s["reference_max_min"].get(m, [hi, lo])
        s["reference_max_min"][m] = [max(old[0], hi), min(old[1], lo)]
        labels = list(dict.fromkeys(r["method"] for r in records))
        log(f"generative: {setting} done ({len(keys)} slice(s), {len(labels)} methods, "
            f"{time.perf_counter() - t_start:.0f} s so far): "
            + ", ".join(f"{lab} {fmt(mean_std([r['psnr'] for r in records if r['method'] == lab and 'psnr' in r])[0])} dB"
                        for lab in labels))
    doc["tables"] = make_tables(doc)
    return doc


def merge(docs: list[dict[str, Any]]) -> dict[str, Any]:
    """One generative document from runs of disjoint settings on the same split (e.g. the CT settings on one core
    while a prior trained on the other, then the MRI settings): records, configs and images in the suite's setting
    order, tables rebuilt; ``merged`` keeps each run's settings, machine (commit, date, load) and seconds, and
    RESULTS.md lists them. Raises ``ValueError`` for runs of another suite, split, source or quick mode, or a
    setting in two runs (one setting's numbers are never mixed from two runs)."""
    if not docs:
        raise ValueError("merge: no documents")
    first = docs[0]["settings"]
    for d in docs:
        s = d["settings"]
        if d.get("suite") != NAME or d.get("quick") or s.get("split", "val") != first.get("split", "val") \
                or s.get("source") != first.get("source"):
            raise ValueError("merge: the runs differ in suite, quick mode, split or source")
    names = [n for d in docs for n in d["settings"]["settings"]]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ValueError(f"merge: setting(s) {', '.join(twice)} in more than one run")
    order = [n for n in SETTINGS if n in names]
    doc = {**docs[0], "settings": {**first, "settings": order}, "records": [], "plots": [],
           "seconds": sum(d.get("seconds", 0.0) for d in docs),
           "merged": [{"settings": d["settings"]["settings"], "machine": d.get("machine", {}),
                       "seconds": d.get("seconds", 0.0)} for d in docs]}
    s = doc["settings"]
    for key in ("configs", "methods"):
        s[key] = {n: next(d["settings"][key][n] for d in docs if n in d["settings"]["settings"]) for n in order}
    s["images"], s["reference_max_min"] = {}, {}
    for d in docs:
        for m, keys in d["settings"].get("images", {}).items():
            s["images"].setdefault(m, keys)
        for m, (hi, lo) in d["settings"].get("reference_max_min", {}).items():
            old = s["reference_max_min"].get(m, [hi, lo])
            s["reference_max_min"][m] = [max(old[0], hi), min(old[1], lo)]
    doc["records"] = [r for n in order for d in docs for r in d["records"] if r["setting"] == n]
    doc["tables"] = make_tables(doc)
    return doc
