"""The generic operator contract, run for every registered operator (a new operator gets it by registering).

Checks: scale-free adjoint error |<Ax,y> - <x,A^H y>| / (||A|| ||x|| ||y||) with zero-mean Gaussian x and y
(< 1e-5 in float64, < 1e-4 in float32), linearity, normal == adjoint(forward), shape errors, composition, the
adjoint view, and that the power-method norm bounds ||Ax|| / ||x||; norm_squared() is computed once and cached,
agrees with a dense matrix's exact norm and with CT's own.
"""

import math

import pytest
import torch

from genrecon.errors import ShapeError
from genrecon.operators.base import Identity, LinearOperator, adjoint_error, inner
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


# -- norm_squared(): one cached power-method estimate per operator, overridden where the norm is known --------
class _Dense(LinearOperator):
    """``y = M x.flatten()`` for a dense real matrix ``M`` ``(m, n)``; counts its applications."""

    def __init__(self, mat: torch.Tensor, shape: tuple[int, ...]):
        super().__init__(shape, (mat.shape[0],))
        self.register_buffer("mat", mat)
        self.calls = 0

    def _forward(self, x):
        self.calls += 1
        return x.flatten(1) @ self.mat.to(x.dtype).T

    def _adjoint(self, y):
        self.calls += 1
        return (y @ self.mat.to(y.dtype)).reshape(-1, *self.domain_shape)


def test_norm_squared_is_cached_on_the_operator(gen):
    op = _Dense(torch.randn(12, 16, generator=gen, dtype=torch.float64), (1, 4, 4))
    first = op.norm_squared()
    assert op.calls > 0
    calls = op.calls
    assert op.norm_squared() == first and op.norm_squared(dtype=torch.float32) == first
    assert op.norm() == math.sqrt(first)
    assert op.H.norm_squared() == first  # the adjoint view shares the wrapped operator's value
    assert op.calls == calls  # none of these applied the operator again
    # the same operator built again gives the same number (fixed seeded start, no global RNG)
    torch.manual_seed(0)
    again = _Dense(op.mat.clone(), (1, 4, 4)).norm_squared()
    torch.manual_seed(1)
    assert _Dense(op.mat.clone(), (1, 4, 4)).norm_squared() == again == first


def test_norm_squared_matches_the_exact_norm_of_a_dense_matrix(gen):
    from genrecon.linalg.power import NORM_TOL

    mat = torch.randn(30, 25, generator=gen, dtype=torch.float64)
    exact = torch.linalg.matrix_norm(mat, ord=2).item() ** 2
    est = _Dense(mat, (1, 5, 5)).norm_squared()
    # from below, and within what the stopping rule allows (a Gaussian matrix: a well separated top eigenvalue)
    assert est <= exact * (1 + 1e-12)
    assert (exact - est) / exact < 100 * NORM_TOL
    # complex operators: the norm of the complex identity
    assert Identity((1, 4, 4), complex=True).norm_squared() == pytest.approx(1.0, rel=1e-6)


@pytest.mark.parametrize("normalize", [False, True])
def test_ct_norm_squared_override_agrees_with_the_power_method(normalize):
    from genrecon.operators.ct import ParallelBeam

    op = ParallelBeam(image_size=24, angles=torch.arange(15, dtype=torch.float64) * (math.pi / 15), normalize=normalize)
    generic = LinearOperator.norm_squared(op)  # the base class's estimate, from a random start
    assert op.norm_squared() == pytest.approx(generic, rel=1e-2)
    assert op.norm_squared() >= generic * (1 - 1e-6)  # the build-time estimate is the more converged one
    assert op.norm() == pytest.approx(math.sqrt(op.norm_squared()), rel=1e-12)


@pytest.mark.parametrize("name", NAMES)
def test_norm_squared_bounds_the_gain_of_every_operator(name, gen):
    op = _example(name)
    ns = op.norm_squared()
    assert isinstance(ns, float) and ns > 0
    x = op.random_domain(4, gen, dtype=torch.float32)
    gain = (torch.linalg.vector_norm(op(x).flatten(1), dim=1) / torch.linalg.vector_norm(x.flatten(1), dim=1)).max()
    assert gain.item() ** 2 <= ns * 1.01  # the 1.01 the reconstructors put on it
