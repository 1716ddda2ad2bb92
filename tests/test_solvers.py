"""FISTA and CG against closed forms; TV prox against its optimality properties; the power method."""

import torch

from genrecon.operators.finite_difference import div2d, grad2d
from genrecon.solvers.cg import conjugate_gradient
from genrecon.solvers.fista import fista
from genrecon.solvers.power import power_method
from genrecon.solvers.tv import TVProx, tv_norm


def test_fista_matches_closed_form_ridge(gen):
    # min 1/2||Ax - y||^2 + mu/2 ||x||^2  ->  x* = (A^T A + mu I)^{-1} A^T y
    A = torch.randn(40, 25, generator=gen, dtype=torch.float64)
    y = torch.randn(40, generator=gen, dtype=torch.float64)
    mu = 0.3
    exact = torch.linalg.solve(A.T @ A + mu * torch.eye(25, dtype=torch.float64), A.T @ y)
    L = torch.linalg.matrix_norm(A, ord=2).item() ** 2
    res = fista(lambda x: A.T @ (A @ x - y), lambda v, s: v / (1 + s * mu), torch.zeros(25, dtype=torch.float64),
                step=1 / L, n_iter=3000, tol=1e-14)
    assert torch.allclose(res.x, exact, atol=1e-8)
    assert res.iterations < 3000 and res.converged


def test_fista_lasso_soft_threshold_closed_form():
    # with A = I the solution of 1/2||x - y||^2 + lam ||x||_1 is soft-thresholding of y
    y = torch.tensor([2.0, -0.3, 0.05, -1.5], dtype=torch.float64)
    lam = 0.5
    prox = lambda v, s: torch.sign(v) * torch.clamp(v.abs() - s * lam, min=0)  # noqa: E731
    res = fista(lambda x: x - y, prox, torch.zeros(4, dtype=torch.float64), step=0.5, n_iter=200)
    assert torch.allclose(res.x, torch.tensor([1.5, 0.0, 0.0, -1.0], dtype=torch.float64), atol=1e-10)


def test_fista_callback_and_restart(gen):
    seen = []
    A = torch.randn(20, 10, generator=gen, dtype=torch.float64)
    y = torch.randn(20, generator=gen, dtype=torch.float64)
    L = torch.linalg.matrix_norm(A, ord=2).item() ** 2
    exact = torch.linalg.lstsq(A, y).solution
    res = fista(lambda x: A.T @ (A @ x - y), lambda v, s: v, torch.zeros(10, dtype=torch.float64), step=1 / L,
                n_iter=2000, callback=lambda k, x: seen.append(k), restart=True)
    assert seen == list(range(1, 2001))
    assert torch.allclose(res.x, exact, atol=1e-6)


def test_power_method_finds_largest_eigenvalue(gen):
    M = torch.randn(30, 30, generator=gen, dtype=torch.float64)
    S = M.T @ M
    top = torch.linalg.eigvalsh(S).max().item()
    est = power_method(lambda x: S @ x, torch.randn(30, generator=gen, dtype=torch.float64), n_iter=2000, tol=1e-12)
    assert abs(est - top) / top < 1e-6


def _tv_objective(x, b, lam):
    return 0.5 * torch.sum(torch.abs(x - b) ** 2) + lam * tv_norm(x).sum()


def test_tv_prox_decreases_objective_and_is_optimal_locally(gen):
    b = torch.rand(1, 1, 24, 24, generator=gen, dtype=torch.float64)
    lam = 0.1
    x = TVProx(lam, n_iter=500)(b, 1.0)
    f = _tv_objective(x, b, lam)
    assert f < _tv_objective(b, b, lam)
    # no random small perturbation improves the objective (approximate optimality)
    for _ in range(20):
        d = 1e-3 * torch.randn(b.shape, generator=gen, dtype=torch.float64)
        assert _tv_objective(x + d, b, lam) >= f - 1e-9


def test_tv_prox_of_constant_is_constant_and_mean_preserved(gen):
    b = torch.full((1, 1, 16, 16), 0.7, dtype=torch.float64)
    assert torch.allclose(TVProx(0.2, 50)(b, 1.0), b)
    noisy = torch.rand(1, 1, 16, 16, generator=gen, dtype=torch.float64)
    x = TVProx(0.05, 200)(noisy, 1.0)
    assert abs(x.mean() - noisy.mean()) < 1e-10  # Neumann TV prox preserves the mean


def test_tv_prox_nonneg_and_complex(gen):
    b = torch.randn(1, 1, 16, 16, generator=gen, dtype=torch.float64)
    x = TVProx(0.1, 50, nonneg=True)(b, 1.0)
    assert x.min() >= 0
    bc = torch.complex(b, torch.randn(b.shape, generator=gen, dtype=torch.float64))
    xc = TVProx(0.1, 300)(bc, 1.0)
    assert xc.is_complex() and _tv_objective(xc, bc, 0.1) < _tv_objective(bc, bc, 0.1)


def test_tv_prox_lower_bound(gen):
    b = torch.randn(2, 1, 12, 12, generator=gen)
    lower = -0.3 + 0.1 * torch.randn(2, 1, 12, 12, generator=gen)
    x = TVProx(0.1, 100)(b, 1.0, lower)
    assert bool((x >= lower - 1e-6).all())
    free = TVProx(0.1, 100)(b, 1.0)
    assert bool((free < lower - 1e-3).any())  # the bound is active somewhere
    # a zero bound is the nonneg constraint
    torch.testing.assert_close(TVProx(0.1, 100)(b, 1.0, torch.zeros_like(b)), TVProx(0.1, 100, nonneg=True)(b, 1.0))
    # no TV weight: the prox is the projection onto the bound
    torch.testing.assert_close(TVProx(0.0, 10)(b, 1.0, lower), torch.maximum(b, lower))


def test_grad_div_adjoint(gen):
    x = torch.randn(2, 1, 9, 11, generator=gen, dtype=torch.float64)
    p = torch.randn(2, 1, 2, 9, 11, generator=gen, dtype=torch.float64)
    assert abs(torch.sum(grad2d(x) * p) + torch.sum(x * div2d(p))) < 1e-10


def test_cg_solves_a_batch_of_spd_systems_to_the_closed_form(gen):
    # two independent SPD systems in one batch (per-element step sizes), from 0 and from a start
    n = 12
    mats = []
    for _ in range(2):
        B = torch.randn(n, n, generator=gen, dtype=torch.float64)
        mats.append(B @ B.T + 0.5 * torch.eye(n, dtype=torch.float64))
    M = torch.stack(mats)  # (2, n, n)
    b = torch.randn(2, n, generator=gen, dtype=torch.float64)
    exact = torch.linalg.solve(M, b)

    def apply(v):
        return torch.einsum("bij,bj->bi", M, v)

    x = conjugate_gradient(apply, b, n_iter=10 * n, tol=1e-12)
    torch.testing.assert_close(x, exact, rtol=1e-9, atol=1e-9)
    x = conjugate_gradient(apply, b, torch.randn(2, n, generator=gen, dtype=torch.float64), n_iter=10 * n, tol=1e-12)
    torch.testing.assert_close(x, exact, rtol=1e-9, atol=1e-9)
    # an element whose right-hand side is 0 stays at 0 (no division by a vanishing <p, M p>)
    x = conjugate_gradient(apply, torch.stack([b[0], torch.zeros(n, dtype=torch.float64)]), n_iter=10 * n, tol=1e-12)
    torch.testing.assert_close(x[0], exact[0], rtol=1e-9, atol=1e-9)
    assert torch.all(x[1] == 0)


def test_cg_complex_hermitian_and_early_stop(gen):
    n = 8
    B = torch.randn(n, n, generator=gen, dtype=torch.complex128)
    M = B @ B.conj().T + torch.eye(n, dtype=torch.complex128)
    b = torch.randn(1, 1, n, generator=gen, dtype=torch.complex128)
    exact = torch.linalg.solve(M, b[0, 0])

    def apply(v):
        return (v.reshape(1, n) @ M.T).reshape(1, 1, n)

    x = conjugate_gradient(apply, b, n_iter=5 * n, tol=1e-12)
    torch.testing.assert_close(x[0, 0], exact, rtol=1e-9, atol=1e-9)
    # a diagonal M with one distinct eigenvalue: CG is exact after one step, then stops
    calls = []

    def scaled(v):
        calls.append(1)
        return 3.0 * v

    x = conjugate_gradient(scaled, b, n_iter=50)
    torch.testing.assert_close(x, b / 3.0)
    assert len(calls) == 1


def test_linalg_is_the_home_of_the_old_import_paths():
    from genrecon import linalg
    from genrecon.operators import finite_difference as fd
    from genrecon.reconstructors import dps
    from genrecon.solvers import power

    assert power.power_method is linalg.power_method
    assert fd.grad2d is linalg.grad2d and fd.div2d is linalg.div2d
    assert dps.conjugate_gradient is conjugate_gradient
