import math

import numpy as np
import pytest
import torch

from genrecon.errors import ShapeError
from genrecon.metrics import nmse, psnr, ssim
from genrecon.report import data_range_of


def test_psnr_closed_form():
    ref = np.zeros((8, 8))
    est = ref + 0.1
    assert psnr(est, ref, data_range=1.0) == pytest.approx(20.0)
    assert psnr(ref, ref, data_range=1.0) == math.inf


def test_metrics_on_magnitude_of_complex():
    ref = torch.ones(1, 8, 8)
    est = torch.ones(1, 8, 8) * torch.exp(1j * torch.tensor(0.7))  # same magnitude, other phase
    assert nmse(est, ref) == pytest.approx(0.0, abs=1e-12)
    assert ssim(est, ref, data_range=1.0) == pytest.approx(1.0)


def test_ssim_decreases_with_noise_and_nmse_scale():
    rng = np.random.default_rng(0)
    ref = rng.random((32, 32))
    noisy = ref + 0.2 * rng.standard_normal((32, 32))
    assert ssim(noisy, ref, data_range=1.0) < ssim(ref + 0.01 * rng.standard_normal((32, 32)), ref, 1.0) < 1.0
    assert nmse(2 * ref, ref) == pytest.approx(1.0)


def test_shape_mismatch():
    with pytest.raises(ShapeError):
        psnr(np.zeros((4, 4)), np.zeros((4, 5)), 1.0)


def test_data_range_conventions():
    a, b = np.array([[0.0, 2.0]]), np.array([[-1.0, 4.0]])
    assert data_range_of("max", a, [a, b]) == 2.0
    assert data_range_of("volume_max", a, [a, b]) == 4.0
    assert data_range_of("range", a, [a, b]) == 4.0  # magnitudes: max 4, min 0
    assert data_range_of(3.5, a, [a, b]) == 3.5


def test_coverage_fraction():
    from genrecon.report import coverage

    truth = np.zeros((4, 4))
    est = np.zeros((4, 4))
    est[0, :] = 1.0  # 4 of 16 pixels off by 1
    std = np.full((4, 4), 0.4)
    assert coverage(est, truth, std) == pytest.approx(12 / 16)
    assert coverage(est, truth, std * 2) == pytest.approx(1.0)
