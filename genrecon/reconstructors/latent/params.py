"""The parameters of ``latent_inversion`` (every mode): one frozen dataclass, checked by :mod:`genrecon.schema`."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Literal

from torch import nn

from ..base import Renamed
from ..grid import GridParams
from ..safeguard import SafeguardParams


@dataclass(frozen=True)
class LatentParams(GridParams, SafeguardParams):
    """The YAML ``params`` of ``latent_inversion``; the ``hybrid_*`` ones also drive ``mode: anchored``."""

    prior: str | Path | nn.Module = field(metadata={
        "doc": "a generator checkpoint (path or pretrained:<name>, kind 'generator'), or an nn.Module with decode(z) "
               "(or forward) and latent_dim / latent_shape (tests and scripts)"})
    restarts: int = field(default=4, metadata={"ge": 1, "doc": "random starts, optimised together as one batch; the "
                                                               "best is kept"})
    steps: int = field(default=300, metadata={"ge": 1, "doc": "maximum iterations"})
    lr: float = field(default=0.05, metadata={"gt": 0, "doc": "Adam's initial learning rate (cosine schedule to 0); "
                                                              "L-BFGS uses 1 with a line search"})
    lam: float = field(default=1e-3, metadata={"ge": 0, "doc": "weight of ||z||^2 (noise_sigma^2 makes the MAP the "
                                                               "posterior mode)"})
    init: Literal["random", "encoder"] = field(default="random", metadata={
        "doc": "random (z ~ N(0, I)) or encoder (the prior's encoder on x0, or on a least-squares image: restart 0 at "
               "the encoder mean, the others drawn from its posterior)"})
    optimizer: Literal["adam", "lbfgs"] = field(default="adam", metadata={"doc": "adam, or lbfgs (plain mode only)"})
    tol: float = field(default=1e-6, metadata={"ge": 0, "doc": "stop when the relative objective change stays below "
                                                               "tol (0: run all steps)"})
    mode: Literal["plain", "hybrid", "anchored"] = field(default="plain", metadata={
        "doc": "plain (x = G(z)), hybrid (x = G(z) + u) or anchored (the penalty on x, tied to G(z) by anchor_weight)"})
    tv_weight: float | None = field(default=None, metadata={
        "doc": "weight of the penalty R on u (anchored: on x), in image units, on fista_tv's scale (1/2 ||A x - y||^2 "
               "+ tv_weight R); with hybrid_penalty l1 it weights the L1 norm. None: 0.005"})
    hybrid_weight: float | None = field(default=None, metadata={
        "doc": "deprecated: the old name of 2 x tv_weight (read as tv_weight: hybrid_weight / 2, the same objective); "
               "it goes in the next version"})
    hybrid_penalty: Literal["l1", "tv"] = field(default="l1", metadata={"doc": "the penalty R: l1 or tv"})
    hybrid_warmup: float = field(default=0.5, metadata={
        "ge": 0, "doc": "fraction of steps optimised with u = 0 before u joins, so that u does not absorb what G(z) "
                        "can represent (1: plain, then the polish)"})
    hybrid_polish: int = field(default=100, metadata={"ge": 0, "doc": "FISTA iterations on u with z fixed after the "
                                                                      "joint stage (0: none)"})
    hybrid_fallback: bool = field(default=True, metadata={
        "doc": "also solve the hybrid objective with the generator off (x = u, max(hybrid_polish, 100) FISTA "
               "iterations) and keep the lower objective (info generator_kept); not with samples"})
    anchor_weight: float = field(default=0.003, metadata={"gt": 0, "doc": "mu / ||A||^2 of the anchored mode (CT "
                                                                          "0.001, MRI 0.01 in the benchmark)"})
    anchor_rounds: int = field(default=2, metadata={"ge": 1, "doc": "generator fits of the anchored mode (each "
                                                                    "followed by the anchored image step)"})
    nonneg: bool = field(default=False, metadata={"doc": "real images (CT): keep x = T(G(z)) + u >= 0, as fista_tv's "
                                                         "nonneg"})
    samples: int = field(default=0, metadata={"ge": 0, "doc": "posterior samples (0: the MAP only)"})
    sampler: Literal["langevin", "laplace"] = field(default="langevin", metadata={"doc": "langevin or laplace"})
    langevin_step: float = field(default=0.05, metadata={"gt": 0, "doc": "preconditioned Langevin step h "
                                                                         "(dimensionless, < 1)"})
    noise_sigma: float | None = field(default=None, metadata={
        "gt": 0, "doc": "measurement noise std per entry (E|n|^2 = sigma^2) for the sampler; None: from the MAP misfit"})
    intensity_scale: float | Literal["auto"] = field(default=1.0, metadata={
        "gt": 0, "doc": "prior-to-data intensity factor, or auto (genrecon.priors.adapters)"})
    phase: Literal["zero", "lowres"] = field(default="zero", metadata={"doc": "phase of complex (MRI) images: zero or "
                                                                              "lowres"})

    renamed: ClassVar[tuple[Renamed, ...]] = (
        Renamed("hybrid_weight", "tv_weight", default=0.005, scale=0.5, relation="2 x tv_weight"),)

    def problems(self) -> list[str]:
        """Rules across fields, and ranges whose message must explain themselves or name the key given."""
        out = self.grid_param_problems()
        weight, given = self.renamed[0].given(self)
        if weight is not None and weight < 0:
            out.append(f"{given} must be a non-negative number, got {weight!r}")
        if self.hybrid_warmup > 1:
            out.append(f"hybrid_warmup must be in [0, 1] (a fraction of steps), got {self.hybrid_warmup}")
        if self.langevin_step >= 1:
            out.append(f"langevin_step must be < 1 (it is relative to the posterior's scale), got {self.langevin_step}")
        if self.optimizer == "lbfgs" and self.mode in ("hybrid", "anchored"):
            out.append(f"optimizer 'lbfgs' needs a smooth objective; use optimizer 'adam' with mode '{self.mode}'")
        if self.mode == "anchored" and self.samples > 0:
            out.append("mode 'anchored' gives a MAP estimate only; set samples: 0 or mode plain/hybrid")
        out.extend(self.safeguard_problems())
        return out
