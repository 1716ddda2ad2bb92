"""Prior <-> operator image adapters: round trips, phase and intensity estimates, size checks."""

from __future__ import annotations

import math

import pytest
import torch

from genrecon.errors import ShapeError
from genrecon.operators import MultiCoilMRI, SingleCoilMRI
from genrecon.operators.base import LinearOperator
from genrecon.operators.ct import ParallelBeam
from genrecon.priors.adapters import (
    ImageAdapter,
    auto_intensity_scale,
    check_adapter_params,
    least_squares_estimate,
    lowres_phase,
)
from genrecon.simulate.masks import RandomLines


class Dense(LinearOperator):
    """``y = M x.flatten()`` with a dense real matrix ``M`` (m, n)."""

    def __init__(self, mat: torch.Tensor, shape: tuple[int, ...]):
        super().__init__(shape, (mat.shape[0],))
        self.register_buffer("mat", mat)

    def _forward(self, x):
        return x.flatten(1) @ self.mat.to(x.dtype).T

    def _adjoint(self, y):
        return (y @ self.mat.to(y.dtype)).reshape(-1, *self.domain_shape)


def blob(n: int, dtype=torch.float32) -> torch.Tensor:
    """A smooth positive image (1, 1, n, n) with values up to about 0.9."""
    c = (torch.arange(n, dtype=dtype) - n / 2) / (n / 4)
    r2 = c[:, None] ** 2 + c[None, :] ** 2
    return (0.9 * torch.exp(-r2 / 2) + 0.05)[None, None]


def smooth_phase(n: int, dtype=torch.float64) -> torch.Tensor:
    c = (torch.arange(n, dtype=dtype) - n / 2) / (n / 2)
    return 0.8 * c[None, :] - 0.5 * c[:, None] ** 2 + 0.3


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_round_trip_real_and_complex(dtype):
    g = torch.rand(3, 1, 8, 8, dtype=dtype, generator=torch.Generator().manual_seed(0))
    real = ImageAdapter(complex_domain=False, scale=2.5)
    x = real.to_domain(g)
    assert x.dtype == dtype and torch.allclose(x, 2.5 * g)
    torch.testing.assert_close(real.from_domain(x), g)
    phase = smooth_phase(8)[None, None]
    cplx = ImageAdapter(complex_domain=True, scale=torch.tensor([0.5]), phase=phase)
    x = cplx.to_domain(g)
    assert x.dtype == (torch.complex128 if dtype == torch.float64 else torch.complex64)
    rotor = torch.exp(1j * phase).to(x.dtype)
    torch.testing.assert_close(x / x.abs(), rotor.expand_as(x), atol=1e-5, rtol=0)
    torch.testing.assert_close(x.abs(), 0.5 * g)
    torch.testing.assert_close(cplx.from_domain(x), g)


def test_fit_zero_phase_scale_one_by_default():
    op = SingleCoilMRI(RandomLines(acceleration=4)((16, 16), torch.Generator().manual_seed(0)))
    g = blob(16)
    a = ImageAdapter.fit(op(g.to(torch.complex64)), op)
    assert a.phase is None and a.scale_value() == 1.0
    assert torch.equal(a.to_domain(g), g.to(torch.complex64))


def test_least_squares_estimate_is_zero_filled_for_mri_and_lstsq_for_dense():
    op = SingleCoilMRI(RandomLines(acceleration=4)((16, 16), torch.Generator().manual_seed(0)))
    y = op(blob(16).to(torch.complex64))
    torch.testing.assert_close(least_squares_estimate(y, op), op.adjoint(y))
    # overdetermined dense system: CG on the normal equations converges to the least-squares solution
    g = torch.Generator().manual_seed(1)
    mat = torch.randn(40, 16, generator=g, dtype=torch.float64)
    dense = Dense(mat, (1, 4, 4))
    y = torch.randn(2, 40, generator=g, dtype=torch.float64)
    ref = torch.linalg.lstsq(mat, y.T).solution.T.reshape(2, 1, 4, 4)
    torch.testing.assert_close(least_squares_estimate(y, dense, n_iter=30), ref, atol=1e-8, rtol=1e-8)


def test_lowres_phase_recovers_a_smooth_phase_single_and_multi_coil():
    n = 64
    g = blob(n, torch.float64)
    phi = smooth_phase(n)
    x = (g * torch.exp(1j * phi)).to(torch.complex64)
    mask = RandomLines(acceleration=4, center_fraction=0.16)((n, n), torch.Generator().manual_seed(0))
    tissue = g[0, 0] > 0.3
    for op in (SingleCoilMRI(mask), MultiCoilMRI.example(n)):
        est = lowres_phase(op(x), op)
        assert est.shape == (1, 1, n, n) and not est.is_complex()
        err = torch.angle(torch.exp(1j * (est[0, 0].double() - phi)))  # wrapped difference
        assert float(err[tissue].square().mean().sqrt()) < 0.07 and float(err[tissue].abs().max()) < 0.3
        adapter = ImageAdapter.fit(op(x), op, phase="lowres")
        rel = float((adapter.to_domain(g.float()) - x).abs().norm() / x.abs().norm())
        assert rel < 0.12, rel
        zero = float((ImageAdapter.fit(op(x), op).to_domain(g.float()) - x).abs().norm() / x.abs().norm())
        assert zero > 0.3  # the zero-phase model is far off for this object


def test_lowres_phase_refuses_non_kspace_operators():
    ct = ParallelBeam.example(16)
    with pytest.raises(ShapeError, match="phase 'lowres' needs Cartesian k-space") as err:
        lowres_phase(torch.zeros(1, *ct.range_shape, dtype=torch.complex64), ct)
    assert "\n" not in str(err.value)
    # a real domain has no phase: fit ignores the setting
    y = ct(blob(16))
    assert ImageAdapter.fit(y, ct, phase="lowres").phase is None


def test_auto_scale_matches_known_intensity_scale():
    n = 64
    g = blob(n)
    op = SingleCoilMRI(RandomLines(acceleration=4, center_fraction=0.08)((n, n), torch.Generator().manual_seed(0)))
    for s in (0.3, 2.0):
        y = op((s * g).to(torch.complex64))
        level = float(torch.quantile(g.flatten(), 0.995))
        est = float(auto_intensity_scale(y, op, reference_level=level))
        assert abs(est / s - 1) < 0.1, (s, est)
    ct = ParallelBeam(image_size=n, angles=torch.arange(60, dtype=torch.float64) * math.pi / 60, normalize=True)
    y = ct(3.0 * g)
    est = float(ImageAdapter.fit(y, ct, intensity_scale="auto", reference_level=float(g.max())).scale_value())
    assert abs(est / 3.0 - 1) < 0.2, est


def test_check_messages_are_one_line():
    # the one size / channel check of the prior methods (dps, latent_inversion): reconstructors/grid.check_grid
    from genrecon.reconstructors.grid import check_grid

    mri = SingleCoilMRI(torch.ones(32, 32, dtype=torch.bool))
    assert check_grid(mri, (1, 32, 32), "same", "who") is False
    with pytest.raises(ShapeError) as err:
        check_grid(mri, (1, 128, 128), "same", "latent_inversion", "pretrained:x")
    msg = str(err.value)
    assert msg == ("latent_inversion: prior pretrained:x is 128x128 but the images are 32x32: set data.size: 128 "
                   "(or use a prior trained at 32x32)")
    with pytest.raises(ShapeError, match="3-channel images but SingleCoilMRI's images have 1"):
        check_grid(mri, (3, 32, 32), "same", "who")
    with pytest.raises(ShapeError, match="domain is"):
        check_grid(Dense(torch.ones(2, 16), (16,)), (1, 4, 4), "same", "who")
    with pytest.raises(ShapeError, match="or set grid: upsample"):
        check_grid(mri, (1, 16, 16), "same", "who")
    assert check_grid(mri, (1, 16, 16), "upsample", "who") is True


def test_parameter_checks():
    assert check_adapter_params("zero", 1.0, "w") == []
    assert check_adapter_params("lowres", "auto", "w") == []
    problems = check_adapter_params("random", "big", "w")
    assert len(problems) == 2 and "phase must be one of zero, lowres" in problems[0]
    assert check_adapter_params("zero", -1.0, "w") and check_adapter_params("zero", True, "w")
    with pytest.raises(ShapeError):
        ImageAdapter.fit(torch.zeros(1, 1, 4, 4, dtype=torch.complex64),
                         SingleCoilMRI(torch.ones(4, 4, dtype=torch.bool)), intensity_scale=0.0)
