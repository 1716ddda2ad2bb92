"""The operator contract: matched adjoint, linearity, normal operator, independent batch elements, shape errors."""

from __future__ import annotations

import torch

from ..errors import ShapeError
from ..operators.base import LinearOperator, adjoint_error


def check_operator(op: LinearOperator, *, seed: int = 0) -> dict:
    """Check a :class:`~genrecon.operators.base.LinearOperator` in float64.

    The adjoint error is scale free, ``|<Ax, y> - <x, A^H y>| / (||A|| ||x|| ||y||)`` with zero-mean Gaussian
    ``x`` and ``y`` (positive test vectors hide mismatches), and must be below ``1e-5``.

    Returns:
        ``{"adjoint_error": ...}``.
    """
    g = torch.Generator().manual_seed(seed)
    op = op.double()
    err = adjoint_error(op, g, dtype=torch.float64)
    assert err < 1e-5, f"{op.name}: adjoint error {err:.2e} (>= 1e-5): the adjoint does not match the forward"
    x1, x2 = op.random_domain(2, g), op.random_domain(2, g)
    a, b = 0.7, -1.3
    lhs, rhs = op(a * x1 + b * x2), a * op(x1) + b * op(x2)
    scale = max(1.0, float(rhs.abs().max()))
    assert torch.allclose(lhs, rhs, atol=1e-9 * scale), f"{op.name}: not linear"
    assert torch.allclose(op.normal(x1), op.adjoint(op(x1))), f"{op.name}: normal(x) != adjoint(forward(x))"
    assert torch.allclose(op(x1)[1:], op(x1[1:]), atol=1e-10 * scale), f"{op.name}: batch elements interact"
    bad = torch.zeros(1, *[s + 1 for s in op.domain_shape],
                      dtype=torch.complex128 if op.complex_domain else torch.float64)
    try:
        op(bad)
    except ShapeError:
        pass
    else:
        raise AssertionError(f"{op.name}: an input of the wrong shape was not refused with a ShapeError")
    return {"adjoint_error": err}
