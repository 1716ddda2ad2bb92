"""The allocation-free FISTA-TV loop (issue 17, part 2): buffers reused across iterations give the same iterates.

``fista(..., out=True)`` (grad and prox write into buffers made once) against the plain loop, bit for bit; the TV
prox's ``out=`` against its own fresh result; a callback's iterates are never written to afterwards; FISTA-TV with
a start of another precision still promotes. No timing here (speed lives in ``genrecon benchmark scaling``).
"""

from __future__ import annotations

import pytest
import torch

from genrecon.operators.mri import SingleCoilMRI
from genrecon.registry import RECONSTRUCTORS
from genrecon.solvers.fista import fista
from genrecon.solvers.tv import TVProx


def _mri(n: int = 24, seed: int = 3):
    g = torch.Generator().manual_seed(seed)
    mask = torch.rand(n, generator=g) < 0.4
    mask[n // 2 - 2: n // 2 + 2] = True
    op = SingleCoilMRI(mask, shape=(n, n))
    x = torch.randn(2, 1, n, n, dtype=torch.complex128, generator=g)
    return op, op(x)


@pytest.mark.parametrize("restart,tol", [(False, 0.0), (True, 0.0), (False, 1e-3)])
def test_fista_with_buffers_equals_the_plain_loop_bit_for_bit(restart, tol):
    op, y = _mri()
    aty = op.adjoint(y)
    results = []
    for out in (False, True):
        prox = TVProx(0.05, 5)

        def grad_f(x, out=None):
            return torch.sub(op.normal(x), aty, out=out)

        res = fista(grad_f, prox, aty, step=0.9, n_iter=25, tol=tol, restart=restart, out=out)
        results.append(res)
    assert results[0].iterations == results[1].iterations
    assert torch.equal(results[0].x, results[1].x)


def test_a_callback_keeps_every_iterate_it_is_given():
    op, y = _mri()
    aty = op.adjoint(y)
    kept = []
    fista(lambda x, out=None: torch.sub(op.normal(x), aty, out=out), TVProx(0.05, 5), aty, step=0.9, n_iter=8,
          callback=lambda k, x: kept.append((x, x.clone())), out=True)
    assert len(kept) == 8 and len({id(x) for x, _ in kept}) == 8
    for x, copy in kept:
        assert torch.equal(x, copy)


def test_fista_without_buffers_accepts_a_prox_that_returns_its_input():
    b = torch.tensor([3.0, -1.0])
    res = fista(lambda x: x - b, lambda v, s: v, torch.zeros(2), step=0.5, n_iter=60)
    torch.testing.assert_close(res.x, b)


@pytest.mark.parametrize("dtype,nonneg,lower", [(torch.complex64, False, False), (torch.float32, True, False),
                                                (torch.float64, False, True)])
@pytest.mark.parametrize("kernel", [True, False], ids=["fused", "torch"])
def test_tv_prox_out_equals_a_fresh_result_and_is_the_callers(dtype, nonneg, lower, kernel):
    g = torch.Generator().manual_seed(5)
    b = torch.randn(2, 1, 19, 27, dtype=dtype, generator=g)
    lo = torch.randn(2, 1, 19, 27, dtype=b.real.dtype, generator=g) - 0.5 if lower else None
    fresh, into = TVProx(0.2, 5, nonneg=nonneg, kernel=kernel), TVProx(0.2, 5, nonneg=nonneg, kernel=kernel)
    buffers = [torch.empty_like(b), torch.empty_like(b)]
    for k in range(4):  # warm-started calls, writing into alternating buffers
        expected = fresh(b + 0.1 * k, 0.7, lo)
        got = into(b + 0.1 * k, 0.7, lo, out=buffers[k % 2])
        assert got is buffers[k % 2] and torch.equal(got, expected)
    assert all(buf.data_ptr() != d.data_ptr() for buf in buffers for d in into._ws.interior)
    assert torch.equal(TVProx(0.0, 5)(b, 1.0, out=buffers[0]), b)  # lam 0: the input (projected if constrained)


def test_fista_tv_with_a_start_of_another_precision_promotes_as_before():
    op, y = _mri()
    y = y.to(torch.complex64)
    recon = RECONSTRUCTORS.build("fista_tv", {"tv_weight": 0.01, "n_iter": 5})
    x = recon(y, op, x0=op.adjoint(y).to(torch.complex128))
    assert x.dtype == torch.complex128 and x.shape == (2, 1, 24, 24)
