"""The compiled TV prox (``TVProx(compile=True)``, ``fista_tv``'s ``compile: true``) against the eager one.

The compiled loop computes the eager iteration in the same order of operations, so the two agree to float32
rounding; a compiled run repeats itself bit for bit. Each (shape, kind) here compiles once per process (seconds
each), so the cases share shapes: the complex prox case has the MRI problem's shape and inner iterations.
No timing here (speed lives in ``genrecon benchmark scaling`` with ``Plan.compiled``).
"""

from __future__ import annotations

import pytest
import torch

from genrecon.errors import GenreconError
from genrecon.metrics import psnr
from genrecon.operators.mri import SingleCoilMRI
from genrecon.phantoms import shepp_logan
from genrecon.registry import RECONSTRUCTORS
from genrecon.solvers import tv_compiled
from genrecon.solvers.tv import TVProx

pytestmark = pytest.mark.skipif(tv_compiled.compiler_problem() is not None, reason="no C++ compiler for inductor")

N = 24  # the MRI problem's size; the complex prox case shares its compiled graph


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max())


@pytest.mark.parametrize("shape, is_complex, nonneg, lower", [
    ((1, 1, N, N), True, False, False),  # complex: real and imaginary planes, coupled in the norm
    ((2, 1, 13, 17), False, True, False),  # odd sizes, a batch, x >= 0
    ((2, 1, 13, 17), False, False, True),  # x >= lower
])
def test_compiled_prox_equals_eager_over_warm_started_calls(shape, is_complex, nonneg, lower):
    g = torch.Generator().manual_seed(3)
    b = torch.randn(shape, dtype=torch.complex64 if is_complex else torch.float32, generator=g)
    low = torch.rand(shape, generator=g) - 0.5 if lower else None
    eager, comp = TVProx(0.05, 5, nonneg=nonneg), TVProx(0.05, 5, nonneg=nonneg, compile=True)
    for step in (1.0, 0.7, 1.3):  # a new step (lam * step) reuses the graph: lam is an input, not a constant
        xe, xc = eager(b, step, low), comp(b, step, low)
        assert xc.dtype == xe.dtype and xc.shape == xe.shape
        assert _rel(xc, xe) < 1e-5
        assert _rel(comp.p, eager.p) < 1e-5  # the warm-started dual too, same layout
    out = torch.empty_like(b)
    assert comp(b, 1.0, low, out=out) is out and _rel(out, eager(b, 1.0, low)) < 1e-5
    if lower:
        assert bool((out >= low - 1e-6).all())


def test_fista_tv_compiled_gives_the_eager_psnr_and_repeats_bit_for_bit():
    g = torch.Generator().manual_seed(0)
    x = shepp_logan(N)[None, None].to(torch.complex64)
    op = SingleCoilMRI(torch.rand(N, N, generator=g) < 0.4)
    y = op(x)
    params = {"tv_weight": 0.005, "n_iter": 30}
    eager = RECONSTRUCTORS.build("fista_tv", params)(y, op)
    runs = [RECONSTRUCTORS.build("fista_tv", {**params, "compile": True})(y, op) for _ in range(2)]
    assert torch.equal(runs[0], runs[1])  # the same config, the same numbers
    ref = x.abs()
    assert abs(psnr(runs[0].abs(), ref, 1.0) - psnr(eager.abs(), ref, 1.0)) < 1e-3
    assert _rel(runs[0], eager) < 1e-4


def test_compile_defaults_off_and_the_eager_path_is_untouched():
    assert RECONSTRUCTORS.build("fista_tv", {}).params.compile is False
    assert TVProx(0.1).compile is False


def test_no_cxx_compiler_is_a_one_line_error_never_a_silent_fallback(monkeypatch):
    from torch._inductor import config

    monkeypatch.setattr(config.cpp, "cxx", (None, "/nonexistent/g++"))
    assert "not found" in tv_compiled.compiler_problem()
    with pytest.raises(GenreconError, match="compile: false") as err:
        TVProx(0.1, 2, compile=True)(torch.rand(1, 1, 5, 7), 1.0)
    assert "\n" not in str(err.value)


def test_a_failing_compile_is_a_one_line_error(monkeypatch):
    def broken(fn, **kwargs):
        def run(*args):
            raise RuntimeError("C++ compile error\ng++: internal compiler error")
        return run

    monkeypatch.setattr(tv_compiled, "_LOOPS", {})
    monkeypatch.setattr(tv_compiled, "_SEEN", set())
    monkeypatch.setattr(torch, "compile", broken)
    with pytest.raises(GenreconError, match="RuntimeError: C.. compile error; install") as err:
        TVProx(0.1, 2, compile=True)(torch.rand(1, 1, 5, 7), 1.0)
    assert "\n" not in str(err.value)
