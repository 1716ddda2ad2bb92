"""Samplers and local geometry of a latent posterior ``p(z | y) ~ exp(-E(z))``, for latent inversion.

Pure functions over an energy callable ``E: (N, k) -> (N,)`` (the negative log posterior up to a constant):
its Hessian by double back-propagation, the Laplace factor of the posterior at a mode, Newton refinement
of a mode, Laplace samples and preconditioned Langevin chains. They know nothing of MRI or CT.

Example:
    >>> import torch
    >>> energy = lambda z: 0.5 * (z ** 2).sum(1) * 4.0          # N(0, 1/4 I)
    >>> h = latent_hessian(energy, torch.zeros(1, 3, dtype=torch.float64))
    >>> torch.allclose(h, 4.0 * torch.eye(3, dtype=torch.float64))
    True
"""

from __future__ import annotations

import math
from typing import Callable

import torch

#: copies of z per double-backward pass of the Hessian
HESSIAN_CHUNK = 16
#: Newton steps towards the posterior mode before sampling
NEWTON_STEPS = 5

Energy = Callable[[torch.Tensor], torch.Tensor]


def randn_on(shape, generator: torch.Generator, device, dtype) -> torch.Tensor:
    """Standard normal draws made on ``generator``'s device (device-independent streams), moved to ``device``."""
    return torch.randn(shape, generator=generator, device=generator.device, dtype=dtype).to(device)


def sqnorm(t: torch.Tensor) -> torch.Tensor:
    """Per-batch ``||t||^2`` (real or complex), shape ``(B,)``."""
    mag2 = t.real.square() + t.imag.square() if t.is_complex() else t.square()
    return mag2.flatten(1).sum(1)


def latent_hessian(energy: Energy, z: torch.Tensor, chunk: int = HESSIAN_CHUNK) -> torch.Tensor:
    """Hessian ``(k, k)`` of a batched energy ``U: (N, k) -> (N,)`` at ``z`` ``(k,)``, by double backward.

    Row ``i`` is ``d/dz (dU/dz_i)``: with ``c`` copies of ``z`` as a batch and ``g`` their gradients, the
    gradient of ``sum_j g[j, i_j]`` with respect to copy ``j`` is row ``i_j``. One pass per ``chunk`` rows.
    """
    k = z.numel()
    rows = []
    base = z.detach().reshape(1, k)
    for start in range(0, k, chunk):
        idx = torch.arange(start, min(start + chunk, k), device=z.device)
        copies = base.repeat(idx.numel(), 1).requires_grad_(True)
        (grad,) = torch.autograd.grad(energy(copies).sum(), copies, create_graph=True)
        picked = grad[torch.arange(idx.numel(), device=z.device), idx].sum()
        (second,) = torch.autograd.grad(picked, copies)
        rows.append(second.detach())
    h = torch.cat(rows, 0)
    return 0.5 * (h + h.T)


def posterior_factor(hessian: torch.Tensor, floor: float = 1.0) -> tuple[torch.Tensor, torch.Tensor, int]:
    """``(L, M, clamped)``: ``M = L L^T = (V max(Lambda, floor) V^T)^-1`` from ``hessian = V Lambda V^T``.

    ``clamped`` counts eigenvalues raised to ``floor`` (the prior's curvature, see the module docstring).
    """
    evals, evecs = torch.linalg.eigh(hessian)
    clamped = int((evals < floor * (1 - 1e-6)).sum())
    evals = evals.clamp(min=floor)
    chol = evecs * evals.rsqrt()[None, :]
    return chol, chol @ chol.T, clamped


def _grad(energy: Energy, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(U(z), grad U(z))`` for a batch ``z`` ``(N, k)``."""
    z = z.detach().requires_grad_(True)
    u = energy(z)
    (g,) = torch.autograd.grad(u.sum(), z)
    return u.detach(), g


def refine_mode(energy: Energy, z: torch.Tensor, precond: torch.Tensor, n_iter: int = NEWTON_STEPS) -> torch.Tensor:
    """Newton steps ``z <- z - t M grad U(z)`` (``M`` fixed) with backtracking (Armijo); ``z`` ``(k,)``."""
    z = z.detach().reshape(1, -1)
    for _ in range(n_iter):
        u0, g = _grad(energy, z)
        d = -(g @ precond)
        slope = float((g * d).sum())
        if slope >= 0:
            break
        t, accepted = 1.0, False
        while t >= 1 / 64:
            cand = z + t * d
            with torch.no_grad():
                u1 = energy(cand)
            if float(u1) <= float(u0) + 1e-4 * t * slope:
                accepted = True
                break
            t /= 2
        if not accepted:
            break
        z = cand
        if float((t * d).norm()) <= 1e-7 * (1.0 + float(z.norm())):
            break
    return z.reshape(-1)


def laplace_samples(z_mode: torch.Tensor, chol: torch.Tensor, n: int, generator: torch.Generator) -> torch.Tensor:
    """``n`` draws ``z_mode + L e``, ``e ~ N(0, I)``: shape ``(n, k)``."""
    e = randn_on((n, z_mode.numel()), generator, z_mode.device, z_mode.dtype)
    return z_mode.reshape(1, -1) + e @ chol.T


def langevin_samples(
    energy: Energy,
    z_init: torch.Tensor,
    chol: torch.Tensor,
    *,
    step: float,
    burn_in: int,
    thin: int,
    per_chain: int,
    generator: torch.Generator,
) -> torch.Tensor:
    """Preconditioned unadjusted Langevin: ``z <- z - h M grad U(z) + sqrt(2 h) L e`` with ``M = L L^T``.

    Args:
        energy: batched ``U: (C, k) -> (C,)``.
        z_init: chain starts ``(C, k)``.
        chol: ``L`` ``(k, k)``.
        step: ``h``.
        burn_in: steps discarded first.
        thin: steps between kept samples.
        per_chain: samples kept per chain.
        generator: source of ``e``.

    Returns:
        ``(C * per_chain, k)``, chain-major (all samples of chain 0 first).
    """
    z = z_init.detach().clone()
    precond = chol @ chol.T
    noise = math.sqrt(2.0 * step)
    kept = []
    for t in range(1, burn_in + thin * per_chain + 1):
        _, g = _grad(energy, z)
        e = randn_on(z.shape, generator, z.device, z.dtype)
        z = z - step * (g @ precond) + noise * (e @ chol.T)
        if t > burn_in and (t - burn_in) % thin == 0:
            kept.append(z)
    return torch.stack(kept, 1).reshape(-1, z.shape[1])
