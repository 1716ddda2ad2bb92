"""latent_inversion: recovery of in-range signals, gradients, seeds, hybrid mode, posterior samplers, errors."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from torch import nn

from genrecon.errors import CheckpointError, ConfigError, ShapeError
from genrecon.operators import MultiCoilMRI, SingleCoilMRI
from genrecon.operators.base import LinearOperator
from genrecon.priors import ConvVAE, DiffusionPrior, save_prior
from genrecon.priors.adapters import ImageAdapter
from genrecon.registry import OPERATORS, RECONSTRUCTORS
from genrecon.reconstructors.latent_inversion import (
    LatentInversion,
    coverage,
    langevin_samples,
    laplace_samples,
    latent_hessian,
    posterior_factor,
    refine_mode,
    soft_threshold,
)


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


class Dense(LinearOperator):
    """``y = M x.flatten()`` with a dense real matrix ``M`` ``(m, n)``: a Gaussian measurement operator."""

    def __init__(self, mat: torch.Tensor, shape: tuple[int, ...]):
        super().__init__(shape, (mat.shape[0],))
        self.register_buffer("mat", mat)

    def _forward(self, x):
        return x.flatten(1) @ self.mat.to(x.dtype).T

    def _adjoint(self, y):
        return (y @ self.mat.to(y.dtype)).reshape(-1, *self.domain_shape)


def gaussian_op(m: int, n: int, g: torch.Generator, dtype=torch.float32) -> Dense:
    return Dense(torch.randn(m, n * n, generator=g, dtype=dtype) / math.sqrt(m), (1, n, n))


class LinearGenerator(nn.Module):
    """``G(z) = W z + b`` reshaped to images: the latent posterior is Gaussian in closed form."""

    kind = "generator"

    def __init__(self, W: torch.Tensor, b: torch.Tensor, shape: tuple[int, int, int]):
        super().__init__()
        self.register_buffer("W", W)
        self.register_buffer("b", b)
        self.image_shape = shape
        self.latent_dim = W.shape[1]

    def decode(self, z):
        return (z @ self.W.T + self.b).reshape(-1, *self.image_shape)


def tiny_vae(size: int = 16, k: int = 8, seed: int = 0) -> ConvVAE:
    vae = ConvVAE.build({"latent_dim": k, "base_channels": 8, "channel_mults": [1, 2], "groups": 4},
                        image_size=size, generator=torch.Generator().manual_seed(seed))
    return vae.requires_grad_(False)


def psnr(x, ref) -> float:
    return 10 * math.log10(1.0 / float(((x.abs() - ref.abs()) ** 2).mean()))


def save_vae(path, vae: ConvVAE, size: int):
    return save_prior(path, vae, kind="generator", arch=vae.arch, arch_params=vae.arch_params(), image_size=size,
                      channels=1, normalisation={"range": [0, 1], "source": "test"}, training={}, data={},
                      steps=0, extra={})


# ---------------------------------------------------------------------------------------------------
# MAP estimation
# ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("optimizer", ["adam", "lbfgs"])
def test_recovers_in_range_signal_from_few_gaussian_measurements(optimizer):
    k, n = 8, 16
    vae = tiny_vae(n, k)
    g = torch.Generator().manual_seed(3)
    op = gaussian_op(6 * k, n, g)  # m = 48 measurements of a 256-pixel image, 6 per latent dimension
    for trial in range(2):
        x_true = vae.decode(torch.randn(1, k, generator=g))
        recon = LatentInversion(prior=vae, restarts=4, steps=300, lam=0.0, tol=0.0, optimizer=optimizer)
        x = recon(op(x_true), op, generator=torch.Generator().manual_seed(trial))
        assert x.shape == x_true.shape
        assert psnr(x, x_true) > 40, (trial, psnr(x, x_true))
        assert recon.info["data_misfit"] < 5e-3 and 0 <= recon.info["best_restart"] < 4
        assert recon.info["restarts"] == 4 and recon.info["iterations"] >= 1


def test_objective_gradient_matches_finite_differences():
    vae = tiny_vae(16, 8).double()
    mask = torch.zeros(16, 16, dtype=torch.bool)
    mask[:, ::3] = True
    ops = [SingleCoilMRI(mask), OPERATORS.get("ct_parallel")(image_size=16, angles=[0.1, 0.9, 2.0])]
    g = torch.Generator().manual_seed(0)
    for op in ops:
        dtype = torch.complex128 if op.complex_domain else torch.float64
        y = op(vae.decode(torch.randn(1, 8, generator=g, dtype=torch.float64)).to(dtype) * 0.8)
        phase = torch.randn(1, 1, 16, 16, generator=g, dtype=torch.float64) if op.complex_domain else None
        adapter = ImageAdapter(complex_domain=op.complex_domain, scale=0.7, phase=phase)
        recon = LatentInversion(prior=vae, lam=0.3)
        z = torch.randn(2, 8, generator=g, dtype=torch.float64, requires_grad=True)
        (grad,) = torch.autograd.grad(recon.objective(z, y, op, adapter).sum(), z)
        fd = torch.zeros_like(grad)
        eps = 1e-6
        with torch.no_grad():
            for i in range(2):
                for j in range(8):
                    e = torch.zeros_like(z)
                    e[i, j] = eps
                    plus, minus = recon.objective(z + e, y, op, adapter), recon.objective(z - e, y, op, adapter)
                    fd[i, j] = (plus[i] - minus[i]) / (2 * eps)
        torch.testing.assert_close(grad, fd, rtol=1e-6, atol=1e-8 * float(grad.abs().max()))


def test_same_seed_same_result_and_other_seed_other_restarts():
    vae = tiny_vae(16, 8)
    g = torch.Generator().manual_seed(1)
    op = gaussian_op(40, 16, g)
    y = op(vae.decode(torch.randn(1, 8, generator=g)))
    starts = []
    recon = LatentInversion(prior=vae, restarts=3, steps=20)
    runs = []
    for seed in (7, 7, 8):
        first = []
        x = recon(y, op, generator=torch.Generator().manual_seed(seed),
                  callback=lambda step, est: first.append(est.clone()) if step == 1 else None)
        runs.append((x, dict(recon.info)))
        starts.append(first[0])
        assert first[0].shape == (1, 1, 16, 16)
    assert torch.equal(runs[0][0], runs[1][0]) and runs[0][1] == runs[1][1]
    assert torch.equal(starts[0], starts[1]) and not torch.equal(starts[0], starts[2])
    assert not torch.equal(runs[0][0], runs[2][0])
    # no generator: a fixed default seed, still reproducible
    assert torch.equal(recon(y, op), recon(y, op))


def test_global_rng_untouched():
    vae = tiny_vae(16, 8)
    op = gaussian_op(30, 16, torch.Generator().manual_seed(0))
    y = op(vae.decode(torch.zeros(1, 8)))
    state = torch.get_rng_state()
    LatentInversion(prior=vae, restarts=2, steps=5, samples=2, sampler="laplace")(y, op)
    assert torch.equal(state, torch.get_rng_state())


def test_hybrid_recovers_out_of_range_spikes_better_than_plain():
    k, n = 8, 16
    vae = tiny_vae(n, k)
    g = torch.Generator().manual_seed(5)
    op = gaussian_op(120, n, g)
    x_gen = vae.decode(torch.randn(1, k, generator=g))
    spikes = torch.zeros(1, 1, n, n)
    spikes.view(-1)[torch.randperm(n * n, generator=g)[:4]] = 0.5
    x_true = x_gen + spikes
    y = op(x_true)
    plain = LatentInversion(prior=vae, restarts=4, steps=400, lam=0.0, tol=0.0)
    hybrid = LatentInversion(prior=vae, restarts=4, steps=400, lam=0.0, tol=0.0, mode="hybrid", tv_weight=0.015)
    x_plain = plain(y, op, generator=torch.Generator().manual_seed(0))
    x_hybrid = hybrid(y, op, generator=torch.Generator().manual_seed(0))
    p_plain, p_hybrid = psnr(x_plain, x_true), psnr(x_hybrid, x_true)
    assert p_hybrid > p_plain + 15 and p_hybrid > 40, (p_plain, p_hybrid)
    # u carries the spikes, about ||spikes|| / ||x||
    expected = float(spikes.norm() / x_true.norm())
    assert abs(hybrid.info["u_fraction"] - expected) < 0.2 * expected
    assert "u_fraction" not in plain.info
    # TV on u runs and helps too (spikes are not piecewise constant, so less)
    tv = LatentInversion(prior=vae, restarts=2, steps=100, mode="hybrid", hybrid_penalty="tv", tv_weight=0.005)
    assert psnr(tv(y, op, generator=torch.Generator().manual_seed(0)), x_true) > p_plain


def test_hybrid_polish_lowers_the_objective_and_warmup_keeps_u_zero():
    k, n = 8, 16
    vae = tiny_vae(n, k)
    g = torch.Generator().manual_seed(6)
    op = gaussian_op(100, n, g)
    x_true = vae.decode(torch.randn(1, k, generator=g)) + 0.1 * torch.randn(1, 1, n, n, generator=g)
    y = op(x_true)
    common = dict(prior=vae, restarts=2, steps=60, lam=0.0, tol=0.0, mode="hybrid", tv_weight=0.005,
                  hybrid_fallback=False)
    objective = {}
    for polish in (0, 50):
        recon = LatentInversion(**common, hybrid_polish=polish)
        recon(y, op, generator=torch.Generator().manual_seed(0))
        objective[polish] = recon.info["objective"]
    assert objective[50] < objective[0], objective
    # a warm-up of all steps and no polish: u stays at its start, zero
    frozen = LatentInversion(**{**common, "steps": 10}, hybrid_warmup=1.0, hybrid_polish=0)
    frozen(y, op, generator=torch.Generator().manual_seed(0))
    assert frozen.info["u_fraction"] == 0.0


def test_hybrid_fallback_keeps_the_lower_objective():
    n = 16
    vae = tiny_vae(n, 8)
    g = torch.Generator().manual_seed(7)
    op = gaussian_op(120, n, g)
    # a piecewise-constant image far from the (random) generator's range
    x_true = torch.zeros(1, 1, n, n)
    x_true[..., 4:12, 3:9] = 1.0
    y = op(x_true)
    common = dict(prior=vae, restarts=2, steps=40, lam=0.0, tol=0.0, mode="hybrid", hybrid_penalty="tv",
                  tv_weight=0.025)
    off = LatentInversion(**common, hybrid_fallback=False)
    on = LatentInversion(**common)
    x_off = off(y, op, generator=torch.Generator().manual_seed(0))
    x_on = on(y, op, generator=torch.Generator().manual_seed(0))
    assert "generator_kept" not in off.info
    assert on.info["objective"] <= off.info["objective"] + 1e-9
    assert on.info["generator_kept"] is False and on.info["u_fraction"] == pytest.approx(1.0)
    assert on.info["objective"] < off.info["objective"]
    assert psnr(x_on, x_true) > psnr(x_off, x_true)
    # an in-range image: the generator stays
    x_gen = vae.decode(torch.randn(1, 8, generator=g))
    good = LatentInversion(**{**common, "steps": 200, "tv_weight": 0.005})
    good(op(x_gen), op, generator=torch.Generator().manual_seed(0))
    assert good.info["generator_kept"] is True


def test_hybrid_nonneg_keeps_the_image_nonnegative():
    n = 16
    vae = tiny_vae(n, 8)
    g = torch.Generator().manual_seed(8)
    op = gaussian_op(60, n, g)  # under-determined: unconstrained solutions go negative
    x_true = torch.zeros(1, 1, n, n)
    x_true[..., 5:11, 5:11] = 1.0
    y = op(x_true)
    for penalty in ("tv", "l1"):
        common = dict(prior=vae, restarts=2, steps=30, lam=0.0, tol=0.0, mode="hybrid", hybrid_penalty=penalty,
                      tv_weight=0.005)
        free = LatentInversion(**common)(y, op, generator=torch.Generator().manual_seed(0))
        kept = LatentInversion(**common, nonneg=True)(y, op, generator=torch.Generator().manual_seed(0))
        assert float(free.min()) < -1e-3, penalty
        assert float(kept.min()) >= -1e-5, (penalty, float(kept.min()))


def test_soft_threshold_is_the_l1_prox():
    v = torch.tensor([3.0, -0.5, 1.0, -2.0])
    torch.testing.assert_close(soft_threshold(v, 1.0), torch.tensor([2.0, 0.0, 0.0, -1.0]))
    c = torch.tensor([3 + 4j, 0.3j])
    torch.testing.assert_close(soft_threshold(c, 1.0), torch.tensor([2.4 + 3.2j, 0j]))


# ---------------------------------------------------------------------------------------------------
# posterior sampling on a linear generator: closed form
# ---------------------------------------------------------------------------------------------------
def linear_problem(seed: int = 0, k: int = 4, sigma: float = 0.1):
    g = torch.Generator().manual_seed(seed)
    W = 0.3 * torch.randn(16, k, generator=g, dtype=torch.float64)
    b = torch.rand(16, generator=g, dtype=torch.float64)
    op = gaussian_op(10, 4, g, torch.float64)
    gen = LinearGenerator(W, b, (1, 4, 4))
    z_true = torch.randn(1, k, generator=g, dtype=torch.float64)
    y = op(gen.decode(z_true)) + sigma * torch.randn(1, 10, generator=g, dtype=torch.float64)
    M = op.mat @ W
    H = M.T @ M / sigma**2 + torch.eye(k, dtype=torch.float64)
    cov = torch.linalg.inv(H)
    mean = cov @ M.T @ (y[0] - op.mat @ b) / sigma**2

    def energy(z):
        return ((z @ M.T + op.mat @ b - y) ** 2).sum(1) / (2 * sigma**2) + 0.5 * (z**2).sum(1)

    return dict(gen=gen, op=op, y=y, W=W, b=b, H=H, cov=cov, mean=mean, energy=energy, sigma=sigma, z_true=z_true)


def check_moments(zs, mean, cov, ess, bias=1.0):
    """Sample mean within 4 standard errors; covariance within 4 standard errors of a Wishart estimate."""
    sd = cov.diagonal().sqrt()
    assert float(((zs.mean(0) - mean) / sd).abs().max()) < 4 / math.sqrt(ess)
    corr = (torch.cov(zs.T) - bias * cov) / (sd[:, None] * sd[None, :])
    assert float(corr.abs().max()) < 4 * math.sqrt(2 / ess), float(corr.abs().max())


def test_hessian_mode_and_laplace_match_closed_form():
    p = linear_problem()
    H = latent_hessian(p["energy"], torch.zeros(4, dtype=torch.float64), chunk=3)
    torch.testing.assert_close(H, p["H"], rtol=1e-10, atol=1e-10)
    chol, precond, clamped = posterior_factor(H)
    assert clamped == 0
    torch.testing.assert_close(precond, p["cov"], rtol=1e-10, atol=1e-12)
    mode = refine_mode(p["energy"], torch.zeros(4, dtype=torch.float64), precond)
    torch.testing.assert_close(mode, p["mean"], rtol=1e-10, atol=1e-12)
    zs = laplace_samples(mode, chol, 4000, torch.Generator().manual_seed(1))
    check_moments(zs, p["mean"], p["cov"], ess=4000)


def test_langevin_matches_closed_form_up_to_its_step_bias():
    p = linear_problem(seed=1)
    chol, _, _ = posterior_factor(p["H"])
    h = 0.05
    start = laplace_samples(p["mean"], chol, 400, torch.Generator().manual_seed(2))
    zs = langevin_samples(p["energy"], start, chol, step=h, burn_in=60, thin=20, per_chain=10,
                          generator=torch.Generator().manual_seed(3))
    assert zs.shape == (4000, 4)
    check_moments(zs, p["mean"], p["cov"], ess=2000, bias=1 / (1 - h / 2))
    # chains started far away forget their start after the burn-in
    far = p["mean"] + 20.0
    zs = langevin_samples(p["energy"], far.repeat(400, 1), chol, step=h, burn_in=300, thin=20, per_chain=5,
                          generator=torch.Generator().manual_seed(4))
    check_moments(zs, p["mean"], p["cov"], ess=1000, bias=1 / (1 - h / 2))


def test_posterior_factor_raises_small_eigenvalues_to_the_prior_curvature():
    H = torch.diag(torch.tensor([-2.0, 0.5, 3.0], dtype=torch.float64))
    chol, precond, clamped = posterior_factor(H)
    assert clamped == 2
    torch.testing.assert_close(precond, torch.diag(torch.tensor([1.0, 1.0, 1 / 3.0], dtype=torch.float64)))
    torch.testing.assert_close(chol @ chol.T, precond)


@pytest.mark.parametrize("sampler", ["laplace", "langevin"])
def test_reconstructor_samples_match_closed_form_image_moments(sampler):
    p = linear_problem(seed=2)
    n = 400
    recon = LatentInversion(prior=p["gen"], restarts=2, steps=100, lam=p["sigma"] ** 2, samples=n, sampler=sampler,
                            noise_sigma=p["sigma"], langevin_step=0.02)
    x = recon(p["y"], p["op"], generator=torch.Generator().manual_seed(4))
    W = p["W"]
    x_mean = (W @ p["mean"] + p["b"]).reshape(1, 1, 4, 4)
    x_sd = (W @ p["cov"] @ W.T).diagonal().sqrt().reshape(1, 4, 4)
    ess = n if sampler == "laplace" else n / 4  # 16 chains, correlated within a chain
    assert float(((x - x_mean).abs() / x_sd).max()) < 4 / math.sqrt(ess)
    assert recon.info["std"].shape == (1, 4, 4)
    assert float((recon.info["std"] / x_sd - 1).abs().max()) < 4 / math.sqrt(2 * ess) + 0.02
    assert recon.info["samples_drawn"] == n and "samples" not in recon.info  # only kept for n <= 16
    assert recon.info["map"].shape == (1, 4, 4) and recon.info["noise_sigma"] == pytest.approx(p["sigma"])
    if sampler == "langevin":
        assert recon.info["chains"] == 16 and recon.info["burn_in"] == 150 and recon.info["thin"] == 50


def test_two_sigma_coverage():
    g = torch.Generator().manual_seed(0)
    truth = torch.randn(100_000, generator=g, dtype=torch.float64)
    assert coverage(torch.zeros_like(truth), torch.ones_like(truth), truth) == pytest.approx(0.9545, abs=0.005)
    assert coverage(torch.zeros_like(truth), torch.ones_like(truth), truth, k=1.0) == pytest.approx(0.6827, abs=0.005)
    c = torch.complex(torch.randn(100_000, generator=g), torch.randn(100_000, generator=g)) / math.sqrt(2)
    assert coverage(torch.zeros_like(c), torch.ones(c.shape), c) == pytest.approx(1 - math.exp(-4), abs=0.005)
    with pytest.raises(ShapeError):
        coverage(torch.zeros(3), torch.ones(3), torch.zeros(4))
    # a calibrated sampler covers the truth: truths drawn from the prior, noise from the model
    hits = []
    for seed in range(30):
        p = linear_problem(seed=100 + seed)
        recon = LatentInversion(prior=p["gen"], restarts=1, steps=50, lam=p["sigma"] ** 2, samples=200,
                                sampler="laplace", noise_sigma=p["sigma"])
        x = recon(p["y"], p["op"], generator=torch.Generator().manual_seed(seed))
        hits.append(coverage(x, recon.info["std"], p["gen"].decode(p["z_true"])))
    assert 0.90 < float(np.mean(hits)) < 0.99, np.mean(hits)
    # an overconfident std (a quarter of it) covers far less
    assert coverage(x, recon.info["std"] / 4, p["gen"].decode(p["z_true"])) < float(np.mean(hits))


# ---------------------------------------------------------------------------------------------------
# MRI and CT operators
# ---------------------------------------------------------------------------------------------------
def test_mri_single_multi_coil_and_ct_shapes_and_fit():
    size = 32
    vae = tiny_vae(size, 8, seed=1)
    x_gen = vae.decode(torch.randn(1, 8, generator=torch.Generator().manual_seed(2)))
    ct = OPERATORS.get("ct_parallel").example(size)
    for op in (SingleCoilMRI.example(size), MultiCoilMRI.example(size), ct):
        x_true = x_gen.to(torch.complex64) if op.complex_domain else x_gen
        y = op(x_true)
        recon = LatentInversion(prior=vae, restarts=2, steps=60, lam=0.0, mode="hybrid", tv_weight=0.005,
                                samples=3, sampler="laplace", intensity_scale="auto")
        x = recon(y, op, generator=torch.Generator().manual_seed(0))
        assert x.shape == (1, *op.domain_shape) and x.dtype == x_true.dtype
        info = recon.info
        assert info["std"].shape == op.domain_shape and info["samples"].shape == (3, *op.domain_shape)
        assert info["map"].dtype == x_true.dtype and not info["std"].is_complex()
        assert info["data_misfit"] < 0.5 and 0.5 < info["intensity_scale"] < 2.0
        assert all(isinstance(info[key], (int, float)) for key in
                   ("data_misfit", "latent_norm", "restarts", "best_restart", "iterations", "u_fraction", "nfe"))
    # MRI with the low-resolution phase and the encoder start runs too
    recon = LatentInversion(prior=vae, restarts=2, steps=5, init="encoder", phase="lowres")
    op = SingleCoilMRI.example(size)
    assert recon(op(x_gen.to(torch.complex64)), op).shape == (1, 1, size, size)


def test_runs_on_the_measurement_device(device):
    vae = tiny_vae(16, 8)
    recon = LatentInversion(prior=vae, restarts=2, steps=5, mode="hybrid", samples=2, sampler="langevin",
                            langevin_step=0.5).to(device)
    op = SingleCoilMRI(torch.ones(16, 16, dtype=torch.bool)).to(device)
    y = op(vae.to(device).decode(torch.zeros(1, 8, device=device)).to(torch.complex64))
    x = recon(y, op, generator=torch.Generator(device=device).manual_seed(0))
    assert x.device.type == torch.device(device).type and recon.info["std"].device == x.device
    assert recon.info["u"].shape == (1, 16, 16) and recon.info["u"].is_complex()


def test_float64_batch_and_callback():
    vae = tiny_vae(16, 8).double()
    op = SingleCoilMRI(torch.ones(16, 16, dtype=torch.bool))
    y = op(vae.decode(torch.randn(2, 8, generator=torch.Generator().manual_seed(0), dtype=torch.float64))
           .to(torch.complex128))
    steps = []
    recon = LatentInversion(prior=vae, restarts=2, steps=10, tol=0.0)
    x = recon(y, op, generator=torch.Generator().manual_seed(0), callback=lambda s, e: steps.append(s))
    assert x.shape == (2, 1, 16, 16) and x.dtype == torch.complex128
    assert steps == list(range(1, 11)) * 2
    assert len(recon.info["data_misfit"]) == 2


def test_encoder_init_starts_at_the_encoder_mean_of_the_adjoint_image():
    size = 16
    vae = tiny_vae(size, 8)
    op = SingleCoilMRI(torch.ones(size, size, dtype=torch.bool))  # full sampling: A^H y is the image itself
    x_true = 0.8 * torch.rand(1, 1, size, size, generator=torch.Generator().manual_seed(0))
    y = op(x_true.to(torch.complex64))
    first = []
    recon = LatentInversion(prior=vae, restarts=1, steps=1, init="encoder")
    recon(y, op, generator=torch.Generator().manual_seed(0), callback=lambda s, est: first.append(est))
    expected = vae.decode(vae.encode(x_true)[0]).to(torch.complex64)
    torch.testing.assert_close(first[0], expected, atol=1e-5, rtol=0)
    # an explicit x0 is encoded instead
    first.clear()
    recon(y, op, x0=torch.zeros(1, 1, size, size, dtype=torch.complex64), callback=lambda s, est: first.append(est))
    torch.testing.assert_close(first[0], vae.decode(vae.encode(torch.zeros(1, 1, size, size))[0]).to(torch.complex64),
                               atol=1e-5, rtol=0)


# ---------------------------------------------------------------------------------------------------
# priors, checkpoints and parameters
# ---------------------------------------------------------------------------------------------------
def test_checkpoint_prior_registry_and_device(tmp_path):
    vae = tiny_vae(16, 8)
    path = save_vae(tmp_path / "g.pt", vae, 16)
    recon = RECONSTRUCTORS.build("latent_inversion", {"prior": str(path), "steps": 5, "restarts": 1})
    assert recon.to("cpu") is recon
    assert recon.latent_shape == (8,) and recon.label == str(path)
    op = SingleCoilMRI(torch.ones(16, 16, dtype=torch.bool))
    x = recon(op(vae.decode(torch.zeros(1, 8)).to(torch.complex64)), op)
    assert x.shape == (1, 1, 16, 16)
    # wrong size: one line that says how to fix it
    big = SingleCoilMRI(torch.ones(32, 32, dtype=torch.bool))
    with pytest.raises(ShapeError) as err:
        recon(torch.zeros(1, 1, 32, 32, dtype=torch.complex64), big)
    assert "is 16x16 but the images are 32x32: set data.size: 16" in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(ShapeError, match="expects complex measurements"):
        recon(torch.zeros(1, 16, 16, dtype=torch.complex64), op)  # a missing channel dim must not broadcast


def test_wrong_prior_kind_and_missing_file(tmp_path):
    params = {"unet": {"base_channels": 8, "channel_mults": [1], "attention_levels": [], "groups": 4},
              "schedule": {"name": "vp", "timesteps": 10}}
    diffusion = DiffusionPrior.build(params, image_size=16, generator=torch.Generator().manual_seed(0))
    path = save_prior(tmp_path / "d.pt", diffusion, kind="diffusion", arch=diffusion.arch,
                      arch_params=diffusion.arch_params(), image_size=16, channels=1,
                      normalisation={"range": [0, 1], "source": "test"}, training={}, data={}, steps=0, extra={})
    for prior in (str(path), diffusion):
        with pytest.raises(CheckpointError) as err:
            LatentInversion(prior=prior)
        assert "latent_inversion needs a 'generator' prior" in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(CheckpointError, match="not found"):
        LatentInversion(prior=str(tmp_path / "missing.pt"))
    with pytest.raises(CheckpointError, match="no pretrained prior named"):
        LatentInversion(prior="pretrained:no-such-prior")
    with pytest.raises(CheckpointError, match="latent_dim"):
        LatentInversion(prior=nn.Linear(2, 2))


def test_parameter_problems_are_collected():
    vae = tiny_vae(16, 8)
    with pytest.raises(ConfigError) as err:
        LatentInversion(prior=vae, restarts=0, lr=-1, mode="mixed", sampler="mcmc", phase="x", noise_sigma=0.0)
    assert len(err.value.problems) == 6
    with pytest.raises(ConfigError, match="optimizer 'lbfgs' needs a smooth objective"):
        LatentInversion(prior=vae, optimizer="lbfgs", mode="hybrid")
    with pytest.raises(ConfigError, match="hybrid_warmup must be in"):
        LatentInversion(prior=vae, mode="hybrid", hybrid_warmup=1.5)
    with pytest.raises(ConfigError, match="langevin_step must be < 1"):
        LatentInversion(prior=vae, langevin_step=1.5)
    with pytest.raises(ConfigError, match="needs a prior with an encoder"):
        LatentInversion(prior=LinearGenerator(torch.ones(4, 2), torch.zeros(4), (1, 2, 2)), init="encoder")


def test_pipeline_run_saves_std_map(tmp_path):
    from conftest import quick_mri_config
    from genrecon.config import load_config_dict
    from genrecon.pipeline import run

    path = save_vae(tmp_path / "g.pt", tiny_vae(32, 8), 32)
    cfg = quick_mri_config(tmp_path / "run")
    cfg["data"]["params"]["size"] = 32
    cfg["reconstructors"] = [{"name": "latent_inversion",
                              "params": {"prior": str(path), "steps": 10, "restarts": 2, "samples": 2,
                                         "sampler": "laplace"}}]
    run(load_config_dict(cfg))
    case = next((tmp_path / "run" / "cases").iterdir())
    assert np.load(case / "latent_inversion_std.npy").shape == (32, 32)
    record = json.loads((case / "latent_inversion.json").read_text())
    assert record["restarts"] == 2 and "data_misfit" in record
    # the config validator catches a prior of the wrong size before any work
    cfg["data"]["params"]["size"] = 64
    cfg["reconstructors"][0]["params"]["prior"] = str(tmp_path / "nope.pt")
    with pytest.raises(ConfigError, match="nope.pt not found"):
        load_config_dict(cfg)


def test_anchored_mode_beats_the_penalty_alone_on_an_in_range_image_and_reduces_to_it_without_anchor():
    """``mode: anchored``: TV on x plus ``anchor ||x - T(G(z))||^2``, alternated with fits of G(z) to x.

    From few Gaussian measurements of a generator image, TV alone (what the anchored mode starts from) is poor;
    the anchor pulls the image to the generator's fit and must do clearly better. With a vanishing anchor weight
    the result is the TV solution itself. Images stay >= 0 with nonneg."""
    k, n = 8, 16
    vae = tiny_vae(n, k)
    g = torch.Generator().manual_seed(11)
    op = gaussian_op(64, n, g)  # 64 measurements of 256 pixels
    x_true = vae.decode(torch.randn(1, k, generator=g))
    y = op(x_true)
    common = dict(prior=vae, restarts=4, steps=300, lam=0.0, tol=0.0, mode="anchored", hybrid_penalty="tv",
                  tv_weight=0.005, nonneg=True)
    tiny = LatentInversion(**common, anchor_weight=1e-9)
    x_tv = tiny(y, op, generator=torch.Generator().manual_seed(0))
    anchored = LatentInversion(**common, anchor_weight=0.05, anchor_rounds=3)
    x_a = anchored(y, op, generator=torch.Generator().manual_seed(0))
    p_tv, p_a = psnr(x_tv, x_true), psnr(x_a, x_true)
    assert p_a > p_tv + 5, (p_tv, p_a)  # measured 30.5 vs 23.1 dB (the TV bias in x limits the z fits)
    assert anchored.info["anchor_rounds"] == 3 and anchored.info["iterations"] == 300
    assert anchored.info["u_fraction"] < 0.1 and float(x_a.min()) >= -1e-6
    # no anchor: the penalty-only solution (the hybrid's fallback, here run to convergence), whatever G does
    with torch.no_grad():
        ref = tiny._polish(None, torch.zeros_like(x_tv), y, op, 3000)
    assert float((x_tv - ref).norm() / ref.norm()) < 2e-3
    # MAP only, Adam only
    with pytest.raises(ConfigError, match="MAP estimate only"):
        LatentInversion(prior=vae, mode="anchored", samples=4)
    with pytest.raises(ConfigError, match="anchor_weight"):
        LatentInversion(prior=vae, mode="anchored", anchor_weight=0.0)


def test_hybrid_weight_is_the_deprecated_name_of_twice_tv_weight(tmp_path):
    """``hybrid_weight: w`` (the old weight, without fista_tv's 1/2 on the data term) is read as ``tv_weight: w / 2``:
    the same objective, bit for bit the same result, with a DeprecationWarning naming tv_weight. Both names at once
    are refused; a config file with the old name still validates and builds the same method."""
    from conftest import quick_mri_config
    from genrecon.config import built_methods, deprecations, load_config_dict

    n = 16
    vae = tiny_vae(n, 8)
    g = torch.Generator().manual_seed(9)
    op = gaussian_op(80, n, g)
    x_true = torch.zeros(1, 1, n, n)
    x_true[..., 4:12, 3:9] = 1.0
    y = op(x_true)
    for mode, penalty in (("hybrid", "tv"), ("hybrid", "l1"), ("anchored", "tv")):
        common = dict(prior=vae, restarts=2, steps=20, tol=0.0, mode=mode, hybrid_penalty=penalty, hybrid_polish=20,
                      nonneg=True)
        new = LatentInversion(**common, tv_weight=0.02)
        with pytest.warns(DeprecationWarning, match=r"write tv_weight: 0\.02 \(hybrid_weight / 2\)"):
            old = LatentInversion(**common, hybrid_weight=0.04)
        x_new = new(y, op, generator=torch.Generator().manual_seed(0))
        x_old = old(y, op, generator=torch.Generator().manual_seed(0))
        assert torch.equal(x_new, x_old), (mode, penalty)
        assert new.info["objective"] == old.info["objective"] and old.tv_weight == 0.02
        # the weight acts: half of it gives another image
        other = LatentInversion(**common, tv_weight=0.01)(y, op, generator=torch.Generator().manual_seed(0))
        assert not torch.equal(other, x_new), (mode, penalty)
    assert LatentInversion(prior=vae).tv_weight == 0.005  # the old default hybrid_weight 0.01, halved
    with pytest.raises(ConfigError, match="give tv_weight only"):
        LatentInversion(prior=vae, mode="hybrid", tv_weight=0.01, hybrid_weight=0.02)
    with pytest.warns(DeprecationWarning), pytest.raises(ConfigError, match="hybrid_weight must be a non-negative"):
        LatentInversion(prior=vae, mode="hybrid", hybrid_weight=-1.0)
    with pytest.raises(ConfigError, match="tv_weight must be a non-negative"):
        LatentInversion(prior=vae, mode="hybrid", tv_weight=-1.0)
    # a config file with the old name
    path = save_vae(tmp_path / "g.pt", tiny_vae(32, 8), 32)
    cfg = quick_mri_config(tmp_path / "run")
    cfg["data"]["params"]["size"] = 32
    params = {"prior": str(path), "mode": "hybrid", "hybrid_penalty": "tv"}
    cfg["reconstructors"] = [{"name": "latent_inversion", "params": {**params, "hybrid_weight": 0.004}}]
    loaded = load_config_dict(cfg)  # validation collects the warning for the CLI to show
    assert any("tv_weight" in note for note in deprecations(loaded))
    (method,) = built_methods(loaded)
    assert method.tv_weight == 0.002 and method._w == 0.004
    cfg["reconstructors"][0]["params"]["tv_weight"] = 0.002
    with pytest.raises(ConfigError, match=r"reconstructors\.0\.params: .*give tv_weight only"):
        load_config_dict(cfg)
