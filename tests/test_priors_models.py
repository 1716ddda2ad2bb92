"""UNet, noise schedules, the diffusion denoiser interface and the VAE."""

from __future__ import annotations

import math

import pytest
import torch

from genrecon.errors import ConfigError, ShapeError
from genrecon.priors import ConvVAE, DiffusionPrior, EDMSchedule, UNet, VPSchedule, kl_divergence
from genrecon.priors.unet import count_parameters, init_parameters, materialise

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


TINY_UNET = {"base_channels": 8, "channel_mults": [1, 2], "num_res_blocks": 1, "attention_levels": [1], "groups": 4}


def tiny_prior(schedule=None, seed=0, size=16) -> DiffusionPrior:
    params = {"unet": TINY_UNET, "schedule": schedule or {"name": "vp", "timesteps": 100}}
    return DiffusionPrior.build(params, image_size=size, channels=1, generator=torch.Generator().manual_seed(seed))


def randomised(net: torch.nn.Module, seed: int = 1) -> torch.nn.Module:
    """Give zero-initialised output layers random weights, so outputs depend on every input."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=g))
    return net


# -- UNet --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("patch_size", [1, 2])
def test_unet_shape_and_dtype(patch_size):
    net = materialise(lambda: UNet(**{**TINY_UNET, "channel_mults": (1, 2), "attention_levels": (1,),
                                      "patch_size": patch_size}), torch.Generator().manual_seed(0))
    for dtype in (torch.float32, torch.float64):
        x = torch.randn(3, 1, 16, 16, dtype=dtype)
        out = net.to(dtype)(x, torch.tensor([0.0, 5.0, 50.0]))
        assert out.shape == x.shape and out.dtype == dtype


def test_unet_time_embedding_changes_output():
    net = randomised(tiny_prior().net)
    x = torch.randn(2, 1, 16, 16, generator=torch.Generator().manual_seed(3))
    a = net(x, torch.tensor([1.0, 1.0]))
    b = net(x, torch.tensor([80.0, 80.0]))
    assert (a - b).abs().max() > 1e-3
    assert torch.equal(net(x, torch.tensor([1.0, 1.0])), a)  # deterministic


def test_unet_rejects_bad_sizes():
    net = tiny_prior().net
    with pytest.raises(ShapeError, match="divisible by 2"):
        net(torch.zeros(1, 1, 15, 15), torch.zeros(1))
    with pytest.raises(ShapeError, match=r"\(B, 1, H, W\)"):
        net(torch.zeros(1, 2, 16, 16), torch.zeros(1))


def test_init_is_seeded_and_leaves_global_rng_alone():
    state = torch.random.get_rng_state()
    a, b, c = tiny_prior(seed=0), tiny_prior(seed=0), tiny_prior(seed=1)
    assert torch.equal(torch.random.get_rng_state(), state)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert any(not torch.equal(sa[k], sc[k]) for k in sa)


def test_default_unet_for_128_is_compact():
    net = materialise(lambda: UNet(patch_size=2), None)
    assert 0.8e6 < count_parameters(net) < 2.5e6


def test_init_parameters_refuses_unknown_layers():
    with pytest.raises(TypeError, match="BatchNorm2d"):
        init_parameters(torch.nn.Sequential(torch.nn.BatchNorm2d(2)), torch.Generator())


# -- schedules ---------------------------------------------------------------------------------------
def test_vp_alpha_bar_monotone_in_unit_interval():
    sch = VPSchedule(timesteps=1000)
    ab = sch.alpha_bar(torch.arange(-1, 1000))
    assert ab[0] == 1.0
    assert torch.all(ab[1:] < ab[:-1])
    assert torch.all(ab > 0) and torch.all(ab <= 1)
    assert ab[-1] < 1e-3 and ab[1] > 0.999


def test_vp_cosine_closed_form():
    # alpha_bar_t = f(t+1)/f(0) wherever beta is not clipped
    sch = VPSchedule(timesteps=1000, cosine_s=0.008)
    f = lambda u: math.cos((u + 0.008) / 1.008 * math.pi / 2) ** 2  # noqa: E731
    for t in (0, 100, 500, 900):
        assert float(sch.alpha_bar(t)) == pytest.approx(f((t + 1) / 1000) / f(0), rel=1e-10)


def test_vp_timesteps_descending_distinct():
    sch = VPSchedule(timesteps=1000)
    for n in (1, 7, 50, 1000):
        ts = sch.timesteps(n)
        assert len(ts) == n + 1 and ts[0] == 999 and ts[-1] == -1
        assert torch.all(ts[1:] < ts[:-1])


def test_edm_karras_sigmas():
    sch = EDMSchedule(sigma_min=0.002, sigma_max=80.0, rho=7.0)
    s = sch.timesteps(18)
    assert float(s[0]) == pytest.approx(80.0) and float(s[-2]) == pytest.approx(0.002) and s[-1] == 0
    assert torch.all(s[1:] < s[:-1])


@pytest.mark.parametrize("schedule", [VPSchedule(timesteps=100), EDMSchedule()])
def test_x0_eps_round_trip_exact(schedule):
    g = torch.Generator().manual_seed(0)
    x0 = torch.rand(4, 1, 8, 8, generator=g, dtype=torch.float64) * 2 - 1
    eps = torch.randn(4, 1, 8, 8, generator=g, dtype=torch.float64)
    t = schedule.timesteps(4)[:4]  # one time per sample
    x_t = schedule.add_noise(x0, eps, t)
    torch.testing.assert_close(schedule.x0_from_eps(x_t, eps, t), x0, rtol=0, atol=1e-9)
    torch.testing.assert_close(schedule.eps_from_x0(x_t, x0, t), eps, rtol=0, atol=1e-9)


@pytest.mark.parametrize("schedule", [{"name": "vp", "timesteps": 100}, {"name": "edm"}])
def test_denoiser_interface_consistent(schedule):
    prior = tiny_prior(schedule)
    randomised(prior.net)
    ts = prior.schedule.timesteps(10)
    x_t = torch.randn(2, 1, 16, 16, generator=torch.Generator().manual_seed(0)) * float(ts[3] if schedule["name"] == "edm" else 1)
    x0, eps = prior.predict(x_t, ts[3])
    torch.testing.assert_close(prior.schedule.add_noise(x0, eps, ts[3]), x_t, rtol=0, atol=1e-4)
    torch.testing.assert_close(prior.x0(x_t, ts[3]), x0)
    torch.testing.assert_close(prior.eps(x_t, ts[3]), eps)
    # per-sample times give the same as scalar times
    tb = ts[3].repeat(2)
    torch.testing.assert_close(prior.x0(x_t, tb), x0)


def test_x0_is_differentiable_in_x_t():
    prior = tiny_prior()
    x = torch.randn(1, 1, 16, 16, requires_grad=True)
    prior.x0(x, 50).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_ddim_step_with_true_x0_lands_on_clean_image():
    # If the denoiser were perfect (x0, eps exact), deterministic DDIM steps stay on the line
    # x_t = a x0 + s eps and the terminal state is x0.
    sch = VPSchedule(timesteps=100)
    g = torch.Generator().manual_seed(0)
    x0 = torch.rand(2, 1, 4, 4, generator=g, dtype=torch.float64)
    eps = torch.randn(2, 1, 4, 4, generator=g, dtype=torch.float64)
    ts = sch.timesteps(5)
    x = sch.add_noise(x0, eps, ts[0])
    for t, t1 in zip(ts[:-1], ts[1:]):
        x = sch.step(x, x0, eps, t, t1, eta=0.0)
        if t1 >= 0:
            torch.testing.assert_close(x, sch.add_noise(x0, eps, t1))
    torch.testing.assert_close(x, x0)


def test_ancestral_step_variance_matches_ddpm_posterior():
    # eta = 1 between consecutive VP steps is the DDPM posterior q(x_{t-1} | x_t, x0): its variance is
    # beta_tilde = (1 - ab_{t-1}) / (1 - ab_t) * beta_t.
    sch = VPSchedule(timesteps=100)
    t, t1 = 50, 49
    ab, ab1 = float(sch.alpha_bar(t)), float(sch.alpha_bar(t1))
    beta = 1 - ab / ab1
    expected = (1 - ab1) / (1 - ab) * beta
    shape = (20000, 1, 1, 1)
    zeros = torch.zeros(shape, dtype=torch.float64)
    x = sch.step(zeros, zeros, zeros, t, t1, eta=1.0, generator=torch.Generator().manual_seed(0))
    assert float(x.var()) == pytest.approx(expected, rel=0.05)


def test_sample_shape_range_and_seed():
    prior = randomised(tiny_prior())
    a = prior.sample(3, steps=4, generator=torch.Generator().manual_seed(5))
    b = prior.sample(3, steps=4, generator=torch.Generator().manual_seed(5))
    assert a.shape == (3, 1, 16, 16) and a.min() >= 0 and a.max() <= 1
    assert torch.equal(a, b)
    edm = randomised(tiny_prior({"name": "edm"}))
    assert edm.sample(2, steps=3, generator=torch.Generator().manual_seed(0), eta=1.0).shape == (2, 1, 16, 16)


# -- VAE ---------------------------------------------------------------------------------------------
def tiny_vae(size=16, latent=6) -> ConvVAE:
    return ConvVAE.build({"latent_dim": latent, "base_channels": 8, "channel_mults": [1, 2], "groups": 4},
                         image_size=size, generator=torch.Generator().manual_seed(0))


def test_vae_shapes_and_range():
    vae = tiny_vae()
    x = torch.rand(5, 1, 16, 16)
    mu, logvar = vae.encode(x)
    assert mu.shape == logvar.shape == (5, 6)
    out = vae.decode(torch.randn(5, 6) * 10)
    assert out.shape == (5, 1, 16, 16) and out.min() >= 0 and out.max() <= 1
    assert vae.sample(2, generator=torch.Generator().manual_seed(0)).shape == (2, 1, 16, 16)
    with pytest.raises(ShapeError):
        vae.decode(torch.zeros(2, 5))
    with pytest.raises(ShapeError):
        vae.encode(torch.zeros(2, 1, 8, 8))


def test_spatial_latent_vae_shapes_locality_and_size_check():
    vae = ConvVAE.build({"latent_dim": 3 * 16, "latent_channels": 3, "base_channels": 8, "channel_mults": [1, 2],
                         "groups": 4}, image_size=16, generator=torch.Generator().manual_seed(0))
    assert vae.latent_shape == (3, 4, 4) and vae.latent_dim == 48
    x = torch.rand(2, 1, 16, 16)
    mu, logvar = vae.encode(x)
    assert mu.shape == logvar.shape == (2, 48)
    z = torch.randn(2, 48, generator=torch.Generator().manual_seed(1))
    assert torch.equal(vae.decode(z), vae.decode(z.reshape(2, 3, 4, 4)))
    # a latent cell changes its own patch of the image most (a spatial code; GroupNorm spreads a little further)
    z2 = z.reshape(2, 3, 4, 4).clone()
    z2[:, :, 0, 0] += 3.0
    change = (vae.decode(z2) - vae.decode(z)).abs()[:, 0]
    assert change[:, :4, :4].mean() > 3 * change[:, 12:, 12:].mean()
    with pytest.raises(ShapeError):
        vae.decode(torch.zeros(2, 3, 2, 2))
    with pytest.raises(ConfigError, match="set latent_dim: 48"):
        ConvVAE(image_size=16, latent_dim=40, latent_channels=3, base_channels=8, channel_mults=(1, 2), groups=4)


def test_kl_nonnegative_and_zero_at_prior():
    g = torch.Generator().manual_seed(0)
    mu, logvar = torch.randn(100, 8, generator=g), torch.randn(100, 8, generator=g)
    assert torch.all(kl_divergence(mu, logvar) >= 0)
    assert torch.allclose(kl_divergence(torch.zeros(3, 8), torch.zeros(3, 8)), torch.zeros(3))
    # closed form for one dimension: KL(N(1, 1) || N(0, 1)) = 1/2
    assert float(kl_divergence(torch.ones(1, 1), torch.zeros(1, 1))) == pytest.approx(0.5)


@pytest.mark.parametrize("recon", ["mse", "bce"])
def test_vae_loss_parts(recon):
    vae = tiny_vae()
    x = torch.rand(4, 1, 16, 16)
    loss, parts = vae.loss(x, torch.Generator().manual_seed(0), beta=0.5, recon=recon)
    assert loss.ndim == 0 and float(parts["kl"]) >= 0
    assert float(loss.detach()) == pytest.approx(float(parts["recon"] + 0.5 * parts["kl"]), rel=1e-5)
    loss.backward()
    assert all(p.grad is not None for p in vae.parameters())


class GaussianOracle(torch.nn.Module):
    """The exact denoiser for data x0 ~ N(mu, sd^2 I), in the network parameterisation of each schedule."""

    def __init__(self, schedule, mu: float, sd: float):
        super().__init__()
        self.schedule, self.mu, self.sd = schedule, mu, sd
        self.dummy = torch.nn.Parameter(torch.zeros(()))  # gives the module a dtype and device

    def forward(self, x, label):
        if isinstance(self.schedule, VPSchedule):  # predicts eps = E[eps | x_t] = s (x - a mu) / (a^2 sd^2 + s^2)
            a, s = self.schedule.coefficients(label.round().long(), x)
            return s * (x - a * self.mu) / (a**2 * self.sd**2 + s**2)
        sigma = torch.exp(label / 250.0).to(x.dtype)  # EDM: F = (D - c_skip x) / c_out at x = input / c_in
        c_in, c_skip, c_out = (c.reshape(-1, 1, 1, 1) for c in self.schedule.preconditioning(sigma))
        xs = x / c_in
        d = self.mu + self.sd**2 / (self.sd**2 + sigma.reshape(-1, 1, 1, 1) ** 2) * (xs - self.mu)
        return (d - c_skip * xs) / c_out


@pytest.mark.parametrize("schedule", [VPSchedule(timesteps=1000), EDMSchedule()], ids=["vp", "edm"])
@pytest.mark.parametrize("eta", [0.0, 1.0])
def test_sampler_recovers_gaussian_data(schedule, eta):
    # With the exact denoiser of N(mu, sd^2), DDIM (eta=0) and ancestral (eta=1) samples must have that law.
    # Ancestral steps use the posterior variance beta_tilde, which under-disperses with coarse steps
    # (std 0.140 at 100 steps, 0.147 at 300, 0.149 at 1000), so it gets the full chain.
    mu, sd = 0.2, 0.3  # diffusion space; images (x + 1) / 2 have mean 0.6 and std 0.15
    prior = DiffusionPrior(GaussianOracle(schedule, mu, sd).double(), schedule, image_size=8, channels=1)
    steps = 100 if eta == 0 else 1000
    x = prior.sample(500, steps=steps, generator=torch.Generator().manual_seed(0), eta=eta, clip=False)
    assert float(x.mean()) == pytest.approx(0.6, abs=0.005)
    assert float(x.std()) == pytest.approx(0.15, rel=0.03)
