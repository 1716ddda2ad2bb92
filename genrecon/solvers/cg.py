"""Conjugate gradient for ``M x = b`` with a Hermitian positive (semi-)definite ``M``, batched.

``r_0 = b - M x_0``, ``p_0 = r_0``; ``alpha_k = <r_k, r_k> / <p_k, M p_k>``, ``x_{k+1} = x_k + alpha_k p_k``,
``r_{k+1} = r_k - alpha_k M p_k``, ``p_{k+1} = r_{k+1} + (<r_{k+1}, r_{k+1}> / <r_k, r_k>) p_k``.
"""

from __future__ import annotations

from typing import Callable

import torch


def _bdot(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Per-batch ``Re <u, v>`` summed over all but the first dim, shape ``(B, 1, ..., 1)`` (broadcasts)."""
    dims = tuple(range(1, u.dim()))
    prod = (u.conj() * v).real if u.is_complex() else u * v
    return torch.sum(prod, dim=dims, keepdim=True)


def conjugate_gradient(
    apply: Callable[[torch.Tensor], torch.Tensor],
    b: torch.Tensor,
    x0: torch.Tensor | None = None,
    n_iter: int = 10,
    tol: float = 1e-8,
) -> torch.Tensor:
    """Solve ``M x = b`` by ``n_iter`` conjugate-gradient iterations at most, each batch element on its own.

    Batch elements are independent systems: the step sizes ``alpha`` and ``beta`` are per element (``M`` must
    act on each element separately, as ``A^H A + gamma I`` of a batch-first operator does). A step whose
    denominator vanishes (an element already solved) is 0. Stops early when every element has
    ``||r|| <= tol ||b||``. Early-stopped CG from 0 is a regularised least-squares solution (low frequencies
    first).

    Args:
        apply: ``v -> M v`` on tensors of ``b``'s shape and dtype, Hermitian positive (semi-)definite.
        b: right-hand side ``(B, ...)``, real or complex.
        x0: start ``(B, ...)`` like ``b``; None starts from 0 (and saves one application of ``M``).
        n_iter: maximum number of iterations.
        tol: relative residual at which to stop.

    Returns:
        ``x`` ``(B, ...)`` of ``b``'s dtype.

    Example:
        >>> import torch
        >>> M = torch.tensor([[4.0, 1.0], [1.0, 3.0]])
        >>> b = torch.tensor([[1.0, 2.0]])
        >>> x = conjugate_gradient(lambda v: v @ M.T, b, n_iter=2)
        >>> torch.allclose(x @ M.T, b)
        True
    """
    if x0 is None:
        x = torch.zeros_like(b)
        r = b.clone()
    else:
        x = x0.clone()
        r = b - apply(x)
    p = r.clone()
    rs = _bdot(r, r)
    tiny = torch.finfo(rs.dtype).tiny
    stop = tol * _bdot(b, b).sqrt()
    zero = torch.zeros_like(rs)
    for _ in range(n_iter):
        mp = apply(p)
        denom = _bdot(p, mp)
        alpha = torch.where(denom > tiny, rs / denom.clamp(min=tiny), zero)
        x = x + alpha * p
        r = r - alpha * mp
        rs_new = _bdot(r, r)
        if bool((rs_new.sqrt() <= stop).all()):
            break
        p = r + torch.where(rs > tiny, rs_new / rs.clamp(min=tiny), zero) * p
        rs = rs_new
    return x
