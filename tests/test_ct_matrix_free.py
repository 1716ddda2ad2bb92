"""CT projectors without a stored matrix: the on-the-fly path equals the matrix path, has an exact adjoint,
and the automatic choice honours the memory budget."""

import math

import pytest
import torch

from genrecon.errors import ConfigError
from genrecon.operators.base import adjoint_error
from genrecon.operators.check import check_operator
from genrecon.operators.ct import FanBeam, ParallelBeam, clear_cache
from genrecon.operators.ct import batched, onthefly


def _uniform(n_views, span=math.pi, start=0.0):
    return [start + span * i / n_views for i in range(n_views)]


def _parallel(matrix, n=24, views=17, **kw):
    return ParallelBeam(image_size=n, angles=kw.pop("angles", _uniform(views)), matrix=matrix, **kw)


def _fan(matrix, n=24, views=19, **kw):
    return FanBeam(image_size=n, angles=kw.pop("angles", _uniform(views, 2 * math.pi)), source_distance=2.0 * n,
                   detector_distance=1.0 * n, matrix=matrix, **kw)


CASES = {  # name -> (make, kwargs): even / odd sizes, view counts that are not multiples of a block
    "parallel_even": (_parallel, {"n": 24, "views": 17}),
    "parallel_odd": (_parallel, {"n": 25, "views": 30}),
    "parallel_spacing_0.7": (_parallel, {"n": 20, "views": 13, "detector_spacing": 0.7}),
    "parallel_spacing_1.6_shifted": (_parallel, {"n": 21, "views": 11, "detector_spacing": 1.6,
                                                 "angles": _uniform(11, 2 * math.pi, 0.3)}),
    "parallel_unsorted": (_parallel, {"n": 16, "angles": [2.9, 0.1, 5.5, 0.785398, 1.7, 4.0, 3.3]}),
    "parallel_normalised": (_parallel, {"n": 18, "views": 9, "normalize": True}),
    "parallel_narrow_detector": (_parallel, {"n": 20, "views": 9, "n_detectors": 15}),  # rays miss the detector
    "fan_even": (_fan, {"n": 24, "views": 19}),
    "fan_odd_short": (_fan, {"n": 23, "views": 14, "angles": _uniform(14, 4.0, 0.2)}),
    "fan_normalised": (_fan, {"n": 16, "views": 10, "normalize": True}),
}


@pytest.fixture(autouse=True)
def _small_blocks(monkeypatch):
    """Blocks of a few views and chunks of a few pixels / points, so that every case has several blocks and
    chunks and a partial last one."""
    monkeypatch.setattr(onthefly, "BLOCK_BYTES", 64 * 1024)
    monkeypatch.setattr(onthefly, "GENERIC_VIEWS", 4)
    monkeypatch.setattr(onthefly, "GENERIC_ENTRIES", 1000)
    monkeypatch.setattr(batched, "BLOCK_VIEWS", 3)
    monkeypatch.setattr(batched, "ADJOINT_BLOCK_VIEWS", 4)
    monkeypatch.setattr(batched, "CHUNK_POINTS", 1500)


@pytest.mark.parametrize("name", sorted(CASES))
def test_on_the_fly_equals_the_matrix(name, gen):
    make, kw = CASES[name]
    stored, fly = make("always", **kw), make("never", **kw)
    assert stored.uses_matrix and not fly.uses_matrix
    x = torch.rand(3, *stored.domain_shape, generator=gen, dtype=torch.float64)
    y = torch.rand(3, *stored.range_shape, generator=gen, dtype=torch.float64)
    for dtype, tol in ((torch.float64, 1e-12), (torch.float32, 5e-5)):
        ya, yb = stored(x.to(dtype)), fly(x.to(dtype))
        assert yb.dtype == dtype and yb.shape == ya.shape
        assert float((ya - yb).abs().max() / ya.abs().max()) < tol
        xa, xb = stored.adjoint(y.to(dtype)), fly.adjoint(y.to(dtype))
        assert float((xa - xb).abs().max() / xa.abs().max()) < tol
    assert fly.scale == pytest.approx(stored.scale, rel=1e-8)


@pytest.mark.parametrize("name", sorted(CASES))
def test_on_the_fly_adjoint_is_exact(name):
    make, kw = CASES[name]
    report = check_operator(make("never", **kw), generator=torch.Generator().manual_seed(0), repeats=1)
    assert report["adjoint_error_float64"] < 1e-6 and report["adjoint_error_float32"] < 1e-4


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("batch", [1, 3])
def test_on_the_fly_equals_the_matrix_in_float32(name, batch, gen):
    """Batch 1 (per-image path) and batch 3 (weights shared by the batch): float32 within 1e-5 of the stored
    matrix, relative to the largest value."""
    make, kw = CASES[name]
    stored, fly = make("always", **kw), make("never", **kw)
    x = torch.rand(batch, *stored.domain_shape, generator=gen)
    y = torch.rand(batch, *stored.range_shape, generator=gen)
    ya, yb = stored(x), fly(x)
    assert float((ya - yb).abs().max() / ya.abs().max()) < 1e-5
    xa, xb = stored.adjoint(y), fly.adjoint(y)
    assert float((xa - xb).abs().max() / xa.abs().max()) < 1e-5


@pytest.mark.parametrize("name", [k for k in sorted(CASES) if k.startswith("parallel")])
def test_batched_parallel_path_equals_the_per_image_path(name, gen):
    make, kw = CASES[name]
    op = make("never", **kw)
    x = torch.randn(4, op.image_size**2, generator=gen, dtype=torch.float64)
    y = torch.randn(4, op.n_views, op.n_detectors, generator=gen, dtype=torch.float64)
    one = torch.cat([onthefly.parallel_forward(op, x[i : i + 1]) for i in range(4)])
    assert torch.allclose(batched.forward(op, x), one, atol=1e-12 * one.abs().max())
    one = torch.cat([onthefly.parallel_adjoint(op, y[i : i + 1]) for i in range(4)])
    assert torch.allclose(batched.adjoint(op, y), one, atol=1e-12 * one.abs().max())


@pytest.mark.parametrize("make", [_parallel, _fan])
def test_on_the_fly_norm_is_the_stored_matrix_norm(make):
    """The on-the-fly norm (power iterations to a relative change of 1e-6) is the matrix's (1e-9) within 1e-5."""
    from genrecon.operators.ct import matrix as stored

    fly, mat = make("never", n=20, views=13), make("always", n=20, views=13)
    stored.NORMS.pop(fly.key(), None)
    fly_norm = fly.norm_squared()
    stored.NORMS.pop(fly.key(), None)
    clear_cache()
    assert fly_norm == pytest.approx(mat.norm_squared(), rel=1e-5)


def test_parallel_fast_path_equals_the_generic_triples(gen):
    op = _parallel("never", n=19, views=12, detector_spacing=0.8)
    x = torch.randn(2, 1, 19 * 19, generator=gen, dtype=torch.float64).view(2, -1)
    y = torch.randn(2, op.n_views, op.n_detectors, generator=gen, dtype=torch.float64)
    fast, slow = onthefly.parallel_forward(op, x), onthefly.generic_forward(op, x)
    assert torch.allclose(fast, slow, atol=1e-12 * slow.abs().max())
    fast, slow = onthefly.parallel_adjoint(op, y), onthefly.generic_adjoint(op, y)
    assert torch.allclose(fast, slow, atol=1e-12 * slow.abs().max())


@pytest.mark.parametrize("make", [_parallel, _fan])
def test_on_the_fly_autograd_and_batches(make, gen):
    op = make("never", n=12, views=7)
    x = op.random_domain(2, gen).requires_grad_(True)
    y = op.random_range(2, gen)
    (grad,) = torch.autograd.grad((op(x) * y).sum(), x)
    assert torch.allclose(grad, op.adjoint(y), atol=1e-12 * grad.abs().max())
    assert torch.autograd.gradcheck(op, (torch.randn(1, 1, 12, 12, dtype=torch.float64, generator=gen,
                                                     requires_grad=True),))
    batch = op(x.detach())
    assert torch.allclose(batch[1:], op(x.detach()[1:]), atol=1e-12 * batch.abs().max())


def test_auto_choice_honours_the_budget():
    clear_cache()
    small = ParallelBeam(image_size=32, angles=_uniform(30))  # ~1 MiB of matrices: stored
    assert small.matrix == "auto" and small.uses_matrix
    mib = small.matrix_bytes() / 2**20
    assert not ParallelBeam(image_size=32, angles=_uniform(30), memory_budget_mib=mib).uses_matrix  # peak ~2.5x
    assert ParallelBeam(image_size=32, angles=_uniform(30), memory_budget_mib=3 * mib).uses_matrix
    big = ParallelBeam(image_size=512, angles=_uniform(720))  # 5-6 GiB of matrices: never built
    assert not big.uses_matrix and big.matrix_bytes() > 4 * 2**30
    assert ParallelBeam(image_size=512, angles=_uniform(720), memory_budget_mib=2**20).uses_matrix  # on request
    lean = ParallelBeam(image_size=40, angles=_uniform(20), memory_budget_mib=0.5)
    assert not lean.uses_matrix
    lean(torch.rand(1, 1, 40, 40))
    from genrecon.operators.ct import matrix as stored

    assert not any(key[0] == lean.key() for key in stored.MATRICES)  # nothing was stored


@pytest.mark.parametrize(
    "kw, text",
    [
        ({"matrix": "sometimes"}, "matrix must be one of auto, always, never"),
        ({"matrix": True}, "matrix must be one of"),
        ({"memory_budget_mib": 0}, "memory_budget_mib must be a finite number > 0"),
        ({"memory_budget_mib": -5.0}, "memory_budget_mib"),
        ({"memory_budget_mib": "1GB"}, "memory_budget_mib"),
        ({"memory_budget_mib": float("nan")}, "memory_budget_mib"),
    ],
)
def test_bad_parameters_are_one_line_config_errors(kw, text):
    for make in (_parallel, _fan):
        with pytest.raises(ConfigError) as info:
            make(kw.get("matrix", "auto"), **{k: v for k, v in kw.items() if k != "matrix"})
        assert text in str(info.value) and "\n" not in str(info.value)


def test_always_refuses_a_matrix_over_the_limit():
    with pytest.raises(ConfigError, match="matrix: never"):
        ParallelBeam(image_size=2048, angles=_uniform(2000), matrix="always")
    ParallelBeam(image_size=2048, angles=_uniform(2000))  # auto: on the fly, no error


def test_adjoint_error_of_a_larger_on_the_fly_geometry():
    op = ParallelBeam(image_size=96, angles=_uniform(50), matrix="never")
    assert adjoint_error(op, torch.Generator().manual_seed(3), dtype=torch.float64) < 1e-6


def test_full_size_benchmark_rows_at_a_tiny_size():
    from genrecon.benchmark.ct_full import full_size_records, full_size_table
    from genrecon.benchmark.common import no_log

    records = full_size_records(((24, 10), (24, 9, "fan")), 1, 4096.0, no_log)
    names = [r["implementation"] for r in records]
    assert names[:2] == ["genrecon (stored matrix)", "genrecon (on the fly)"] and len(records) == 9
    assert names[5:7] == names[:2] and [r["operator"] for r in records[5:]] == ["ct_fan"] * 4
    for fly in (records[1], records[6]):
        assert fly["adjoint_error"] < 1e-6 and fly["max_rel_diff"] < 1e-4 and fly["forward_ms"] >= 0
        assert len(fly["load"]) == 2 and (fly["batch8_peak_mib"] is None or fly["batch8_peak_mib"] >= 0)
    t = full_size_table(records, 1)
    assert len(t["rows"]) == 9 and all(len(r) == len(t["columns"]) for r in t["rows"])
    assert "batch 8 vs 8 ASTRA calls" in t["rows"][1][-1] and "fan beam" in t["rows"][6][0]
