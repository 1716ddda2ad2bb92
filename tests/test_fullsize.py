"""Generative priors on images larger than their grid (grid: upsample): the resampling operator, the composed
operator's adjoint, dps / latent_inversion at twice the prior's size, and the refusals."""

from __future__ import annotations

import math

import pytest
import torch

from genrecon.errors import ConfigError, ShapeError
from genrecon.operators import SingleCoilMRI, fft2c
from genrecon.operators.resample import Upsample, axis_matrix
from genrecon.priors import ConvVAE, DiffusionPrior
from genrecon.reconstructors.grid import PriorGrid
from genrecon.registry import OPERATORS, RECONSTRUCTORS
from genrecon.testing import check_operator

G = lambda seed=0: torch.Generator().manual_seed(seed)  # noqa: E731


def tiny_diffusion(size: int = 16) -> DiffusionPrior:
    return DiffusionPrior.build({"unet": {"base_channels": 8, "channel_mults": [1, 2], "attention_levels": [],
                                          "groups": 4}, "schedule": {"name": "vp", "timesteps": 50}},
                                image_size=size, generator=G())


def tiny_vae(size: int = 16) -> ConvVAE:
    return ConvVAE.build({"latent_dim": 8, "base_channels": 8, "channel_mults": [1, 2], "groups": 4},
                         image_size=size, generator=G())


def mri(size: int) -> SingleCoilMRI:
    return SingleCoilMRI(torch.rand(size, size, generator=G(3)) < 0.4)


@pytest.mark.parametrize("kind,fov,cplx", [("fourier", 1.0, None), ("fourier", 0.7, None), ("linear", 1.0, False),
                                           ("linear", 0.8, True)])
def test_upsample_has_an_exact_adjoint_and_keeps_intensities(kind, fov, cplx):
    up = Upsample((1, 12, 12), (1, 30, 26), kind=kind, fov=fov, complex=cplx)
    assert check_operator(up)["adjoint_error"] < 1e-12
    ones = torch.ones(1, 1, 12, 12, dtype=torch.complex128 if up.complex_domain else torch.float64)
    out = up(ones)
    inside = out[..., 15, 13]  # the centre is inside the covered part
    assert torch.allclose(inside.real, torch.tensor(1.0, dtype=torch.float64), atol=1e-9)
    assert (out.abs() < 1e-9).any() == (fov < 1)  # zero outside the covered part


def test_fourier_upsampling_puts_the_small_kspace_at_the_centre():
    x = torch.randn(1, 1, 16, 16, generator=G(), dtype=torch.float64).to(torch.complex128)
    big = Upsample((1, 16, 16), (1, 40, 40), kind="fourier")(x)
    k_small, k_big = fft2c(x), fft2c(big) * math.sqrt(16 * 16 / (40 * 40))
    centre = k_big[..., 12:28, 12:28]
    torch.testing.assert_close(centre, k_small)
    k_big[..., 12:28, 12:28] = 0
    assert float(k_big.abs().max()) < 1e-9  # no frequencies above the small grid's


def test_the_composed_operators_have_exact_adjoints():
    ct = OPERATORS.get("ct_parallel")(image_size=32, angles=torch.linspace(0, 3.0, 9), normalize=True).double()
    for op, shape in ((mri(32), (1, 16, 16)), (ct, (1, 16, 16))):
        grid = PriorGrid.build(op, shape)
        assert grid.small.domain_shape == shape and grid.small.range_shape == op.range_shape
        assert check_operator(grid.small)["adjoint_error"] < 1e-12
    phase = torch.rand(1, 1, 32, 32, generator=G(1), dtype=torch.float64) * 6
    grid = PriorGrid.build(mri(32), (1, 16, 16), phase=phase)
    assert check_operator(grid.small)["adjoint_error"] < 1e-12
    assert axis_matrix(9, 4, "linear", 0.5).shape == (9, 4)


def test_refinement_takes_what_the_data_measure():
    # fully sampled, noiseless: whatever the prior-grid start, the refined image is the measured one
    op = SingleCoilMRI(torch.ones(32, 32, dtype=torch.bool))
    truth = torch.rand(1, 1, 32, 32, generator=G()).to(torch.complex64)
    grid = PriorGrid.build(op, (1, 16, 16))
    start = torch.zeros(1, 1, 16, 16, dtype=torch.complex64)
    out = grid.refine(op(truth), start, weight=1e-6, tv_weight=0.0, n_iter=5)
    torch.testing.assert_close(out, truth, atol=1e-4, rtol=0)
    assert torch.equal(grid.refine(op(truth), start, weight=1e-3, tv_weight=0.0, n_iter=0), grid.up(start))


@pytest.mark.parametrize("params", [{"consistency": "project", "samples": 2, "tv_weight": 1e-3},
                                    {"samples": 1}, {"consistency": "project", "phase": "lowres"}])
def test_dps_at_twice_the_prior_size_returns_the_image_size(params):
    op = mri(32)
    y = op(torch.rand(1, 1, 32, 32, generator=G()).to(torch.complex64))
    recon = RECONSTRUCTORS.build("dps", {"prior": tiny_diffusion(16), "steps": 3, "grid": "upsample", **params})
    seen = []
    x = recon(y, op, generator=G(1), callback=lambda step, img: seen.append(tuple(img.shape)))
    assert x.shape == (1, 1, 32, 32) and x.is_complex() and torch.isfinite(x.abs()).all()
    assert set(seen) == {(params.get("samples", 1), 1, 32, 32)}  # the callback's estimates: U x0_hat
    assert recon.info["grid"] == "upsample"
    if params.get("samples", 1) > 1:
        assert recon.info["std"].shape == (1, 32, 32)


def test_dps_ct_at_twice_the_prior_size():
    ct = OPERATORS.get("ct_parallel")(image_size=32, angles=torch.linspace(0, 3.0, 8), normalize=True)
    recon = RECONSTRUCTORS.build("dps", {"prior": tiny_diffusion(16), "steps": 3, "grid": "upsample",
                                         "consistency": "project", "nonneg": True, "init_time": 0.5})
    x = recon(ct(torch.rand(1, 1, 32, 32, generator=G())), ct, generator=G(1))
    assert x.shape == (1, 1, 32, 32) and not x.is_complex() and float(x.min()) >= 0


@pytest.mark.parametrize("params", [{}, {"mode": "hybrid", "hybrid_penalty": "tv", "hybrid_polish": 3},
                                    {"mode": "anchored", "hybrid_polish": 3},
                                    {"samples": 3, "sampler": "laplace"}])
def test_latent_inversion_at_twice_the_prior_size(params):
    op = mri(32)
    y = op(torch.rand(1, 1, 32, 32, generator=G()).to(torch.complex64))
    recon = RECONSTRUCTORS.build("latent_inversion", {"prior": tiny_vae(16), "steps": 3, "restarts": 2,
                                                      "grid": "upsample", "refine_iter": 5, **params})
    x = recon(y, op, generator=G(1))
    assert x.shape == (1, 1, 32, 32) and recon.info["grid"] == "upsample"
    if "samples" in params:
        assert recon.info["std"].shape == (1, 32, 32) and recon.info["map"].shape == (1, 32, 32)


def test_refusals_are_one_line_and_name_the_fix():
    op = mri(32)
    y = torch.zeros(1, 1, 32, 32, dtype=torch.complex64)
    for name, prior in (("dps", tiny_diffusion(16)), ("latent_inversion", tiny_vae(16))):
        with pytest.raises(ShapeError) as err:  # the default grid: same keeps refusing, and says what else works
            RECONSTRUCTORS.build(name, {"prior": prior, "steps": 2})(y, op)
        assert "set data.size: 16" in str(err.value) and "grid: upsample" in str(err.value)
        assert "\n" not in str(err.value)
        small = mri(8)  # smaller than the prior: never
        with pytest.raises(ShapeError, match="set data.size: 16") as err:
            RECONSTRUCTORS.build(name, {"prior": prior, "steps": 2, "grid": "upsample"})(
                torch.zeros(1, 1, 8, 8, dtype=torch.complex64), small)
        assert "grid: upsample" not in str(err.value)
        with pytest.raises(ConfigError, match="set grid: upsample"):
            RECONSTRUCTORS.build(name, {"prior": prior, "prior_fov": 0.8})
        # the refinement's anchor must be > 0 (latent_inversion's anchor_weight is by its range)
        key, match = ("gamma", "gamma must be > 0 with grid: upsample") if name == "dps" else ("anchor_weight", "anchor")
        with pytest.raises(ConfigError, match=match):
            RECONSTRUCTORS.build(name, {"prior": prior, "grid": "upsample", key: 0.0})
        with pytest.raises(ConfigError, match="prior_fov must be in"):
            RECONSTRUCTORS.build(name, {"prior": prior, "grid": "upsample", "prior_fov": 1.5})
    ct = OPERATORS.get("ct_parallel")(image_size=32, angles=torch.linspace(0, 3.0, 8))
    recon = RECONSTRUCTORS.build("dps", {"prior": tiny_diffusion(16), "steps": 2, "grid": "upsample",
                                         "upsample": "fourier"})
    with pytest.raises(ShapeError, match="use 'linear'"):
        recon(torch.zeros(1, *ct.range_shape), ct)


def test_at_the_priors_size_grid_upsample_changes_nothing():
    # images of the prior's size never take the upsampled path: the same numbers, bit for bit, as grid: same
    op = mri(16)
    y = op(torch.rand(1, 1, 16, 16, generator=G()).to(torch.complex64))
    for name, prior, params in (("dps", tiny_diffusion(16), {"steps": 3, "samples": 2, "consistency": "project",
                                                               "tv_weight": 1e-3}),
                                ("dps", tiny_diffusion(16), {"steps": 3}),
                                ("latent_inversion", tiny_vae(16), {"steps": 3, "restarts": 2, "mode": "hybrid",
                                                                     "hybrid_penalty": "tv", "hybrid_polish": 3})):
        outs = [RECONSTRUCTORS.build(name, {"prior": prior, **params, **extra})(y, op, generator=G(5))
                for extra in ({}, {"grid": "upsample", "refine_iter": 7, "refine_tv_weight": 0.1})]
        assert torch.equal(outs[0], outs[1]), name


def test_scaling_suite_dps_rows(tmp_path):
    """The scaling suite's full-size dps rows (benchmark.scaling_dps): the shipped prior through grid: upsample on a
    slice larger than it; quick options shorten the loops. A row has positive seconds, the NFE asked for, and a
    table that says what ran."""
    from genrecon.benchmark import scaling, scaling_dps
    from genrecon.benchmark.common import Options

    opts = Options(out=tmp_path, quick=True, repeats=1)
    assert scaling.default_plan(opts).dps_sizes == (160,) and scaling.Plan().dps_sizes == (256, 320)
    doc = {"records": []}
    scaling_dps.run_rows(doc, (160,), ["cpu"], opts, lambda message: None)
    (row,) = doc["records"]
    assert row["size"] == 160 and row["s_per_slice"] > 0 and row["nfe"] == scaling_dps.QUICK_PARAMS["steps"]
    assert row["params"]["grid"] == "upsample" and (row["peak_mib"] is None or row["peak_mib"] >= 0)
    (tab,) = scaling_dps.make_table(doc)
    assert tab["rows"][0][1] == "160x160" and "grid: upsample" in tab["conventions"]
    assert scaling_dps.make_table({"records": []}) == []
