"""fista_tv against closed forms, the hu_unit normalisation and the evaluation crop (unit tests that check
the math, not only "beats zero-filled")."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from genrecon.conventions import HU_MAX, HU_MIN, hu_to_unit, unit_to_hu
from genrecon.operators.base import Identity, LinearOperator
from genrecon.registry import RECONSTRUCTORS


class Dense(LinearOperator):
    """``y = M x`` for a dense real matrix over flattened ``(1, n, n)`` images."""

    def __init__(self, m: torch.Tensor, n: int):
        super().__init__((1, n, n), (m.shape[0],))
        self.register_buffer("m", m)

    def _forward(self, x):
        return x.flatten(1) @ self.m.T

    def _adjoint(self, y):
        return (y @ self.m).reshape(y.shape[0], *self.domain_shape)


def _fista(**params):
    return RECONSTRUCTORS.build("fista_tv", {"n_iter": 400, "inner_iter": 20, **params})


def test_without_tv_it_converges_to_the_least_squares_solution():
    n = 6
    g = torch.Generator().manual_seed(0)
    q, _ = torch.linalg.qr(torch.randn(n * n, n * n, generator=g, dtype=torch.float64))
    m = q @ torch.diag(torch.linspace(0.5, 1.0, n * n, dtype=torch.float64)) @ q.T  # condition number 2
    op = Dense(m, n)
    x_true = torch.rand(1, 1, n, n, generator=g, dtype=torch.float64)
    y = op(x_true)
    x = _fista(tv_weight=0.0)(y, op)
    expected = torch.linalg.solve(m, y[0]).reshape(1, 1, n, n)
    assert torch.allclose(x, expected, atol=1e-8)


def test_tv_denoising_of_a_step_has_the_rof_closed_form():
    # min 1/2 ||x - y||^2 + lam TV(x), y = a | b on the two halves of an n x n image (Neumann boundary):
    # the solution keeps the two levels and moves each towards the other by lam * n / (n^2 / 2) = 2 lam / n
    n, a, b, lam = 16, 0.2, 0.8, 0.8
    y = torch.full((1, 1, n, n), a, dtype=torch.float64)
    y[..., n // 2:] = b
    x = _fista(tv_weight=lam)(y, Identity((1, n, n)))
    shift = 2 * lam / n
    assert torch.allclose(x[..., : n // 2], torch.full_like(x[..., : n // 2], a + shift), atol=1e-4)
    assert torch.allclose(x[..., n // 2:], torch.full_like(x[..., n // 2:], b - shift), atol=1e-4)


def test_a_large_tv_weight_gives_the_mean_and_nonneg_holds():
    g = torch.Generator().manual_seed(1)
    y = torch.randn(1, 1, 12, 12, generator=g, dtype=torch.float64) + 0.3
    x = _fista(tv_weight=100.0)(y, Identity((1, 12, 12)))
    assert torch.allclose(x, torch.full_like(x, float(y.mean())), atol=1e-3)
    x = _fista(tv_weight=0.0, nonneg=True, n_iter=50)(y, Identity((1, 12, 12)))
    assert torch.allclose(x, y.clamp(min=0), atol=1e-10)  # the projection onto x >= 0


def test_hu_unit_maps_the_window_to_zero_one():
    hu = torch.tensor([-3000.0, HU_MIN, 0.0, HU_MAX, 9000.0], dtype=torch.float64)
    x = hu_to_unit(hu)
    assert x.tolist() == pytest.approx([0.0, 0.0, 1024 / 4095, 1.0, 1.0])
    inside = torch.linspace(HU_MIN, HU_MAX, 7, dtype=torch.float64)
    assert torch.allclose(unit_to_hu(hu_to_unit(inside)), inside)
    assert np.allclose(hu_to_unit(inside.numpy()), hu_to_unit(inside).numpy())  # arrays alike


def test_the_pipeline_normalises_a_ct_sample_in_hu_with_the_one_convention():
    from genrecon.config import load_config_dict
    from genrecon.pipeline import load_case, make_loader, plan

    cfg = load_config_dict({"data": {"source": "sample:head-ct", "normalize": "hu_unit"},
                            "simulate": {"modality": "ct", "angles": {"kind": "sparse", "n_views": 30}},
                            "reconstructors": [{"name": "fbp"}], "output": {"dir": "unused"}})
    loader = make_loader(cfg)
    ref = plan(cfg, loader)[0]
    raw = loader.load(ref.source, ref.index)
    assert raw.meta["units"] == "HU"
    case = load_case(cfg, loader, ref, {})
    assert torch.equal(case.image, hu_to_unit(raw.image))
    assert case.meta["normalisation"] == {"mode": "hu_unit", "hu_offset": 1024.0, "hu_scale": 4095.0}


def test_the_evaluation_crop_is_centred_and_never_pads():
    from genrecon.report import _crop

    a = np.arange(7 * 10).reshape(7, 10)
    c = _crop(a, 4)
    assert c.shape == (4, 4) and c[0, 0] == a[1, 3]  # top = (7 - 4) // 2, left = (10 - 4) // 2
    assert _crop(a, 20).shape == (7, 10)  # larger than the image: the image itself
    assert _crop(a, None) is a
    stack = np.zeros((3, 8, 8))
    assert _crop(stack, 2).shape == (3, 2, 2)
