"""The fan beam's CPU kernel: the discretisation of :mod:`.fan` as fused scalar loops compiled by numba.

Same entries as :mod:`.fan` (read its docstring): per view, per pass (rows: the image rows' pixels with
``|across| >= |along|``; columns: the others, ``|across| > |along|``, tested on the same float64 numbers as
the footprints), per image line, the pass's pixels are an interval ``[lo, hi)`` and boundary ``m`` projects to
``beta(m) = (a + b m) / (c + d m)`` bins; pixel ``m``'s entry in bin ``k`` is
``factor * |[beta(m), beta(m + 1)] ∩ [k, k + 1]|``, ``factor = |ray| / across`` (signed). With
``H(t) = sum_k y_k clamp(t - k, 0, 1)`` (the cumulative sum of the view's sinogram row, linear within bins;
``t`` clamped to ``[0, D]`` changes nothing), the adjoint is, per pixel,
``factor * (H(beta(m + 1)) - H(beta(m)))``; its transpose, the forward, adds each boundary's jump
``J = xf[m] - xf[m - 1]`` (``xf = x * factor``, zero outside ``[lo, hi)``) as ``(1 - f) J`` to bin ``i`` and
``f J`` to bin ``i + 1`` of an increment row (``beta(m) = i + f``), whose one cumulative sum per view is the
sinogram row. Everything runs in float64 (float32 data is converted on the way in and out), the geometry of
each (view, line) computed in the loops, nothing stored beyond a few rows of ``N`` or ``D`` values per call;
the columns pass reads / writes a transposed copy of the image so that both passes walk contiguous memory.

The loops run from the line's first pixel over slices (``along[lo:hi]``, ``row[lo:hi]``) and bins are indexed with
unsigned integers: numba's negative-index wrap would otherwise turn the vectorised loops (the square roots and
divisions, :func:`_factors`) into gathers and scatters, 2-4x slower. Per (view, line) the float64 geometry; per
pixel one square root and one division (vectorised, AVX-512 here), then per image of the batch one scalar loop: the
forward's two scattered adds per boundary into the view's increment rows (``lower``: ``J``, ``upper``: ``f J``,
then ``lower - upper`` plus ``upper`` one bin on; not ``(1 - f) J`` and ``f J`` into one row: a boundary in the
next bin would wait on the previous one's store), the adjoint's interpolation of ``H`` per boundary. A batch
(:data:`BATCH_CHUNK` images a call) shares everything but those loops. One thread (no ``prange``: the benchmarks
count CPU time, and the 2-core machine is shared). Memory: float64 copies of the image (and its transpose) or
sinogram, the output, and numba itself (~60 MiB resident once imported).

Measured (one thread, CPU time, float32 data, a shared 2-core AMD EPYC (Zen 4) VM, interleaved rounds of
``scripts/bench_ct.py``, load 3.6-4.3) at 512 x 512, 720 views over 360 degrees, 775 bins: 0.47 s forward / 0.47 s
adjoint (ASTRA 2.5 'line_fanflat' 1.5 / 1.6 s, 'strip_fanflat' 4.6 / 4.8 s; the torch tiles of :mod:`.fan` 2.0 /
1.5 s at load 4.3); a batch of 8: 3.5 / 3.0 s (8 'line_fanflat' calls: 12.8 / 11.1 s); peak 140 MiB, ~60 of it
numba's import (batch 8: 107 MiB). At load 1.1-2.1 (a build ~10% slower): 0.48 / 0.48 s, 'line_fanflat' 1.1 / 1.15
s. At 256 x 256 with 180 views (388 bins), load 4.3: 30 / 27 ms (torch tiles 120 / 107 ms, 'line_fanflat' 92 / 89
ms); a batch of 8: 168 / 153 ms (8 'line_fanflat' calls: 700 / 612 ms). The first call of a process imports numba
(~0.35 s) and loads the cached machine code (~0.4 s); without a cache it compiles (~4.5-5 s for both directions).
"""

from __future__ import annotations

import math

import numba
import numpy as np
import torch

#: compiled once per machine (``cache``: later processes load it from ``__pycache__``), no fast-math (the
#: float64 pass tests must see the numbers of :mod:`.fan`), ``error_model="numpy"`` (no division-by-zero checks:
#: they stop the divisions from vectorising)
_jit = numba.njit(cache=True, nogil=True, fastmath=False, error_model="numpy")
#: images per kernel call: each view streams the call's float64 images (and transposes) and increment rows;
#: two stay in the caches (a batch of 8 at 512 x 512 measured ~10% faster than in one call)
BATCH_CHUNK = 2


@_jit
def _first(v, t, strict):
    """The first index ``k`` of ``v`` (increasing by ~1 a step) with ``v[k] > t`` (``strict``) or ``v[k] >= t``."""
    n = v.shape[0]
    k = int(min(max(math.ceil(t - v[0]), 0.0), float(n)))
    if strict:
        while k > 0 and v[k - 1] > t:
            k -= 1
        while k < n and not v[k] > t:
            k += 1
    else:
        while k > 0 and v[k - 1] >= t:
            k -= 1
        while k < n and not v[k] >= t:
            k += 1
    return k


@_jit
def _view_setup(coord, cos_v, sin_v, d_so, rv, cv, negc):
    """Per view: ``rv[j] = x_j - d_so sin`` (the rows' along, the columns' across) and ``cv[i] = y_i + d_so cos``
    (the rows' across, the columns' along; ``negc = -cv``, increasing), as :mod:`.fan` computes them."""
    ds, dc = d_so * sin_v, d_so * cos_v
    for k in range(coord.shape[0]):
        rv[k] = coord[k] - ds
        cv[k] = (-coord[k]) + dc
        negc[k] = coord[k] - dc


@_jit
def _line(p, l, n, half, cos_v, sin_v, d_so, d_sd, du, e0, rv, cv, negc):
    """Geometry of line ``l`` of pass ``p`` (0: rows, 1: columns): ``(lo, hi, across, a, b, c, d)``, as
    :func:`.fan._pairs`: the line at coordinate ``lc`` (rows: ``y``, columns: ``x``), its boundary ``m`` at
    ``z = z0 + m`` (rows: ``x = m - N/2``) or ``z0 - m`` (columns: ``y = N/2 - m``), ``pn = z kz + lc kl`` and
    ``dist = z gz + lc gl + d_so``, so ``beta(m) = (d_sd pn - e0 dist) / (du dist) = (a + b m) / (c + d m)``; the
    pass's pixels ``[lo, hi)`` by the footprints' test on ``rv`` / ``negc``."""
    if p == 0:
        across = cv[l]
        big = abs(across)
        lo, hi = _first(rv, -big, False), _first(rv, big, True)
        lc, z0 = -(l - half), -n / 2.0
        kz, kl, gz, gl, alpha, gamma = cos_v, sin_v, -sin_v, cos_v, cos_v, -sin_v
    else:
        across = rv[l]
        big = abs(across)
        lo, hi = _first(negc, -big, True), _first(negc, big, False)
        lc, z0 = l - half, n / 2.0
        kz, kl, gz, gl, alpha, gamma = sin_v, cos_v, cos_v, -sin_v, -sin_v, -cos_v
    pn0 = z0 * kz + lc * kl
    dist0 = z0 * gz + lc * gl + d_so
    return (lo, hi, across, d_sd * pn0 - e0 * dist0, d_sd * alpha - e0 * gamma, du * dist0, du * gamma)


@_jit
def _factors(along, across, mf, a, b, c, d, top, fac, ii, frac):
    """``fac[k] = |ray| / across`` of the line's pixels and, at its boundaries, ``beta`` clamped to ``[0, top]``
    as ``ii[k] + frac[k]`` (bin, fraction); ``along``, ``mf`` (the boundaries' ``m``): slices from the line's first
    pixel (loops from 0: no negative-index wrap, so they vectorise)."""
    inv, across2 = 1.0 / across, across * across
    for k in range(along.shape[0]):
        fac[k] = math.sqrt(along[k] * along[k] + across2) * inv
    for k in range(mf.shape[0]):
        t = min(max((a + b * mf[k]) / (c + d * mf[k]), 0.0), top)
        i = np.uint32(t)
        ii[k] = i
        frac[k] = t - i


@_jit
def _forward(img, img_t, cos, sin, d_so, d_sd, du, e0, n_det, out):
    """``out (B, V, D) = A x`` for ``img (B, N, N)`` and its transpose ``img_t``."""
    nb, n = img.shape[0], img.shape[1]
    half = (n - 1) / 2.0
    coord = np.arange(n) - half
    rv, cv, negc = np.empty(n), np.empty(n), np.empty(n)
    mf = np.arange(n + 1).astype(np.float64)
    fac, ii, frac = np.empty(n), np.empty(n + 1, np.uint32), np.empty(n + 1)
    lower, upper = np.empty((nb, n_det + 2)), np.empty((nb, n_det + 2))
    top = float(n_det)
    for v in range(cos.shape[0]):
        cos_v, sin_v = cos[v], sin[v]
        _view_setup(coord, cos_v, sin_v, d_so, rv, cv, negc)
        lower[:] = 0.0
        upper[:] = 0.0
        for p in range(2):
            src = img if p == 0 else img_t
            along = rv if p == 0 else cv
            for l in range(n):
                lo, hi, across, a, b, c, d = _line(p, l, n, half, cos_v, sin_v, d_so, d_sd, du, e0, rv, cv, negc)
                if hi <= lo:
                    continue
                cnt = hi - lo
                _factors(along[lo:hi], across, mf[lo : hi + 1], a, b, c, d, top, fac, ii, frac)
                for q in range(nb):
                    row, lw, uw = src[q, l, lo:hi], lower[q], upper[q]
                    prev = 0.0
                    for k in range(cnt):
                        cur = row[k] * fac[k]
                        jump = cur - prev
                        prev = cur
                        i = ii[k]
                        lw[i] += jump
                        uw[i] += frac[k] * jump
                    i = ii[cnt]
                    lw[i] -= prev
                    uw[i] -= frac[cnt] * prev
        for q in range(nb):
            s, prev = 0.0, 0.0
            for k in range(n_det):
                s += lower[q, k] - upper[q, k] + prev
                prev = upper[q, k]
                out[q, v, k] = s


@_jit
def _adjoint(sino, cos, sin, d_so, d_sd, du, e0, n, out, out_t):
    """``out (B, N, N) = A^T y`` for ``sino (B, V, D)``: the rows pass into ``out``, the columns pass into its
    transpose ``out_t`` (both zeroed here)."""
    nb, n_det = sino.shape[0], sino.shape[2]
    half = (n - 1) / 2.0
    coord = np.arange(n) - half
    rv, cv, negc = np.empty(n), np.empty(n), np.empty(n)
    mf = np.arange(n + 1).astype(np.float64)
    fac, ii, frac = np.empty(n), np.empty(n + 1, np.uint32), np.empty(n + 1)
    hy = np.empty((nb, n_det + 1, 2))  # H at bin edge k, y[k] (0 at k = D)
    top = float(n_det)
    out[:] = 0.0
    out_t[:] = 0.0
    for v in range(cos.shape[0]):
        cos_v, sin_v = cos[v], sin[v]
        _view_setup(coord, cos_v, sin_v, d_so, rv, cv, negc)
        for q in range(nb):
            s = 0.0
            for k in range(n_det):
                hy[q, k, 0] = s
                hy[q, k, 1] = sino[q, v, k]
                s += sino[q, v, k]
            hy[q, n_det, 0] = s
            hy[q, n_det, 1] = 0.0
        for p in range(2):
            dst = out if p == 0 else out_t
            along = rv if p == 0 else cv
            for l in range(n):
                lo, hi, across, a, b, c, d = _line(p, l, n, half, cos_v, sin_v, d_so, d_sd, du, e0, rv, cv, negc)
                if hi <= lo:
                    continue
                cnt = hi - lo
                _factors(along[lo:hi], across, mf[lo : hi + 1], a, b, c, d, top, fac, ii, frac)
                for q in range(nb):
                    row, tab = dst[q, l, lo:hi], hy[q]
                    i = ii[0]
                    prev = tab[i, 0] + frac[0] * tab[i, 1]
                    for k in range(cnt):
                        i = ii[k + 1]
                        cur = tab[i, 0] + frac[k + 1] * tab[i, 1]
                        row[k] += fac[k] * (cur - prev)
                        prev = cur


def _geometry(op):
    """``cos, sin`` of the views (torch's, as :mod:`.fan`), ``d_so, d_sd, du`` and the detector's left edge."""
    theta = op.angles_tensor()
    cos, sin = torch.cos(theta).numpy(), torch.sin(theta).numpy()
    d_so, du = op.source_distance, op.detector_spacing
    return cos, sin, d_so, d_so + op.detector_distance, du, -op.n_detectors * du / 2


def forward(op, x: torch.Tensor) -> torch.Tensor:
    """``A x`` for ``x`` ``(B, N*N)`` on the CPU -> ``(B, V, D)`` of ``x``'s dtype."""
    b, n = x.shape[0], op.image_size
    img = x.detach().to(torch.float64).reshape(b, n, n).contiguous()
    img_t = img.transpose(1, 2).contiguous()
    img, img_t, geometry = img.numpy(), img_t.numpy(), _geometry(op)
    out = np.empty((b, op.n_views, op.n_detectors))
    for i in range(0, b, BATCH_CHUNK):
        sl = slice(i, i + BATCH_CHUNK)
        _forward(img[sl], img_t[sl], *geometry, op.n_detectors, out[sl])
    return torch.from_numpy(out).to(x.dtype)


def adjoint(op, y: torch.Tensor) -> torch.Tensor:
    """``A^T y`` for ``y`` ``(B, V, D)`` on the CPU -> ``(B, N*N)`` of ``y``'s dtype."""
    b, n = y.shape[0], op.image_size
    sino = y.detach().to(torch.float64).contiguous().numpy()
    out, out_t, geometry = np.empty((b, n, n)), np.empty((b, n, n)), _geometry(op)
    for i in range(0, b, BATCH_CHUNK):
        sl = slice(i, i + BATCH_CHUNK)
        _adjoint(sino[sl], *geometry, n, out[sl], out_t[sl])
    res = torch.from_numpy(out) + torch.from_numpy(out_t).transpose(1, 2)
    return res.reshape(b, n * n).to(y.dtype)
