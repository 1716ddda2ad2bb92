"""FBP: phantom reconstructions with stated tolerances, normalisation, fan beam, weights, errors."""

import math

import pytest
import torch

import genrecon.operators.ct  # noqa: F401
from genrecon.errors import ConfigError
from genrecon.operators.base import Identity
from genrecon.operators.ct import FanBeam, ParallelBeam
from genrecon.phantoms import disc, shepp_logan
from genrecon.reconstructors.fbp import FBP, angular_weights, filter_response, redundancy_weights
from genrecon.registry import RECONSTRUCTORS


def _psnr(x_hat, x):  # data_range 1 (the phantoms' maximum)
    return 10 * math.log10(1.0 / float(((x_hat - x) ** 2).mean()))


def _parallel(n, n_views, span_deg, **kw):
    angles = torch.arange(n_views, dtype=torch.float64) * math.radians(span_deg) / n_views
    return ParallelBeam(image_size=n, angles=angles, **kw)


@pytest.fixture(scope="module")
def phantom():
    return shepp_logan(128).view(1, 1, 128, 128)


# measured on this phantom (128 x 128, ramp): 25.5 dB full, 23.4 dB at 60 views, 15.6 dB at 90 degrees
@pytest.mark.parametrize("n_views, span, min_psnr", [(128, 180, 24.5), (60, 180, 22.0), (90, 90, 14.5)])
def test_shepp_logan_psnr(phantom, n_views, span, min_psnr):
    op = _parallel(128, n_views, span)
    x_hat = FBP(filter="ramp")(op(phantom), op)
    assert x_hat.shape == phantom.shape and x_hat.dtype == torch.float32
    assert _psnr(x_hat, phantom) >= min_psnr


def test_full_angle_relative_error_and_mean(phantom):
    op = _parallel(128, 128, 180)
    x_hat = FBP()(op(phantom), op)
    assert float((x_hat - phantom).norm() / phantom.norm()) < 0.25
    assert abs(float(x_hat.mean() - phantom.mean())) < 1e-3  # the ramp keeps the DC right


def test_normalised_operator_gives_the_same_image(phantom):
    raw, unit = _parallel(128, 60, 180), _parallel(128, 60, 180, normalize=True)
    a = FBP()(raw(phantom), raw)
    b = FBP()(unit(phantom), unit)
    assert float((a - b).norm() / a.norm()) < 1e-5


def test_filters_and_batches(phantom):
    op = _parallel(128, 60, 180, normalize=True)
    y = op(torch.cat([phantom, 0.5 * phantom]))
    for name in ("ramp", "shepp-logan", "cosine", "hann"):
        x_hat = FBP(filter=name)(y, op)
        assert _psnr(x_hat[:1], phantom) > 20
        assert torch.allclose(x_hat[1], 0.5 * x_hat[0], atol=1e-5)
    soft = FBP(filter="ramp", frequency_scaling=0.5)(y, op)
    assert float((soft[:1] - phantom).abs().mean()) < 0.06
    assert float(soft.diff(dim=-1).abs().mean()) < float(FBP()(y, op).diff(dim=-1).abs().mean())


@pytest.mark.parametrize("span, n_views", [(360, 120), (240, 80)])  # full scan and a Parker short scan
def test_fan_beam_disc(span, n_views):
    n = 64
    angles = torch.arange(n_views, dtype=torch.float64) * math.radians(span) / n_views
    op = FanBeam(image_size=n, angles=angles, source_distance=2.0 * n, detector_distance=float(n))
    x = disc(n, 0.6).view(1, 1, n, n)
    x_hat = FBP()(op(x), op)
    inside = disc(n, 0.5).bool().view(1, 1, n, n)
    assert float((x_hat - x)[inside].abs().mean()) < 0.01  # flat inside the disc
    assert float((x_hat - x).abs().mean()) < 0.03  # and overall (the rim blurs)
    assert abs(float(x_hat[0, 0, n // 2, n // 2]) - 1.0) < 0.02


def test_weights():
    full = torch.arange(90, dtype=torch.float64) * math.pi / 90
    assert torch.allclose(angular_weights(full, math.pi), torch.full((90,), math.pi / 90, dtype=torch.float64))
    doubled = torch.arange(180, dtype=torch.float64) * math.pi / 90  # 360 degrees of parallel views
    assert abs(float(angular_weights(doubled, math.pi).sum()) - math.pi) < 1e-9
    limited = torch.arange(90, dtype=torch.float64) * math.radians(1)  # 0..89 degrees
    assert abs(float(angular_weights(limited, math.pi).sum()) - math.radians(90)) < 1e-9
    op = FanBeam(image_size=32, angles=torch.arange(60) * (2 * math.pi / 60), source_distance=64, detector_distance=32)
    assert torch.all(redundancy_weights(op) == 0.5)
    response, size = filter_response(100, 1.0)
    assert size >= 200 and abs(float(response[0])) < 1e-2 and abs(float(response[-1]) - 0.5) < 1e-2


def test_errors_and_registry():
    recon = RECONSTRUCTORS.build("fbp", {"filter": "hann"})
    assert isinstance(recon, FBP) and recon.modalities == ("ct",)
    with pytest.raises(ConfigError, match="CT projector"):
        FBP()(torch.zeros(1, 1, 4, 4), Identity((1, 4, 4)))
    with pytest.raises(ConfigError, match="filter"):
        FBP(filter="hamming")
    with pytest.raises(ConfigError, match="frequency_scaling"):
        FBP(frequency_scaling=0)
