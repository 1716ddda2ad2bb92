"""The fast dual TV prox's inner loop as one fused CPU kernel (numba), used by :class:`~.tv.TVProx` on the CPU.

The torch loop in :mod:`.tv` makes fourteen passes over memory-bound planes per dual step; this kernel makes one,
row by row, with the same arithmetic (results agree to float rounding; ``tests/test_tv_kernel.py``):

- per dual step, ``x' = P_C(b' + div(q) / 8)`` is computed one row ahead of the dual update into a ring of two
  rows (the update of row ``i`` needs ``x'`` rows ``i`` and ``i + 1``; row ``i + 1``'s divergence reads ``q`` rows
  ``i`` and ``i + 1``, so it is formed before row ``i`` of ``q`` is overwritten), so ``x'`` never makes a trip
  through memory;
- the update of a row: ``g = q + grad x'`` (exactly 0 at the Neumann boundary), ``|g|^2`` summed over the two
  directions and, for complex images, the real and imaginary planes, ``p_new = g / max(1, |g|)`` and the momentum
  point ``q = p + w (p_new - p)``, written in place over ``q`` and ``p``; the rows of ``g`` stay in two small
  buffers, so every inner loop is a branch-free loop over one contiguous row (vectorised by LLVM);
- the first step of a call reads ``q = p`` (the warm start: the last call's ``p``) and the result is
  ``x = 8 lam P_C(b' + div(p) / 8)`` from the final ``p``, written straight into the caller's interleaved complex
  (or real) buffer.

Layouts: ``b`` ``(L, H, W, K)`` (a complex image viewed as real pairs, ``K = 2``; real ``K = 1``), the scaled
planes ``bs`` and the bound ``lower`` ``(L, K, H, W)``, the duals ``p``, ``q`` ``(L, 2, K, H, W)`` (direction 0
along W, 1 along H: :class:`~.tv._Workspace`'s order). Arithmetic in the data's precision (float32 or float64).
One thread. The first call compiles (about 2-4 s; cached on disk after that).
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True, error_model="numpy", inline="always")
def _x_row(bs, lower, mode, src, l, k, i, xr, eighth):  # pragma: no cover - compiled
    """``xr = P_C(bs[l, k, i] + div(src[l])[k, i] / 8)``; ``mode``: 0 no constraint, 1 ``x >= 0``, 2 ``x >= lower``."""
    w = xr.shape[0]
    s0 = src[l, 0, k, i]
    s1 = src[l, 1, k, i]
    br = bs[l, k, i]
    if i > 0:
        s1u = src[l, 1, k, i - 1]
        xr[0] = br[0] + eighth * (s0[0] + (s1[0] - s1u[0]))
        for j in range(1, w):
            xr[j] = br[j] + eighth * ((s0[j] - s0[j - 1]) + (s1[j] - s1u[j]))
    else:
        xr[0] = br[0] + eighth * (s0[0] + s1[0])
        for j in range(1, w):
            xr[j] = br[j] + eighth * ((s0[j] - s0[j - 1]) + s1[j])
    if mode == 1:
        zero = eighth * 0
        for j in range(w):
            xr[j] = max(xr[j], zero)
    elif mode == 2:
        lr = lower[l, k, i]
        for j in range(w):
            xr[j] = max(xr[j], lr[j])


@numba.njit(cache=True, error_model="numpy")
def _dual_step(bs, lower, mode, src, p, q, l, w, ring, g, nrow):  # pragma: no cover - compiled
    """One dual step of image ``l`` at the point ``src`` (``p`` or ``q``): ``p <- p_new``, ``q <- p + w (p_new - p)``."""
    _, _, kk, h, wd = p.shape
    one = nrow.dtype.type(1.0)
    eighth = nrow.dtype.type(0.125)
    for k in range(kk):
        _x_row(bs, lower, mode, src, l, k, 0, ring[0, k], eighth)
    for i in range(h):
        cur = ring[i % 2]
        nxt = ring[(i + 1) % 2]
        if i + 1 < h:
            for k in range(kk):
                _x_row(bs, lower, mode, src, l, k, i + 1, nxt[k], eighth)
        for j in range(wd):
            nrow[j] = 0
        for k in range(kk):
            s0 = src[l, 0, k, i]
            s1 = src[l, 1, k, i]
            xr = cur[k]
            g0 = g[0, k]
            g1 = g[1, k]
            for j in range(wd - 1):
                g0[j] = s0[j] + (xr[j + 1] - xr[j])
            g0[wd - 1] = s0[wd - 1]
            if i + 1 < h:
                xd = nxt[k]
                for j in range(wd):
                    g1[j] = s1[j] + (xd[j] - xr[j])
            else:
                for j in range(wd):
                    g1[j] = s1[j]
            for j in range(wd):
                nrow[j] += g0[j] * g0[j] + g1[j] * g1[j]
        for j in range(wd):
            nrow[j] = one / np.sqrt(max(nrow[j], one))
        for k in range(kk):
            for d in range(2):
                gd = g[d, k]
                pr = p[l, d, k, i]
                qr = q[l, d, k, i]
                for j in range(wd):
                    gj = gd[j] * nrow[j]
                    pj = pr[j]
                    qr[j] = pj + w * (gj - pj)
                    pr[j] = gj


@numba.njit(cache=True, error_model="numpy")
def fgp(b, scale, lower, mode, p, q, weights, out, out_scale, bs, ring, g, nrow):  # pragma: no cover - compiled
    """``len(weights)`` dual steps from ``q = p`` (momentum weights ``weights``) for every image of ``b``, then
    ``out = out_scale * P_C(scale * b + div(p) / 8)``. ``bs`` ``(L, K, H, W)``, ``ring``, ``g`` ``(2, K, W)`` and
    ``nrow`` ``(W,)`` are scratch; ``lower`` ``(L, K, H, W)`` scaled already (read only when ``mode == 2``)."""
    nl, h, wd, kk = b.shape
    eighth = nrow.dtype.type(0.125)
    for l in range(nl):
        for i in range(h):
            for k in range(kk):
                br = bs[l, k, i]
                for j in range(wd):
                    br[j] = b[l, i, j, k] * scale
        for it in range(weights.shape[0]):
            _dual_step(bs, lower, mode, p if it == 0 else q, p, q, l, weights[it], ring, g, nrow)
        for i in range(h):
            for k in range(kk):
                xr = ring[0, k]
                _x_row(bs, lower, mode, p, l, k, i, xr, eighth)
                for j in range(wd):
                    out[l, i, j, k] = xr[j] * out_scale
