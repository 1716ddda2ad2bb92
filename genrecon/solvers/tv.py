"""Proximal operator of isotropic total variation by the fast dual method (FGP, Beck & Teboulle 2009).

``prox(b) = argmin_x 1/2 ||x - b||^2 + lam TV(x)`` with ``TV(x) = sum_i |(grad x)_i|_2`` and the optional
constraint ``x >= 0``. Dual: ``x = P_C(b + lam div p)``, ``p <- P_{|p|<=1}(q + 1/(8 lam) grad x)`` with
Nesterov momentum on ``p``. ``div = -grad^T``.
"""

from __future__ import annotations

import math

import torch

from ..linalg.finite_difference import div2d, grad2d


def _to_planes(b: torch.Tensor) -> torch.Tensor:
    """``(..., H, W)`` real or complex -> real ``(..., K, H, W)`` with K = 1 (real) or 2 (real, imaginary).

    Working on contiguous real planes makes the per-pixel norm a sum of a few planes, which is several
    times faster on CPU than complex arithmetic with broadcasting.
    """
    if b.is_complex():
        return torch.view_as_real(b).movedim(-1, -3).contiguous()
    return b.unsqueeze(-3)


def _from_planes(x: torch.Tensor, is_complex: bool) -> torch.Tensor:
    if is_complex:
        return torch.view_as_complex(x.movedim(-3, -1).contiguous())
    return x.squeeze(-3)


class TVProx:
    """A warm-started TV prox: keeps its dual variable between calls (as inside FISTA).

    Isotropic TV couples the two gradient directions and, for complex images, the real and imaginary
    parts: ``TV(x) = sum_i sqrt(|d_h x_i|^2 + |d_w x_i|^2)``.

    Args:
        lam: TV weight (the prox of ``s * lam * TV`` is taken for step ``s``).
        n_iter: dual iterations per call.
        nonneg: constrain real images to ``x >= 0``.

    Example:
        >>> import torch
        >>> b = torch.zeros(1, 1, 8, 8); b[..., 4:] = 1.0
        >>> x = TVProx(lam=0.05, n_iter=50)(b, 1.0)   # an edge survives, shrunk a little
        >>> bool(x[..., 6].mean() > 0.8)
        True
    """

    def __init__(self, lam: float, n_iter: int = 10, nonneg: bool = False):
        self.lam = lam
        self.n_iter = n_iter
        self.nonneg = nonneg
        self.p: torch.Tensor | None = None

    def __call__(self, b: torch.Tensor, step: float, lower: torch.Tensor | None = None) -> torch.Tensor:
        """The prox at ``b`` for step ``step``; ``lower`` (real images): the constraint ``x >= lower`` instead."""
        lam = self.lam * step
        constrain = (self.nonneg or lower is not None) and not b.is_complex()
        if lam <= 0:
            if not constrain:
                return b.clone()
            return b.clamp(min=0) if lower is None else torch.maximum(b, lower.to(b.dtype))
        bound = None if lower is None else _to_planes(lower.to(b.dtype).expand_as(b))
        br = _to_planes(b)  # (..., K, H, W)
        p = self.p  # (..., K, 2, H, W)
        if p is None or p.shape[:-3] != br.shape[:-2] or p.shape[-2:] != br.shape[-2:] or p.dtype != br.dtype:
            p = br.new_zeros((*br.shape[:-2], 2, *br.shape[-2:]))
        q = p
        t = 1.0
        scale = 1.0 / (8.0 * lam)
        for _ in range(self.n_iter):
            x = torch.add(br, div2d(q), alpha=lam)
            if constrain:
                x = x.clamp_(min=0) if lower is None else torch.maximum(x, bound)
            g = torch.add(q, grad2d(x), alpha=scale)
            norm = g.square().sum(dim=(-4, -3), keepdim=True).sqrt_().clamp_(min=1.0)
            p_new = g.div_(norm)
            t_new = (1.0 + math.sqrt(1.0 + 4.0 * t * t)) / 2.0
            q = torch.add(p_new, p_new - p, alpha=(t - 1.0) / t_new)
            p, t = p_new, t_new
        self.p = p
        x = torch.add(br, div2d(p), alpha=lam)
        if constrain:
            x = x.clamp_(min=0) if lower is None else torch.maximum(x, bound)
        return _from_planes(x, b.is_complex())


def tv_norm(x: torch.Tensor) -> torch.Tensor:
    """Isotropic TV per batch element: ``sum |grad x|_2`` over the last three dims (C, H, W)."""
    g = grad2d(x)
    mag = (g.real.square() + (g.imag.square() if g.is_complex() else 0)).sum(-3).sqrt()
    return mag.flatten(1).sum(1)
