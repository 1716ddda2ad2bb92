"""Coil sensitivity estimation (genrecon.calib): ACS detection, low-resolution maps and ESPIRiT.

The truth: smooth simulated maps (``simulate_coil_maps``, ``sum_c |S_c|^2 = 1``) times a real image with an
elliptic support, sharp insets and a smooth texture, on a non-square grid (so rows and columns cannot be
swapped unnoticed), k-space with complex Gaussian noise of 1% of the image maximum per sample.
"""

from __future__ import annotations

import math

import pytest
import torch

from genrecon.calib import MIN_ACS_SIZE, acs_region, espirit_maps, lowres_maps
from genrecon.errors import ConfigError, DataError, ShapeError
from genrecon.operators.fft import fft2c, ifft2c
from genrecon.operators.mri import MultiCoilMRI
from genrecon.simulate.coils import simulate_coil_maps
from genrecon.testing import check_operator

H, W, COILS, ACS = 72, 56, 8, 20
NOISE = 0.01


def _image(h: int, w: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Real image ``(h, w)`` float64 and its support (bool): an ellipse inside the FOV, no zeros inside."""
    yy = ((torch.arange(h, dtype=torch.float64) - h // 2) / (h / 2))[:, None]
    xx = ((torch.arange(w, dtype=torch.float64) - w // 2) / (w / 2))[None, :]
    support = xx**2 + yy**2 <= 0.8**2
    texture = 0.6 + 0.25 * torch.cos(3 * math.pi * xx) * torch.sin(2 * math.pi * yy)
    insets = 0.3 * ((xx - 0.2) ** 2 + (yy + 0.1) ** 2 < 0.09) - 0.2 * ((xx + 0.3) ** 2 + (yy - 0.3) ** 2 < 0.02)
    return support * (texture + insets), support


def _acs_mask(w: int, acs: int, accel: int = 4) -> torch.Tensor:
    """Column mask ``(w,)``: every ``accel``-th column plus ``acs`` central columns."""
    mask = torch.zeros(w, dtype=torch.bool)
    mask[::accel] = True
    mask[w // 2 - acs // 2 : w // 2 - acs // 2 + acs] = True
    return mask


@pytest.fixture(scope="module")
def case():
    g = torch.Generator().manual_seed(0)
    maps = simulate_coil_maps(COILS, (H, W), generator=g, dtype=torch.complex128)
    image, support = _image(H, W)
    kspace = fft2c(maps * image)
    kspace = kspace + NOISE * image.max() * torch.randn(kspace.shape, generator=g, dtype=torch.complex128)
    mask = _acs_mask(W, ACS)
    est, eig = espirit_maps(kspace * mask)
    return {"maps": maps, "image": image, "support": support, "kspace": kspace, "mask": mask,
            "est": est, "eig": eig}


def _coherence(est: torch.Tensor, true: torch.Tensor) -> torch.Tensor:
    """``|sum_c conj(S_est) S_true|`` per pixel: 1 when equal up to one phase per pixel (both unit norm)."""
    return (est.conj() * true).sum(0).abs()


# -- ACS region -------------------------------------------------------------------------------------------
def test_acs_region_of_a_line_mask_is_all_rows_and_the_central_run_of_columns():
    mask = _acs_mask(W, ACS)
    cols = slice(W // 2 - ACS // 2, W // 2 - ACS // 2 + ACS)
    assert acs_region(mask) == (slice(None), cols)
    assert acs_region(mask.expand(H, W)) == (slice(0, H), cols)
    k = torch.randn(3, H, W, dtype=torch.complex64, generator=torch.Generator().manual_seed(1)) * mask
    assert acs_region(k) == (slice(0, H), cols)


def test_acs_region_includes_a_sampled_line_next_to_the_block():
    mask = _acs_mask(W, ACS)
    first, stop = W // 2 - ACS // 2, W // 2 - ACS // 2 + ACS
    assert not mask[stop] and not mask[stop + 1]
    mask[stop] = True  # contiguous with the block: part of the fully sampled centre
    assert acs_region(mask)[1] == slice(first, stop + 1)


def test_acs_region_of_a_2d_mask_is_the_fully_sampled_central_box():
    g = torch.Generator().manual_seed(2)
    mask = torch.rand(H, W, generator=g) < 0.2  # random 2-D pattern ...
    mask[30:42, 22:36] = True  # ... with a fully sampled box around the centre (36, 28)
    rows, cols = acs_region(mask)
    assert rows.start <= 30 and rows.stop >= 42 and cols.start <= 22 and cols.stop >= 36
    assert bool(mask[rows, cols].all())
    assert (rows.stop - rows.start) * (cols.stop - cols.start) < 2 * 12 * 14  # the box, not far beyond


@pytest.mark.parametrize("mask", [
    pytest.param(torch.arange(W) % 4 == 1, id="centre-not-sampled"),
    pytest.param((torch.arange(W) % 4 == 0) | (torch.arange(W) == W // 2 + 1), id="too-narrow"),
])
def test_no_acs_region_is_a_one_line_data_error(mask):
    k = torch.ones(2, H, W, dtype=torch.complex64) * mask
    for call in (lambda: acs_region(mask), lambda: acs_region(k), lambda: lowres_maps(k),
                 lambda: espirit_maps(k)):
        with pytest.raises(DataError, match="no auto-calibration region") as info:
            call()
        assert "\n" not in str(info.value)


def test_acs_narrower_than_the_kernel_is_a_one_line_data_error(case):
    k = case["kspace"] * _acs_mask(W, 5)
    with pytest.raises(DataError, match="smaller than the 6 x 6 kernel") as info:
        espirit_maps(k)
    assert "\n" not in str(info.value)
    assert MIN_ACS_SIZE <= 5 and espirit_maps(k, kernel=4)[0].shape == (COILS, H, W)


# -- ESPIRiT ----------------------------------------------------------------------------------------------
def test_espirit_maps_equal_the_true_maps_up_to_a_phase_per_pixel(case):
    """Inside the support ``|<S_est, S_true>|`` is 1 up to the noise and the kernel's band limit.

    The true maps are smooth (loop coils outside the FOV), so 6 x 6 kernels represent them to ~1e-3; the
    noise is 1% of the image maximum per sample against a 20-column ACS. Measured: mean 0.99996, minimum
    0.9995 (near the edge of the support, where the signal is mixed with the empty background); the
    phase-aligned error ``sqrt(2 - 2 |<S_est, S_true>|)`` is 0.008 on average, 0.03 at most.
    """
    coh = _coherence(case["est"], case["maps"])[case["support"]]
    assert float(coh.mean()) > 0.999
    assert float(coh.min()) > 0.99
    assert bool((case["eig"][case["support"]] > 0.95).all())  # eigenvalue ~1 where there is signal
    aligned = case["est"] * torch.sgn((case["est"] * case["maps"].conj()).sum(0)).conj()  # phase of S_true
    err = (aligned - case["maps"]).abs().square().sum(0).sqrt()[case["support"]]
    assert float(err.max()) < 0.1 and float(err.mean()) < 0.03


def test_espirit_maps_have_unit_norm_where_kept_and_zero_where_cropped(case):
    est, eig = case["est"], case["eig"]
    assert est.dtype == torch.complex128 and eig.dtype == torch.float64 and eig.shape == (H, W)
    kept = eig >= 0.8
    norm = est.abs().square().sum(0)
    assert torch.allclose(norm[kept], torch.ones_like(norm[kept]), atol=1e-10)
    assert bool((norm[~kept] == 0).all())
    assert float(eig.max()) <= 1 + 1e-9  # an average of projections: no eigenvalue above 1
    maps64, eig32 = espirit_maps(case["kspace"].to(torch.complex64) * case["mask"])
    assert maps64.dtype == torch.complex64 and eig32.dtype == torch.float32
    assert float(_coherence(maps64.to(torch.complex128), est)[case["support"]].min()) > 0.999


def test_espirit_phase_is_smooth_like_the_true_maps(case):
    """BART's phase fix (virtual-coil projection real): neighbouring pixels differ as little as the truth."""
    s = case["support"]
    for dim in (-2, -1):
        est, true = case["est"].diff(dim=dim), case["maps"].diff(dim=dim)
        both = (s[1:, :] & s[:-1, :]) if dim == -2 else (s[:, 1:] & s[:, :-1])
        jump = est.abs().square().sum(0).sqrt()[both]
        assert float(jump.max()) < 2 * float(true.abs().square().sum(0).sqrt()[both].max())


def test_espirit_reads_only_the_calibration_block(case):
    """Fully sampled data and its ACS-only part give the same maps (the central 20 x 20 block of both)."""
    acs_only = case["kspace"] * case["mask"]
    full, _ = espirit_maps(case["kspace"], max_calib=ACS)
    only, _ = espirit_maps(acs_only, max_calib=ACS)
    assert torch.equal(full, only)
    given, _ = espirit_maps(acs_only, acs=acs_region(case["mask"]))
    assert torch.equal(given, case["est"])


def test_sense_operator_with_estimated_maps_passes_the_contract(case):
    mask = case["mask"].expand(H, W)
    for maps in (case["est"], lowres_maps(case["kspace"] * case["mask"])):
        check_operator(MultiCoilMRI(maps.to(torch.complex64), mask))


def test_sense_combination_of_fully_sampled_data_reproduces_the_image(case):
    """``sum_c conj(S_c) x_c = x <S_true, S_est>``: the image up to a phase, to the coherence and the noise."""
    coil_images = ifft2c(case["kspace"])
    combined = (case["est"].conj() * coil_images).sum(0)
    s, x = case["support"], case["image"]
    rel = float((combined.abs() - x)[s].norm() / x[s].norm())
    assert rel < 0.02  # measured 0.012: the noise (1% of the maximum, image mean ~0.6) dominates


# -- low-resolution maps ----------------------------------------------------------------------------------
def test_lowres_maps_are_close_to_smooth_true_maps(case):
    """Looser than ESPIRiT: the ACS images blur the object's edges, which the RSS division cancels only
    where the object is smooth on the ACS resolution (W / 20 pixels). Measured: mean 0.9997, minimum 0.996
    (Hann window); 0.9992 / 0.978 without a window (ringing)."""
    est = lowres_maps(case["kspace"] * case["mask"])
    assert est.dtype == torch.complex128 and est.shape == (COILS, H, W)
    coh = _coherence(est, case["maps"])[case["support"]]
    assert float(coh.mean()) > 0.995 and float(coh.min()) > 0.9
    norm = est.abs().square().sum(0)
    assert float(norm.max()) <= 1 + 1e-12
    assert float(norm[case["support"]].min()) > 0.95
    unwindowed = lowres_maps(case["kspace"] * case["mask"], window="none")
    assert float(_coherence(unwindowed, case["maps"])[case["support"]].mean()) > 0.99


def test_lowres_maps_fade_to_zero_where_there_is_no_signal():
    k = torch.zeros(2, 32, 32, dtype=torch.complex128)
    k[:, :, 12:20] = 1.0  # constant ACS: images concentrated along one line
    maps = lowres_maps(k)
    norm = maps.abs().square().sum(0)
    assert float(norm.max()) <= 1 and float(norm.min()) < 1e-6


# -- parameters and determinism ---------------------------------------------------------------------------
def test_bad_parameters_are_config_errors(case):
    k = case["kspace"] * case["mask"]
    with pytest.raises(ConfigError, match="kernel must be an integer"):
        espirit_maps(k, kernel=0)
    with pytest.raises(ConfigError, match="2 problems"):
        espirit_maps(k, threshold=1.5, crop=-0.1)
    with pytest.raises(ConfigError, match="did you mean 'hann'"):
        lowres_maps(k, window="han")
    with pytest.raises(ConfigError, match="acs must be"):
        lowres_maps(k, acs=(slice(0, 10),))
    with pytest.raises(ShapeError, match="does not fit the k-space grid"):
        espirit_maps(k, acs=case["mask"][:-1])


def test_estimation_is_deterministic(case):
    k = case["kspace"] * case["mask"]
    assert torch.equal(espirit_maps(k)[0], case["est"])
    assert torch.equal(espirit_maps(k)[1], case["eig"])
    assert torch.equal(lowres_maps(k), lowres_maps(k))
