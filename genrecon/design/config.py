"""The design config: one YAML file, validated in full (with the run config's checks) before any work starts.

YAML (MRI; CT replaces ``budget``/``start`` by ``n_views`` and takes ``candidates`` as a number of angles;
MRI takes ``candidates: blocks`` with ``block: [by, bx]`` for 2-D k-space point sets, :mod:`.blocks`)::

    version: 1
    seed: 0
    threads: 1
    data: {source: data/prepared/brain-mri-128.h5, loader: prepared, params: {split: test_subject},
           slices: "10:12", normalize: none}
    simulate: {modality: mri, noise: {sigma: 0.01}}       # the run config's section, without mask / angles
    sampler: {name: dps, params: {prior: "pretrained:brain-mri-128-diffusion", consistency: project,
                                   steps: 10, samples: 8}}
    design:
      mode: adaptive              # adaptive: one design per slice; population: one design for all slices
      budget: {acceleration: 8}   # CT: {n_views: 30}
      start: {center_fraction: 0.04}   # CT: {n_views: 6}
      batch: 2                    # candidates added per sampling round
    output: {dir: runs/design-mri-8x}

``data``, ``simulate`` and ``sampler`` are checked by the run config's validation (:func:`genrecon.config.
load_config_dict`, with the budget's mask or angles filled in), so every problem comes at once, in the same words.

Example:
    >>> cfg = load_design_dict({"data": {"source": "phantom:shepp-logan", "size": 16},
    ...     "simulate": {"modality": "mri", "noise": {"sigma": 0.05}},
    ...     "sampler": {"name": "latent_inversion", "params": {"prior": "x.pt", "samples": 4}},
    ...     "design": {"budget": {"acceleration": 4}}, "output": {"dir": "runs/d"}}, build=False)
    >>> cfg.design.budget.acceleration, cfg.modality
    (4.0, 'mri')
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ..config import DataConfig, RunConfig, load_config_dict, to_dict
from ..errors import ConfigError
from ..schema import parse
from ..yamlio import apply_override, read_yaml

#: the most posterior samples a sampler hands back as ``info["samples"]``
MAX_SAMPLES = 16


@dataclass(frozen=True)
class BudgetConfig:
    """How much is measured in the end: MRI ``acceleration`` (columns = round(W / acceleration)), CT ``n_views``."""

    acceleration: float | None = field(default=None, metadata={"gt": 1, "doc": "MRI: W / (sampled columns)"})
    n_views: int | None = field(default=None, metadata={"ge": 2, "doc": "CT: number of views"})


@dataclass(frozen=True)
class StartConfig:
    """The first measurement, before any design round."""

    center_fraction: float | None = field(
        default=None, metadata={"gt": 0, "lt": 1, "doc": "MRI: fully sampled centre columns (default 0.32 / "
                                                         "acceleration, fastMRI's pairs)"})
    n_views: int | None = field(default=None, metadata={"ge": 1, "doc": "CT: equally spaced views (default "
                                                                         "budget / 5)"})


@dataclass(frozen=True)
class DesignSection:
    """The design loop."""

    budget: BudgetConfig = field(metadata={"doc": "the final amount of data"})
    mode: Literal["adaptive", "population"] = field(
        default="adaptive", metadata={"doc": "adaptive: a design per slice, from its own measurements; population: "
                                             "one design for all slices (the mean information gain)"})
    start: StartConfig = field(default_factory=StartConfig, metadata={"doc": "the first measurement"})
    batch: int = field(default=1, metadata={"ge": 1, "doc": "candidates added per sampling round (1 measured best; "
                                                         "larger batches are faster)"})
    score: Literal["marginal", "joint", "variance"] = field(
        default="marginal", metadata={"doc": "marginal: sum over a candidate's values of 1/2 log(1 + var/sigma^2); "
                                             "joint: 1/2 log det(I + Cov/sigma^2) of its values; variance: the "
                                             "expected reduction of the posterior's total image variance"})
    diversity: Literal["condition", "none"] = field(
        default="condition", metadata={"doc": "within a batch: condition (each choice updates the samples' "
                                              "Gaussian posterior) or none (the batch best by first scores)"})
    min_gap: int = field(
        default=0, metadata={"ge": 0, "doc": "coverage rule: each choice at least this many grid steps (CT: angle "
                                            "steps, on the circle; MRI: columns) from every measured or chosen "
                                            "candidate while any is left (0: off)"})
    candidates: int | Literal["columns", "blocks"] | None = field(
        default=None, metadata={"doc": "CT: angles on the candidate grid over 180 deg (default 180); MRI: columns "
                                       "(default) or blocks (2-D k-space point sets, design.block)"})
    block: tuple[int, ...] | None = field(
        default=None, metadata={"doc": "MRI candidates: blocks: [by, bx] points per block, tiling the k-space "
                                       "grid (default [8, 8])"})
    stages: int = field(default=3, metadata={"ge": 0, "doc": "rounds whose std maps are saved as PNG"})
    baselines: bool = field(default=True, metadata={"doc": "also write the fixed patterns of the same budget"})


@dataclass(frozen=True)
class DesignOutput:
    dir: str = field(metadata={"doc": "output folder (created); resumed when it holds this design's state"})


@dataclass(frozen=True)
class DesignConfig:
    """A whole design run."""

    data: DataConfig
    simulate: dict[str, Any]
    sampler: dict[str, Any] = field(metadata={"doc": "{name, params}: a reconstructor giving posterior samples"})
    design: DesignSection
    output: DesignOutput
    version: int = 1
    seed: int = field(default=0, metadata={"ge": 0})
    device: str = "auto"
    threads: int | Literal["auto"] | None = field(default="auto", metadata={"ge": 1})

    @property
    def modality(self) -> str:
        return str(self.simulate.get("modality"))

    @property
    def run(self) -> RunConfig:
        """The run config validation built (data, simulate with the budget's pattern, the sampler)."""
        return getattr(self, "_run")


def load_design(path: str | Path, overrides: list[str] | None = None, *, build: bool = True) -> DesignConfig:
    """Read, override and validate a design config file; see :func:`load_design_dict`."""
    data = read_yaml(path)
    for item in overrides or []:
        apply_override(data, item)
    return load_design_dict(data, build=build)


def _budget_problems(modality: str, d: DesignSection) -> list[str]:
    out = []
    b, s = d.budget, d.start
    if modality == "mri":
        if b.acceleration is None:
            out.append("design.budget: MRI needs acceleration (e.g. 8)")
        for name, value in (("budget.n_views", b.n_views), ("start.n_views", s.n_views)):
            if value is not None:
                out.append(f"design.{name}: only for CT")
        if isinstance(d.candidates, int):
            out.append("design.candidates: a number of angles is only for CT; MRI takes columns or blocks")
        if d.block is not None:
            if d.candidates != "blocks":
                out.append("design.block: only with design.candidates: blocks")
            if len(d.block) != 2 or min(d.block) < 1:
                out.append(f"design.block: expected [by, bx], two positive integers, got {list(d.block)}")
        if b.acceleration and s.center_fraction and s.center_fraction * b.acceleration >= 1:
            out.append(f"design.start.center_fraction: the centre ({s.center_fraction}) must hold less than "
                       f"1/acceleration of the columns ({1 / b.acceleration:.4g})")
    elif modality == "ct":
        if b.n_views is None:
            out.append("design.budget: CT needs n_views (e.g. 30)")
        for name, value in (("budget.acceleration", b.acceleration), ("start.center_fraction", s.center_fraction)):
            if value is not None:
                out.append(f"design.{name}: only for MRI")
        if isinstance(d.candidates, str) or d.block is not None:
            out.append("design.candidates: columns / blocks (and design.block) are only for MRI; CT takes a "
                       "number of angles")
        n_cand = d.candidates if isinstance(d.candidates, int) else 180
        if n_cand < 2:
            out.append(f"design.candidates: at least 2 angles, got {n_cand}")
        if b.n_views is not None and b.n_views > n_cand:
            out.append(f"design.budget.n_views: {b.n_views} views from a grid of {n_cand} candidates; raise "
                       "design.candidates")
        if b.n_views is not None and s.n_views is not None and s.n_views >= b.n_views:
            out.append(f"design.start.n_views: must be below the budget ({b.n_views})")
    return out


def _simulate_problems(sim: dict) -> list[str]:
    out = []
    modality = sim.get("modality")
    if modality == "mri":
        if "mask" in sim:
            out.append("simulate.mask: the design chooses the mask; remove it (design.budget sets the amount)")
        if sim.get("coils", 1) != 1:
            out.append("simulate.coils: the design is single-coil for now; set coils: 1")
        noise = sim.get("noise") or {}
        if not isinstance(noise, dict) or not noise.get("sigma") or "snr_db" in noise:
            out.append("simulate.noise: the information gain is relative to the noise: give sigma > 0 "
                       "(e.g. {sigma: 0.01})")
        if sim.get("complex_phase", "none") != "none":
            out.append("simulate.complex_phase: the samplers' samples are magnitudes; use none")
        if sim.get("measurement", "auto") == "measured":
            out.append("simulate.measurement: the design simulates its measurements; use simulated")
    elif modality == "ct":
        if "angles" in sim:
            out.append("simulate.angles: the design chooses the angles; remove them (design.budget sets n_views)")
        noise = sim.get("noise") or {}
        if not isinstance(noise, dict) or noise.get("kind") != "gaussian":
            out.append("simulate.noise: the design needs Gaussian noise on the line integrals: "
                       "{kind: gaussian, sigma: 0.01}")
        if sim.get("sinogram") is not None:
            out.append("simulate.sinogram: the design simulates its measurements; remove it")
    return out


def load_design_dict(data: dict, *, build: bool = True, check_files: bool = True) -> DesignConfig:
    """Validate a design config given as a dict; every problem at once in one :class:`ConfigError`.

    With ``build`` the sampler is instantiated (its prior loaded) once, here.
    """
    problems: list[str] = []
    if not isinstance(data, dict):
        raise ConfigError(f"a design config is a mapping, got {type(data).__name__}")
    cfg = parse(DesignConfig, data, "", problems)
    if cfg is None or problems:
        raise ConfigError(problems or ["invalid design config"])
    sim = dict(cfg.simulate)
    modality = sim.get("modality")
    if modality not in ("mri", "ct"):
        raise ConfigError(f"simulate.modality: expected 'mri' or 'ct', got {modality!r}")
    problems += _simulate_problems(sim) + _budget_problems(modality, cfg.design)
    samples = dict(cfg.sampler.get("params") or {}).get("samples", 0)
    if not isinstance(samples, int) or not 2 <= samples <= MAX_SAMPLES:  # checked before the sampler is built
        problems.append(f"sampler.params.samples: the design scores candidates from posterior samples: set "
                        f"2 <= samples <= {MAX_SAMPLES} (e.g. 8), got {samples!r}")
    if problems:
        raise ConfigError(problems)
    if modality == "mri":  # a stand-in pattern of the budget: the run config's checks need one
        sim["mask"] = {"name": "random", "acceleration": cfg.design.budget.acceleration}
    else:
        sim["angles"] = {"kind": "sparse", "n_views": cfg.design.budget.n_views}
    run_dict = {"version": cfg.version, "seed": cfg.seed, "device": cfg.device, "threads": cfg.threads,
                "data": to_dict(cfg.data), "simulate": sim,
                "reconstructors": [{**copy.deepcopy(dict(cfg.sampler)), "label": "sampler"}],
                "output": {"dir": cfg.output.dir, "save": ["npy"]}}
    try:
        run = load_config_dict(run_dict, build=build, check_files=check_files)
    except ConfigError as exc:
        raise ConfigError([p.replace("reconstructors.0", "sampler") for p in exc.problems]) from None
    object.__setattr__(cfg, "_run", run)
    return cfg


def design_dict(cfg: DesignConfig) -> dict:
    """The resolved config as plain data (written to the output folder, hashed for resuming)."""
    return to_dict(cfg)
