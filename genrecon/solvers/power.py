"""Power method for the largest eigenvalue of a self-adjoint positive semi-definite map."""

from __future__ import annotations

from typing import Callable

import torch


def power_method(
    normal: Callable[[torch.Tensor], torch.Tensor],
    x0: torch.Tensor,
    *,
    n_iter: int = 50,
    tol: float = 1e-6,
) -> float:
    """Largest eigenvalue of ``normal`` (e.g. ``A^H A``, so the result is ``||A||^2``).

    ``lambda_{k} = ||N x_k|| / ||x_k||`` with ``x_{k+1} = N x_k / ||N x_k||``; stops when the relative change
    of the estimate is below ``tol``.

    Args:
        normal: the map ``N``, self-adjoint and positive semi-definite.
        x0: a start vector, not orthogonal to the top eigenvector (a random one).
        n_iter: maximum number of iterations.
        tol: relative stopping tolerance.
    """
    x = x0 / torch.linalg.vector_norm(x0)
    estimate = 0.0
    with torch.no_grad():
        for _ in range(n_iter):
            z = normal(x)
            new = torch.linalg.vector_norm(z).item()
            if new == 0.0:
                return 0.0
            x = z / new
            if abs(new - estimate) <= tol * new:
                estimate = new
                break
            estimate = new
    return estimate
