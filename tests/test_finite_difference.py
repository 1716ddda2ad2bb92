"""Finite differences: closed forms, div = -grad^T exactly, adjoint test, norm bound, autograd."""

from __future__ import annotations

import math

import pytest
import torch

from genrecon.errors import ShapeError
from genrecon.operators import FiniteDifference, adjoint_error, div2d, grad2d
from genrecon.registry import OPERATORS


def _randn(*shape, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    if dtype.is_complex:
        real = torch.float64 if dtype == torch.complex128 else torch.float32
        return torch.complex(torch.randn(shape, generator=g, dtype=real), torch.randn(shape, generator=g, dtype=real))
    return torch.randn(shape, generator=g, dtype=dtype)


def test_grad_closed_forms():
    h, w = 5, 7
    ii, jj = torch.meshgrid(torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64), indexing="ij")
    g = grad2d(3 * ii + 2 * jj)  # a ramp: constant differences, Neumann zeros on the far edges
    assert g.shape == (2, h, w)
    assert torch.all(g[0, :-1] == 3) and torch.all(g[0, -1] == 0)
    assert torch.all(g[1, :, :-1] == 2) and torch.all(g[1, :, -1] == 0)
    assert torch.all(grad2d(torch.full((2, 3, h, w), 4.0)) == 0)


def test_div_is_exactly_minus_grad_transpose():
    h, w = 4, 5
    eye = torch.eye(h * w, dtype=torch.float64).view(h * w, h, w)
    grad_matrix = grad2d(eye).reshape(h * w, 2 * h * w).T  # (2HW, HW)
    eye_p = torch.eye(2 * h * w, dtype=torch.float64).view(2 * h * w, 2, h, w)
    div_matrix = div2d(eye_p).reshape(2 * h * w, h * w).T  # (HW, 2HW)
    assert torch.equal(div_matrix, -grad_matrix.T)


@pytest.mark.parametrize("shape", [(1, 1), (1, 6), (6, 1), (2, 2), (3, 8)])
def test_degenerate_sizes_keep_the_adjoint(shape):
    x = _randn(2, *shape)
    p = _randn(2, 2, *shape, seed=1)
    lhs = torch.sum(grad2d(x) * p)
    rhs = -torch.sum(x * div2d(p))
    assert lhs.item() == pytest.approx(rhs.item(), abs=1e-12)


@pytest.mark.parametrize("complex_", [False, True])
def test_operator_adjoint_and_shapes(complex_):
    op = FiniteDifference((3, 9, 7), complex=complex_)
    assert op.range_shape == (3, 2, 9, 7)
    assert op.complex_domain is complex_ and op.complex_range is complex_
    assert adjoint_error(op, torch.Generator().manual_seed(0), dtype=torch.float64) < 1e-5
    x = op.random_domain(2, torch.Generator().manual_seed(1), dtype=torch.float64)
    assert torch.equal(op(x), grad2d(x))
    assert torch.equal(op.adjoint(op(x)), -div2d(grad2d(x)))


def test_norm_is_below_sqrt8_and_close_for_large_images():
    op = FiniteDifference((1, 64, 64))
    norm = op.norm(n_iter=300, tol=1e-9, dtype=torch.float64)
    # ||D||^2 = 4 sin^2(pi (n-1) / (2n)) * 2 for the Neumann difference on n x n
    expected = math.sqrt(8 * math.sin(math.pi * 63 / 128) ** 2)
    assert norm <= math.sqrt(8) + 1e-9
    assert norm == pytest.approx(expected, rel=1e-3)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.complex64, torch.complex128])
def test_dtypes_and_leading_dims(dtype):
    x = _randn(2, 3, 6, 5, dtype=dtype)
    g = grad2d(x)
    assert g.shape == (2, 3, 2, 6, 5) and g.dtype == dtype
    d = div2d(g)
    assert d.shape == x.shape and d.dtype == dtype
    # grad of the real and imaginary parts separately (linearity over the reals)
    if dtype.is_complex:
        assert torch.allclose(g, torch.complex(grad2d(x.real), grad2d(x.imag)))


def test_autograd_through_grad_and_div():
    x = _randn(2, 5, 6).requires_grad_()
    assert torch.autograd.gradcheck(lambda a: div2d(grad2d(a)), (x,))


def test_errors_and_registry():
    with pytest.raises(ShapeError):
        grad2d(torch.zeros(5))
    with pytest.raises(ShapeError, match="\\(\\.\\.\\., 2, H, W\\)"):
        div2d(torch.zeros(3, 4, 4))
    with pytest.raises(ShapeError, match="\\(C, H, W\\)"):
        FiniteDifference((4, 4))
    assert OPERATORS.get("finite_difference") is FiniteDifference
    op = FiniteDifference.example()
    assert adjoint_error(op, dtype=torch.float64) < 1e-5
