"""The fan beam's matrix-free path (:mod:`genrecon.operators.ct.fan`): the same entries as the stored matrix,
an exact adjoint, autograd, batches, and tiles / chunks / view blocks that do not divide the problem."""

import pytest
import torch

from fan_cases import CASES, fan_op, rel

from genrecon.operators.base import adjoint_error
from genrecon.operators.ct import fan, onthefly


@pytest.fixture(autouse=True)
def _small_tiles(monkeypatch):
    """The torch tiles (the CPU kernel has its own tests, tests/test_ct_fan_kernel.py), tiles that do not divide
    the image (the last ones overlap), several chunks and view blocks."""
    monkeypatch.setattr(fan, "KERNEL", "torch")
    monkeypatch.setattr(fan, "TILE_LINES", 5)
    monkeypatch.setattr(fan, "TILE_POSITIONS", 7)
    monkeypatch.setattr(fan, "CHUNK_POINTS", 1000)
    monkeypatch.setattr(fan, "VIEW_BLOCK", 4)


@pytest.mark.parametrize("name", sorted(CASES))
def test_matrix_free_fan_equals_the_stored_matrix(name, gen):
    stored, fly = fan_op("always", **CASES[name]), fan_op("never", **CASES[name])
    assert stored.uses_matrix and not fly.uses_matrix
    for batch in (1, 3):
        x = torch.randn(batch, *stored.domain_shape, generator=gen, dtype=torch.float64)
        y = torch.randn(batch, *stored.range_shape, generator=gen, dtype=torch.float64)
        for dtype, tol in ((torch.float64, 1e-12), (torch.float32, 1e-5)):
            ya, yb = stored(x.to(dtype)), fly(x.to(dtype))
            assert yb.dtype == dtype and yb.shape == ya.shape
            assert rel(yb, ya) < tol
            xa, xb = stored.adjoint(y.to(dtype)), fly.adjoint(y.to(dtype))
            assert xb.dtype == dtype and xb.shape == xa.shape
            assert rel(xb, xa) < tol


@pytest.mark.parametrize("name", sorted(CASES))
def test_matrix_free_fan_adjoint_is_exact(name):
    op = fan_op("never", **CASES[name])
    assert adjoint_error(op, torch.Generator().manual_seed(0), dtype=torch.float64) < 1e-12


def test_default_tiles_and_the_generic_triples(gen, monkeypatch):
    """The default tile sizes (32 lines do not divide 41: the last line tile overlaps) against the stored
    matrix, and the fast path against the generic (pixel, bin, weight) triples it replaces."""
    monkeypatch.undo()
    op, stored = fan_op("never", n=41, views=12), fan_op("always", n=41, views=12)
    x = torch.randn(2, 41 * 41, generator=gen, dtype=torch.float64)
    y = torch.randn(2, 12, op.n_detectors, generator=gen, dtype=torch.float64)
    assert rel(fan.fan_forward(op, x), stored(x.view(2, 1, 41, 41)).view(2, 12, -1)) < 1e-12
    assert rel(fan.fan_adjoint(op, y), stored.adjoint(y.view(2, 1, 12, -1)).view(2, -1)) < 1e-12
    assert rel(fan.fan_forward(op, x[:1]), onthefly.generic_forward(op, x[:1])) < 1e-12
    assert rel(fan.fan_adjoint(op, y[:1]), onthefly.generic_adjoint(op, y[:1])) < 1e-12


def test_fan_projector_uses_the_fast_path(monkeypatch, gen):
    op = fan_op("never", n=12, views=5)
    calls = []
    monkeypatch.setattr(fan, "_chunks", lambda *a, _f=fan._chunks: calls.append(1) or _f(*a))
    op(torch.randn(1, 1, 12, 12, generator=gen))
    op.adjoint(torch.randn(1, *op.range_shape, generator=gen))
    assert len(calls) >= 4  # two passes, forward and adjoint


def test_matrix_free_fan_autograd_and_batches(gen):
    op = fan_op("never", n=12, views=7)
    x = op.random_domain(3, gen).requires_grad_(True)
    y = op.random_range(3, gen)
    (grad,) = torch.autograd.grad((op(x) * y).sum(), x)
    assert torch.allclose(grad, op.adjoint(y), atol=1e-12 * grad.abs().max())
    small = fan_op("never", n=6, views=3)
    assert torch.autograd.gradcheck(small, (torch.randn(1, 1, 6, 6, dtype=torch.float64, generator=gen,
                                                        requires_grad=True),))
    assert torch.autograd.gradcheck(small.adjoint, (torch.randn(1, *small.range_shape, dtype=torch.float64,
                                                                generator=gen, requires_grad=True),))
    batch, xd = op(x.detach()), x.detach()
    single = torch.cat([op(xd[i : i + 1]) for i in range(3)])
    assert torch.allclose(batch, single, atol=1e-12 * batch.abs().max())
    back = op.adjoint(y)
    single = torch.cat([op.adjoint(y[i : i + 1]) for i in range(3)])
    assert torch.allclose(back, single, atol=1e-12 * back.abs().max())


def test_matrix_free_fan_is_not_the_zero_map(gen):
    """A point object: its projection is a narrow bump in every view, at the bins its ray hits."""
    op = fan_op("never", n=21, views=8)
    x = torch.zeros(1, 1, 21, 21, dtype=torch.float64)
    x[0, 0, 10, 10] = 1.0  # the centre pixel: every central ray
    y = op(x)[0, 0]
    centre = (op.n_detectors - 1) / 2
    for v in range(8):
        hit = y[v].nonzero().view(-1).double()
        assert 0 < hit.numel() <= 4 and abs(float(hit.mean()) - centre) <= 1.0 and float(y[v].min()) >= 0.0
