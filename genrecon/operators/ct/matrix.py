"""The stored-matrix path of the CT projectors: build ``A`` and ``A^T`` as CSR matrices, cache them, apply them.

Every (pixel, view) pair gets ``K`` candidate bins (its footprint's width in bins, plus one); their weights
come from :func:`genrecon.operators.ct.weights.block_weights`, the same function the on-the-fly path uses,
so both paths have the same entries. Matrices live in a small module-level LRU cache (:func:`clear_cache`
empties it); the operator norms of the geometries (:data:`NORMS`) stay.
"""

from __future__ import annotations

import math
import time
import warnings
from collections import OrderedDict

import torch

from ...errors import ConfigError
from ...linalg.power import power_method
from .weights import block_weights

#: largest total size (both directions, float32) of the cached matrices of one geometry (``matrix: always``)
MAX_MATRIX_BYTES = 12 * 2**30
#: (pixel, view) pairs handled at once while building a matrix
BUILD_CHUNK = 1_000_000
#: how many (geometry, dtype, device) matrix pairs the LRU cache keeps
CACHE_SIZE = 4
#: the build's peak memory over the size of the kept matrices (measured: 3.5 GiB for 1.4 GiB at 512 / 180 views)
BUILD_PEAK_FACTOR = 2.5
#: power-method iterations and relative tolerance of the norm (from a constant image: it converges in a few
#: dozen iterations, and the normalisation wants it to the last digits)
NORM_BUILD_ITER = 200
NORM_BUILD_TOL = 1e-9

MATRICES: "OrderedDict[tuple, tuple[torch.Tensor, torch.Tensor]]" = OrderedDict()
NORMS: dict[tuple, float] = {}
BUILD_SECONDS: dict[tuple, float] = {}


def clear_cache() -> None:
    """Forget every cached projection matrix (norms are kept: they are small)."""
    MATRICES.clear()


def estimated_bytes(op) -> float:
    """Estimated size of the float32 matrices ``A`` and ``A^T`` of ``op`` (8 bytes per entry and direction)."""
    nnz = 2.5 * op.image_size**2 * op.n_views * max(1.0, 1.0 / op.detector_spacing)
    return nnz * 16


def check_size(op) -> None:
    if estimated_bytes(op) > MAX_MATRIX_BYTES:
        raise ConfigError(
            f"{op.name}: a {op.image_size}x{op.image_size} image with {op.n_views} views needs "
            f"~{estimated_bytes(op) / 2**30:.1f} GB of projection matrices (limit {MAX_MATRIX_BYTES / 2**30:.0f} GB); "
            "use matrix: never (on the fly) or auto"
        )


def build_transpose(op) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """The transpose ``A^T`` as CSR arrays on the CPU: ``(crow int64, col int32, val float64, counts)``.

    Entries are pixel-major, then view, then candidate bin (sorted CSR rows); candidates that miss are
    explicit zeros, dropped at the end only when they are more than 10% (``counts`` is then the number of
    entries per pixel, else None).
    """
    n, n_views = op.image_size, op.n_views
    n_cand = op.n_candidates()
    n_pix = n * n
    cols = torch.empty((n_pix, n_views, n_cand), dtype=torch.int32)
    vals = torch.empty((n_pix, n_views, n_cand), dtype=torch.float64)
    rows_per_chunk = max(1, int(BUILD_CHUNK // max(1, n * n_views)))
    views = torch.arange(n_views)
    for r0 in range(0, n, rows_per_chunk):
        p0, p1 = r0 * n, min(n, r0 + rows_per_chunk) * n
        block_weights(op, p0, p1, views, out=(cols[p0:p1], vals[p0:p1]))
    crow = torch.arange(0, n_pix * n_views * n_cand + 1, n_views * n_cand, dtype=torch.int64)
    cols, vals = cols.view(-1), vals.view(-1)
    keep = vals != 0
    n_keep = int(keep.sum())
    if n_keep >= 0.9 * vals.numel():
        return crow, cols, vals, None
    count = keep.view(n_pix, -1).sum(1)
    torch.cumsum(count, 0, out=crow[1:])
    return crow[: n_pix + 1], cols[keep], vals[keep], count


def _transpose(n_rows: int, crow_t, col_t, val_t, count_t):
    """CSR arrays of ``A`` from those of ``A^T`` (a stable sort by column keeps rows sorted)."""
    order = torch.sort(col_t, stable=True).indices
    if count_t is None:  # a fixed number of entries per pixel
        rows = torch.div(order, int(crow_t[1]), rounding_mode="floor").to(torch.int32)
    else:
        pixel = torch.repeat_interleave(torch.arange(count_t.numel(), dtype=torch.int32), count_t)
        rows = pixel[order]
    crow = torch.zeros(n_rows + 1, dtype=torch.int64)
    torch.cumsum(torch.bincount(col_t, minlength=n_rows), 0, out=crow[1:])
    return crow, rows, val_t[order]


def matrices(op, dtype: torch.dtype, device) -> tuple[torch.Tensor, torch.Tensor]:
    """``(A, A^T)`` of projector ``op`` as CSR tensors of ``dtype`` on ``device`` (built once, then cached)."""
    device = torch.device(device)
    key = (op.key(), dtype, str(device))
    if key in MATRICES:
        MATRICES.move_to_end(key)
        return MATRICES[key]
    check_size(op)
    start = time.perf_counter()
    crow_t, col_t, val_t, count_t = build_transpose(op)
    n_rows, n_pix = op.n_views * op.n_detectors, op.image_size**2
    crow, col, val = _transpose(n_rows, crow_t, col_t, val_t, count_t)
    index = torch.int32 if max(val.numel(), n_rows, n_pix) < 2**31 - 1 else torch.int64
    crow, col, crow_t, col_t = (t.to(index) for t in (crow, col, crow_t, col_t))
    if op.key() not in NORMS:  # always from the float64 matrices: the same for every dtype
        NORMS[op.key()] = power_norm(
            csr(crow, col, val, (n_rows, n_pix), "cpu"), csr(crow_t, col_t, val_t, (n_pix, n_rows), "cpu")
        )
    scale = 1.0 / NORMS[op.key()] if op.normalize else 1.0
    val, val_t = (v.to(dtype).mul_(scale) if scale != 1.0 else v.to(dtype) for v in (val, val_t))
    mats = (csr(crow, col, val, (n_rows, n_pix), device), csr(crow_t, col_t, val_t, (n_pix, n_rows), device))
    BUILD_SECONDS[op.key()] = time.perf_counter() - start
    MATRICES[key] = mats
    while len(MATRICES) > CACHE_SIZE:
        MATRICES.popitem(last=False)
    return mats


def csr(crow, col, val, size, device) -> torch.Tensor:
    with warnings.catch_warnings():  # "sparse CSR support is in beta": the ops used here are stable
        warnings.simplefilter("ignore", UserWarning)
        return torch.sparse_csr_tensor(crow, col, val, size=size, device=device, check_invariants=False)


def power_norm(a: torch.Tensor, at: torch.Tensor) -> float:
    """``||A||`` by the power method on ``A^T A`` (CSR matrices)."""
    return norm_of(lambda v: torch.mv(at, torch.mv(a, v)), a.shape[1], a.dtype, a.device)


def norm_of(normal, n: int, dtype, device, *, n_iter: int = NORM_BUILD_ITER, tol: float = NORM_BUILD_TOL) -> float:
    """``||A||`` from ``v -> A^T A v`` on flat vectors of length ``n``, by the power method from a constant image
    (close to the top eigenvector; 1 for an all-zero operator, so that normalising leaves it alone)."""
    x0 = torch.ones(n, dtype=dtype, device=device)
    estimate = power_method(normal, x0, n_iter=n_iter, tol=tol)
    return math.sqrt(estimate) if estimate > 0.0 else 1.0


def spmm(m: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``m @ x`` for CSR ``m`` and dense ``x`` of shape ``(cols, B)``."""
    if x.shape[1] == 1 and x.device.type == "cpu":
        return torch.mv(m, x[:, 0].contiguous()).unsqueeze(1)  # the fastest CPU path for one column
    return torch.sparse.mm(m, x.contiguous())
