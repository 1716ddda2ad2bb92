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
sinogram row. One image runs in float64 (float32 data is converted on the way in and out); a batch keeps its
images (forward) and its adjoint's sums in the data's precision, as the stored matrix and the torch tiles do
(geometry and the forward's bin sums in float64): at 512 x 512 a batch of 8 in float64 is 32 MiB of image and
transpose, out of the caches. The geometry of each (view, line) is computed in the loops, nothing stored beyond a
few rows of ``N`` or ``D`` values per call; the columns pass reads / writes a transposed copy of the image so that
both passes walk contiguous memory.

The loops run from the line's first pixel over slices (``along[lo:hi]``, ``row[lo:hi]``) and bins are indexed with
unsigned integers: numba's negative-index wrap would otherwise turn the vectorised loops (the square roots and
divisions, :func:`_factors`) into gathers and scatters, 2-4x slower. Per (view, line) the float64 geometry; per
pixel one square root and one division (vectorised, AVX-512 here), then per image of the batch one scalar loop: the
forward's two scattered adds per boundary into the view's increment rows (``lower``: ``J``, ``upper``: ``f J``,
then ``lower - upper`` plus ``upper`` one bin on; not ``(1 - f) J`` and ``f J`` into one row: a boundary in the
next bin would wait on the previous one's store), the adjoint's interpolation of ``H`` per boundary. A batch
(:func:`_forward_batch`, :func:`_adjoint_batch`) shares everything but those loops and runs them with the batch
innermost, :data:`LANES` images a call (images ``(N, N, LANES)``, sinograms ``(V, D, LANES)``, the last call
padded with zeros): the per-boundary work is shared and the images' updates are short contiguous loops. One
thread (no ``prange``: the benchmarks count CPU time, and the 2-core machine is shared). Memory: copies of the
image (and its transpose) or sinogram, the output, and numba itself (~60 MiB resident once imported).

Measured (one thread, CPU time, float32 data, a shared 2-core AMD EPYC (Zen 4) VM, interleaved rounds of
``python scripts/bench_ct.py --full-size 512x720xfan --threads 1 --repeats 3``, load 2.8 -> 3.5;
benchmarks/operators.json) at 512 x 512, 720 views over 360 degrees, 775 bins: 0.43 s forward / 0.41 s adjoint
(ASTRA 2.5 'line_fanflat' 1.35 / 1.33 s, 'strip_fanflat' 4.1 / 4.1 s; the torch tiles of :mod:`.fan` 2.0 / 1.5 s
at load 4.3); a batch of 8: 1.9 / 1.8 s (8 'line_fanflat' calls: 10.4 / 10.8 s, 5.4x / 6.1x); peak 137 MiB, ~60
of it numba's import (batch 8: 53 MiB). At 256 x 256 with 180 views (388 bins): 28-31 / 24-29 ms, a batch of 8
110-122 / 95-101 ms (load 2.7-3; 'line_fanflat' 92 / 89 ms, 8 calls 700 / 612 ms, at load 4.3). The first call
of a process imports numba (~0.35 s) and loads the cached machine code (~0.4 s); without a cache it compiles
(~5-10 s for the single-image and batch kernels).
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
#: images per call of the batch kernels, a compile-time constant: a loop over a runtime batch of 8 is too short
#: for LLVM's vector loop (it ran scalar); 8 float64 lanes are one AVX-512 register (two AVX2 ones)
LANES = 8


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
    """``out (V, D) = A x`` for one image ``img (N, N)`` and its transpose ``img_t``."""
    n = img.shape[0]
    half = (n - 1) / 2.0
    coord = np.arange(n) - half
    rv, cv, negc = np.empty(n), np.empty(n), np.empty(n)
    mf = np.arange(n + 1).astype(np.float64)
    fac, ii, frac = np.empty(n), np.empty(n + 1, np.uint32), np.empty(n + 1)
    lower, upper = np.empty(n_det + 2), np.empty(n_det + 2)
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
                row, prev = src[l, lo:hi], 0.0
                for k in range(cnt):
                    cur = row[k] * fac[k]
                    jump = cur - prev
                    prev = cur
                    i = ii[k]
                    lower[i] += jump
                    upper[i] += frac[k] * jump
                i = ii[cnt]
                lower[i] -= prev
                upper[i] -= frac[cnt] * prev
        s, prev = 0.0, 0.0
        for k in range(n_det):
            s += lower[k] - upper[k] + prev
            prev = upper[k]
            out[v, k] = s


@_jit
def _adjoint(sino, cos, sin, d_so, d_sd, du, e0, n, out, out_t):
    """``out (N, N) = A^T y`` for one sinogram ``sino (V, D)``: the rows pass into ``out``, the columns pass into
    its transpose ``out_t`` (both zeroed here)."""
    n_det = sino.shape[1]
    half = (n - 1) / 2.0
    coord = np.arange(n) - half
    rv, cv, negc = np.empty(n), np.empty(n), np.empty(n)
    mf = np.arange(n + 1).astype(np.float64)
    fac, ii, frac = np.empty(n), np.empty(n + 1, np.uint32), np.empty(n + 1)
    tab = np.empty((n_det + 1, 2))  # H at bin edge k, y[k] (0 at k = D)
    top = float(n_det)
    out[:] = 0.0
    out_t[:] = 0.0
    for v in range(cos.shape[0]):
        cos_v, sin_v = cos[v], sin[v]
        _view_setup(coord, cos_v, sin_v, d_so, rv, cv, negc)
        s = 0.0
        for k in range(n_det):
            tab[k, 0] = s
            tab[k, 1] = sino[v, k]
            s += sino[v, k]
        tab[n_det, 0] = s
        tab[n_det, 1] = 0.0
        for p in range(2):
            dst = out if p == 0 else out_t
            along = rv if p == 0 else cv
            for l in range(n):
                lo, hi, across, a, b, c, d = _line(p, l, n, half, cos_v, sin_v, d_so, d_sd, du, e0, rv, cv, negc)
                if hi <= lo:
                    continue
                cnt = hi - lo
                _factors(along[lo:hi], across, mf[lo : hi + 1], a, b, c, d, top, fac, ii, frac)
                row, i = dst[l, lo:hi], ii[0]
                prev = tab[i, 0] + frac[0] * tab[i, 1]
                for k in range(cnt):
                    i = ii[k + 1]
                    cur = tab[i, 0] + frac[k + 1] * tab[i, 1]
                    row[k] += fac[k] * (cur - prev)
                    prev = cur


@_jit
def _forward_batch(img, img_t, cos, sin, d_so, d_sd, du, e0, n_det, out):
    """:func:`_forward` with the batch innermost: ``img``, ``img_t`` ``(N, N, B)``, ``B`` = :data:`LANES`; the
    geometry, each boundary's bin and fraction, and the loop overhead are shared by the batch."""
    n = img.shape[0]
    half = (n - 1) / 2.0
    coord = np.arange(n) - half
    rv, cv, negc = np.empty(n), np.empty(n), np.empty(n)
    mf = np.arange(n + 1).astype(np.float64)
    fac, ii, frac = np.empty(n), np.empty(n + 1, np.uint32), np.empty(n + 1)
    lower, upper = np.empty((n_det + 2, LANES)), np.empty((n_det + 2, LANES))
    prev, s, last = np.empty(LANES), np.empty(LANES), np.empty(LANES)
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
                rows = src[l, lo:hi]
                prev[:] = 0.0
                for k in range(cnt):
                    i, f, g = ii[k], frac[k], fac[k]
                    row, lw, uw = rows[k], lower[i], upper[i]
                    for q in range(LANES):
                        cur = row[q] * g
                        jump = cur - prev[q]
                        prev[q] = cur
                        lw[q] += jump
                        uw[q] += f * jump
                i, f = ii[cnt], frac[cnt]
                lw, uw = lower[i], upper[i]
                for q in range(LANES):
                    lw[q] -= prev[q]
                    uw[q] -= f * prev[q]
        s[:] = 0.0
        last[:] = 0.0
        for k in range(n_det):
            lw, uw = lower[k], upper[k]
            for q in range(LANES):
                s[q] += lw[q] - uw[q] + last[q]
                last[q] = uw[q]
                out[q, v, k] = s[q]


@_jit
def _adjoint_batch(sino, cos, sin, d_so, d_sd, du, e0, n, out, out_t):
    """:func:`_adjoint` with the batch innermost: ``sino`` ``(V, D, B)``, ``out``, ``out_t`` ``(N, N, B)``, ``B`` =
    :data:`LANES`."""
    n_det = sino.shape[1]
    half = (n - 1) / 2.0
    coord = np.arange(n) - half
    rv, cv, negc = np.empty(n), np.empty(n), np.empty(n)
    mf = np.arange(n + 1).astype(np.float64)
    fac, ii, frac = np.empty(n), np.empty(n + 1, np.uint32), np.empty(n + 1)
    hs, ys = np.empty((n_det + 1, LANES)), np.empty((n_det + 1, LANES))  # H at bin edge k, y[k] (0 at k = D)
    prev = np.empty(LANES)
    top = float(n_det)
    out[:] = 0.0
    out_t[:] = 0.0
    for v in range(cos.shape[0]):
        cos_v, sin_v = cos[v], sin[v]
        _view_setup(coord, cos_v, sin_v, d_so, rv, cv, negc)
        hs[0, :] = 0.0
        for k in range(n_det):
            ys[k, :] = sino[v, k]
            for q in range(LANES):
                hs[k + 1, q] = hs[k, q] + sino[v, k, q]
        ys[n_det, :] = 0.0
        for p in range(2):
            dst = out if p == 0 else out_t
            along = rv if p == 0 else cv
            for l in range(n):
                lo, hi, across, a, b, c, d = _line(p, l, n, half, cos_v, sin_v, d_so, d_sd, du, e0, rv, cv, negc)
                if hi <= lo:
                    continue
                cnt = hi - lo
                _factors(along[lo:hi], across, mf[lo : hi + 1], a, b, c, d, top, fac, ii, frac)
                rows = dst[l, lo:hi]
                i, f = ii[0], frac[0]
                for q in range(LANES):
                    prev[q] = hs[i, q] + f * ys[i, q]
                for k in range(cnt):
                    i, f, g = ii[k + 1], frac[k + 1], fac[k]
                    row, h, y = rows[k], hs[i], ys[i]
                    for q in range(LANES):
                        cur = h[q] + f * y[q]
                        row[q] += g * (cur - prev[q])
                        prev[q] = cur


def _geometry(op):
    """``cos, sin`` of the views (torch's, as :mod:`.fan`), ``d_so, d_sd, du`` and the detector's left edge."""
    theta = op.angles_tensor()
    cos, sin = torch.cos(theta).numpy(), torch.sin(theta).numpy()
    d_so, du = op.source_distance, op.detector_spacing
    return cos, sin, d_so, d_so + op.detector_distance, du, -op.n_detectors * du / 2


def _lanes(t: torch.Tensor, i: int) -> torch.Tensor:
    """Images ``i .. i + LANES`` of ``t`` (zeros past its end), the batch moved last: ``(..., LANES)``."""
    chunk = t[i : i + LANES]
    if chunk.shape[0] < LANES:
        chunk = torch.cat([chunk, chunk.new_zeros(LANES - chunk.shape[0], *chunk.shape[1:])])
    return chunk.movedim(0, -1)


def forward(op, x: torch.Tensor) -> torch.Tensor:
    """``A x`` for ``x`` ``(B, N*N)`` on the CPU -> ``(B, V, D)`` of ``x``'s dtype."""
    b, n = x.shape[0], op.image_size
    geometry = _geometry(op)
    if b == 1:
        img = x.detach().to(torch.float64).reshape(n, n)
        out = np.empty((op.n_views, op.n_detectors))
        _forward(img.contiguous().numpy(), img.t().contiguous().numpy(), *geometry, op.n_detectors, out)
        return torch.from_numpy(out).to(x.dtype).unsqueeze(0)
    img = x.detach().reshape(b, n, n)
    out = np.empty((LANES * -(-b // LANES), op.n_views, op.n_detectors))
    for i in range(0, b, LANES):  # the batch innermost, LANES images a call
        lanes = _lanes(img, i)
        _forward_batch(lanes.contiguous().numpy(), lanes.transpose(0, 1).contiguous().numpy(), *geometry,
                       op.n_detectors, out[i : i + LANES])
    return torch.from_numpy(out[:b]).to(x.dtype)


def adjoint(op, y: torch.Tensor) -> torch.Tensor:
    """``A^T y`` for ``y`` ``(B, V, D)`` on the CPU -> ``(B, N*N)`` of ``y``'s dtype."""
    b, n = y.shape[0], op.image_size
    sino, geometry = y.detach(), _geometry(op)
    if b == 1:
        out, out_t = np.empty((n, n)), np.empty((n, n))
        _adjoint(sino[0].to(torch.float64).contiguous().numpy(), *geometry, n, out, out_t)
        return (torch.from_numpy(out) + torch.from_numpy(out_t).t()).reshape(1, n * n).to(y.dtype)
    res = y.new_empty(b, n, n)
    out, out_t = torch.empty(n, n, LANES, dtype=y.dtype), torch.empty(n, n, LANES, dtype=y.dtype)
    for i in range(0, b, LANES):  # the batch innermost, LANES images a call
        _adjoint_batch(_lanes(sino, i).contiguous().numpy(), *geometry, n, out.numpy(), out_t.numpy())
        res[i : i + LANES] = torch.add(out, out_t.transpose(0, 1)).movedim(-1, 0)[: min(LANES, b - i)]
    return res.reshape(b, n * n)
