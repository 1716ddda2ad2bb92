"""Generative priors on images larger than their grid: solve on the prior's grid, refine at full size.

A prior trained at ``S x S`` (the shipped ones: 128) meets images ``H x W`` (MRI 256 or 320, CT 512). With
``grid: upsample`` a reconstructor solves on the prior's grid through the composed operator ``A U`` (:class:`~genrecon.
operators.resample.Upsample`: Fourier zero-padding for MRI, which puts the small image's k-space at the centre of
the full k-space; linear interpolation for CT), then refines at full size:

    x = argmin_x 1/2 ||A x - y||^2 + gamma/2 ||x - U x_S||^2 + tv_weight TV(x)      (x >= 0 with nonneg)

(``refine_iter`` CG iterations on the quadratic part from ``U x_S``, then as many FISTA iterations with the TV
prox; ``gamma = weight ||A||^2``; ``dps`` with ``clip`` then clamps it to the prior's range, as its samples are at
the prior's size): the prior's image sets what the data miss, the data set what they measure,
including the frequencies above the prior's grid. Measured against the prior applied directly at full size and
against 128-pixel patches in benchmarks/RESULTS.md ("Generative methods at full size").

``grid: same`` (the default) keeps the old contract: images of another size are refused with a one-line error.
Images smaller than the prior's grid are always refused.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import torch

from ..errors import ShapeError
from ..operators.base import LinearOperator
from ..operators.resample import Upsample
from ..solvers.cg import conjugate_gradient
from ..solvers.tv import TVProx

GRIDS = ("same", "upsample")
UPSAMPLE_KINDS = ("auto", "fourier", "linear")


@dataclass(frozen=True, kw_only=True)
class GridParams:
    """The parameters ``dps`` and ``latent_inversion`` share for images larger than the prior's (their ``Params``
    derive from it; keyword-only, so they follow each method's own fields)."""

    grid: Literal["same", "upsample"] = field(default="same", metadata={
        "doc": "images larger than the prior's: same (refused) or upsample (work on the prior's grid through A U, "
               "U the upsampling to the image's grid, then refine at full size; genrecon.reconstructors.grid)"})
    upsample: Literal["auto", "fourier", "linear"] = field(default="auto", metadata={
        "doc": "U of grid: upsample: fourier (k-space zero-padding, MRI), linear (CT) or auto (fourier for complex "
               "images, linear for real)"})
    prior_fov: float = field(default=1.0, metadata={
        "doc": "part of each image axis the prior's grid covers, centred, in (0, 1] (grid: upsample; < 1 when the "
               "prior was trained on images cropped around the anatomy)"})
    refine_iter: int = field(default=100, metadata={
        "ge": 0, "doc": "grid: upsample: CG (then TV-FISTA) iterations of the full-size refinement 1/2 ||A x - y||^2 + "
                        "mu/2 ||x - U x_prior||^2 + refine_tv_weight TV(x), mu = dps's gamma or latent_inversion's "
                        "anchor_weight ||A||^2 (0: U x_prior as it is)"})
    refine_tv_weight: float | None = field(default=None, metadata={
        "doc": "TV weight of the full-size refinement (grid: upsample), fista_tv's scale; None: tv_weight"})

    @property
    def refine_weight(self) -> float:
        """The TV weight of the full-size refinement and of the safeguard's finish: ``refine_tv_weight``, else the
        method's ``tv_weight`` (both subclasses have one)."""
        return self.tv_weight if self.refine_tv_weight is None else self.refine_tv_weight

    def grid_param_problems(self) -> list[str]:
        """Problems with these parameters (the subclasses' ``problems()`` include them)."""
        out = grid_problems(self.grid, self.upsample, self.prior_fov)
        if self.refine_tv_weight is not None and self.refine_tv_weight < 0:
            out.append(f"refine_tv_weight must be >= 0, got {self.refine_tv_weight}")
        return out


def grid_problems(grid: str, upsample: str, prior_fov: float) -> list[str]:
    """Problems with the ``grid`` / ``upsample`` / ``prior_fov`` parameters (empty if fine)."""
    out = []
    if not 0 < prior_fov <= 1:
        out.append(f"prior_fov must be in (0, 1] (the part of the image the prior's grid covers), got {prior_fov}")
    if grid == "same" and (upsample != "auto" or prior_fov != 1):
        out.append("upsample and prior_fov act on images larger than the prior: set grid: upsample")
    return out


def check_grid(op, prior_shape: tuple[int, int, int], grid: str, who: str, label: str = "") -> bool:
    """Whether ``op``'s images need the upsampled path; raise a one-line :class:`ShapeError` if they cannot work.

    Args:
        op: an operator, or anything with ``domain_shape`` / ``complex_domain`` / ``name``.
        prior_shape: ``(C, S, S)`` of the prior's images.
        grid: ``"same"`` (refuse another size) or ``"upsample"``.
        who: the reconstructor's name, for the message.
        label: the prior's name or path.
    """
    c, s = int(prior_shape[0]), int(prior_shape[-1])
    dom = tuple(op.domain_shape)
    name = f"prior {label}" if label else "the prior"
    if len(dom) != 3:
        raise ShapeError(f"{who}: {name} makes images (C, H, W) but {op.name}'s domain is {dom}")
    if dom[0] != c:
        raise ShapeError(f"{who}: {name} makes {c}-channel images but {op.name}'s images have {dom[0]} channel(s)")
    if dom[1:] == tuple(int(v) for v in prior_shape[1:]):
        return False
    fix = f"set data.size: {s} (or use a prior trained at {dom[1]}x{dom[2]})"
    if dom[1] < prior_shape[1] or dom[2] < prior_shape[2]:
        raise ShapeError(f"{who}: {name} is {s}x{s} but the images are {dom[1]}x{dom[2]}: {fix}")
    if grid != "upsample":
        raise ShapeError(f"{who}: {name} is {s}x{s} but the images are {dom[1]}x{dom[2]}: {fix}, or set grid: "
                         "upsample (solve on the prior's grid, refine at full size)")
    return True


def clamp_range(x: torch.Tensor, hi: float, *, keep_phase: bool) -> torch.Tensor:
    """``x`` clamped to the prior's range ``[0, hi]`` in the image's units: real images as they are, complex ones by
    their real part (zero phase: simulated magnitude images) or their magnitude (``keep_phase``: measured data)."""
    if not x.is_complex():
        return x.clamp(0.0, hi)
    if keep_phase:
        mag = x.abs()
        return x * (mag.clamp(0.0, hi) / mag.clamp(min=torch.finfo(mag.dtype).tiny))
    return x.real.clamp(0.0, hi).to(x.dtype)


@dataclass
class PriorGrid:
    """The upsampled problem of one measurement: ``U`` and the composed operator ``A U``.

    Attributes:
        up: ``U``, the prior's grid to the image's (with the measured phase, if any).
        op: the full-size operator ``A``.
        small: ``A U``, the operator the reconstructor solves with.
    """

    up: Upsample
    op: LinearOperator
    small: LinearOperator

    @classmethod
    def build(cls, op: LinearOperator, prior_shape: tuple[int, int, int], *, upsample: str = "auto",
              prior_fov: float = 1.0, phase: torch.Tensor | None = None, like: torch.Tensor | None = None
              ) -> "PriorGrid":
        """``U`` from ``prior_shape`` to ``op``'s images (``auto``: Fourier for complex images, linear for real)
        and ``A U``; ``phase`` ``(1, C, H, W)`` multiplies ``U``'s output (complex images only)."""
        kind = upsample if upsample != "auto" else ("fourier" if op.complex_domain else "linear")
        if kind == "fourier" and not op.complex_domain:
            raise ShapeError(f"upsample 'fourier' makes complex images but {op.name}'s are real: use 'linear'")
        up = Upsample(tuple(prior_shape), tuple(op.domain_shape), kind=kind, fov=prior_fov,
                      complex=op.complex_domain, phase=phase)
        if like is not None:
            up = up.to(device=like.device)
        return cls(up=up, op=op, small=op @ up)

    def to_small(self, x: torch.Tensor, n_iter: int = 20) -> torch.Tensor:
        """The prior-grid image closest to a full-size image: ``argmin_z ||U z - x||`` by ``n_iter`` CG iterations
        (a start image ``x0`` given at the image's size)."""
        with torch.no_grad():
            return conjugate_gradient(self.up.normal, self.up.adjoint(x), None, n_iter=n_iter, tol=1e-8)

    def refine(self, y: torch.Tensor, x_small: torch.Tensor, *, weight: float, tv_weight: float, n_iter: int,
               nonneg: bool = False) -> torch.Tensor:
        """The full-size image of prior-grid images ``x_small`` ``(N, C, S, S)`` (module docstring), ``(N, *A's
        domain)``; ``weight`` is ``gamma / ||A||^2``. ``n_iter = 0`` returns ``U x_small``."""
        from .dps.projected import data_consistency  # here: the dps package imports this module

        with torch.no_grad():
            start = self.up(x_small)
            if n_iter == 0:
                return start
            yb = y.expand(start.shape[0], *y.shape[1:])
            lip = self.op.norm_squared(dtype=start.real.dtype, device=start.device)
            prox = TVProx(tv_weight, 5, nonneg=nonneg) if tv_weight > 0 or nonneg else None
            return data_consistency(self.op, self.op.adjoint(yb), start, gamma=weight * lip, n_iter=n_iter,
                                    tv_prox=prox, lip=lip)
