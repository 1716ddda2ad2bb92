"""Robustness under prior mismatch (issue 18 part 4): a residual safeguard and a calibrated std for ``dps``.

``safeguard: residual`` finishes each sample with :func:`genrecon.reconstructors.safeguard.finish` (shared with
``latent_inversion``; ``residual_finish``'s docstring gives the finish), with ``dps``'s ``refine_iter``,
``refine_tv_weight`` or ``tv_weight``, ``nonneg``, and ``safeguard_gamma`` (None: ``gamma``). Measured on the
generative suite: benchmarks/generalisation.md (where ``rho`` exceeded 10 on every slice, also where the samples
beat FISTA-TV by 3 dB: gradient DPS never fits the data to the noise level, so ``safeguard_gamma`` is set per setting).

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

from ...sampling.latent import sqnorm
from ..safeguard import misfit


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
