"""The finite-difference operator ``D``: forward differences with a Neumann boundary, adjoint ``-div``.

    (D x)[0, i, j] = x[i+1, j] - x[i, j]   (0 on the last row)
    (D x)[1, i, j] = x[i, j+1] - x[i, j]   (0 on the last column)

The kernels :func:`grad2d` and :func:`div2d` live in :mod:`genrecon.linalg.finite_difference` (below operators
and solvers, which both use them) and are re-exported here.

Example:
    >>> import torch
    >>> x = torch.randn(3, 8, 8); p = torch.randn(3, 2, 8, 8)
    >>> lhs = (grad2d(x) * p).sum(); rhs = -(x * div2d(p)).sum()
    >>> bool(torch.isclose(lhs, rhs, rtol=1e-4, atol=1e-4))
    True
"""

from __future__ import annotations

import torch

from ..errors import ShapeError
from ..linalg.finite_difference import div2d, grad2d
from ..registry import OPERATORS
from .base import LinearOperator

__all__ = ["FiniteDifference", "grad2d", "div2d"]


@OPERATORS.register("finite_difference")
class FiniteDifference(LinearOperator):
    """Forward finite differences ``D x = (x[i+1,j] - x[i,j], x[i,j+1] - x[i,j])``, Neumann boundary.

    Args:
        shape: ``(C, H, W)`` of one input.
        complex: whether the domain and range are complex (otherwise real).

    Domain ``(C, H, W)``, range ``(C, 2, H, W)`` (the layout of :func:`grad2d`); the adjoint is
    ``-div2d``. ``||D|| <= sqrt(8)``.

    Example:
        >>> import torch
        >>> D = FiniteDifference((1, 8, 8))
        >>> D(torch.ones(2, 1, 8, 8)).abs().max().item()
        0.0
    """

    def __init__(self, shape: tuple[int, int, int], complex: bool = False):
        shape = tuple(shape)
        if len(shape) != 3 or any(not isinstance(s, int) or s < 1 for s in shape):
            raise ShapeError(f"FiniteDifference: expected shape (C, H, W) of positive integers, got {shape}")
        c, h, w = shape
        super().__init__(shape, (c, 2, h, w))
        self.complex_domain = self.complex_range = bool(complex)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        return grad2d(x)

    def _adjoint(self, y: torch.Tensor) -> torch.Tensor:
        return div2d(y).neg_()

    @classmethod
    def example(cls, size: int = 32) -> "FiniteDifference":
        """A small real instance for generic operator tests."""
        return cls((2, size, size))

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, complex={self.complex_domain}"
