"""Centred orthonormal FFT and the single- and multi-coil MRI operators."""

from __future__ import annotations

import math

import pytest
import torch

from genrecon.errors import ShapeError
from genrecon.operators import FFT2, MultiCoilMRI, SingleCoilMRI, adjoint_error, fft2c, ifft2c, inner
from genrecon.registry import OPERATORS
from genrecon.simulate.coils import simulate_coil_maps
from genrecon.simulate.masks import RandomLines


def _crandn(*shape, dtype=torch.complex128, seed=0):
    g = torch.Generator().manual_seed(seed)
    real = torch.float64 if dtype == torch.complex128 else torch.float32
    return torch.complex(torch.randn(shape, generator=g, dtype=real), torch.randn(shape, generator=g, dtype=real))


def _mask(h, w, acc=4, seed=0):
    return RandomLines(acceleration=acc)((h, w), torch.Generator().manual_seed(seed))


# -- fft2c / ifft2c ---------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(8, 8), (7, 10), (1, 5)])
@pytest.mark.parametrize("dtype", [torch.complex64, torch.complex128])
def test_fft2c_is_unitary_and_inverted(shape, dtype):
    x = _crandn(3, *shape, dtype=dtype)
    k = fft2c(x)
    assert k.dtype == dtype and k.shape == x.shape
    tol = 1e-5 if dtype == torch.complex64 else 1e-12
    assert abs(torch.linalg.vector_norm(k) / torch.linalg.vector_norm(x) - 1) < tol
    assert torch.allclose(ifft2c(k), x, atol=10 * tol)
    assert torch.allclose(fft2c(ifft2c(x)), x, atol=10 * tol)


@pytest.mark.parametrize("h,w", [(4, 6), (5, 3)])
def test_fft2c_matches_centred_dft_formula(h, w):
    # F[k] = (HW)^-1/2 sum_n x[n] exp(-2 pi i ((k-c)(n-c)) / N), c = N // 2 per axis
    x = _crandn(h, w, seed=1)

    def dft(n, c):
        idx = torch.arange(n, dtype=torch.float64) - c
        return torch.exp(-2j * math.pi * idx[:, None] * idx[None, :] / n) / math.sqrt(n)

    expected = dft(h, h // 2) @ x @ dft(w, w // 2).T
    assert torch.allclose(fft2c(x), expected, atol=1e-12)


def test_fft2c_centre_convention():
    h, w = 6, 8
    delta = torch.zeros(h, w, dtype=torch.complex128)
    delta[h // 2, w // 2] = 1
    assert torch.allclose(fft2c(delta), torch.full((h, w), 1 / math.sqrt(h * w), dtype=torch.complex128))
    const = torch.ones(h, w, dtype=torch.complex128)
    k = fft2c(const)
    assert abs(k[h // 2, w // 2].item() - math.sqrt(h * w)) < 1e-12
    assert k.abs().sum().item() == pytest.approx(math.sqrt(h * w))


# -- adjoints ---------------------------------------------------------------------------------------
def _ops():
    g = torch.Generator().manual_seed(0)
    maps = simulate_coil_maps(4, (16, 12), generator=g, dtype=torch.complex128)
    return {
        "fft": FFT2((2, 16, 12)),
        "single_2d": SingleCoilMRI(_mask(16, 12)),
        "single_1d": SingleCoilMRI(_mask(16, 12)[0], shape=(16, 12)),
        "single_gauss": SingleCoilMRI(torch.rand(16, 12, generator=g) < 0.3),
        "multi": MultiCoilMRI(maps, _mask(16, 12)),
        "multi_c64_maps": MultiCoilMRI(maps.to(torch.complex64), _mask(16, 12, acc=2)),
        "multi_unnormalised": MultiCoilMRI(_crandn(3, 16, 12, seed=4), _mask(16, 12)),
    }


@pytest.mark.parametrize("name", list(_ops()))
def test_adjoint_error_float64(name):
    op = _ops()[name]
    assert adjoint_error(op, torch.Generator().manual_seed(1), dtype=torch.float64) < 1e-5


@pytest.mark.parametrize("name", ["fft", "mri_single", "mri_multi"])
def test_registered_examples(name):
    cls = OPERATORS.get(name)
    op = cls.example()
    assert isinstance(op, cls)
    assert op.complex_domain and op.complex_range
    assert adjoint_error(op, dtype=torch.float64) < 1e-5
    again = cls.example()
    for buf, buf2 in zip(op.buffers(), again.buffers()):  # seeded: the same instance every time
        assert torch.equal(buf, buf2)


# -- single coil ------------------------------------------------------------------------------------
def test_single_coil_zero_filled_convention():
    mask = _mask(16, 16)
    op = SingleCoilMRI(mask.float())  # 0/1 floats are accepted
    x = _crandn(2, 1, 16, 16)
    y = op(x)
    assert y.shape == (2, 1, 16, 16)
    assert torch.all(y[..., ~mask] == 0)
    assert torch.allclose(y[..., mask], fft2c(x)[..., mask])
    # A^H A is the orthogonal projection onto the sampled frequencies: idempotent, norm 1
    n1 = op.normal(x)
    assert torch.allclose(op.normal(n1), n1, atol=1e-12)
    assert op.norm(n_iter=20) == pytest.approx(1.0, abs=1e-4)
    assert op.acceleration == pytest.approx(mask.numel() / mask.sum().item())


def test_single_coil_full_mask_is_fft():
    op = SingleCoilMRI(torch.ones(8, dtype=torch.bool), shape=(6, 8))
    x = _crandn(1, 1, 6, 8)
    assert torch.allclose(op(x), fft2c(x))
    assert torch.allclose(op.normal(x), x)


@pytest.mark.parametrize("cls", [SingleCoilMRI, MultiCoilMRI])
def test_follows_input_dtype(cls):
    mask = _mask(8, 8)
    op = SingleCoilMRI(mask) if cls is SingleCoilMRI else MultiCoilMRI(simulate_coil_maps(2, (8, 8)), mask)
    for dtype in (torch.complex64, torch.complex128):
        x = _crandn(1, 1, 8, 8, dtype=dtype)
        y = op(x)
        assert y.dtype == dtype and op.adjoint(y).dtype == dtype


def test_single_coil_errors():
    with pytest.raises(ShapeError, match="does not match"):
        SingleCoilMRI(torch.ones(8, 8, dtype=torch.bool), shape=(8, 6))
    with pytest.raises(ShapeError, match="needs shape"):
        SingleCoilMRI(torch.ones(8, dtype=torch.bool))
    with pytest.raises(ShapeError, match="expected \\(8,\\)"):
        SingleCoilMRI(torch.ones(6, dtype=torch.bool), shape=(4, 8))
    with pytest.raises(ShapeError, match="0 or 1"):
        SingleCoilMRI(torch.full((4, 4), 0.5))
    with pytest.raises(ShapeError, match="\\(H, W\\) or \\(W,\\)"):
        SingleCoilMRI(torch.ones(2, 4, 4))
    op = SingleCoilMRI(torch.ones(4, 4))
    with pytest.raises(ShapeError, match="expected shape"):
        op(torch.zeros(1, 1, 4, 5, dtype=torch.complex64))
    with pytest.raises(ShapeError, match="complex"):
        op(torch.zeros(1, 1, 4, 4))


# -- multi coil (SENSE) -----------------------------------------------------------------------------
def test_sense_normal_is_identity_with_full_mask():
    maps = simulate_coil_maps(6, (12, 10), generator=torch.Generator().manual_seed(2), dtype=torch.complex128)
    op = MultiCoilMRI(maps, torch.ones(12, 10, dtype=torch.bool))
    x = _crandn(2, 1, 12, 10)
    assert torch.allclose(op.normal(x), x, atol=1e-12)
    assert op.range_shape == (6, 12, 10) and op.n_coils == 6


def test_sense_matches_coilwise_single_coil():
    maps = simulate_coil_maps(3, (8, 8), generator=torch.Generator().manual_seed(3), dtype=torch.complex128)
    mask = _mask(8, 8)
    multi, single = MultiCoilMRI(maps, mask), SingleCoilMRI(mask)
    x = _crandn(1, 1, 8, 8)
    y = multi(x)
    for c in range(3):
        assert torch.allclose(y[:, c : c + 1], single(maps[c] * x))
    expected = sum(maps[c].conj() * single.adjoint(y[:, c : c + 1]) for c in range(3))
    assert torch.allclose(multi.adjoint(y), expected)
    assert inner(multi(x), y).item() == pytest.approx(inner(x, multi.adjoint(y)).item(), rel=1e-12)


def test_multi_coil_errors():
    with pytest.raises(ShapeError, match="\\(C, H, W\\)"):
        MultiCoilMRI(torch.ones(8, 8, dtype=torch.complex64), torch.ones(8, 8))
    with pytest.raises(ShapeError, match="does not match"):
        MultiCoilMRI(torch.ones(2, 8, 8, dtype=torch.complex64), torch.ones(8, 6))


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_matches_cpu():
    maps = simulate_coil_maps(4, (32, 32), generator=torch.Generator().manual_seed(0))
    mask = _mask(32, 32)
    x = _crandn(2, 1, 32, 32, dtype=torch.complex64)
    for op in (SingleCoilMRI(mask), MultiCoilMRI(maps, mask)):
        y_cpu = op(x)
        adj_cpu = op.adjoint(y_cpu)
        op.to("cuda")  # nn.Module.to moves the buffers in place
        assert all(b.device.type == "cuda" for b in op.buffers())
        y_gpu = op(x.cuda())
        assert y_gpu.device.type == "cuda"
        assert torch.allclose(y_gpu.cpu(), y_cpu, atol=1e-5)
        assert torch.allclose(op.adjoint(y_gpu).cpu(), adj_cpu, atol=1e-5)
        assert adjoint_error(op, dtype=torch.float64, device="cuda") < 1e-5
    # buffers left on the CPU are moved to the input's device on the fly
    op = SingleCoilMRI(mask)
    assert op(x.cuda()).device.type == "cuda"
