"""The optimised FISTA-TV hot loop against straightforward implementations written out here (issue 17).

The TV prox (padded dual buffers, strided views, rsqrt projection, lerp momentum), the shift-free MRI normal
operator (uncentred mask, 1-D FFTs for column masks) and FISTA-TV itself must compute the textbook iteration:
equal to rounding in float64. No timing here (speed lives in ``genrecon benchmark scaling``).
"""

from __future__ import annotations

import math

import pytest
import torch

from genrecon.linalg.finite_difference import div2d, grad2d
from genrecon.operators.base import LinearOperator
from genrecon.operators.fft import fft2c, ifft2c
from genrecon.operators.mri import MultiCoilMRI, SingleCoilMRI, _example_maps
from genrecon.registry import RECONSTRUCTORS
from genrecon.solvers.tv import TVProx
from genrecon.testing import check_operator


class ReferenceTVProx:
    """FGP (Beck & Teboulle 2009) as in the paper, on complex or real tensors, with a warm-started dual."""

    def __init__(self, lam, n_iter, nonneg=False):
        self.lam, self.n_iter, self.nonneg, self.p = lam, n_iter, nonneg, None

    def __call__(self, b, step, lower=None):
        lam = self.lam * step
        constrain = (self.nonneg or lower is not None) and not b.is_complex()

        def project_c(x):
            if not constrain:
                return x
            return x.clamp(min=0) if lower is None else torch.maximum(x, lower)

        p = self.p if self.p is not None else torch.zeros((*b.shape[:-2], 2, *b.shape[-2:]), dtype=b.dtype)
        q, t = p, 1.0
        for _ in range(self.n_iter):
            x = project_c(b + lam * div2d(q))
            g = q + grad2d(x) / (8 * lam)
            # isotropic: one norm per pixel over both directions (and the real and imaginary parts)
            norm = torch.sqrt((g.abs() ** 2).sum(-3, keepdim=True)).clamp(min=1.0)
            p_new = g / norm
            t_new = (1 + math.sqrt(1 + 4 * t * t)) / 2
            q = p_new + (t - 1) / t_new * (p_new - p)
            p, t = p_new, t_new
        self.p = p
        return project_c(b + lam * div2d(p))


CASES = [  # shape, complex, nonneg, lower bound
    ((1, 1, 24, 24), True, False, False),
    ((3, 1, 17, 23), True, False, False),
    ((2, 3, 16, 9), False, False, False),
    ((2, 1, 13, 20), False, True, False),
    ((1, 2, 11, 12), False, False, True),
]


@pytest.mark.parametrize("kernel", [True, False], ids=["fused", "torch"])
@pytest.mark.parametrize("shape,is_complex,nonneg,lower", CASES)
def test_tv_prox_equals_the_textbook_iteration_over_warm_started_calls(shape, is_complex, nonneg, lower, kernel):
    g = torch.Generator().manual_seed(7)
    dtype = torch.complex128 if is_complex else torch.float64
    b = torch.randn(*shape, dtype=dtype, generator=g)
    lo = torch.randn(*shape, dtype=torch.float64, generator=g) - 0.5 if lower else None
    fast, ref = TVProx(0.3, 5, nonneg=nonneg, kernel=kernel), ReferenceTVProx(0.3, 5, nonneg=nonneg)
    outputs = []
    for k in range(4):  # the dual is carried from call to call, as inside FISTA
        bk = b + 0.1 * k * torch.randn(*shape, dtype=dtype, generator=g)
        step = 0.5 + 0.25 * k
        expected, got = ref(bk, step, lo), fast(bk, step, lo)
        assert got.shape == bk.shape and got.dtype == bk.dtype
        torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)
        outputs.append((got, expected))
    for got, expected in outputs:  # an output is the caller's: later calls never write to it
        torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kernel", [True, False], ids=["fused", "torch"])
def test_tv_prox_float32_agrees_to_rounding_and_a_new_shape_starts_cold(kernel):
    g = torch.Generator().manual_seed(3)
    b = torch.randn(2, 1, 40, 33, dtype=torch.complex64, generator=g)
    fast, ref = TVProx(0.05, 5, kernel=kernel), ReferenceTVProx(0.05, 5)
    for _ in range(3):
        torch.testing.assert_close(fast(b, 1.0), ref(b, 1.0), rtol=1e-5, atol=1e-5)
    small = b[:1, :, :8, :8].contiguous()  # another shape: a fresh (zero) dual, like the reference's new prox
    torch.testing.assert_close(fast(small, 1.0), ReferenceTVProx(0.05, 5)(small, 1.0), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kernel", [True, False], ids=["fused", "torch"])
def test_tv_prox_dual_is_the_reference_dual(kernel):
    g = torch.Generator().manual_seed(5)
    b = torch.randn(1, 1, 10, 14, dtype=torch.complex128, generator=g)
    fast, ref = TVProx(0.2, 7, kernel=kernel), ReferenceTVProx(0.2, 7)
    fast(b, 1.0), ref(b, 1.0)
    # reference dual (..., 2 directions, H, W) complex -> (L, K = re/im, 2, H, W) real
    expected = torch.view_as_real(ref.p).movedim(-1, -4).reshape(1, 2, 2, 10, 14)
    torch.testing.assert_close(fast.p, expected, rtol=1e-12, atol=1e-12)


def _masks(h, w, g):
    cols = torch.rand(w, generator=g) < 0.3
    cols[w // 2 - 1: w // 2 + 2] = True
    points = torch.rand(h, w, generator=g) < 0.3
    return {"columns": cols.expand(h, w).clone(), "2-D": points}


@pytest.mark.parametrize("h,w", [(16, 16), (15, 21), (12, 9)])
def test_shift_free_normal_equals_the_centred_definition(h, w):
    g = torch.Generator().manual_seed(h * w)
    x = torch.randn(2, 1, h, w, dtype=torch.complex128, generator=g)
    for name, mask in _masks(h, w, g).items():
        single = SingleCoilMRI(mask)
        expected = ifft2c(mask * fft2c(x))  # F^H M F with the centred FFT's definition
        torch.testing.assert_close(single.normal(x), expected, rtol=1e-12, atol=1e-12, msg=name)
        check_operator(single)
        maps = _example_maps(3, max(h, w), g)[:, :h, :w].to(torch.complex128)
        multi = MultiCoilMRI(maps, mask)
        expected = (maps.conj() * ifft2c(mask * fft2c(maps * x))).sum(1, keepdim=True)
        torch.testing.assert_close(multi.normal(x), expected, rtol=1e-12, atol=1e-12, msg=name)
        torch.testing.assert_close(multi.normal(x), multi.adjoint(multi(x)), rtol=1e-12, atol=1e-12, msg=name)
        check_operator(multi)


def test_single_coil_norm_is_exactly_one_and_the_power_method_agrees():
    g = torch.Generator().manual_seed(0)
    for mask in _masks(16, 20, g).values():
        op = SingleCoilMRI(mask)
        assert op.norm_squared() == 1.0
        assert op.norm(n_iter=50, generator=g) == pytest.approx(1.0, abs=1e-6)
    assert SingleCoilMRI(torch.zeros(8, 8, dtype=torch.bool)).norm_squared() == 0.0


def test_multi_coil_norm_with_a_full_mask_is_the_largest_coil_energy():
    g = torch.Generator().manual_seed(4)
    maps = _example_maps(3, 16, g).to(torch.complex128) * torch.linspace(0.5, 1.2, 16, dtype=torch.float64)
    full = MultiCoilMRI(maps, torch.ones(16, 16, dtype=torch.bool))
    expected = float(maps.abs().square().sum(0).max())
    assert full.norm_squared() == pytest.approx(expected, rel=1e-12)
    assert full.norm(n_iter=500, tol=0.0, generator=g) ** 2 == pytest.approx(expected, rel=1e-3)
    sub = MultiCoilMRI(maps, _masks(16, 16, g)["columns"])  # undersampled: the power method, below the bound
    assert 0 < sub.norm_squared() <= expected * (1 + 1e-6)
    assert sub.norm_squared() == pytest.approx(sub.norm(n_iter=50, tol=1e-5, generator=torch.Generator().manual_seed(0))
                                               ** 2, rel=1e-4)


def _reference_fista_tv(y, op, lam, n_iter, inner):
    """FISTA-TV written out: centred operator, textbook prox, no buffers."""
    aty = op.adjoint(y)
    step = 1.0 / (1.01 * op.norm_squared())
    prox = ReferenceTVProx(lam, inner)
    x = z = aty
    t = 1.0
    for _ in range(n_iter):
        x_new = prox(z - step * op.adjoint(op(z) - y), step)
        t_new = (1 + math.sqrt(1 + 4 * t * t)) / 2
        z = x_new + (t - 1) / t_new * (x_new - x)
        x, t = x_new, t_new
    return x


@pytest.mark.parametrize("coils", [0, 4])
def test_fista_tv_on_mri_is_the_textbook_algorithm(coils):
    g = torch.Generator().manual_seed(11)
    n = 24
    mask = _masks(n, n, g)["columns"]
    op = SingleCoilMRI(mask) if coils == 0 else MultiCoilMRI(_example_maps(coils, n, g).to(torch.complex128), mask)
    x_true = torch.zeros(1, 1, n, n, dtype=torch.complex128)
    x_true[..., 6:18, 8:16] = 1.0
    y = op(x_true) + 0.01 * torch.randn(1, *op.range_shape, dtype=torch.complex128, generator=g)
    got = RECONSTRUCTORS.build("fista_tv", {"tv_weight": 0.02, "n_iter": 30, "inner_iter": 5})(y, op)
    expected = _reference_fista_tv(y, op, 0.02, 30, 5)
    torch.testing.assert_close(got, expected, rtol=1e-9, atol=1e-9)
    assert float((got - x_true).norm()) < float((op.adjoint(y) - x_true).norm())  # and it did something


def test_fista_tv_on_a_real_nonneg_problem_is_the_textbook_algorithm():
    g = torch.Generator().manual_seed(2)
    n = 12
    m = torch.randn(100, n * n, generator=g, dtype=torch.float64) / n

    class Dense(LinearOperator):  # real (1, n, n) images, 100 Gaussian measurements
        def __init__(self):
            super().__init__((1, n, n), (100,))

        def _forward(self, x):
            return x.flatten(1) @ m.T

        def _adjoint(self, y):
            return (y @ m).reshape(y.shape[0], 1, n, n)

    op = Dense()
    x_true = torch.zeros(1, 1, n, n, dtype=torch.float64)
    x_true[..., 3:9, 4:8] = 1.0
    y = op(x_true)
    got = RECONSTRUCTORS.build("fista_tv", {"tv_weight": 0.01, "n_iter": 25, "nonneg": True})(y, op)
    aty = op.adjoint(y)
    step = 1.0 / (1.01 * op.norm_squared())
    prox = ReferenceTVProx(0.01, 5, nonneg=True)
    x = z = aty
    t = 1.0
    for _ in range(25):
        x_new = prox(z - step * op.adjoint(op(z) - y), step)
        t_new = (1 + math.sqrt(1 + 4 * t * t)) / 2
        z = x_new + (t - 1) / t_new * (x_new - x)
        x, t = x_new, t_new
    torch.testing.assert_close(got, x, rtol=1e-10, atol=1e-10)
