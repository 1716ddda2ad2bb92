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
    grad_f: Callable[..., torch.Tensor],
    prox_g: Callable[..., torch.Tensor],
    x0: torch.Tensor,
    *,
    step: float,
    n_iter: int,
    tol: float = 0.0,
    callback: Callable[[int, torch.Tensor], None] | None = None,
    restart: bool = False,
    out: bool = False,
) -> FistaResult:
    """Minimise ``f + g`` with ``f`` smooth (gradient Lipschitz constant ``L``) and ``g`` proximable.

    Args:
        grad_f: ``x -> grad f(x)``.
        prox_g: ``(v, s) -> argmin_x g(x) + ||x - v||^2 / (2 s)``.
        x0: start point, any shape and dtype (real or complex).
        step: step size ``s <= 1 / L``.
        n_iter: maximum number of iterations.
        tol: stop when ``||x_{k+1} - x_k|| <= tol ||x_{k+1}||`` (0 disables).
        callback: called as ``callback(k, x_k)`` after each iteration (1-based ``k``); ``x_k`` is never written
            to afterwards (the callback may keep it).
        restart: adaptive gradient restart (O'Donoghue & Candes 2015): reset momentum when it points uphill.
        out: ``grad_f(x, out=buf)`` and ``prox_g(v, s, out=buf)`` write their result into ``buf`` (a tensor like
            ``x0``, not their input) and return it, and ``prox_g(v, s)`` returns a new tensor: the loop then works
            on buffers made once and allocates nothing per iteration (but the iterates handed to a callback).
            The same iterates either way.

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
    v = torch.empty_like(z) if out else None  # else new each iteration
    diff = torch.empty_like(z) if restart else z  # z's buffer holds x_new - x until z is updated from it
    spare = torch.empty_like(z) if out and callback is None else None  # the other iterate buffer
    t = 1.0
    converged = False
    k = 0
    for k in range(1, n_iter + 1):
        if out:
            v = torch.add(z, grad_f(z, out=v), alpha=-step, out=v)
        else:  # a prox may return its input (v) itself, which then becomes x: v must be new
            v = torch.add(z, grad_f(z), alpha=-step)
        x_new = prox_g(v, step, out=spare) if spare is not None else prox_g(v, step)
        torch.sub(x_new, x, out=diff)
        t_new = (1.0 + math.sqrt(1.0 + 4.0 * t * t)) / 2.0
        if restart and torch.sum((z - x_new).conj() * diff).real > 0:
            t_new, t = 1.0, 1.0
        if tol > 0:
            change = torch.linalg.vector_norm(diff).item()
            converged = change <= tol * torch.linalg.vector_norm(x_new).item()
        torch.add(x_new, diff, alpha=(t - 1.0) / t_new, out=z)
        if spare is not None:
            spare = x
        x, t = x_new, t_new
        if callback is not None:
            callback(k, x)
        if converged:
            break
    return FistaResult(x=x, iterations=k, converged=converged)
