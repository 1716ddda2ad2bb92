"""Robustness under prior mismatch (issue 18 part 4): a residual safeguard and a calibrated std for ``dps``.

``safeguard: residual`` finishes each sample ``x_i`` with the ``project`` step's own solver,
:func:`~genrecon.reconstructors.dps.projected.data_consistency` (``refine_iter`` CG iterations, then as many
TV-FISTA iterations with ``refine_tv_weight`` or ``tv_weight``, ``x >= 0`` with ``nonneg``)::

    x_i <- argmin_x 1/2 ||A x - y||^2 + g/2 ||x - x_i||^2 + tv TV(x),   g = safeguard_gamma ||A||^2 min(1, f / rho)

``rho`` is the discrepancy of the samples: their mean misfit ``||A x_i - y||^2`` over the misfit of the
TV-regularised least-squares image (``start_image``: what a classical TV reconstruction fits of these data, the
noise level as the data themselves show it), ``f`` = ``safeguard_factor``. Samples that fit the data about as well
as TV keep the anchor ``safeguard_gamma``; samples ``rho > f`` times worse (the prior is off its manifold) are
anchored ever more weakly, and the finish moves to the TV solution warm-started at them: the estimate degrades
towards FISTA-TV, not below it. Give a TV weight: without one the reference is a least-squares fit, which fits
the noise too, and ``rho`` grows with the noise. Measured on the generative suite: benchmarks/generalisation.md
(where ``rho`` exceeded 10 on every slice, also where the samples beat FISTA-TV by 3 dB: gradient DPS never fits
the data to the noise level, so ``safeguard_gamma`` is set per setting).

``std_calibration: pooled`` reports ``std = kappa sqrt((1 + 1/n) box_k(var))`` instead of the samples' plain
per-pixel std: ``box_k`` averages the variance over ``std_pool x std_pool`` pixels (with 2-4 samples a per-pixel
variance has 1-3 degrees of freedom, so even an exact sampler covers ~65 % at 2 sigma with 2 samples), ``1 + 1/n``
is the variance of the truth around an ``n``-sample mean, and ``kappa^2 = max(1, (||A mean - y||^2 - m s^2) /
((1 + 1/n) sum_i ||A (x_i - mean)||^2 / (n - 1)))`` widens the spread where the mean misfits the data more than
the samples' spread in measurement space explains (``s`` = ``noise_sigma``, 0 if not given; ``m`` the entries
``A`` reaches). Coverage is :func:`genrecon.metrics.coverage` on this std.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ...solvers.tv import TVProx
from .projected import data_consistency, start_image

#: the finish's anchor never drops below this (relative to ||A||^2): CG on A^H A alone is singular for MRI masks
MIN_ANCHOR = 1e-6


def sqnorm(r: torch.Tensor) -> torch.Tensor:
    """``||r_i||^2`` per sample ``(N,)`` (real or complex)."""
    r = r.real.square() + r.imag.square() if r.is_complex() else r.square()
    return r.reshape(r.shape[0], -1).sum(1)


def misfit(op, x: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
    """``||A x_i - y||^2`` per sample ``(N,)``."""
    return sqnorm(op(x) - yb)


def finish(dps, images: torch.Tensor, y: torch.Tensor, op) -> tuple[torch.Tensor, dict]:
    """``safeguard: residual`` on the samples ``images`` ``(N, *domain)`` of the sampler ``dps`` (module
    docstring): ``(finished samples, info)``."""
    with torch.no_grad():
        yb = y.expand(images.shape[0], *y.shape[1:])
        aty = op.adjoint(yb)
        lip = op.norm_squared(dtype=images.real.dtype, device=images.device)
        weight = dps.tv_weight if dps.refine_tv_weight is None else dps.refine_tv_weight
        prox = TVProx(weight, 5, nonneg=dps.nonneg) if weight > 0 or dps.nonneg else None
        ref = start_image(op, aty[:1], gamma=MIN_ANCHOR * lip, lip=lip, tv_prox=prox)
        ref_misfit = float(misfit(op, ref, yb[:1])[0])
        rho = float(misfit(op, images, yb).mean()) / max(ref_misfit, torch.finfo(images.real.dtype).tiny)
        gamma = dps.gamma if dps.safeguard_gamma is None else dps.safeguard_gamma
        anchor = max(gamma * min(1.0, dps.safeguard_factor / rho), MIN_ANCHOR)
        prox = TVProx(weight, 5, nonneg=dps.nonneg) if prox is not None else None  # a fresh dual variable
        out = data_consistency(op, aty, images, gamma=anchor * lip, n_iter=dps.refine_iter, tv_prox=prox, lip=lip)
    return out, {"safeguard_rho": rho, "safeguard_anchor": anchor, "safeguard_fired": rho > dps.safeguard_factor}


def pooled_std(mags: torch.Tensor, images: torch.Tensor, y: torch.Tensor, op, *, pool: int,
               noise_sigma: float | None) -> tuple[torch.Tensor, float]:
    """``std_calibration: pooled`` (module docstring) of ``n >= 2`` samples: ``(std (C, H, W), kappa)``.
    ``mags``: the samples as the metrics see them (magnitudes of complex images), ``images``: in ``A``'s domain."""
    n = mags.shape[0]
    var = mags.var(dim=0, unbiased=True)
    if pool > 1:
        var = F.avg_pool2d(var[None], pool, stride=1, padding=pool // 2, count_include_pad=False)[0]
    with torch.no_grad():
        yb = y.expand(1, *y.shape[1:])
        mean = images.mean(dim=0, keepdim=True)
        spread = float(sqnorm(op(images - mean)).sum()) / (n - 1)
        probe = op.random_domain(1, torch.Generator().manual_seed(0), dtype=mags.dtype, device=mags.device)
        m = int((op(probe) != 0).sum()) if noise_sigma else 0  # the entries A reaches
        excess = float(misfit(op, mean, yb)[0]) - m * (noise_sigma or 0.0) ** 2
    kappa2 = max(1.0, excess / max((1 + 1 / n) * spread, torch.finfo(mags.dtype).tiny))
    return (var * (1 + 1 / n) * kappa2).sqrt(), kappa2 ** 0.5
