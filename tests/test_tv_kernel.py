"""The fused CPU kernel of the TV prox (:mod:`genrecon.solvers.tv_kernel`, issue 17 part 2) against the torch loop.

Both are checked against the textbook iteration in ``tests/test_fast_fista_tv.py``; here: the shapes a row-by-row
kernel could get wrong (one row, one column, odd sizes, batches), every constraint, ``out=``, switching between the
two paths, and whole FISTA-TV runs. No timing (speed lives in ``genrecon benchmark scaling``).
"""

from __future__ import annotations

import functools

import pytest
import torch

from genrecon.operators.mri import SingleCoilMRI
from genrecon.registry import RECONSTRUCTORS
from genrecon.solvers.tv import TVProx


def _pair(b, lower, nonneg, calls=3, n_iter=5):
    """The last outputs and duals of the two paths over ``calls`` warm-started calls with changing steps."""
    fused, plain = TVProx(0.2, n_iter, nonneg=nonneg), TVProx(0.2, n_iter, nonneg=nonneg, kernel=False)
    for k in range(calls):
        bk, step = b * (1 + 0.2 * k), 0.5 + 0.3 * k
        x, y = fused(bk, step, lower), plain(bk, step, lower)
    return x, y, fused.p, plain.p


@pytest.mark.parametrize("shape", [(1, 1, 1, 7), (1, 1, 6, 1), (1, 1, 1, 1), (2, 1, 5, 9), (3, 2, 8, 8)])
@pytest.mark.parametrize("dtype", [torch.complex128, torch.float64])
def test_fused_kernel_equals_the_torch_loop_on_awkward_shapes(shape, dtype):
    g = torch.Generator().manual_seed(sum(shape))
    b = torch.randn(*shape, dtype=dtype, generator=g)
    x, y, p, q = _pair(b, None, nonneg=False)
    assert x.shape == b.shape and x.dtype == dtype
    torch.testing.assert_close(x, y, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(p, q, rtol=1e-12, atol=1e-12)
    assert bool((x - b).abs().max() > 1e-3) or min(shape[-2:]) == 1  # the prox did something (not a copy)


@pytest.mark.parametrize("lower", [False, True])
def test_fused_kernel_constraints_equal_the_torch_loop(lower):
    g = torch.Generator().manual_seed(11)
    b = torch.randn(2, 1, 12, 17, dtype=torch.float64, generator=g)
    lo = torch.randn(2, 1, 12, 17, dtype=torch.float64, generator=g) * 0.3 if lower else None
    x, y, p, q = _pair(b, lo, nonneg=True)
    torch.testing.assert_close(x, y, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(p, q, rtol=1e-12, atol=1e-12)
    floor = lo if lower else torch.zeros_like(b)
    assert bool((x >= floor - 1e-12).all()) and bool((x <= floor + 1e-12).any())  # the bound binds somewhere


def test_fused_kernel_writes_into_out_and_leaves_its_input_alone():
    g = torch.Generator().manual_seed(2)
    b = torch.randn(1, 1, 16, 16, dtype=torch.complex64, generator=g)
    keep = b.clone()
    out = torch.full_like(b, float("nan"))
    got = TVProx(0.1, 5)(b, 1.0, out=out)
    assert got is out and torch.equal(b, keep)
    torch.testing.assert_close(out, TVProx(0.1, 5, kernel=False)(b, 1.0), rtol=1e-5, atol=1e-6)


def test_switching_paths_starts_a_fresh_dual():
    g = torch.Generator().manual_seed(4)
    b = torch.randn(1, 1, 10, 10, dtype=torch.float64, generator=g)
    prox = TVProx(0.2, 3)
    prox(b, 1.0)
    prox.kernel = False
    first_torch = prox(b, 1.0)  # a cold start on the torch path, as a new prox
    torch.testing.assert_close(first_torch, TVProx(0.2, 3, kernel=False)(b, 1.0), rtol=1e-12, atol=1e-12)


def test_fista_tv_with_the_fused_kernel_equals_the_torch_loop(monkeypatch):
    import genrecon.reconstructors.fista_tv as module

    g = torch.Generator().manual_seed(8)
    n = 32
    mask = torch.rand(n, generator=g) < 0.35
    mask[n // 2 - 3: n // 2 + 3] = True
    op = SingleCoilMRI(mask, shape=(n, n))
    y = op(torch.randn(2, 1, n, n, dtype=torch.complex128, generator=g))
    recon = RECONSTRUCTORS.build("fista_tv", {"tv_weight": 0.02, "n_iter": 30})
    fused = recon(y, op)
    monkeypatch.setattr(module, "TVProx", functools.partial(TVProx, kernel=False))
    plain = recon(y, op)
    torch.testing.assert_close(fused, plain, rtol=1e-10, atol=1e-10)
    assert bool((fused - op.adjoint(y)).abs().max() > 1e-3)


def test_fused_kernel_fills_a_strided_out():
    g = torch.Generator().manual_seed(6)
    b = torch.randn(1, 1, 12, 10, dtype=torch.complex128, generator=g)
    out = torch.zeros(1, 1, 10, 12, dtype=torch.complex128).transpose(-1, -2)  # not contiguous
    got = TVProx(0.1, 5)(b, 1.0, out=out)
    assert got is out
    torch.testing.assert_close(out, TVProx(0.1, 5, kernel=False)(b, 1.0), rtol=1e-12, atol=1e-12)
