"""The hybrid ``x = T(G(z)) + u`` (Dhar et al. 2018): the penalty on ``u``, its proximal steps and FISTA polish.

``(z*, u*) = argmin_{z,u} ||A (T(G(z)) + u) - y||^2 + lam ||z||^2 + w R(u)``, ``R = ||u||_1`` (complex: sum
``|u_i|``) or isotropic ``TV(u)``, ``w = 2 tv_weight``. After the warm-up every iteration takes one Adam step on
``z`` (:mod:`.csgm`) and one proximal-gradient step on ``u`` from the same point: ``u <- prox_{t w R}(u - t 2 A^H
r)`` with ``t = 1 / (2 ||A||^2)`` (the TV prox by warm-started FGP); then ``hybrid_polish`` FISTA iterations on
``u`` with ``z`` fixed. :func:`penalty_only` is the same objective with the generator switched off (``x = u``): the
fallback and the anchored mode's start.
"""

from __future__ import annotations

import torch

from ...sampling.latent import sqnorm
from ...solvers.fista import fista
from ...solvers.prox import soft_threshold
from ...solvers.tv import TVProx, tv_norm


def penalty(recon, u: torch.Tensor) -> torch.Tensor:
    """``w R(u)`` per batch entry, shape ``(N,)``."""
    if recon.hybrid_penalty == "tv":
        return recon._w * tv_norm(u)
    return recon._w * u.abs().flatten(1).sum(1)


def u_solver(recon, op, y, anchor: float = 0.0) -> tuple[float, TVProx | None]:
    """The proximal-gradient step on ``u`` (``1 / (2 (||A||^2 + anchor))``, with a hair of safety) and a fresh TV
    prox."""
    step = 1.0 / (2.0 * (op.norm_squared(dtype=y.real.dtype, device=y.device) * 1.01 + anchor))
    return step, (TVProx(recon._w, n_iter=5) if recon.hybrid_penalty == "tv" else None)


def prox_u(recon, tv: TVProx | None, v: torch.Tensor, s: float, lower: torch.Tensor | None) -> torch.Tensor:
    """``prox_{s w R}(v)`` with the optional bound ``u >= lower`` (TV: inside the dual method; L1: separable, so the
    soft threshold clipped at the bound)."""
    if tv is not None:
        return tv(v, s, lower)
    out = soft_threshold(v, s * recon._w)
    return out if lower is None else torch.maximum(out, lower)


def lower_bound(recon, base: torch.Tensor, u: torch.Tensor) -> torch.Tensor | None:
    """The bound ``u >= -base`` that keeps ``base + u >= 0`` (``nonneg``, real images), or None."""
    if not recon.nonneg or u.is_complex():
        return None
    return -base.real if base.is_complex() else -base


def polish(recon, base, u, y, op, n_iter: int, anchor: float = 0.0, centre=None) -> torch.Tensor:
    """FISTA from ``u`` on ``||A (base + u) - y||^2 + w R(u) (+ anchor ||u - centre||^2)`` over ``u`` (``base``:
    ``T(G(z))`` with ``z`` fixed, or None for 0; the anchored mode: ``base`` None, ``centre`` ``T(G(z))``)."""
    step, tv = u_solver(recon, op, y, anchor)

    def grad_f(v):
        g = 2.0 * op.adjoint(op(v if base is None else base + v) - y)
        return g + 2.0 * anchor * (v - centre) if anchor else g

    lower = lower_bound(recon, torch.zeros_like(u) if base is None else base, u)
    return fista(grad_f, lambda v, s: prox_u(recon, tv, v, s, lower), u, step=step, n_iter=n_iter).x


def penalty_only(recon, like: torch.Tensor, y, op) -> tuple[torch.Tensor, float, float]:
    """The objective with the generator switched off (``x = u``): ``max(hybrid_polish, 100)`` FISTA iterations from
    ``u = 0`` (shaped as ``like``); returns ``(u, ||A u - y||^2, objective)``."""
    with torch.no_grad():
        u0 = polish(recon, None, torch.zeros_like(like), y, op, max(recon.hybrid_polish, 100))
        data0 = float(sqnorm(op(u0) - y)[0])
        return u0, data0, data0 + float(penalty(recon, u0)[0])
