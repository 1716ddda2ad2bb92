"""Power method for the largest eigenvalue of a self-adjoint positive semi-definite map.

``lambda_k = ||N x_k|| / ||x_k||``, ``x_{k+1} = N x_k / ||N x_k||``. With ``N = A^H A`` the result is
``||A||^2``, which :meth:`genrecon.operators.LinearOperator.norm_squared` computes once per operator with
:data:`NORM_ITER` and :data:`NORM_TOL`.
"""

from __future__ import annotations

from typing import Callable

import torch

#: power-method iterations of ``LinearOperator.norm_squared()`` (estimated once per operator)
NORM_ITER = 50
#: relative change of the estimate at which ``LinearOperator.norm_squared()`` stops
NORM_TOL = 1e-5


def power_method(
    normal: Callable[[torch.Tensor], torch.Tensor],
    x0: torch.Tensor,
    *,
    n_iter: int = 50,
    tol: float = 1e-6,
) -> float:
    """Largest eigenvalue of ``normal`` (e.g. ``A^H A``, so the result is ``||A||^2``).

    ``lambda_{k} = ||N x_k|| / ||x_k||`` with ``x_{k+1} = N x_k / ||N x_k||``; stops when the relative change
    of the estimate is below ``tol``. The estimate approaches the eigenvalue from below. Runs without
    gradients.

    Args:
        normal: the map ``N``, self-adjoint and positive semi-definite, from tensors of ``x0``'s shape to the same.
        x0: a start vector of any shape, real or complex, not orthogonal to the top eigenvector (a random one).
        n_iter: maximum number of iterations.
        tol: relative stopping tolerance.

    Returns:
        The estimate as a Python float (0.0 when ``N x`` vanishes).

    Example:
        >>> import torch
        >>> S = torch.diag(torch.tensor([4.0, 1.0, 0.5]))
        >>> round(power_method(lambda x: S @ x, torch.ones(3), n_iter=100), 4)
        4.0
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
