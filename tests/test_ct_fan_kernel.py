"""The fan beam's numba kernel (:mod:`genrecon.operators.ct.fan_kernel`): the same entries as the stored matrix
and as the torch tiles of :mod:`genrecon.operators.ct.fan`, an exact adjoint, batches, detectors that miss
footprints, and which path a tensor takes."""

import pytest
import torch

from fan_cases import CASES, DEG, fan_op, rel

from genrecon.operators.base import adjoint_error
from genrecon.operators.ct import fan, fan_kernel, onthefly


def _data(op, batch, gen, dtype=torch.float64):
    x = torch.randn(batch, op.image_size**2, generator=gen, dtype=torch.float64).to(dtype)
    y = torch.randn(batch, op.n_views, op.n_detectors, generator=gen, dtype=torch.float64).to(dtype)
    return x, y


@pytest.mark.parametrize("name", sorted(CASES))
def test_kernel_equals_the_matrix_and_the_torch_tiles(name, gen):
    stored, op = fan_op("always", **CASES[name]), fan_op("never", **CASES[name])
    n, v = op.image_size, op.n_views
    for batch in (1, 3, 9):  # 9: two calls of fan_kernel.LANES images, the second padded with zeros
        x, y = _data(op, batch, gen)
        ya, xa = stored(x.view(batch, 1, n, n)).view(batch, v, -1), stored.adjoint(y.view(batch, 1, v, -1))
        ya, xa = ya / stored.scale, xa / stored.scale  # the kernel computes the raw (unnormalised) transform
        yk, xk = fan_kernel.forward(op, x), fan_kernel.adjoint(op, y)
        assert yk.dtype == xk.dtype == torch.float64 and yk.shape == ya.shape and xk.shape == (batch, n * n)
        assert rel(yk, ya) < 1e-12 and rel(xk, xa.view(batch, -1)) < 1e-12
        assert rel(yk, fan.torch_forward(op, x)) < 1e-12 and rel(xk, fan.torch_adjoint(op, y)) < 1e-12
        for i in range(batch):  # a batch is its images one by one
            assert rel(yk[i : i + 1], fan_kernel.forward(op, x[i : i + 1])) < 1e-14
            assert rel(xk[i : i + 1], fan_kernel.adjoint(op, y[i : i + 1])) < 1e-14
        # float32 data: one image computed in float64, a batch keeps it (and the adjoint's sums) in float32
        y32, x32 = fan_kernel.forward(op, x.float()), fan_kernel.adjoint(op, y.float())
        assert y32.dtype == x32.dtype == torch.float32
        y32_stored = stored(x.float().view(batch, 1, n, n)).view(batch, v, -1).double() / stored.scale
        assert rel(y32.double(), y32_stored) < 1e-5
        assert rel(x32.double(), xa.view(batch, -1)) < 1e-5


@pytest.mark.parametrize("name", sorted(CASES))
def test_kernel_adjoint_is_exact(name):
    op = fan_op("never", **CASES[name])
    assert fan._kernel(torch.zeros(1)) is fan_kernel
    assert adjoint_error(op, torch.Generator().manual_seed(0), dtype=torch.float64) < 1e-12
    assert adjoint_error(op, torch.Generator().manual_seed(0), dtype=torch.float32) < 1e-6


@pytest.mark.parametrize("n_det", [9, 17])
def test_short_detector_misses_footprints(n_det, gen):
    """A detector narrower than the image (not allowed by FanBeam's checks, set afterwards): footprints run off
    both ends; the kernel keeps the overlaps with the bins that exist, like the generic triples (the torch tiles
    assume a detector that covers the image, as FanBeam requires)."""
    op = fan_op("never", n=16, angles=[0.0, 0.4, 45 * DEG, 2.0, 4.0])
    op.n_detectors = n_det
    x, y = _data(op, 2, gen)
    yk, xk = fan_kernel.forward(op, x), fan_kernel.adjoint(op, y)
    assert yk.shape == (2, 5, n_det)
    assert rel(yk, onthefly.generic_forward(op, x)) < 1e-12 and rel(xk, onthefly.generic_adjoint(op, y)) < 1e-12
    assert abs(float((yk * y).sum() - (x * xk).sum())) < 1e-12 * float(yk.norm() * y.norm())


def test_a_larger_geometry_against_the_torch_tiles(gen):
    op = fan_op("never", n=64, views=45)
    x, y = _data(op, 2, gen)
    assert rel(fan_kernel.forward(op, x), fan.torch_forward(op, x)) < 1e-12
    assert rel(fan_kernel.adjoint(op, y), fan.torch_adjoint(op, y)) < 1e-12


def test_which_path_a_tensor_takes(monkeypatch, gen):
    op = fan_op("never", n=12, views=5)
    calls = []
    monkeypatch.setattr(fan_kernel, "forward", lambda *a, _f=fan_kernel.forward: calls.append("f") or _f(*a))
    monkeypatch.setattr(fan_kernel, "adjoint", lambda *a, _f=fan_kernel.adjoint: calls.append("a") or _f(*a))
    x = torch.randn(1, 1, 12, 12, generator=gen, requires_grad=True)
    y = op(x)
    (grad,) = torch.autograd.grad((y * y.detach()).sum(), x)  # gradients: the kernel's adjoint
    assert calls == ["f", "a"] and torch.allclose(grad, op.adjoint(y.detach()), atol=1e-6 * float(grad.abs().max()))
    assert fan._kernel(torch.empty(1, device="meta")) is None  # other devices: the torch tiles
    monkeypatch.setattr(fan, "KERNEL", "torch")
    assert fan._kernel(torch.zeros(1)) is None
    monkeypatch.setattr(fan, "KERNEL", "numba")
    assert fan._kernel(torch.zeros(1)) is fan_kernel


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_tensors_take_the_torch_tiles(gen):
    op = fan_op("never", n=16, views=7)
    x, y = _data(op, 2, gen)
    assert fan._kernel(x.cuda()) is None
    assert rel(fan.fan_forward(op, x.cuda()).cpu(), fan_kernel.forward(op, x)) < 1e-12
    assert rel(fan.fan_adjoint(op, y.cuda()).cpu(), fan_kernel.adjoint(op, y)) < 1e-12
