"""FISTA (Beck & Teboulle 2009): accelerated proximal gradient for ``min_x f(x) + g(x)``.

``x_{k+1} = prox_{s g}(z_k - s grad f(z_k))``, ``t_{k+1} = (1 + sqrt(1 + 4 t_k^2)) / 2``,
``z_{k+1} = x_{k+1} + (t_k - 1) / t_{k+1} (x_{k+1} - x_k)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch


@dataclass
class FistaResult:
    """Solution and how it was reached."""

    x: torch.Tensor
    iterations: int
    converged: bool


def fista(
    grad_f: Callable[[torch.Tensor], torch.Tensor],
    prox_g: Callable[[torch.Tensor, float], torch.Tensor],
    x0: torch.Tensor,
    *,
    step: float,
    n_iter: int,
    tol: float = 0.0,
    callback: Callable[[int, torch.Tensor], None] | None = None,
    restart: bool = False,
) -> FistaResult:
    """Minimise ``f + g`` with ``f`` smooth (gradient Lipschitz constant ``L``) and ``g`` proximable.

    Args:
        grad_f: ``x -> grad f(x)``.
        prox_g: ``(v, s) -> argmin_x g(x) + ||x - v||^2 / (2 s)``.
        x0: start point, any shape and dtype (real or complex).
        step: step size ``s <= 1 / L``.
        n_iter: maximum number of iterations.
        tol: stop when ``||x_{k+1} - x_k|| <= tol ||x_{k+1}||`` (0 disables).
        callback: called as ``callback(k, x_k)`` after each iteration (1-based ``k``).
        restart: adaptive gradient restart (O'Donoghue & Candes 2015): reset momentum when it points uphill.

    Returns:
        :class:`FistaResult` with the last iterate.

    Example:
        >>> import torch
        >>> b = torch.tensor([3.0, -1.0])
        >>> res = fista(lambda x: x - b, lambda v, s: v, torch.zeros(2), step=1.0, n_iter=5)
        >>> torch.allclose(res.x, b)
        True
    """
    x = x0.clone()
    z = x0.clone()  # owned here: updated in place
    t = 1.0
    converged = False
    k = 0
    for k in range(1, n_iter + 1):
        x_new = prox_g(torch.add(z, grad_f(z), alpha=-step), step)
        diff = x_new - x  # fresh: the x given to the callback is never written to
        t_new = (1.0 + math.sqrt(1.0 + 4.0 * t * t)) / 2.0
        if restart and torch.sum((z - x_new).conj() * diff).real > 0:
            t_new, t = 1.0, 1.0
        torch.add(x_new, diff, alpha=(t - 1.0) / t_new, out=z)
        if tol > 0:
            change = torch.linalg.vector_norm(diff).item()
            converged = change <= tol * torch.linalg.vector_norm(x_new).item()
        x, t = x_new, t_new
        if callback is not None:
            callback(k, x)
        if converged:
            break
    return FistaResult(x=x, iterations=k, converged=converged)
