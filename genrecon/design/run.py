"""``run_design(cfg)``: a whole design run into ``output.dir`` (locked, resumable, nothing half-written).

Layout of the output folder::

    design_config.yaml            the resolved config (its hash guards resuming)
    state/<case>.json             the loop's state after each round (state/population.json for a population)
    cases/<case>/mask.npy ...     adaptive: each slice's pattern, picture, std maps and design.json
    mask.npy | angles.yaml ...    population: the shared pattern (and std maps of its first slice)
                                  (MRI: a bool (H, W) mask, columns or 2-D blocks alike)
    baselines/<name>_mask.npy     fixed patterns of the same budget (random, equispaced, ...)
    report.json, report.md        the order of acquisition and the gain of each choice, per design

A rerun of the same config resumes from the states (finished designs are not redone); a folder holding a
design of other settings is refused (exit 2) unless ``overwrite``. The patterns and reports are written when
a design is complete, each file atomically; a run that fails before saving any state leaves no folder behind.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Callable

import torch
import yaml

from ..config import built_methods, config_hash
from ..errors import ConfigError
from ..io.atomic import remove_path
from ..io.writers import write_json, write_text
from ..pipeline.locking import RunLock
from ..pipeline.plan import case_dirname, case_key, load_case, make_loader, plan, resolve_threads
from ..seeding import derive_seed
from ..simulate import ct as ct_sim
from .baselines import ct_baselines, mri_baselines
from .blocks import DEFAULT_BLOCK, MRIBlocks, block_baselines
from .config import DesignConfig, design_dict
from .loop import Item, new_state, run_rounds
from .outputs import design_record, write_mask, write_pattern, write_report, write_stage
from .problem import CTViews, MRIColumns, rounds_needed, stage_rounds

Progress = Callable[..., None]
#: what a design run writes at the top of its folder (removed by ``overwrite``)
OWN = ("state", "cases", "baselines", "report.json", "report.md", "mask.npy", "mask.png", "angles.yaml",
       "angles.npy", "angles.png", "design.json", "design_config.yaml")


def _settings_hash(cfg: DesignConfig) -> str:
    d = design_dict(cfg)
    d.pop("output", None)
    if not d["design"].get("min_gap"):  # the default: designs made before the key existed still resume
        d["design"].pop("min_gap", None)
    if d["design"].get("candidates") == "columns":  # the MRI default, spelled out
        d["design"]["candidates"] = None
    if d["design"].get("block") is None:  # likewise (the key came with 2-D blocks)
        d["design"].pop("block", None)
    elif d["design"].get("candidates") == "blocks":
        d["design"]["block"] = list(d["design"]["block"])
    return config_hash(d)


def _check_folder(cfg: DesignConfig, out: Path, h: str, overwrite: bool) -> None:
    stored = out / "design_config.yaml"
    if not stored.exists():
        return
    try:
        old = yaml.safe_load(stored.read_text()) or {}
        old_hash = old.get("hash")
    except (OSError, yaml.YAMLError):
        old_hash = None
    if old_hash == h:
        return
    if not overwrite:
        raise ConfigError(f"{out} holds a design made with other settings; choose another output.dir or pass "
                          "--overwrite (deletes it)")
    for name in OWN:
        remove_path(out / name)


def build_problem(cfg: DesignConfig, image: torch.Tensor):
    """The design problem of ``cfg`` for images like ``image`` ``(1, H, W)``."""
    sim = cfg.run.simulate
    if cfg.modality == "mri":
        if cfg.design.candidates == "blocks":
            return MRIBlocks(tuple(image.shape[-2:]), float(sim.noise.sigma), tuple(cfg.design.block or DEFAULT_BLOCK))
        return MRIColumns(tuple(image.shape[-2:]), sigma=float(sim.noise.sigma))
    return CTViews(sim, int(image.shape[-1]), cfg.design.candidates or 180)


def start_and_budget(cfg: DesignConfig, problem) -> tuple[list[int], int]:
    """The start measurement (candidate indices) and the budget (candidates in the end)."""
    d = cfg.design
    if problem.modality == "mri":
        acc = d.budget.acceleration
        return problem.start(d.start.center_fraction or 0.32 / acc), problem.budget(acc)
    n = d.budget.n_views
    return problem.start(d.start.n_views or max(1, n // 5)), problem.budget(n)


def true_image(cfg: DesignConfig, case) -> torch.Tensor:
    """What the operator sees: the complex image (MRI) or the attenuation (CT), ``(1, 1, H, W)``."""
    if cfg.modality == "mri":
        return case.image.to(torch.complex64)[None]
    return ct_sim.attenuation(case, cfg.run.simulate.hu_to_mu)[None]


def _load_state(path: Path, h: str) -> dict | None:
    try:
        state = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return state if state.get("hash") == h else None


def _design(cfg, problem, sampler, items, start: list[int], budget: int, folder: Path, state_path: Path, h: str,
            progress: Progress, key: str) -> dict:
    """Run (or resume) one design from ``start`` to ``budget`` and write its pattern, stage maps and
    ``design.json`` into ``folder``."""
    state = _load_state(state_path, h) or {**new_state(start, budget), "hash": h, "std_vmax": None}
    stages = set(stage_rounds(rounds_needed(len(start), budget, cfg.design.batch), cfg.design.stages))

    def on_round(r: int, stds: list[torch.Tensor]) -> None:
        if state["std_vmax"] is None:
            state["std_vmax"] = float(stds[0].max()) or 1.0
        if r in stages:
            write_stage(folder, r, stds[0], state["std_vmax"])

    def save(s: dict) -> None:
        write_json(state_path, s)

    run_rounds(problem, items, sampler, state, seed=cfg.seed, batch=cfg.design.batch, score=cfg.design.score,
               diversity=cfg.design.diversity, min_gap=cfg.design.min_gap, save=save, on_round=on_round,
               progress=lambda event, **kw: progress(event, key=key, **kw))
    files = write_pattern(problem, folder, state["chosen"])
    stage_files = sorted((p.name for p in folder.glob("std_round_*.png")), key=lambda n: int(n[10:-4]))
    record = design_record(problem, state, key=key, files=files, stages=stage_files)
    write_json(folder / "design.json", record)
    write_json(state_path, state)
    return record


def run_design(cfg: DesignConfig, *, progress: Progress | None = None, overwrite: bool = False) -> dict:
    """Run the design of ``cfg`` (module docstring); return the report (also written as report.json/.md)."""
    progress = progress or (lambda event, **kw: None)
    if cfg.device not in ("auto", "cpu"):
        raise ConfigError(f"device: the design runs on the CPU for now; set device: cpu (got {cfg.device!r})")
    threads, why = resolve_threads(cfg.threads)
    torch.set_num_threads(threads)
    out = Path(cfg.output.dir)
    created = not out.exists()
    lock = RunLock(out)
    h = _settings_hash(cfg)
    try:
        with lock:
            _check_folder(cfg, out, h, overwrite)
            report = _run(cfg, out, h, threads, progress)
    except BaseException:
        if created and lock.acquired and not (out / "state").exists() and out.is_dir():
            shutil.rmtree(out, ignore_errors=True)
        raise
    return report


def _run(cfg: DesignConfig, out: Path, h: str, threads: int, progress: Progress) -> dict:
    run = cfg.run
    loader = make_loader(run)
    refs = plan(run, loader)
    if not refs:
        raise ConfigError(f"data.slices: the selection ({run.data.slices!r}) gives no slice to design for")
    sampler = built_methods(run)[0]
    volume_scale: dict[str, float] = {}
    cases = []
    for ref in refs:
        case = load_case(run, loader, ref, volume_scale)
        case.key = case_key(ref)
        cases.append(case)
    problem = build_problem(cfg, cases[0].image)
    items = [Item(c.key, problem.full(true_image(cfg, c), torch.Generator().manual_seed(
        derive_seed(cfg.seed, c.key, "design-noise")))) for c in cases]
    start, budget = start_and_budget(cfg, problem)
    write_text(out / "design_config.yaml", yaml.safe_dump({**design_dict(cfg), "hash": h}, sort_keys=False))
    progress("plan", cases=len(cases), mode=cfg.design.mode, out=str(out), threads=threads,
             candidates=problem.n_candidates, budget=budget)
    t0 = time.perf_counter()
    designs = []
    if cfg.design.mode == "population":
        designs.append(_design(cfg, problem, sampler, items, start, budget, out, out / "state" / "population.json",
                               h, progress, "population"))
    else:
        for item in items:
            name = case_dirname(item.key)
            designs.append(_design(cfg, problem, sampler, [item], start, budget, out / "cases" / name,
                                   out / "state" / f"{name}.json", h, progress, item.key))
    baselines = {}
    if cfg.design.baselines:
        if isinstance(problem, MRIBlocks):  # 2-D masks: the report holds their point counts
            for name, mask in block_baselines(problem, start, budget, seed=cfg.seed).items():
                write_mask(out / "baselines", mask, stem=f"{name}_")
                baselines[name] = {"points": int(mask.sum()), "file": f"baselines/{name}_mask.npy"}
        else:
            if problem.modality == "mri":
                pats = mri_baselines(problem.n_candidates, start, budget, seed=cfg.seed)
            else:
                pats = ct_baselines(problem.n_candidates, budget, seed=cfg.seed)
            for name, chosen in pats.items():
                write_pattern(problem, out / "baselines", chosen, stem=f"{name}_")
                baselines[name] = chosen if problem.modality == "mri" else problem.pattern(chosen)
    report = {"mode": cfg.design.mode, "modality": problem.modality, "budget": budget, "n_start": len(start),
              "candidates": problem.n_candidates, "noise_sigma": problem.sigma, "sampler": cfg.sampler.get("name"),
              "samples": (cfg.sampler.get("params") or {}).get("samples"), "batch": cfg.design.batch,
              "score": cfg.design.score, "diversity": cfg.design.diversity,
              "min_gap": cfg.design.min_gap, "seed": cfg.seed, "threads": threads,
              "candidate_kind": "blocks" if isinstance(problem, MRIBlocks) else ("columns" if problem.modality == "mri"
                                                                              else "views"),
              "block": list(problem.block) if isinstance(problem, MRIBlocks) else None,
              "cases": [c.key for c in cases], "seconds_this_run": time.perf_counter() - t0,
              "designs": designs, "baselines": baselines, "hash": h}
    write_report(out, report)
    progress("done", out=str(out), designs=len(designs))
    return report
