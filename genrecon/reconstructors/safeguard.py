"""The residual safeguard under prior mismatch (issue 18 part 4), shared by ``dps`` and ``latent_inversion``.

``safeguard: residual`` finishes each estimate ``x_i`` (``dps``: each sample; ``latent_inversion``: the MAP or
the posterior mean) with the data-consistency solver of ``dps``'s ``project`` step,
:func:`~genrecon.reconstructors.dps.projected.data_consistency` (``refine_iter`` CG iterations, then as many
TV-FISTA iterations with ``refine_tv_weight`` or ``tv_weight``, ``x >= 0`` with ``nonneg``)::

    x_i <- argmin_x 1/2 ||A x - y||^2 + g/2 ||x - x_i||^2 + tv TV(x),   g = safeguard_gamma ||A||^2 min(1, f / rho)

``rho`` is the discrepancy of the estimates: their mean misfit ``||A x_i - y||^2`` over the misfit of the
TV-regularised least-squares image (``start_image``: what a classical TV reconstruction fits of these data, the
noise level as the data themselves show it), ``f`` = ``safeguard_factor``. Estimates that fit the data about as
well as TV keep the anchor ``safeguard_gamma``; estimates ``rho > f`` times worse (the prior is off its manifold)
are anchored ever more weakly, and the finish moves to the TV solution warm-started at them: the estimate degrades
towards FISTA-TV, not below it. Give a TV weight: without one the reference is a least-squares fit, which fits
the noise too, and ``rho`` grows with the noise. Measured on the generative suite: benchmarks/generalisation.md
("Part 4" for ``dps``, "Part 4, latent" for ``latent_inversion``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import torch

from ..sampling.latent import sqnorm
from ..solvers.tv import TVProx
from .dps.projected import data_consistency, start_image

#: the finish's anchor never drops below this (relative to ||A||^2): CG on A^H A alone is singular for MRI masks
MIN_ANCHOR = 1e-6


@dataclass(frozen=True, kw_only=True)
class SafeguardParams:
    """The safeguard's parameters, shared by ``dps`` and ``latent_inversion`` (their ``Params`` derive from it)."""

    safeguard: Literal["off", "residual"] = field(default="off", metadata={
        "doc": "residual: finish the estimate (dps: each sample; latent_inversion: the MAP or posterior mean) with "
               "dps's project solver, refine_iter CG + TV-FISTA iterations (refine_tv_weight or tv_weight, nonneg) "
               "anchored at it with safeguard_gamma min(1, safeguard_factor / rho), rho = its misfit over a TV "
               "solution's: off the prior's manifold the result moves to FISTA-TV (genrecon.reconstructors.safeguard); "
               "off: the estimate as found"})
    safeguard_factor: float = field(default=10.0, metadata={
        "gt": 0, "doc": "safeguard: residual: misfit ratio rho above which the finish's anchor weakens as 1 / rho "
                        "(info safeguard_fired)"})
    safeguard_gamma: float | None = field(default=None, metadata={
        "doc": "safeguard: residual: anchor of the finish on the estimate (relative to ||A||^2); None: the method's "
               "own anchor (dps: gamma; latent_inversion: anchor_weight)"})

    def safeguard_problems(self) -> list[str]:
        """Problems with these parameters (the subclasses' ``problems()`` include them)."""
        if self.safeguard_gamma is not None and self.safeguard_gamma <= 0:
            return [f"safeguard_gamma must be > 0, got {self.safeguard_gamma}"]
        return []


def misfit(op, x: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
    """``||A x_i - y||^2`` per sample ``(N,)``."""
    return sqnorm(op(x) - yb)


def residual_finish(images: torch.Tensor, y: torch.Tensor, op, *, tv_weight: float, nonneg: bool, gamma: float,
                    factor: float, n_iter: int) -> tuple[torch.Tensor, dict]:
    """``safeguard: residual`` (module docstring) on the estimates ``images`` ``(N, *domain)`` of one measurement
    ``y`` ``(1, ...)``: ``(finished estimates, info)``; ``gamma`` = ``safeguard_gamma``, ``factor`` =
    ``safeguard_factor``, ``n_iter`` = ``refine_iter``."""
    with torch.no_grad():
        yb = y.expand(images.shape[0], *y.shape[1:])
        aty = op.adjoint(yb)
        lip = op.norm_squared(dtype=images.real.dtype, device=images.device)
        prox = TVProx(tv_weight, 5, nonneg=nonneg) if tv_weight > 0 or nonneg else None
        ref = start_image(op, aty[:1], gamma=MIN_ANCHOR * lip, lip=lip, tv_prox=prox)
        ref_misfit = float(misfit(op, ref, yb[:1])[0])
        rho = float(misfit(op, images, yb).mean()) / max(ref_misfit, torch.finfo(images.real.dtype).tiny)
        anchor = max(gamma * min(1.0, factor / rho), MIN_ANCHOR)
        prox = TVProx(tv_weight, 5, nonneg=nonneg) if prox is not None else None  # a fresh dual variable
        out = data_consistency(op, aty, images, gamma=anchor * lip, n_iter=n_iter, tv_prox=prox, lip=lip)
    return out, {"safeguard_rho": rho, "safeguard_anchor": anchor, "safeguard_fired": rho > factor}


def finish(method, images: torch.Tensor, y: torch.Tensor, op, *, own_gamma: float) -> tuple[torch.Tensor, dict]:
    """:func:`residual_finish` with the parameters of ``method`` (``dps`` or ``latent_inversion``): its
    ``refine_weight``, ``nonneg``, ``safeguard_factor``, ``refine_iter``, and ``safeguard_gamma`` (None:
    ``own_gamma``, the method's own anchor: ``dps``'s ``gamma``, ``latent_inversion``'s ``anchor_weight``)."""
    gamma = own_gamma if method.safeguard_gamma is None else method.safeguard_gamma
    return residual_finish(images, y, op, tv_weight=method.params.refine_weight, nonneg=method.nonneg, gamma=gamma,
                           factor=method.safeguard_factor, n_iter=method.refine_iter)
