"""Benchmark of ``genrecon design`` (issue 20): designed sampling patterns against fixed ones at the same budget.

For each modality: adaptive designs (one per held-out slice, from its own measurements) and a population design
(one pattern from training slices), each slice then reconstructed with every pattern by the same methods
(``fista_tv`` and ``dps``, data-consistent variant), PSNR against the truth. Patterns reach the reconstruction as
any config gives them (``mask: {name: file}``, ``angles: {kind: list}``), through genrecon.simulate.

    python scripts/bench_design.py --modality mri --slices 4 --out runs/bench-design     # MRI 8x
    python scripts/bench_design.py --modality ct --slices 4 --out runs/bench-design      # CT 30 views
    python scripts/bench_design.py --modality mri --slices 2 --batch 1 --blocks 8,8 --no-population  # 2-D blocks

Data: genrecon's prepared datasets (``python scripts/prepare_data.py all``). MRI: ``test_subject`` (a subject no
training set holds); CT: ``val`` by default (held-out slabs of the training subjects: the CT unseen subject is a
chest scan, the shipped CT prior a head prior). Runs on one torch thread; designs resume from their folders.
Writes ``<out>/<modality>/results.json`` and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from genrecon.design import load_design_dict, run_design
from genrecon.io.writers import write_json
from genrecon.metrics import psnr
from genrecon.pipeline.plan import case_dirname
from genrecon.registry import RECONSTRUCTORS
from genrecon.schema import parse
from genrecon.seeding import derive_seed
from genrecon.simulate import ct as ct_sim
from genrecon.simulate import mri as mri_sim
from genrecon.types import Case

ROOT = Path(__file__).resolve().parents[1]

SETTINGS = {
    "mri": {
        "file": "data/prepared/brain-mri-128.h5", "split": "test_subject",
        "simulate": {"modality": "mri", "noise": {"sigma": 0.002}},
        "sampler": {"name": "dps", "params": {"prior": "pretrained:brain-mri-128-diffusion", "consistency": "project",
                                              "steps": 10, "gamma": 0.002, "cg_iter": 10, "samples": 8}},
        "design": {"budget": {"acceleration": 8}, "start": {"center_fraction": 0.04}, "batch": 2},
        "methods": {
            "fista_tv": ("fista_tv", {"tv_weight": 0.002, "n_iter": 100}),
            "dps": ("dps", {"prior": "pretrained:brain-mri-128-diffusion", "consistency": "project", "steps": 20,
                            "gamma": 0.002, "cg_iter": 10, "samples": 4}),
        },
        "data_range": 1.0,
    },
    "ct": {
        "file": "data/prepared/head-ct-128.h5", "split": "val",
        "simulate": {"modality": "ct", "geometry": "parallel", "noise": {"kind": "gaussian", "sigma": 0.02},
                     "hu_to_mu": {"kind": "linear", "mu_per_unit": 0.15}, "normalize": True},
        "sampler": {"name": "dps", "params": {"prior": "pretrained:head-ct-128-diffusion", "consistency": "project",
                                              "steps": 10, "gamma": 0.002, "cg_iter": 10, "samples": 8,
                                              "intensity_scale": 0.15}},
        "design": {"budget": {"n_views": 30}, "start": {"n_views": 6}, "batch": 4, "candidates": 180},
        "methods": {
            "fista_tv": ("fista_tv", {"tv_weight": 0.00001, "n_iter": 100, "nonneg": True}),
            "dps": ("dps", {"prior": "pretrained:head-ct-128-diffusion", "consistency": "project", "steps": 20,
                            "gamma": 0.002, "cg_iter": 10, "samples": 4, "intensity_scale": 0.15}),
        },
        "data_range": 0.15,
    },
}


def _spread(n_total: int, n: int) -> list[int]:
    """``n`` slice indices spread over ``0 .. n_total - 1`` (the middle of each of ``n`` equal parts)."""
    return [int((i + 0.5) * n_total / n) for i in range(n)]


def _n_slices(path: str, split: str) -> int:
    import h5py

    with h5py.File(ROOT / path, "r") as f:
        return int(f[f"{split}/images"].shape[0])


def design_config(mod: str, split: str, slices: list[int], mode: str, out: Path, batch: int | None = None) -> dict:
    s = SETTINGS[mod]
    design = {**s["design"], "mode": mode, "stages": 3}
    if batch is not None:
        design["batch"] = batch
    return {"version": 1, "seed": 0, "device": "cpu", "threads": 1,
            "data": {"source": str(ROOT / s["file"]), "loader": "prepared", "params": {"split": split},
                     "slices": slices, "normalize": "none"},
            "simulate": s["simulate"], "sampler": s["sampler"], "design": design, "output": {"dir": str(out)}}


def measure(mod: str, image: torch.Tensor, pattern, key: str):
    """``(y, op, truth)`` of one slice with one pattern, simulated as a run config would (seeded by the key)."""
    s = SETTINGS[mod]
    problems: list[str] = []
    sim = dict(s["simulate"])
    if mod == "mri":
        sim["mask"] = {"name": "file", "path": str(pattern)}
    else:
        sim["angles"] = {"kind": "list", "values_deg": [float(a) for a in pattern]}
    module = mri_sim if mod == "mri" else ct_sim
    cfg = parse(module.Config, sim, "simulate", problems)
    assert not problems, problems
    meas = module.simulate(Case(key, image), cfg, generator=torch.Generator().manual_seed(derive_seed(0, key)))
    return meas.y, meas.op, meas.x_true


def patterns_of(mod: str, folder: Path) -> dict:
    """``{name: mask path | angle list}`` of a design folder's pattern (and of its baselines, with ``baselines``)."""
    if mod == "mri":
        return {"pattern": folder / "mask.npy"}
    return {"pattern": np.load(folder / "angles.npy").tolist()}


#: MRI fixed patterns are also tried with a centre this many times wider than the design's start (8x: 10 columns)
WIDE_FACTOR = 2


def baselines_of(mod: str, out: Path) -> dict:
    names = ("random", "equispaced", "variable_density", "center") if mod == "mri" else ("equispaced", "random", "arc")
    if mod == "mri":
        from genrecon.design.baselines import mri_baselines
        from genrecon.design.problem import MRIColumns
        from genrecon.io.writers import write_npy

        pats = {n: out / "baselines" / f"{n}_mask.npy" for n in names}
        random_mask = np.load(pats["random"])
        w = random_mask.shape[-1]
        problem = MRIColumns((w, w), 1.0)
        budget = int(random_mask[0].sum())
        start = problem.start(0.32 / (w / budget))
        wide = WIDE_FACTOR * len(start)
        for name, cols in mri_baselines(w, problem.start(wide / w), budget, seed=0).items():
            if name not in ("center", "partial_fourier"):  # the same or not a centre-width pattern
                pats[f"{name}_c{wide}"] = write_npy(out / "baselines_wide" / f"{name}_mask.npy",
                                                           problem.pattern(cols).numpy())
        # partial Fourier: the start and the columns next to it on one side (real images: the other side is their
        # conjugate mirror), the fixed pattern that uses the same symmetry the designs can use
        half = mri_baselines(w, start, budget, seed=0)["partial_fourier"]
        pats["partial_fourier"] = write_npy(out / "baselines_wide" / "partial_fourier_mask.npy",
                                            problem.pattern(half).numpy())
        return pats
    return {n: np.load(out / "baselines" / f"{n}_angles.npy").tolist() for n in names}


def figure(mod: str, out: Path, dest: Path) -> Path:
    """One PNG: the patterns (first adaptive design, population, baselines) over the first design's std maps."""
    from PIL import Image, ImageDraw

    first = sorted((out / "adaptive" / "cases").iterdir())[0]
    stem = "mask" if mod == "mri" else "angles"
    tiles = [("adaptive", first / f"{stem}.png"), ("population", out / "population" / f"{stem}.png")]
    tiles += [(p.name.replace(f"_{stem}.png", ""), p) for p in sorted((out / "adaptive" / "baselines").glob(f"*_{stem}.png"))]
    stages = sorted(first.glob("std_round_*.png"), key=lambda p: int(p.stem.split("_")[-1]))
    tiles += [(f"std, round {p.stem.split('_')[-1]}", p) for p in stages]
    size, pad = 160, 18
    canvas = Image.new("L", (len(tiles) * (size + 4), size + pad), 0)
    draw = ImageDraw.Draw(canvas)
    for i, (label, path) in enumerate(tiles):
        canvas.paste(Image.open(path).convert("L").resize((size, size), Image.NEAREST), (i * (size + 4), pad))
        draw.text((i * (size + 4) + 2, 2), label, fill=255)
    dest.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(dest)
    return dest


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--modality", choices=["mri", "ct"], required=True)
    ap.add_argument("--slices", type=int, default=4, help="held-out slices (spread over the split)")
    ap.add_argument("--train", type=int, default=6, help="training slices for the population design")
    ap.add_argument("--split", default=None, help="held-out split (default: test_subject for MRI, val for CT)")
    ap.add_argument("--population-batch", type=int, default=None, help="batch of the population design")
    ap.add_argument("--budget", type=float, default=None, help="MRI acceleration / CT views (default 8 / 30)")
    ap.add_argument("--batch", type=int, default=None, help="batch of the adaptive designs (default 2 MRI, 4 CT)")
    ap.add_argument("--no-population", action="store_true", help="skip the population design")
    ap.add_argument("--score", choices=["marginal", "joint", "variance"], default=None, help="design.score")
    ap.add_argument("--min-gap", type=int, default=0, help="design.min_gap (coverage rule; grid steps)")
    ap.add_argument("--start", type=int, default=None, help="CT: equally spaced start views (default budget / 5)")
    ap.add_argument("--center", type=float, default=None,
                    help="MRI: the design's start, a centre fraction (default fastMRI's 0.32 / acceleration); the "
                         "fixed patterns keep theirs")
    ap.add_argument("--samples", type=int, default=None, help="posterior samples per design round (default 8)")
    ap.add_argument("--methods", default=None, help="comma-separated reconstruction methods (default all)")
    ap.add_argument("--blocks", default=None, metavar="BY,BX",
                    help="MRI: 2-D k-space blocks of BY x BX points as candidates (design.candidates: blocks); the "
                         "column design of the same settings and the 2-D fixed patterns are compared too")
    ap.add_argument("--out", default="runs/bench-design")
    ap.add_argument("--figure", default=None, help="only compose the patterns figure into this PNG from --out")
    args = ap.parse_args()
    if args.figure:
        sub = args.modality if args.budget is None else f"{args.modality}_{args.budget:g}"
        print(figure(args.modality, Path(args.out) / sub, Path(args.figure)))
        return
    torch.set_num_threads(1)
    mod, s = args.modality, SETTINGS[args.modality]
    split = args.split or s["split"]
    out = Path(args.out) / mod
    if args.budget is not None:
        key = "acceleration" if mod == "mri" else "n_views"
        value = args.budget if mod == "mri" else int(args.budget)
        s["design"] = {**s["design"], "budget": {key: value}, "start": ({"center_fraction": 0.32 / value}
                       if mod == "mri" else {"n_views": max(1, value // 5)})}
        out = Path(args.out) / f"{mod}_{args.budget:g}"
    if args.batch is not None:
        s["design"] = {**s["design"], "batch": args.batch}
        out = out.with_name(out.name + f"_batch{args.batch}")
    for flag, value, suffix in (("score", args.score, f"_{args.score}"), ("min_gap", args.min_gap or None,
                                                                         f"_gap{args.min_gap}")):
        if value is not None:
            s["design"] = {**s["design"], flag: value}
            out = out.with_name(out.name + suffix)
    if args.start is not None:
        if mod != "ct":
            ap.error("--start is for CT (MRI starts from the fastMRI centre of the budget)")
        s["design"] = {**s["design"], "start": {"n_views": args.start}}
        out = out.with_name(out.name + f"_start{args.start}")
    if args.center is not None:
        if mod != "mri":
            ap.error("--center is for MRI (CT starts from --start views)")
        s["design"] = {**s["design"], "start": {"center_fraction": args.center}}
        out = out.with_name(out.name + f"_center{args.center:g}")
    if args.samples is not None:
        s["sampler"] = {**s["sampler"], "params": {**s["sampler"]["params"], "samples": args.samples}}
        out = out.with_name(out.name + f"_samples{args.samples}")
    if args.methods:
        s["methods"] = {m: s["methods"][m] for m in args.methods.split(",")}
    column_design = None
    if args.blocks:
        if mod != "mri":
            ap.error("--blocks is for MRI")
        by, bx = (int(v) for v in args.blocks.split(","))
        column_design = dict(s["design"])
        s["design"] = {**s["design"], "candidates": "blocks", "block": [by, bx]}
        out = out.with_name(out.name + f"_blocks{by}x{bx}")
    load = os.getloadavg()
    test_idx = _spread(_n_slices(s["file"], split), args.slices)
    train_idx = _spread(_n_slices(s["file"], "train"), args.train)
    t0 = time.perf_counter()
    adaptive = run_design(load_design_dict(design_config(mod, split, test_idx, "adaptive", out / "adaptive")))
    columns = None
    if column_design is not None:  # the same settings with whole columns as candidates, for comparison
        blocks_design, s["design"] = s["design"], column_design
        columns = run_design(load_design_dict(design_config(mod, split, test_idx, "adaptive", out / "columns")))
        s["design"] = blocks_design
    t1 = time.perf_counter()
    population = None if args.no_population else run_design(load_design_dict(design_config(
        mod, "train", train_idx, "population", out / "population", args.population_batch)))
    t2 = time.perf_counter()
    print(f"designs: adaptive {t1 - t0:.0f} s, population {t2 - t1:.0f} s", file=sys.stderr, flush=True)
    methods = {label: RECONSTRUCTORS.build(name, params) for label, (name, params) in s["methods"].items()}
    if columns is None:
        base = baselines_of(mod, out / "adaptive")
    else:  # the column patterns of the same budget, and the 2-D ones (random / variable-density blocks, ...)
        base = {**baselines_of(mod, out / "columns"),
                **{p.name[:-len("_mask.npy")]: p for p in sorted((out / "adaptive" / "baselines").glob("*_mask.npy"))}}
    pop = None if population is None else patterns_of(mod, out / "population")["pattern"]
    import h5py

    rows = []
    with h5py.File(ROOT / s["file"], "r") as f:
        images = f[f"{split}/images"]
        for index, d in zip(test_idx, adaptive["designs"]):
            key = d["key"]
            pats = {"adaptive": patterns_of(mod, out / "adaptive" / "cases" / case_dirname(key))["pattern"]}
            if columns is not None:
                pats["columns"] = out / "columns" / "cases" / case_dirname(key) / "mask.npy"
            if pop is not None:
                pats["population"] = pop
            pats.update(base)
            image = torch.from_numpy(np.asarray(images[index], dtype=np.float32))[None]
            for pname, pattern in pats.items():
                y, op, truth = measure(mod, image, pattern, key)
                for label, method in methods.items():
                    g = torch.Generator().manual_seed(derive_seed(0, key, label))
                    tm = time.perf_counter()
                    x = method(y, op, generator=g)
                    rows.append({"slice": key, "pattern": pname, "method": label,
                                 "psnr": psnr(x, truth, s["data_range"]), "seconds": time.perf_counter() - tm})
                print(f"{key} {pname}: " + ", ".join(f"{r['method']} {r['psnr']:.2f}" for r in rows[-len(methods):]),
                      file=sys.stderr, flush=True)
    table = {}
    for r in rows:
        table.setdefault((r["method"], r["pattern"]), []).append(r["psnr"])
    summary = {m: {p: statistics.mean(v) for (mm, p), v in table.items() if mm == m} for m in methods}
    fixed = [p for p in base]
    verdict = {}
    for m, by in summary.items():
        best_fixed = max(fixed, key=lambda p: by[p])
        verdict[m] = {"best_fixed": best_fixed, "adaptive_gain_db": by["adaptive"] - by[best_fixed],
                      "population_gain_db": by["population"] - by[best_fixed] if "population" in by else None}
    doc = {"modality": mod, "split": split, "test_slices": test_idx, "train_slices": train_idx, "threads": 1,
           "load_at_start": load, "load_at_end": os.getloadavg(),
           "uptime": subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip(),
           "design_seconds": [d["seconds"] for d in adaptive["designs"]],
           "population_seconds": population["designs"][0]["seconds"] if population else None,
           "budget": adaptive["budget"], "n_start": adaptive["n_start"], "settings": s,
           "population_pattern": population["designs"][0]["pattern"] if population else None, "rows": rows, "mean_psnr": summary,
           "verdict": verdict}
    if columns is not None:
        two_d = [p for p in fixed if p.endswith("_blocks") or p in ("gaussian2d", "poisson_disc")]
        for m, by in summary.items():
            best_2d = max(two_d, key=lambda p: by[p])
            verdict[m].update({"best_fixed_2d": best_2d, "adaptive_minus_best_2d_db": by["adaptive"] - by[best_2d],
                               "adaptive_minus_columns_db": by["adaptive"] - by["columns"]})
        doc["column_design_seconds"] = [d["seconds"] for d in columns["designs"]]
    write_json(out / "results.json", doc)
    pnames = ["adaptive", *(["columns"] if columns else []), *(["population"] if population else []), *fixed]
    print(f"| method | {' | '.join(pnames)} | best fixed | adaptive - best fixed | population - best fixed |")
    print("|---" * (len(pnames) + 4) + "|")
    for m, by in summary.items():
        v = verdict[m]
        print(f"| {m} | " + " | ".join(f"{by[p]:.2f}" for p in pnames) +
              f" | {v['best_fixed']} | {v['adaptive_gain_db']:+.2f} | " +
              (f"{v['population_gain_db']:+.2f} |" if population else "- |"))
    print(f"design seconds per slice (adaptive): {statistics.mean(doc['design_seconds']):.1f}; population "
          f"{doc['population_seconds'] or 0:.1f} s; load {load[0]:.1f} at start, {doc['load_at_end'][0]:.1f} at end")


if __name__ == "__main__":
    main()
