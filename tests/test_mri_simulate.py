"""MRI simulation: config validation, coil maps, noise level and SNR, determinism."""

from __future__ import annotations

import math

import pytest
import torch

from genrecon.errors import ShapeError
from genrecon.operators import MultiCoilMRI, SingleCoilMRI, fft2c, grad2d
from genrecon.schema import parse
from genrecon.simulate import simulate as simulate_any
from genrecon.simulate.coils import simulate_coil_maps
from genrecon.simulate.mri import Config, build_operator, simulate
from genrecon.simulate.noise import complex_gaussian, sigma_from_snr
from genrecon.types import Case


def _g(seed=0):
    return torch.Generator().manual_seed(seed)


def _cfg(**data):
    data = {"modality": "mri", "mask": {"name": "random", "acceleration": 4}, **data}
    problems: list[str] = []
    cfg = parse(Config, data, "simulate", problems)
    assert problems == []
    return cfg


def _problems(data):
    problems: list[str] = []
    parse(Config, {"modality": "mri", **data}, "simulate", problems)
    return problems


def _phantom(h=64, w=64):
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, h), torch.linspace(-1, 1, w), indexing="ij")
    image = ((yy / 0.8) ** 2 + (xx / 0.6) ** 2 < 1).float() + 0.5 * ((yy / 0.3) ** 2 + (xx / 0.2) ** 2 < 1).float()
    return Case("phantom/0", image[None])


# -- config ----------------------------------------------------------------------------------------------
def test_config_parses_natural_yaml():
    cfg = _cfg(mask={"name": "random", "acceleration": 8, "center_fraction": 0.04}, coils=4, noise={"snr_db": 30})
    assert cfg.mask_name == "random" and cfg.mask_params == {"acceleration": 8, "center_fraction": 0.04}
    assert cfg.coils == 4 and cfg.noise.snr_db == 30.0 and cfg.noise.sigma == 0.0
    assert cfg.complex_phase == "none"


@pytest.mark.parametrize(
    "data,expected",
    [
        ({"mask": {"name": "randm", "acceleration": 4}}, "did you mean 'random'"),
        ({"mask": {"acceleration": 4}}, "simulate: mask: needs a 'name'"),
        ({"mask": {"name": "random", "acceleraton": 4}}, "has no parameter 'acceleraton'"),
        ({"mask": {"name": "random"}}, "needs parameter 'acceleration'"),
        ({"mask": {"name": "random", "acceleration": 0.5}}, "acceleration: must be >= 1, got 0.5"),
        ({"mask": {"name": "random", "acceleration": 4}, "noise": {"sigma": 0.1, "snr_db": 20}}, "not both"),
        ({"mask": {"name": "random", "acceleration": 4}, "noise": {"sigma": -1}}, "simulate.noise.sigma: must be >= 0"),
        ({"mask": {"name": "random", "acceleration": 4}, "coils": 0}, "simulate.coils: must be >= 1"),
        ({"mask": {"name": "random", "acceleration": 4}, "complex_phase": "smoth"}, "did you mean 'smooth'"),
        ({"mask": "random"}, "simulate.mask: expected a mapping"),
        ({}, "missing required key 'mask'"),
    ],
)
def test_config_problems_are_reported(data, expected):
    problems = _problems(data)
    assert any(expected in p for p in problems), problems


# -- simulate ---------------------------------------------------------------------------------------------
def test_single_coil_simulation():
    case = _phantom()
    m = simulate(case, _cfg(noise={"sigma": 0.05}), generator=_g())
    assert isinstance(m.op, SingleCoilMRI)
    assert m.y.shape == (1, 1, 64, 64) and m.y.dtype == torch.complex64
    assert m.x_true.shape == (1, 1, 64, 64) and m.x_true.dtype == torch.complex64
    assert torch.equal(m.x_true.real[0], case.image) and torch.all(m.x_true.imag == 0)
    mask = m.info["mask_tensor"]
    assert torch.equal(mask, m.op.mask) and mask.dtype == torch.bool
    assert torch.all(m.y[..., ~mask] == 0)  # unsampled k-space stays zero, noise included
    assert set(m.info) >= {"acceleration", "mask", "coils", "noise_sigma", "snr_db", "mask_tensor"}
    assert m.info["mask"] == "random" and m.info["coils"] == 1 and m.info["noise_sigma"] == 0.05
    assert m.info["acceleration"] == pytest.approx(mask.numel() / mask.sum().item())
    assert m.info["acceleration"] == pytest.approx(4, rel=0.25)


def test_dispatch_through_the_package():
    m = simulate_any(_phantom(), _cfg(), generator=_g())
    assert isinstance(m.op, SingleCoilMRI) and m.info["snr_db"] is None and m.info["noise_sigma"] == 0.0


def test_same_seed_same_measurement_and_global_rng_untouched():
    cfg = _cfg(mask={"name": "poisson_disc", "acceleration": 6}, coils=3, noise={"sigma": 0.01}, complex_phase="smooth")
    state = torch.random.get_rng_state()
    a = simulate(_phantom(), cfg, generator=_g(3))
    b = simulate(_phantom(), cfg, generator=_g(3))
    c = simulate(_phantom(), cfg, generator=_g(4))
    assert torch.equal(torch.random.get_rng_state(), state)
    assert torch.equal(a.y, b.y) and torch.equal(a.x_true, b.x_true)
    assert not torch.equal(a.y, c.y)
    assert not torch.equal(a.info["mask_tensor"], c.info["mask_tensor"])


def test_noise_level_matches_sigma():
    sigma = 0.1
    cfg = _cfg(mask={"name": "random", "acceleration": 2}, noise={"sigma": sigma})
    m = simulate(_phantom(128, 128), cfg, generator=_g(1))
    mask = m.info["mask_tensor"]
    noise = (m.y - m.op(m.x_true))[..., mask]
    n = noise.numel()
    assert n > 5000
    # E|n|^2 = sigma^2 with real and imaginary parts of variance sigma^2 / 2 each (5 standard errors)
    assert noise.abs().pow(2).mean().item() == pytest.approx(sigma**2, rel=5 * math.sqrt(1 / n))
    assert noise.real.var().item() == pytest.approx(sigma**2 / 2, rel=5 * math.sqrt(2 / n))
    assert noise.imag.var().item() == pytest.approx(sigma**2 / 2, rel=5 * math.sqrt(2 / n))
    assert abs(noise.mean().item()) < 5 * sigma / math.sqrt(n)


@pytest.mark.parametrize("snr_db,coils", [(10.0, 1), (25.0, 1), (20.0, 4)])
def test_snr_db_gives_the_requested_snr(snr_db, coils):
    cfg = _cfg(mask={"name": "random", "acceleration": 4}, coils=coils, noise={"snr_db": snr_db})
    m = simulate(_phantom(96, 96), cfg, generator=_g(2))
    mask = m.info["mask_tensor"]
    clean = m.op(m.x_true)
    signal = clean[..., mask].abs().pow(2).sum()
    noise = (m.y - clean)[..., mask].abs().pow(2).sum()
    measured = 10 * math.log10((signal / noise).item())
    assert measured == pytest.approx(snr_db, abs=0.5)
    assert m.info["snr_db"] == pytest.approx(snr_db, abs=1e-6)
    assert m.info["noise_sigma"] == pytest.approx(sigma_from_snr(clean, snr_db, mask))


def test_multi_coil_simulation_and_sense_adjoint():
    case = _phantom(48, 40)
    cfg = _cfg(mask={"name": "random", "acceleration": 1}, coils=5)
    m = simulate(case, cfg, generator=_g())
    assert isinstance(m.op, MultiCoilMRI) and m.y.shape == (1, 5, 48, 40) and m.info["coils"] == 5
    # normalised maps: the adjoint of fully sampled noiseless data is the image itself
    assert torch.allclose(m.op.adjoint(m.y), m.x_true, atol=1e-5)


def test_case_maps_are_used_when_present():
    case = _phantom(32, 32)
    case.maps = simulate_coil_maps(3, (32, 32), generator=_g(9))
    op = build_operator(_cfg(coils=8), case, generator=_g())
    assert isinstance(op, MultiCoilMRI) and op.n_coils == 3 and torch.equal(op.maps, case.maps)
    case.maps = torch.ones(3, 16, 16, dtype=torch.complex64)
    with pytest.raises(ShapeError, match="coil maps must be"):
        build_operator(_cfg(coils=2), case, generator=_g())


def test_smooth_phase_keeps_the_magnitude():
    case = _phantom()
    m = simulate(case, _cfg(complex_phase="smooth"), generator=_g(5))
    assert torch.allclose(m.x_true.abs()[0], case.image, atol=1e-6)
    phase = torch.angle(m.x_true[0, 0])[case.image[0] > 0]
    assert phase.std() > 0.05  # not a constant phase


def test_complex_images_keep_their_phase():
    image = torch.polar(torch.ones(1, 16, 16), torch.full((1, 16, 16), 0.7))
    m = simulate(Case("c/0", image), _cfg(complex_phase="smooth"), generator=_g())
    assert torch.allclose(m.x_true[0], image)


def test_bad_image_shape():
    with pytest.raises(ShapeError, match="expected an image \\(1, H, W\\)"):
        simulate(Case("bad/0", torch.zeros(2, 8, 8)), _cfg(), generator=_g())


# -- coil maps ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("n_coils", [1, 4, 12])
def test_coil_maps_are_normalised_and_smooth(n_coils):
    maps = simulate_coil_maps(n_coils, (64, 48), generator=_g(n_coils), dtype=torch.complex128)
    assert maps.shape == (n_coils, 64, 48) and maps.dtype == torch.complex128
    assert torch.allclose(maps.abs().pow(2).sum(0), torch.ones(64, 48, dtype=torch.float64), atol=1e-12)
    # smooth: neighbouring pixels differ little (the map is far from white noise)
    assert grad2d(maps).abs().max() < 0.2
    if n_coils > 1:
        assert (maps.abs().amax(dim=(1, 2)) / maps.abs().amin(dim=(1, 2))).min() > 2  # localised coils


def test_coil_maps_determinism():
    state = torch.random.get_rng_state()
    a = simulate_coil_maps(4, (16, 16), generator=_g(1))
    assert torch.equal(a, simulate_coil_maps(4, (16, 16), generator=_g(1)))
    assert not torch.equal(a, simulate_coil_maps(4, (16, 16), generator=_g(2)))
    assert torch.equal(simulate_coil_maps(4, (16, 16)), simulate_coil_maps(4, (16, 16)))
    assert torch.equal(torch.random.get_rng_state(), state)


# -- noise helpers ------------------------------------------------------------------------------------------
def test_complex_gaussian_convention():
    like = torch.zeros(200_000, dtype=torch.complex64)
    n = complex_gaussian(like, 2.0, _g())
    assert n.dtype == torch.complex64
    assert n.real.std().item() == pytest.approx(2 / math.sqrt(2), rel=0.01)
    assert n.imag.std().item() == pytest.approx(2 / math.sqrt(2), rel=0.01)
    real = complex_gaussian(torch.zeros(200_000, dtype=torch.float64), 2.0, _g())
    assert real.dtype == torch.float64 and real.std().item() == pytest.approx(2.0, rel=0.01)
    assert torch.equal(complex_gaussian(like, 0.0, _g()), like)


def test_sigma_from_snr_uses_sampled_entries_only():
    y = fft2c(torch.ones(1, 1, 8, 8, dtype=torch.complex64))  # all energy at the centre: |y|^2 = 64
    mask = torch.zeros(8, 8, dtype=torch.bool)
    mask[4, 4] = mask[0, 0] = True
    # mean over the 2 sampled entries is 32; SNR 20 dB -> sigma^2 = 0.32
    assert sigma_from_snr(y, 20.0, mask) == pytest.approx(math.sqrt(0.32), rel=1e-6)
    assert sigma_from_snr(y, 20.0) == pytest.approx(math.sqrt(1 / 100), rel=1e-6)
