"""The parameters of ``dps`` (both variants): one frozen dataclass, checked by :mod:`genrecon.schema`."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Literal

from torch import nn

from ..base import Renamed
from ..grid import GridParams
from ..safeguard import SafeguardParams


@dataclass(frozen=True)
class DPSParams(GridParams, SafeguardParams):
    """The YAML ``params`` of ``dps``; defaults are tuned on training slices (benchmarks/dps.md)."""

    prior: str | Path | nn.Module = field(metadata={
        "doc": "pretrained:<name> or the path of a 'diffusion' prior from genrecon train-prior (an already-built "
               "prior module is accepted from Python)"})
    steps: int = field(default=100, metadata={"ge": 1, "doc": "sampling steps (network evaluations per sample)"})
    zeta: float = field(default=10.0, metadata={
        "ge": 0, "doc": "DPS step size on the gradient of ||y - A x0_hat|| (consistency: none): 10 for MRI images in "
                        "[0, 1]; it grows about as 1 / intensity_scale (CT in attenuation units, 0.15: 30)"})
    eta: float = field(default=1.0, metadata={
        "ge": 0, "le": 1, "doc": "stochasticity of each step: 1 = ancestral (DDPM), 0 = DDIM (deterministic)"})
    samples: int = field(default=1, metadata={"ge": 1, "doc": "posterior samples drawn in one batch"})
    estimate: Literal["mean", "sample"] = field(default="mean", metadata={
        "doc": "report the samples' mean or the first sample"})
    consistency: Literal["none", "project"] = field(default="none", metadata={
        "doc": "none (DPS: the gradient through the denoiser) or project (CG data consistency on x0_hat, no "
               "backpropagation)"})
    cg_iter: int = field(default=10, metadata={
        "ge": 1, "doc": "CG iterations per step for project (FISTA iterations more when tv_weight > 0)"})
    gamma: float = field(default=0.002, metadata={
        "ge": 0, "doc": "weight of ||x - x0_hat||^2 in the project subproblem (relative to ||A||^2)"})
    tv_weight: float | None = field(default=None, metadata={
        "doc": "TV weight in the project subproblem, in the image's units (fista_tv's scale); 0: plain CG "
               "projection. None: 0"})
    tv: float | None = field(default=None, metadata={
        "doc": "deprecated: the old name of tv_weight (the same value); it goes in the next version"})
    nonneg: bool = field(default=False, metadata={
        "doc": "constrain real images to x >= 0 in the project subproblem (CT attenuation)"})
    intensity_scale: float = field(default=1.0, metadata={
        "gt": 0, "doc": "image units per unit of the prior's [0, 1] range (1 for images normalised to [0, 1])"})
    phase: Literal["zero", "lowres"] = field(default="zero", metadata={
        "doc": "phase of complex (MRI) images: zero (simulated data) or lowres (the phase of the Hann-windowed "
               "central k-space, measured data)"})
    clip: bool = field(default=True, metadata={"doc": "clamp x0_hat to the prior's range at each step"})
    init_time: float = field(default=1.0, metadata={
        "doc": "where sampling starts, a fraction of the steps grid in (0, 1] (1: pure noise; project only: "
               "< 1 noises a start image, Come-Closer-Diffuse-Faster)"})
    rounds: int = field(default=1, metadata={
        "ge": 1, "doc": "sampling rounds; later rounds restart from the previous round's mean (project only)"})
    refine_time: float = field(default=0.05, metadata={
        "gt": 0, "lt": 1, "doc": "start time of the rounds after the first (fraction of the steps grid)"})

    std_calibration: Literal["none", "pooled"] = field(default="none", metadata={
        "doc": "info std: none (the samples' per-pixel std) or pooled (variance averaged over std_pool x std_pool "
               "pixels, x (1 + 1/n), widened by the misfit of the mean; genrecon.reconstructors.dps.safeguard)"})
    std_pool: int = field(default=9, metadata={"ge": 1, "doc": "std_calibration: pooled: the window's side "
                                                                "(odd, pixels)"})
    noise_sigma: float | None = field(default=None, metadata={
        "doc": "std_calibration: pooled: measurement noise std per entry (E|n|^2 = sigma^2), subtracted from the "
               "mean's misfit; None: 0 (a wider std)"})

    renamed: ClassVar[tuple[Renamed, ...]] = (Renamed("tv", "tv_weight", default=0.0),)

    def problems(self) -> list[str]:
        """Rules across fields, and ranges whose message must explain themselves or name the key given."""
        out = []
        if not 0 < self.init_time <= 1:
            out.append(f"init_time must be in (0, 1] (a fraction of the steps grid), got {self.init_time}")
        elif self.init_time < 1 and self.consistency != "project":
            out.append("init_time < 1 starts from a data-consistent image: set consistency: project")
        if self.rounds > 1 and self.consistency != "project":
            out.append("rounds > 1 restart from data-consistent means: set consistency: project")
        out.extend(self.grid_param_problems())
        if self.grid == "upsample" and self.gamma <= 0:
            out.append("gamma must be > 0 with grid: upsample (it anchors the full-size refinement at U x_prior; "
                       "without it the refinement's CG runs on a singular system)")
        weight, given = self.renamed[0].given(self)
        weight = 0.0 if weight is None else weight
        if weight < 0:
            out.append(f"{given} must be >= 0, got {weight}")
        elif (weight > 0 or self.nonneg) and self.consistency != "project" and self.safeguard == "off":
            out.append(f"{given} and nonneg act on the data-consistency step: set consistency: project (or "
                       "safeguard: residual)")
        out.extend(self.safeguard_problems())
        if self.std_pool % 2 == 0:
            out.append(f"std_pool must be odd (a window centred on each pixel), got {self.std_pool}")
        if self.noise_sigma is not None and self.noise_sigma < 0:
            out.append(f"noise_sigma must be >= 0, got {self.noise_sigma}")
        return out
