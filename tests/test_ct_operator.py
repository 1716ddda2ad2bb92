"""CT projectors: exact adjoints, linearity, batches, dtypes, autograd, closed-form line integrals, errors."""

import math

import pytest
import torch

import genrecon.operators.ct  # noqa: F401  (registers ct_parallel / ct_fan before the package imports it)
from genrecon.errors import ConfigError, ShapeError
from genrecon.operators.base import Identity, adjoint_error
from genrecon.operators.check import check_operator
from genrecon.operators.ct import FanBeam, ParallelBeam, default_n_detectors
from genrecon.phantoms import disc
from genrecon.registry import OPERATORS


def _deg(values):
    return [math.radians(v) for v in values]


GEOMETRIES = {
    "parallel_full": lambda: ParallelBeam(image_size=48, angles=_deg(range(0, 180, 4))),
    "parallel_sparse": lambda: ParallelBeam(image_size=48, angles=_deg(range(0, 180, 12))),
    "parallel_limited": lambda: ParallelBeam(image_size=48, angles=_deg(range(0, 60, 2))),
    "parallel_spacing_0.7": lambda: ParallelBeam(image_size=40, angles=_deg(range(5, 180, 9)), detector_spacing=0.7),
    "parallel_normalised": lambda: ParallelBeam(image_size=40, angles=_deg(range(0, 180, 6)), normalize=True),
    "fan_full": lambda: FanBeam(image_size=48, angles=_deg(range(0, 360, 8)), source_distance=96, detector_distance=48),
    "fan_short_scan": lambda: FanBeam(
        image_size=48, angles=_deg(range(0, 230, 5)), source_distance=70, detector_distance=20
    ),
    "fan_limited_normalised": lambda: FanBeam(
        image_size=40, angles=_deg(range(30, 120, 3)), source_distance=80, detector_distance=40, normalize=True
    ),
}


@pytest.mark.parametrize("name", sorted(GEOMETRIES))
def test_adjoint_error_float64_and_float32(name):
    op = GEOMETRIES[name]()
    assert adjoint_error(op, torch.Generator().manual_seed(0), dtype=torch.float64) < 1e-6
    assert adjoint_error(op, torch.Generator().manual_seed(1), dtype=torch.float32) < 1e-4


@pytest.mark.parametrize("name", ["parallel_full", "fan_short_scan"])
def test_linearity_batches_and_dtypes(name, gen):
    op = GEOMETRIES[name]()
    x = op.random_domain(3, gen)
    x2 = op.random_domain(3, gen)
    y = op(x)
    assert y.shape == (3, *op.range_shape) and y.dtype == torch.float64
    assert torch.allclose(op(0.7 * x - 1.3 * x2), 0.7 * y - 1.3 * op(x2), atol=1e-10 * y.abs().max())
    for i in range(3):  # a batch equals its elements one at a time
        assert torch.allclose(op(x[i : i + 1]), y[i : i + 1], atol=1e-12 * y.abs().max())
    y32 = op(x.float())
    assert y32.dtype == torch.float32
    assert float((y32.double() - y).norm() / y.norm()) < 1e-5
    r = op.random_range(2, gen)
    back = op.adjoint(r)
    assert float((op.adjoint(r.float()).double() - back).norm() / back.norm()) < 1e-5


@pytest.mark.parametrize("name", ["parallel_limited", "fan_full"])
def test_autograd_gradient_is_the_adjoint(name, gen):
    op = GEOMETRIES[name]()
    x = op.random_domain(2, gen).requires_grad_(True)
    y = op.random_range(2, gen)
    (grad,) = torch.autograd.grad((op(x) * y).sum(), x)
    assert torch.allclose(grad, op.adjoint(y), atol=1e-12 * grad.abs().max())
    # and through the adjoint: d<x, A^T y>/dy = A x
    y.requires_grad_(True)
    (grad_y,) = torch.autograd.grad((op.adjoint(y) * x.detach()).sum(), y)
    assert torch.allclose(grad_y, op(x.detach()), atol=1e-12 * grad_y.abs().max())


def test_gradcheck_small_operator():
    op = ParallelBeam(image_size=6, angles=[0.1, 1.0, 2.2])
    x = torch.randn(1, 1, 6, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(0), requires_grad=True)
    assert torch.autograd.gradcheck(op, (x,))


def test_line_integrals_of_a_constant_and_of_a_disc():
    n = 64
    op = ParallelBeam(image_size=n, angles=_deg([0, 30, 45, 90, 135]))
    ones = op(torch.ones(1, 1, n, n, dtype=torch.float64))[0, 0]
    centre = (op.n_detectors - 1) // 2
    assert abs(float(ones[0, centre]) - n) < 1e-9  # a vertical ray through n unit pixels
    assert abs(float(ones[3, centre]) - n) < 1e-9  # a horizontal one
    # a disc of radius r: p(s) = 2 sqrt(r^2 - s^2), to a few percent away from the rim
    r = 0.6 * n / 2
    y = op(disc(n, 0.6, dtype=torch.float64).view(1, 1, n, n))[0, 0]
    s = op.detector_positions()
    inner = s.abs() < 0.8 * r
    exact = 2 * torch.sqrt(r**2 - s[inner] ** 2)
    assert float(((y[:, inner] - exact).abs() / exact).max()) < 0.03


def test_fan_line_integrals_of_a_disc():
    n, d_so, d_od = 64, 100.0, 60.0
    op = FanBeam(image_size=n, angles=_deg([0, 50, 140, 270]), source_distance=d_so, detector_distance=d_od)
    r = 0.6 * n / 2
    y = op(disc(n, 0.6, dtype=torch.float64).view(1, 1, n, n))[0, 0]
    u = op.detector_positions()
    rho = d_so * torch.sin(torch.atan(u / (d_so + d_od)))  # distance of each ray from the centre
    inner = rho.abs() < 0.8 * r
    exact = 2 * torch.sqrt(r**2 - rho[inner] ** 2)
    assert float(((y[:, inner] - exact).abs() / exact).max()) < 0.03


def test_far_fan_tends_to_parallel():
    n, angles = 32, _deg([0, 37, 90, 121])
    x = disc(n, 0.7, dtype=torch.float64).view(1, 1, n, n)
    par = ParallelBeam(image_size=n, angles=angles, n_detectors=49)
    fan = FanBeam(image_size=n, angles=angles, source_distance=1e5, detector_distance=0.0, n_detectors=49,
                  detector_spacing=1.0)
    assert float((fan(x) - par(x)).norm() / par(x).norm()) < 1e-3


def test_normalize_scales_to_unit_norm(gen):
    raw = ParallelBeam(image_size=40, angles=_deg(range(0, 180, 6)))
    unit = ParallelBeam(image_size=40, angles=_deg(range(0, 180, 6)), normalize=True)
    assert abs(unit.norm(n_iter=100, generator=gen, dtype=torch.float64) - 1.0) < 1e-3
    assert unit.norm_squared() == 1.0
    assert abs(math.sqrt(raw.norm_squared()) - 1 / unit.scale) < 1e-9
    x = raw.random_domain(1, gen)
    assert torch.allclose(unit(x), raw(x) * unit.scale, atol=1e-12 * raw(x).abs().max() * unit.scale)


def test_default_detectors_and_shapes():
    assert default_n_detectors(256) == 363
    op = ParallelBeam(image_size=256, angles=[0.0, 1.0])
    assert op.domain_shape == (1, 256, 256) and op.range_shape == (1, 2, 363)
    fan = FanBeam(image_size=64, angles=[0.0], source_distance=128, detector_distance=64)
    assert fan.detector_spacing == pytest.approx(1.5)
    assert fan.n_detectors * fan.detector_spacing >= 2 * 192 * (64 / 2**0.5) / math.sqrt(128**2 - 64**2 / 2) - 1e-9


def test_registered_and_examples():
    assert OPERATORS.get("ct_parallel") is ParallelBeam
    assert OPERATORS.get("ct_fan") is FanBeam
    for cls in (ParallelBeam, FanBeam):
        op = cls.example(16)
        assert op.domain_shape == (1, 16, 16)
        assert adjoint_error(op, torch.Generator().manual_seed(0)) < 1e-6


@pytest.mark.parametrize(
    "make, error, text",
    [
        (lambda: ParallelBeam(image_size=32, angles=[]), ConfigError, "empty"),
        (lambda: ParallelBeam(image_size=32, angles=[0.0, float("nan")]), ConfigError, "finite"),
        (lambda: ParallelBeam(image_size=32, angles=torch.tensor([0.0, float("inf")])), ConfigError, "finite"),
        (lambda: ParallelBeam(image_size=32, angles=[0.0], n_detectors=0), ConfigError, "n_detectors"),
        (lambda: ParallelBeam(image_size=32, angles=[0.0], detector_spacing=-1.0), ConfigError, "detector_spacing"),
        (lambda: ParallelBeam(image_size=(32, 48), angles=[0.0]), ShapeError, "square"),
        (lambda: FanBeam(image_size=32, angles=[0.0], source_distance=20, detector_distance=10), ConfigError, "inside"),
        (
            lambda: FanBeam(image_size=32, angles=[0.0], source_distance=64, detector_distance=32, n_detectors=20),
            ConfigError,
            "cover",
        ),
        (lambda: FanBeam(image_size=32, angles=[0.0], source_distance=64, detector_distance=-1), ConfigError, ">= 0"),
    ],
)
def test_bad_geometry_errors(make, error, text):
    with pytest.raises(error) as info:
        make()
    assert text in str(info.value) and "\n" not in str(info.value)


def test_bad_inputs_raise_shape_errors():
    op = ParallelBeam(image_size=16, angles=[0.0, 1.0])
    with pytest.raises(ShapeError, match="expected shape"):
        op(torch.zeros(1, 1, 16, 20))
    with pytest.raises(ShapeError, match="real"):
        op(torch.zeros(1, 1, 16, 16, dtype=torch.complex64))
    with pytest.raises(ShapeError, match="float32 or float64"):
        op(torch.zeros(1, 1, 16, 16, dtype=torch.int64))


def test_check_operator_reports(gen):
    report = check_operator(ParallelBeam.example(16), generator=gen, repeats=2)
    assert report["operator"] == "ParallelBeam"
    assert report["range_shape"] == [1, 23, 23]
    assert report["adjoint_error_float64"] < 1e-6 and report["adjoint_error_float32"] < 1e-4
    assert report["norm"] > 0 and report["forward_ms"] >= 0 and report["adjoint_ms"] >= 0
    complex_report = check_operator(Identity((1, 4, 4), complex=True), generator=gen, repeats=1)
    assert complex_report["adjoint_error"] < 1e-12 and abs(complex_report["norm"] - 1) < 1e-6


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_matches_cpu(gen):
    op = GEOMETRIES["fan_full"]()
    x = op.random_domain(2, gen, dtype=torch.float32)
    y = op.random_range(2, gen, dtype=torch.float32)
    assert torch.allclose(op(x.cuda()).cpu(), op(x), atol=1e-4 * op(x).abs().max())
    assert torch.allclose(op.adjoint(y.cuda()).cpu(), op.adjoint(y), atol=1e-4 * op.adjoint(y).abs().max())
    assert adjoint_error(op, torch.Generator().manual_seed(0), dtype=torch.float32, device="cuda") < 1e-4
    xg = x.cuda().requires_grad_(True)
    (grad,) = torch.autograd.grad((op(xg) * y.cuda()).sum(), xg)
    assert torch.allclose(grad.cpu(), op.adjoint(y), atol=1e-4 * grad.abs().max().item())
