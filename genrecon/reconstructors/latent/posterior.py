"""Latent posterior sampling around the MAP (``samples > 0``), with ``u`` fixed at ``u*`` (hybrid).

``p(z | y) ~ exp(-U(z))``, ``U(z) = ||A (T(G(z)) + u*) - y||^2 / (nu s^2) + ||z||^2 / 2``: ``s^2`` the noise variance
per measured entry (``noise_sigma``, or the MAP misfit ``||r*||^2 / m`` over the ``m`` entries ``A`` can reach),
``nu = 2`` for real data, ``1`` for complex. The Hessian of ``U`` at ``z*`` (eigenvalues raised to at least 1) gives
``M = H^-1 = L L^T``; up to 5 Newton steps find the mode; ``laplace``: ``z = z_m + L e``; ``langevin``:
preconditioned unadjusted Langevin dynamics in up to ``MAX_CHAINS`` chains from Laplace draws, burn-in
``ceil(3 / h)`` steps, then one sample every ``ceil(1 / h)`` steps. Samples ``x_s = T(G(z_s)) + u*`` give the mean
and the per-pixel ``std = sqrt(sum |x_s - mean|^2 / (N - 1))``.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from ...metrics import coverage as _coverage
from ...sampling.latent import langevin_samples, laplace_samples, latent_hessian, posterior_factor, refine_mode, sqnorm

#: most Langevin chains run at once
MAX_CHAINS = 16
#: latent codes decoded at once when pushing samples through G
DECODE_CHUNK = 32


def coverage(mean: torch.Tensor, std: torch.Tensor, truth: torch.Tensor, k: float = 2.0) -> float:
    """2-sigma coverage of a posterior (mean, std) against the truth: :func:`genrecon.metrics.coverage`, the
    one definition (magnitude errors ``||mean| - |truth|| <= k std``), in the samplers' argument order."""
    return _coverage(mean, truth, std, k)


def sample(recon, z_best, u_best, y, op, adapter, misfit_sq: float, gen) -> tuple[torch.Tensor, dict[str, Any]]:
    """``recon.samples`` posterior samples around ``z_best``: ``(mean (1, *domain), info)``."""
    rdtype = y.real.dtype
    m = recon.measured(op, y)
    floor = 1e-8 * float(sqnorm(y)) / m  # an 80 dB SNR cap keeps U finite for noiseless data
    sigma2 = recon.noise_sigma**2 if recon.noise_sigma is not None else misfit_sq / m
    sigma2 = max(sigma2, floor, torch.finfo(rdtype).tiny)
    nu = 1.0 if op.complex_range else 2.0

    def energy(zs: torch.Tensor) -> torch.Tensor:
        r = op(recon.image(zs, adapter, u_best)) - y
        return sqnorm(r) / (nu * sigma2) + 0.5 * zs.square().sum(1)

    hessian = latent_hessian(energy, z_best)
    chol, precond, clamped = posterior_factor(hessian)
    z_mode = refine_mode(energy, z_best, precond)
    n = recon.samples
    info: dict[str, Any] = {"samples_drawn": n, "sampler": recon.sampler, "noise_sigma": math.sqrt(sigma2),
                            "laplace_clamped": clamped}
    if recon.sampler == "laplace":
        zs = laplace_samples(z_mode, chol, n, gen)
    else:
        h = recon.langevin_step
        chains = min(n, MAX_CHAINS)
        per_chain = math.ceil(n / chains)
        burn_in, thin = math.ceil(3.0 / h), math.ceil(1.0 / h)
        start = laplace_samples(z_mode, chol, chains, gen)
        zs = langevin_samples(energy, start, chol, step=h, burn_in=burn_in, thin=thin, per_chain=per_chain,
                              generator=gen)[:n]
        info.update(chains=chains, burn_in=burn_in, thin=thin, langevin_step=h)
    with torch.no_grad():
        xs = torch.cat([recon.image(c, adapter, u_best) for c in zs.split(DECODE_CHUNK)], 0)
    mean = xs.mean(0, keepdim=True)
    dev = xs - mean
    var = (dev.real.square() + dev.imag.square()) if dev.is_complex() else dev.square()
    std = (var.sum(0) / max(n - 1, 1)).sqrt()
    info["std"] = std
    info["posterior_std_mean"] = float(std.mean())
    if n <= 16:
        info["samples"] = xs
    return mean, info
