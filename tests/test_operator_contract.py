"""The generic operator contract, run for every registered operator (a new operator gets it by registering).

Checks: scale-free adjoint error |<Ax,y> - <x,A^H y>| / (||A|| ||x|| ||y||) with zero-mean Gaussian x and y
(< 1e-5 in float64, < 1e-4 in float32), linearity, normal == adjoint(forward), shape errors, composition, the
adjoint view, and that the power-method norm bounds ||Ax|| / ||x||.
"""

import pytest
import torch

from genrecon.errors import ShapeError
from genrecon.operators.base import adjoint_error, inner
from genrecon.registry import OPERATORS

NAMES = OPERATORS.names()


def _example(name):
    return OPERATORS.get(name).example()


def _as(t, dtype):
    if t.is_complex():
        return t.to(torch.complex128 if dtype == torch.float64 else torch.complex64)
    return t.to(dtype)


def test_registry_has_core_operators():
    for name in ("mri_single", "mri_multi", "ct_parallel", "ct_fan", "finite_difference"):
        assert name in NAMES


@pytest.mark.parametrize("name", NAMES)
def test_adjoint_float64(name):
    op = _example(name).double()
    assert adjoint_error(op, torch.Generator().manual_seed(0), dtype=torch.float64) < 1e-5


@pytest.mark.parametrize("name", NAMES)
def test_adjoint_float32(name):
    op = _example(name)
    assert adjoint_error(op, torch.Generator().manual_seed(1), dtype=torch.float32) < 1e-4


@pytest.mark.parametrize("name", NAMES)
def test_linearity_and_normal(name, gen):
    op = _example(name).double()
    x1 = op.random_domain(2, gen)
    x2 = op.random_domain(2, gen)
    a, b = 0.7, -1.3
    lhs = op(a * x1 + b * x2)
    rhs = a * op(x1) + b * op(x2)
    assert torch.allclose(lhs, rhs, atol=1e-9 * max(1.0, rhs.abs().max().item()))
    assert torch.allclose(op.normal(x1), op.adjoint(op(x1)))
    # batch elements are independent
    assert torch.allclose(op(x1)[1:], op(x1[1:]), atol=1e-10 * max(1.0, op(x1).abs().max().item()))


@pytest.mark.parametrize("name", NAMES)
def test_norm_bounds_gain_and_adjoint_view(name, gen):
    op = _example(name).double()
    norm = op.norm(n_iter=100, generator=gen, dtype=torch.float64)
    x = op.random_domain(1, gen)
    gain = torch.linalg.vector_norm(op(x)) / torch.linalg.vector_norm(x)
    assert gain <= norm * (1 + 1e-3)
    y = op.random_range(1, gen)
    assert torch.allclose(op.H(y), op.adjoint(y))
    assert op.H.H is op
    assert abs(inner(op(x), y) - inner(x, op.H(y))) <= 1e-8 * norm * x.norm() * y.norm()


@pytest.mark.parametrize("name", NAMES)
def test_shape_errors_name_the_operator(name):
    op = _example(name)
    bad = torch.zeros(1, *[s + 1 for s in op.domain_shape], dtype=torch.complex64 if op.complex_domain else torch.float32)
    with pytest.raises(ShapeError, match="expected shape"):
        op(bad)
    wrong_kind = torch.zeros(1, *op.domain_shape, dtype=torch.float32 if op.complex_domain else torch.complex64)
    with pytest.raises(ShapeError):
        op(wrong_kind)


def test_composition_adjoint(gen):
    from genrecon.operators import Identity

    op = _example("mri_single").double()
    comp = op @ Identity(op.domain_shape, complex=True)
    assert adjoint_error(comp, gen) < 1e-10
    with pytest.raises(ShapeError, match="cannot compose"):
        op @ Identity((1, 3, 3), complex=True)
