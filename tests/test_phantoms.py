"""Phantoms: closed-form integrals, ranges, determinism from an explicit generator."""

import math

import pytest
import torch

from genrecon.errors import ConfigError
from genrecon.phantoms import SHEPP_LOGAN_ELLIPSES, disc, random_ellipses, shepp_logan


def test_shepp_logan_values_and_integral():
    img = shepp_logan(256)
    assert img.shape == (256, 256) and img.dtype == torch.float32
    assert float(img.min()) == 0.0 and float(img.max()) == 1.0
    levels = {round(v, 6) for v in img.unique().tolist()}
    assert levels <= {0.0, 0.1, 0.2, 0.3, 0.4, 1.0}
    # the ellipses add: the integral over [-1, 1]^2 is sum A pi a b (the square has area 4)
    exact = sum(a_ * math.pi * a * b for a_, a, b, *_ in SHEPP_LOGAN_ELLIPSES) / 4
    assert abs(float(img.double().mean()) - exact) < 0.01 * exact
    assert shepp_logan(32, dtype=torch.float64).dtype == torch.float64
    assert float(img[0].sum()) == 0.0 and float(img[128, 128]) == pytest.approx(0.2)  # background, brain


def test_random_ellipses_are_reproducible_and_local():
    state = torch.random.get_rng_state()
    a = random_ellipses(64, torch.Generator().manual_seed(3), count=6)
    b = random_ellipses(64, torch.Generator().manual_seed(3), count=6)
    c = random_ellipses(64, torch.Generator().manual_seed(4), count=6)
    assert torch.equal(torch.random.get_rng_state(), state)  # the global RNG is untouched
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.shape == (64, 64) and a.dtype == torch.float32
    assert float(a.min()) >= 0 and float(a.max()) <= 1 and float(a.max()) > 0
    with pytest.raises(ConfigError, match="count"):
        random_ellipses(8, torch.Generator(), count=0)


def test_disc_area_and_errors():
    n, r = 200, 0.5
    assert abs(float(disc(n, r).sum()) - math.pi * (r * n / 2) ** 2) < 0.01 * math.pi * (r * n / 2) ** 2
    assert torch.equal(disc(n, r), disc(n, r).flip(0)) and torch.equal(disc(n, r), disc(n, r).t())
    for bad in (0, 1.5, -0.1):
        with pytest.raises(ConfigError, match="radius_fraction"):
            disc(8, bad)
    with pytest.raises(ConfigError, match="size"):
        shepp_logan(0)
