"""Latent optimisation (CSGM, Bora et al. 2017): ``z* = argmin_z ||A T(G(z)) - y||^2 + lam ||z||^2``.

The ``restarts`` starting points run as one batch, each with its own objective (their mean is minimised, which
leaves each restart's gradient its own); Adam with a cosine learning-rate schedule, or L-BFGS with a strong-Wolfe
line search (plain mode only). In hybrid mode the same Adam loop also takes a proximal-gradient step on ``u`` per
iteration after the warm-up (:mod:`.hybrid`). Adam stops after ``steps`` iterations or when the relative change of
the objective stays below ``tol`` for ``PATIENCE`` iterations; L-BFGS uses torch's ``tolerance_change = tol *
(initial objective)``. The best restart is the one with the smallest data misfit (plain) or objective (hybrid:
``u`` can always lower the misfit).
"""

from __future__ import annotations

import math

import torch

from ...priors.adapters import least_squares_estimate
from ...sampling.latent import randn_on, sqnorm
from . import hybrid

#: iterations the relative objective change must stay below tol (Adam is not monotone)
PATIENCE = 10


def data_norm(y: torch.Tensor) -> float:
    """``||y||``, kept above the dtype's smallest normal number (it divides)."""
    return float(torch.sqrt(sqnorm(y)).clamp(min=torch.finfo(y.real.dtype).tiny))


def initial_latents(recon, y, op, adapter, x0, gen, device, rdtype) -> torch.Tensor:
    """``(restarts, k)`` starting latents: ``N(0, I)``, or (``init: encoder``) the encoder's mean (restart 0) and
    draws from its posterior, on ``x0`` or a least-squares image mapped to the prior's range."""
    r, k = recon.restarts, recon.latent_size
    if recon.init == "random":
        return randn_on((r, k), gen, device, rdtype)
    start = x0 if x0 is not None else least_squares_estimate(y, op)
    g0 = adapter.from_domain(start).clamp(0.0, 1.0).to(rdtype)
    with torch.no_grad():
        mu, logvar = recon.model.encode(g0)
    mu, std = mu.reshape(1, k), torch.exp(0.5 * logvar).reshape(1, k)
    z = mu + std * randn_on((r, k), gen, device, rdtype)
    z[0] = mu[0]
    return z


def optimise(recon, z, u, y, op, adapter, callback) -> tuple[int, torch.Tensor | None]:
    """Optimise ``z`` in place (and ``u``, hybrid: ``u`` not None); return ``(iterations, u)``.

    ``callback(step, x)`` gets the current best restart's image ``(1, *domain)`` after each Adam iteration (before
    its update) or each L-BFGS function evaluation."""
    if recon.optimizer == "lbfgs":
        return _lbfgs(recon, z, y, op, adapter, callback), None
    is_hybrid = u is not None
    if is_hybrid:
        step_u, tv = hybrid.u_solver(recon, op, y)
    prev, calm = None, 0
    opt = torch.optim.Adam([z], lr=recon.lr)
    warm = int(recon.hybrid_warmup * recon.steps) if is_hybrid else 0
    for it in range(1, recon.steps + 1):
        for group in opt.param_groups:
            group["lr"] = recon.lr * 0.5 * (1.0 + math.cos(math.pi * (it - 1) / recon.steps))
        opt.zero_grad(set_to_none=True)
        x = recon.image(z, adapter, u)
        r = op(x) - y
        f = sqnorm(r) + recon.lam * z.square().sum(1)
        f.mean().backward()
        with torch.no_grad():
            if is_hybrid and it > warm:
                f = f.detach() + hybrid.penalty(recon, u)
                v = u - (2.0 * step_u) * op.adjoint(r.detach())
                u = hybrid.prox_u(recon, tv, v, step_u, hybrid.lower_bound(recon, x.detach() - u, v))
            value = float(f.mean())
            if callback is not None:
                best = int(torch.argmin(f))
                callback(it, x.detach()[best : best + 1])
        opt.step()
        if prev is not None and abs(prev - value) <= recon.tol * max(abs(prev), 1e-30):
            calm += 1
            if calm >= PATIENCE:
                break
        else:
            calm = 0
        prev = value
    if is_hybrid and recon.hybrid_polish > 0:
        with torch.no_grad():
            u = hybrid.polish(recon, recon.image(z.detach(), adapter), u, y, op, recon.hybrid_polish)
    return it, u


def _lbfgs(recon, z, y, op, adapter, callback) -> int:
    """L-BFGS with a strong-Wolfe line search on the plain objective; returns its iterations."""
    with torch.no_grad():
        f0 = float(recon.objective(z, y, op, adapter).mean())
    opt = torch.optim.LBFGS([z], lr=1.0, max_iter=recon.steps, max_eval=2 * recon.steps, history_size=20,
                            tolerance_grad=0.0, tolerance_change=recon.tol * abs(f0), line_search_fn="strong_wolfe")
    evals = 0

    def closure():
        nonlocal evals
        opt.zero_grad(set_to_none=True)
        f = recon.objective(z, y, op, adapter)
        f.mean().backward()
        evals += 1
        if callback is not None:
            callback(evals, recon.image(z.detach()[int(torch.argmin(f.detach()))][None], adapter))
        return f.mean().detach()

    opt.step(closure)
    return int(opt.state[z].get("n_iter", 0))
