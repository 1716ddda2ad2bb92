"""``latent_inversion`` under prior mismatch (issue 18 part 4): the residual safeguard it shares with ``dps``
(:mod:`genrecon.reconstructors.safeguard`)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from genrecon.errors import ConfigError
from genrecon.registry import OPERATORS, RECONSTRUCTORS
from genrecon.reconstructors.safeguard import residual_finish
from genrecon.solvers.tv import TVProx
from genrecon.reconstructors.dps.projected import data_consistency

SIZE = 16


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


class BlobGenerator(nn.Module):
    """``G(z)``: a smooth blob whose height and width the 2 latents move a little: every image it makes is far
    from a piecewise-constant truth elsewhere in the field of view."""

    kind = "generator"
    latent_dim = 2

    def __init__(self):
        super().__init__()
        ii, jj = torch.meshgrid(torch.arange(SIZE), torch.arange(SIZE), indexing="ij")
        self.register_buffer("r2", ((ii - 11.0) ** 2 + (jj - 11.0) ** 2).double())

    def decode(self, z):
        height, width = 0.5 + 0.05 * torch.tanh(z[:, :1]), 8.0 + torch.tanh(z[:, 1:])
        return (height[:, :, None, None] * torch.exp(-self.r2 / width[:, :, None, None]))


def _problem():
    ct = OPERATORS.get("ct_parallel")(image_size=SIZE, angles=torch.linspace(0, 3.0, 10), n_detectors=23).double()
    truth = torch.zeros(1, 1, SIZE, SIZE, dtype=torch.float64)
    truth[..., 3:9, 4:13] = 0.8
    truth[..., 10:14, 2:7] = 0.4
    clean = ct(truth)
    g = torch.Generator().manual_seed(0)
    y = clean + 0.01 * clean.abs().max() * torch.randn(clean.shape, generator=g, dtype=torch.float64)
    return ct, truth, y


def _mse(x, truth) -> float:
    return float((x.real - truth).pow(2).mean())


@pytest.mark.parametrize("mode", ["plain", "hybrid", "anchored"])
def test_latent_safeguard_moves_a_mismatched_prior_to_the_tv_solution(mode):
    """plain (x = G(z)) misfits the data by far more than TV: the finish fires and lands at the TV solution.
    hybrid and anchored fit the data with their TV part already; the finish is the same call on their estimate."""
    ct, truth, y = _problem()
    tv = 0.02
    params = {"prior": BlobGenerator(), "restarts": 2, "steps": 40, "mode": mode, "tv_weight": tv, "nonneg": True,
              "hybrid_polish": 5, "hybrid_fallback": False, "refine_iter": 200}
    raw = RECONSTRUCTORS.build("latent_inversion", params)
    plain = raw(y, ct, generator=torch.Generator().manual_seed(1))
    assert not any(k.startswith("safeguard") for k in raw.info)
    rec = RECONSTRUCTORS.build("latent_inversion", {**params, "safeguard": "residual"})
    out = rec(y, ct, generator=torch.Generator().manual_seed(1))
    if mode == "plain":
        assert rec.info["safeguard_fired"] and rec.info["safeguard_rho"] > 10
        assert rec.info["safeguard_anchor"] < 0.003  # anchor_weight, weakened as 1 / rho
    # the finish is the shared one, applied to the estimate the reconstructor found without it
    again, info = residual_finish(plain, y, ct, tv_weight=tv, nonneg=True, gamma=0.003, factor=10.0, n_iter=200)
    assert torch.allclose(out, again) and info["safeguard_rho"] == rec.info["safeguard_rho"]
    lip = ct.norm_squared(dtype=torch.float64)
    ref = data_consistency(ct, ct.adjoint(y), torch.zeros_like(truth), gamma=1e-6 * lip, n_iter=400,
                           tv_prox=TVProx(tv, 5, nonneg=True), lip=lip)
    if mode == "plain":
        assert _mse(plain, truth) > 3 * _mse(ref, truth)  # the prior alone is far off
        assert _mse(out, truth) < 1.25 * _mse(ref, truth)  # the safeguard lands at the TV solution's error
    assert _mse(out, truth) < 1.05 * _mse(plain, truth)  # and never makes the estimate worse here
    assert out.min() >= 0


def test_latent_safeguard_parameters_and_default_off_is_bit_identical():
    ct, _, y = _problem()
    with pytest.raises(ConfigError, match="safeguard_gamma must be > 0"):
        RECONSTRUCTORS.build("latent_inversion", {"prior": BlobGenerator(), "safeguard": "residual",
                                                  "safeguard_gamma": 0.0})
    base = {"prior": BlobGenerator(), "restarts": 2, "steps": 10, "mode": "hybrid", "hybrid_polish": 3}
    a = RECONSTRUCTORS.build("latent_inversion", base)
    b = RECONSTRUCTORS.build("latent_inversion", {**base, "safeguard": "off", "safeguard_factor": 3.0,
                                                  "safeguard_gamma": 0.5})
    xa, xb = (r(y, ct, generator=torch.Generator().manual_seed(4)) for r in (a, b))
    assert torch.equal(xa, xb) and a.info.keys() == b.info.keys()
