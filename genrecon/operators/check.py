"""Diagnostics of any :class:`LinearOperator`: adjoint error, norm and speed (``genrecon check-operator``).

Example:
    >>> import torch
    >>> from genrecon.operators.base import Identity
    >>> from genrecon.operators.check import check_operator
    >>> r = check_operator(Identity((1, 8, 8)), generator=torch.Generator().manual_seed(0), repeats=2)
    >>> r["adjoint_error_float64"] < 1e-12, round(r["norm"], 6)
    (True, 1.0)
"""

from __future__ import annotations

import statistics
import time

import torch

from .base import LinearOperator, adjoint_error


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _median_ms(fn, arg: torch.Tensor, repeats: int, device: torch.device) -> float:
    with torch.no_grad():
        fn(arg)  # warm-up (builds caches, e.g. CT matrices)
        _sync(device)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            fn(arg)
            _sync(device)
            times.append((time.perf_counter() - start) * 1e3)
    return float(statistics.median(times))


def check_operator(
    op: LinearOperator,
    *,
    generator: torch.Generator,
    dtype: torch.dtype = torch.float32,
    repeats: int = 5,
    device="cpu",
) -> dict:
    """Adjoint error (float64 and float32), operator norm and forward/adjoint timing of ``op``.

    The adjoint error is ``|<Ax, y> - <x, A^H y>| / (||A|| ||x|| ||y||)`` with zero-mean Gaussian ``x``, ``y``
    (complex for complex domains/ranges, from ``op.random_domain``/``op.random_range``).

    Args:
        op: any linear operator.
        generator: random source of the test vectors (CPU generator; vectors are moved to ``device``).
        dtype: real precision of the norm and timing runs (float32 or float64; complex ops use the
            matching complex dtype).
        repeats: timed runs per direction (median reported, after one warm-up run).
        device: where to run.

    Returns:
        dict with ``operator``, ``domain_shape``, ``range_shape``, ``adjoint_error`` (the float64 one),
        ``adjoint_error_float64``, ``adjoint_error_float32``, ``norm``, ``forward_ms``, ``adjoint_ms``,
        ``dtype``, ``repeats``.
    """
    device = torch.device(device)
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        from ..errors import ConfigError

        raise ConfigError(f"check_operator: repeats must be an integer >= 1, got {repeats!r}")
    norm = op.norm(n_iter=50, generator=generator, dtype=dtype, device=device)
    err64 = adjoint_error(op, generator, dtype=torch.float64, device=device)
    err32 = adjoint_error(op, generator, dtype=torch.float32, device=device)
    x = op.random_domain(1, generator, dtype=dtype, device=device)
    y = op.random_range(1, generator, dtype=dtype, device=device)
    return {
        "operator": op.name,
        "domain_shape": list(op.domain_shape),
        "range_shape": list(op.range_shape),
        "adjoint_error": err64,
        "adjoint_error_float64": err64,
        "adjoint_error_float32": err32,
        "norm": norm,
        "forward_ms": _median_ms(op.forward, x, repeats, device),
        "adjoint_ms": _median_ms(op.adjoint, y, repeats, device),
        "dtype": str(dtype).replace("torch.", ""),
        "repeats": repeats,
    }
