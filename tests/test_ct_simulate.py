"""CT simulation: config parsing and its cross-field rules, noise levels, seeds, units, errors."""

import math

import pytest
import torch

from genrecon.errors import ConfigError, DataError, ShapeError
from genrecon.operators.ct import FanBeam, ParallelBeam
from genrecon.phantoms import shepp_logan
from genrecon.schema import parse
from genrecon.simulate import ct
from genrecon.types import Case


def _cfg(**data):
    problems = []
    cfg = parse(ct.Config, {"modality": "ct", **data}, "simulate", problems)
    assert problems == [], problems
    return cfg


def _problems(**data):
    problems = []
    parse(ct.Config, {"modality": "ct", **data}, "simulate", problems)
    return problems


def _case(n=48, scale=1.0, **meta):
    return Case(key="sl/0", image=scale * shepp_logan(n)[None], meta=meta)


def test_config_defaults_and_angle_sets():
    cfg = _cfg()
    assert cfg.geometry == "parallel" and cfg.normalize and cfg.noise.kind == "none"
    assert len(cfg.angles.degrees()) == 180 and cfg.angles.degrees()[-1] == 179.0
    assert len(cfg.angles.degrees("fan")) == 360
    limited = _cfg(angles={"kind": "limited", "span_deg": 90}).angles
    assert limited.degrees() == [float(i) for i in range(90)] and limited.span() == 90
    sparse = _cfg(angles={"kind": "sparse", "n_views": 60, "start_deg": 1.5}).angles.degrees()
    assert len(sparse) == 60 and sparse[0] == 1.5 and sparse[1] == 4.5
    assert _cfg(angles={"kind": "list", "values_deg": [0, 45, 90]}).angles.degrees() == [0.0, 45.0, 90.0]


@pytest.mark.parametrize(
    "data, text",
    [
        ({"angles": {"kind": "sparse"}}, "needs n_views"),
        ({"angles": {"kind": "limited"}}, "needs span_deg"),
        ({"angles": {"kind": "limited", "span_deg": 400}}, "<= 360"),
        ({"angles": {"kind": "limited", "span_deg": 0}}, "> 0"),
        ({"angles": {"kind": "sparse", "n_views": 0}}, ">= 1"),
        ({"angles": {"kind": "full", "span_deg": 90}}, "only used with kind 'limited'"),
        ({"angles": {"kind": "list"}}, "non-empty values_deg"),
        ({"noise": {"kind": "gaussian"}}, "needs sigma"),
        ({"noise": {"kind": "poisson"}}, "needs i0"),
        ({"noise": {"kind": "poisson", "i0": 1e4, "sigma": 0.1}}, "only used with kind 'gaussian'"),
        ({"hu_to_mu": {"kind": "linear"}}, "needs mu_per_unit"),
        ({"source_distance": 100}, "only used with geometry 'fan'"),
        ({"geometry": "cone"}, "not one of"),
        ({"n_detector": 10}, "did you mean 'n_detectors'"),
    ],
)
def test_config_problems(data, text):
    problems = _problems(**data)
    assert any(text in p for p in problems), problems


def test_noiseless_simulation_is_the_operator():
    cfg = _cfg(angles={"kind": "sparse", "n_views": 30})
    m = ct.simulate(_case(), cfg, generator=torch.Generator().manual_seed(0))
    assert isinstance(m.op, ParallelBeam) and m.y.shape == (1, 1, 30, ct_default_bins(48))
    assert m.x_true.shape == (1, 1, 48, 48)
    assert torch.equal(m.y, m.op(m.x_true))
    assert m.info["n_views"] == 30 and m.info["span_deg"] == 180 and m.info["geometry"] == "parallel"
    assert m.info["noise_sigma"] == 0 and m.info["snr_db"] is None


def ct_default_bins(n):
    return math.ceil(math.sqrt(2) * n)


def test_poisson_noise_grows_when_i0_drops():
    case = _case(scale=0.02)  # attenuation per pixel ~ water
    sigmas = []
    for i0 in (1e6, 1e4, 1e2):
        cfg = _cfg(angles={"kind": "sparse", "n_views": 20}, noise={"kind": "poisson", "i0": i0})
        m = ct.simulate(case, cfg, generator=torch.Generator().manual_seed(0))
        sigmas.append(m.info["noise_sigma"])
        assert m.info["snr_db"] is not None
    assert sigmas[0] < sigmas[1] < sigmas[2]
    assert 5 < sigmas[1] / sigmas[0] < 20  # std ~ 1 / sqrt(i0)


def test_gaussian_noise_level_and_normalisation():
    case = _case()
    raw = ct.simulate(case, _cfg(normalize=False, noise={"kind": "gaussian", "sigma": 0.5}),
                      generator=torch.Generator().manual_seed(1))
    unit = ct.simulate(case, _cfg(noise={"kind": "gaussian", "sigma": 0.5}), generator=torch.Generator().manual_seed(1))
    assert abs(raw.info["noise_sigma"] - 0.5) < 0.01
    scale = unit.op.scale
    assert abs(unit.info["noise_sigma"] - 0.5 * scale) < 0.01 * scale
    assert torch.allclose(unit.y, raw.y * scale, rtol=1e-4, atol=1e-6)


def test_same_seed_same_sinogram_and_global_rng_untouched():
    cfg = _cfg(angles={"kind": "sparse", "n_views": 12}, noise={"kind": "poisson", "i0": 1e3})
    case = _case(scale=0.02)
    state = torch.random.get_rng_state()
    a = ct.simulate(case, cfg, generator=torch.Generator().manual_seed(7)).y
    b = ct.simulate(case, cfg, generator=torch.Generator().manual_seed(7)).y
    c = ct.simulate(case, cfg, generator=torch.Generator().manual_seed(8)).y
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert torch.equal(torch.random.get_rng_state(), state)


def test_fan_geometry_defaults():
    cfg = _cfg(geometry="fan", angles={"kind": "sparse", "n_views": 24})
    m = ct.simulate(_case(32), cfg, generator=torch.Generator().manual_seed(0))
    assert isinstance(m.op, FanBeam)
    assert m.op.source_distance == 64 and m.op.detector_distance == 32
    assert m.info["span_deg"] == 360 and m.y.shape[2] == 24
    with pytest.raises(ConfigError, match="inside the image circle"):
        ct.build_operator(_cfg(geometry="fan", source_distance=10), _case(32))


def test_hu_mapping_and_units():
    water = Case("w/0", torch.zeros(1, 16, 16), meta={"units": "HU", "pixel_spacing": [0.5, 0.5]})
    mu = ct.attenuation(water, _cfg(hu_to_mu={"kind": "hu"}).hu_to_mu)
    assert torch.allclose(mu, torch.full_like(mu, ct.MU_WATER_PER_MM * 0.5))
    air = Case("a/0", torch.full((1, 4, 4), -1024.0), meta={"units": "Hounsfield units"})
    assert float(ct.attenuation(air, _cfg(hu_to_mu={"kind": "hu", "pixel_size_mm": 1.0}).hu_to_mu).max()) == 0
    with pytest.raises(ConfigError, match="Hounsfield"):
        ct.simulate(water, _cfg(), generator=torch.Generator())
    with pytest.raises(ConfigError, match="pixel_size_mm"):
        ct.attenuation(Case("x/0", torch.zeros(1, 4, 4)), _cfg(hu_to_mu={"kind": "hu"}).hu_to_mu)
    linear = ct.attenuation(_case(8), _cfg(hu_to_mu={"kind": "linear", "mu_per_unit": 0.5}).hu_to_mu)
    assert torch.allclose(linear, 0.5 * shepp_logan(8)[None])


def test_bad_inputs():
    cfg = _cfg(angles={"kind": "sparse", "n_views": 4})
    with pytest.raises(ShapeError, match="data.size"):
        ct.simulate(Case("r/0", torch.zeros(1, 16, 20)), cfg, generator=torch.Generator())
    bad = torch.zeros(1, 16, 16)
    bad[0, 3, 3] = float("nan")
    with pytest.raises(DataError, match="NaN"):
        ct.simulate(Case("n/0", bad), cfg, generator=torch.Generator())
    with pytest.raises(DataError):
        ct.check_finite(torch.tensor([1.0, float("inf")]), "sinogram")
    starved = _cfg(angles={"kind": "sparse", "n_views": 4}, noise={"kind": "poisson", "i0": 100})
    with pytest.raises(ConfigError, match="photon"):
        ct.simulate(_case(48, scale=5.0), starved, generator=torch.Generator())
