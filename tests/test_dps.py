"""DPS and the exact conditional sampler checked against an analytic Gaussian posterior."""

from __future__ import annotations

import pytest
import torch

from genrecon.errors import CheckpointError, ConfigError, ShapeError
from genrecon.operators.base import LinearOperator
from genrecon.priors.gaussian import GaussianDiffusionPrior
from genrecon.registry import OPERATORS, RECONSTRUCTORS

SIZE = 4
D = SIZE * SIZE


class Dense(LinearOperator):
    """y = M vec(x) for a dense matrix M (m, d)."""

    def __init__(self, M: torch.Tensor):
        super().__init__((1, SIZE, SIZE), (M.shape[0],))
        self.register_buffer("M", M)

    def _forward(self, x):
        return x.reshape(x.shape[0], -1) @ self.M.to(x.dtype).T

    def _adjoint(self, y):
        return (y @ self.M.to(y.dtype)).reshape(y.shape[0], 1, SIZE, SIZE)


def _problem(sigma_y: float, m: int = 6, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    coords = torch.stack(torch.meshgrid(torch.arange(SIZE), torch.arange(SIZE), indexing="ij"), -1).reshape(-1, 2)
    dist2 = ((coords[:, None, :] - coords[None, :, :]) ** 2).sum(-1).double()
    cov = 0.04 * torch.exp(-dist2 / 4.0) + 1e-3 * torch.eye(D, dtype=torch.float64)
    mean = 0.1 * torch.randn(D, generator=g, dtype=torch.float64)
    prior = GaussianDiffusionPrior(mean, cov, size=SIZE)
    A = torch.randn(m, D, generator=g, dtype=torch.float64) / D**0.5
    x_true = mean + torch.linalg.cholesky(cov) @ torch.randn(D, generator=g, dtype=torch.float64)
    y = A @ x_true + sigma_y * torch.randn(m, generator=g, dtype=torch.float64)
    return prior, A, y


def _draw(prior, A, y, *, n, steps, zeta, seed=1, eta=1.0, consistency="none"):
    recon = RECONSTRUCTORS.build("dps", {"prior": prior, "steps": steps, "zeta": zeta, "samples": n, "eta": eta,
                                         "clip": False, "consistency": consistency})
    op = Dense(A).double()
    est = recon(y[None].double(), op, generator=torch.Generator().manual_seed(seed))
    return est, recon.info["std"], recon


def _sample_moments(prior, A, y, n, steps, seed=1):
    """Run the shared sampler with the exact conditional denoiser; return sample mean and covariance."""
    cond = prior.conditional(y, A, sigma_y=0.05, batch=n)
    g = torch.Generator().manual_seed(seed)
    sched = cond.schedule
    x = sched.init_noise((n, 1, SIZE, SIZE), g, dtype=torch.float64)
    ts = sched.timesteps(steps)
    for i in range(steps):
        x0, eps = cond.predict(x, ts[i])
        x = sched.step(x, x0, eps, ts[i], ts[i + 1], eta=1.0, generator=g)
    flat = x.reshape(n, -1)
    return flat.mean(0), torch.cov(flat.T)


def test_exact_conditional_sampler_matches_analytic_posterior():
    prior, A, y = _problem(0.05)
    mu, cov = prior.posterior(y, A, 0.05)
    n = 4000
    m_hat, c_hat = _sample_moments(prior, A, y, n, steps=200)
    se = (torch.diagonal(cov) / n).sqrt()
    assert torch.all((m_hat - mu).abs() < 5 * se), (m_hat - mu).abs() / se
    rel = torch.linalg.matrix_norm(c_hat - cov) / torch.linalg.matrix_norm(cov)
    assert rel < 0.12, rel  # sampling error of a 16x16 covariance from 4000 draws is ~5%


def test_dps_mean_near_posterior_mean_and_variance_collapse_direction():
    # DPS replaces p(y | x_t) by p(y | E[x0 | x_t]) and never sees sigma_y. At small measurement noise
    # the exact posterior is tight along the measured directions and keeps prior-like variance in A's
    # null space; DPS's samples do the opposite: they collapse in the null space (too little diversity)
    # and stay wide along the measured directions. Measured here (16 dims, 6 measurements): null-space
    # variance ~0.11 vs 0.15 exact, range variance ~0.06 vs 0.001 exact.
    sigma_y = 0.01
    prior, A, y = _problem(sigma_y, m=6)
    mu, cov = prior.posterior(y, A, sigma_y)
    _, _, vh = torch.linalg.svd(A, full_matrices=True)
    rng, null = vh[: A.shape[0]], vh[A.shape[0]:]
    recon = RECONSTRUCTORS.build("dps", {"prior": prior, "steps": 100, "zeta": 0.3, "samples": 16, "clip": False})
    draws = []
    for seed in range(16):
        recon(y[None], Dense(A).double(), generator=torch.Generator().manual_seed(seed))
        draws.append(recon.info["samples"].reshape(16, -1).double())
    S = torch.cat(draws)
    C = torch.cov(S.T)
    null_dps, null_true = torch.trace(null @ C @ null.T), torch.trace(null @ cov @ null.T)
    range_dps, range_true = torch.trace(rng @ C @ rng.T), torch.trace(rng @ cov @ rng.T)
    assert null_dps < 0.85 * null_true  # collapse where the data is silent
    assert range_dps > 5 * range_true  # no contraction to the noise level where it speaks
    # the DPS mean still lands near the posterior mean (it fits the data)
    err = torch.linalg.vector_norm(S.mean(0) - mu) / torch.linalg.vector_norm(mu)
    assert err < 0.35, err


def test_dps_data_consistent_variant_fits_data_better_than_prior_mean():
    prior, A, y = _problem(0.01, m=8)
    mu, _ = prior.posterior(y, A, 0.01)
    est, _, recon = _draw(prior, A, y, n=8, steps=30, zeta=0.0, eta=0.85, consistency="project")
    misfit = torch.linalg.vector_norm(A @ est.reshape(-1) - y)
    prior_misfit = torch.linalg.vector_norm(A @ prior.mean - y)
    assert misfit < 0.5 * prior_misfit
    assert recon.info["nfe"] == 30


def test_dps_seed_determinism_and_shapes_for_mri_and_ct():
    prior, A, y = _problem(0.05)
    a1, _, _ = _draw(prior, A, y, n=3, steps=10, zeta=0.5, seed=5)
    a2, _, _ = _draw(prior, A, y, n=3, steps=10, zeta=0.5, seed=5)
    a3, _, _ = _draw(prior, A, y, n=3, steps=10, zeta=0.5, seed=6)
    assert torch.equal(a1, a2) and not torch.equal(a1, a3)
    # k-space and sinogram operators: the state has the image's shape, not the measurement's
    from genrecon.operators.mri import SingleCoilMRI

    gauss = GaussianDiffusionPrior(torch.zeros(D), torch.eye(D) * 0.05, size=SIZE)
    mri = SingleCoilMRI(torch.ones(SIZE, SIZE, dtype=torch.bool)).double()
    xm = torch.rand(1, 1, SIZE, SIZE, dtype=torch.float64).to(torch.complex128)
    rec = RECONSTRUCTORS.build("dps", {"prior": gauss, "steps": 5, "samples": 2})
    out = rec(mri(xm), mri, generator=torch.Generator().manual_seed(0))
    assert out.shape == (1, 1, SIZE, SIZE) and out.is_complex()
    ct = OPERATORS.get("ct_parallel")(image_size=SIZE, angles=torch.linspace(0, 3.0, 5), n_detectors=7).double()
    xc = torch.rand(1, 1, SIZE, SIZE, dtype=torch.float64)
    out = rec(ct(xc), ct, generator=torch.Generator().manual_seed(0))
    assert out.shape == (1, 1, SIZE, SIZE) and not out.is_complex()


def test_dps_errors():
    prior, A, y = _problem(0.05)
    with pytest.raises(ConfigError):
        RECONSTRUCTORS.build("dps", {"prior": prior, "steps": 0})
    other = GaussianDiffusionPrior(torch.zeros(64), torch.eye(64), size=8)
    rec = RECONSTRUCTORS.build("dps", {"prior": other, "steps": 2})
    with pytest.raises(ShapeError, match="set data.size: 8"):
        rec(y[None], Dense(A).double())
    with pytest.raises(CheckpointError):
        RECONSTRUCTORS.build("dps", {"prior": "pretrained:no-such-prior"})


def test_tv_data_consistency_lowers_its_objective_and_keeps_the_bound():
    """The ``project`` step with TV: it must decrease 1/2||Ax - y||^2 + g/2||x - s||^2 + tv TV(x) below both the
    start and the CG (TV-free) solution, and respect x >= 0 with nonneg."""
    from genrecon.reconstructors.dps import data_consistency
    from genrecon.solvers.tv import TVProx, tv_norm

    size = 16
    ct = OPERATORS.get("ct_parallel")(image_size=size, angles=torch.linspace(0, 3.0, 8), n_detectors=23).double()
    g = torch.Generator().manual_seed(0)
    truth = torch.zeros(1, 1, size, size, dtype=torch.float64)
    truth[..., 4:12, 5:11] = 1.0
    y = ct(truth) + 0.05 * torch.randn(ct(truth).shape, generator=g, dtype=torch.float64)
    start = (truth + 0.3 * torch.randn(truth.shape, generator=g, dtype=torch.float64)).clamp(min=0)
    lip = ct.norm(n_iter=50, generator=torch.Generator().manual_seed(1), dtype=torch.float64) ** 2
    gamma, tv = 0.05 * lip, 0.05

    def objective(x):
        return float(0.5 * (ct(x) - y).pow(2).sum() + 0.5 * gamma * (x - start).pow(2).sum() + tv * tv_norm(x).sum())

    aty = ct.adjoint(y)
    cg = data_consistency(ct, aty, start, gamma=gamma, n_iter=10)
    free = data_consistency(ct, aty, start, gamma=gamma, n_iter=10, tv_prox=TVProx(tv, 20), lip=lip)
    assert objective(free) < objective(cg) < objective(start)
    # with x >= 0: below every feasible reference (CG's solution goes negative here, so clamp it)
    out = data_consistency(ct, aty, start, gamma=gamma, n_iter=10, tv_prox=TVProx(tv, 20, nonneg=True), lip=lip)
    assert out.min() >= 0 and cg.min() < 0
    assert objective(out) < min(objective(cg.clamp(min=0)), objective(start))
    assert float((out - truth).pow(2).mean()) < float((cg - truth).pow(2).mean())


def test_dps_tv_needs_project_and_reports_it():
    prior, A, y = _problem(0.05)
    with pytest.raises(ConfigError, match="set consistency: project"):
        RECONSTRUCTORS.build("dps", {"prior": prior, "tv_weight": 0.1})
    with pytest.raises(ConfigError, match="tv must be >= 0"):
        RECONSTRUCTORS.build("dps", {"prior": prior, "consistency": "project", "tv": -1.0})
    rec = RECONSTRUCTORS.build("dps", {"prior": prior, "consistency": "project", "tv_weight": 0.01, "steps": 5,
                                       "clip": False})
    a = rec(y[None].double(), Dense(A).double(), generator=torch.Generator().manual_seed(3))
    b = rec(y[None].double(), Dense(A).double(), generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b) and rec.info["tv"] == 0.01


def test_tv_is_the_deprecated_name_of_tv_weight(tmp_path):
    """``tv`` is read as ``tv_weight`` (already on fista_tv's scale): the same result bit for bit, with a
    DeprecationWarning naming tv_weight; both names at once are refused; a config file with the old name validates."""
    from conftest import quick_mri_config
    from genrecon.config import built_methods, deprecations, load_config_dict

    prior, A, y = _problem(0.05)
    params = {"prior": prior, "consistency": "project", "steps": 5, "clip": False, "samples": 2, "nonneg": True}
    new = RECONSTRUCTORS.build("dps", {**params, "tv_weight": 0.05})
    with pytest.warns(DeprecationWarning, match="write tv_weight: 0.05"):
        old = RECONSTRUCTORS.build("dps", {**params, "tv": 0.05})
    a = new(y[None].double(), Dense(A).double(), generator=torch.Generator().manual_seed(3))
    b = old(y[None].double(), Dense(A).double(), generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b) and old.tv_weight == 0.05 and old.info["tv_weight"] == 0.05
    other = RECONSTRUCTORS.build("dps", {**params, "tv_weight": 0.5})
    assert not torch.equal(other(y[None].double(), Dense(A).double(), generator=torch.Generator().manual_seed(3)), a)
    with pytest.raises(ConfigError, match="give tv_weight only"):
        RECONSTRUCTORS.build("dps", {**params, "tv": 0.05, "tv_weight": 0.05})
    # a config file with the old name (the shipped 128x128 brain prior)
    cfg = quick_mri_config(tmp_path / "run")
    cfg["data"]["params"]["size"] = 128
    dps = {"prior": "pretrained:brain-mri-128-diffusion", "consistency": "project", "steps": 5}
    cfg["reconstructors"] = [{"name": "dps", "params": {**dps, "tv": 0.001}}]
    loaded = load_config_dict(cfg)  # validation collects the warning for the CLI to show
    assert any("tv_weight" in note for note in deprecations(loaded))
    (method,) = built_methods(loaded)
    assert method.tv_weight == 0.001
    cfg["reconstructors"][0]["params"]["tv_weight"] = 0.001
    with pytest.raises(ConfigError, match=r"reconstructors\.0\.params: .*give tv_weight only"):
        load_config_dict(cfg)


def test_dps_init_time_starts_from_the_given_image_and_keeps_its_unmeasured_part():
    """``init_time < 1`` (CCDF): noise ``x0`` to the time ``init_time`` and run only the rest of the trajectory.

    The measurements say nothing along A's null space, so there the result must follow the start image (shrunk
    toward the prior mean by the denoiser, the more the later it starts) when starting late, and the prior when
    starting from pure noise. The network runs ``steps - round((1 - init_time) steps)`` times."""
    prior, A, y = _problem(0.01, m=6)
    mu, _ = prior.posterior(y, A, 0.01)
    v = torch.linalg.svd(A, full_matrices=True)[2][-1]  # a unit null-space direction of A
    x0 = (mu + 2.0 * v).reshape(1, 1, SIZE, SIZE)
    op = Dense(A).double()

    def run(init_time, start, rounds=1):
        rec = RECONSTRUCTORS.build("dps", {"prior": prior, "consistency": "project", "steps": 40, "samples": 4,
                                           "clip": False, "init_time": init_time, "rounds": rounds})
        est = rec(y[None].double(), op, x0=start, generator=torch.Generator().manual_seed(2))
        return float(v @ (est.reshape(-1) - mu)), rec

    late, rec = run(0.05, x0)
    assert rec.info["nfe"] == 2
    assert late > 1.2  # the start's offset of 2 along v survives (measured 1.5; 1.98 at init_time 0.02)
    later, _ = run(0.2, x0)  # more noise on the start: more of the offset is forgotten (measured 0.37)
    full, rec = run(1.0, x0)  # from pure noise: the start is ignored
    assert rec.info["nfe"] == 40 and abs(full) < 0.3
    assert late > later > abs(full)
    # without an image, the start is the data-consistent (CG) solution: nothing along v
    own, _ = run(0.05, None)
    assert abs(own) < 0.3
    # rounds restart from the previous mean noised to refine_time (0.05: 2 steps each): the prior forgets more
    again, rec = run(0.05, x0, rounds=3)
    assert rec.info["nfe"] == 6 and rec.info["rounds"] == 3
    assert abs(full) < again < late
    with pytest.raises(ConfigError, match="rounds > 1"):
        RECONSTRUCTORS.build("dps", {"prior": prior, "rounds": 2})
    with pytest.raises(ConfigError, match="init_time must be in"):
        RECONSTRUCTORS.build("dps", {"prior": prior, "consistency": "project", "init_time": 0.0})
    with pytest.raises(ConfigError, match="set consistency: project"):
        RECONSTRUCTORS.build("dps", {"prior": prior, "init_time": 0.5})
