"""The matrix-free fan beam: the distance-driven entries of :mod:`.weights` by cumulative sums along image lines.

For one view and one image row (``y`` fixed), the row's pixel boundaries ``x_m = m - N/2`` project onto the
flat detector at ``u(m) = d_sd (x_m c + y s) / (y c - x_m s + d_so)``, in bins ``beta(m) = (u(m) - e_0) / du``:
a projective map of ``m``, monotone along the row (``du/dx`` has the sign of ``y + d_so c``), so, as in the
parallel beam (:mod:`.onthefly`), the footprints of a row tile the detector. The pixels whose mid-line
segment is horizontal in this view (``|ray_y| >= |ray_x|``, the footprints' test) are an interval of the row;
the others are the same on the columns (vertical segments), the second pass. Pixel ``m``'s entry in bin
``k`` is ``factor * |[beta(m), beta(m + 1)] ∩ [k, k + 1]|``, so with ``H`` the cumulative sum of the view's
sinogram row (piecewise linear between bin edges) the adjoint is, per pixel,

    (A^T y)[m] += factor_signed * (H(beta(m + 1)) - H(beta(m))),

``factor_signed = |ray| / ray_across`` (the footprints' factor with the sign of ``d beta / dm``: one formula
for rows whose footprints run either way), and the forward is its transpose: the jumps of
``x * factor_signed`` at the boundaries, each splatted linearly onto the two bins around ``beta(m)``, then a
cumulative sum over the bins. The mask is free: boundaries are clamped to the line's interval of pixels of
the pass, so the other pixels' footprints are empty. Same entries as the stored matrix (to rounding, ~1e-14
in float64; in float32 ~5e-8 of the largest value from the kernel on one image, which computes in float64,
~1e-6 on a batch, which keeps float32 data in float32, ~2e-6 from the torch tiles), and the adjoint is the
exact transpose.

On the CPU (float32 or float64 data) these loops run as one compiled numba kernel, :mod:`.fan_kernel`: per
(view, line) the float64 geometry, per pixel a square root and a division, per boundary two scattered adds
(the forward) or one interpolation of ``H`` (the adjoint), a batch 8 images per boundary visit. Measured (one
thread, CPU time, float32, a shared 2-core Zen 4 machine at load 2.8-3.5, interleaved rounds) at 512 x 512,
720 views over 360 degrees, 775 bins: 0.43 s forward / 0.41 s adjoint (ASTRA 2.5 'line_fanflat' 1.35 / 1.33
s, 'strip_fanflat' 4.1 / 4.1 s); a batch of 8: 1.9 / 1.8 s (8 'line_fanflat' calls: 10.4 / 10.8 s); see
:mod:`.fan_kernel`.

Other devices (CUDA), and the kernel's reference (:func:`torch_forward`, :func:`torch_adjoint`; :data:`KERNEL`
chooses), work in tiles of :data:`TILE_LINES` lines x :data:`TILE_POSITIONS` pixels, only the (view, tile)
pairs that hold pixels of the pass (a view splits the image between the passes along the diagonals through the
source; ~2% of the pixels are visited twice): per pair, a window of bin edges covering its footprints (its
corners' projections), so positions and float32 sums are local and small. Per block of :data:`VIEW_BLOCK`
views the per-(view, line) and per-(view, tile) geometry is computed in float64; per pixel, in chunks of
about :data:`CHUNK_POINTS` pixels, ~20 elementwise torch operations in the data's dtype and one gather (the
adjoint) or two ``scatter_add_`` (the forward) per pixel boundary; a batch shares the geometry. Temporaries
take a few tens of MiB, nothing is kept between calls. Measured on the CPU as above at load 2.6-3.1: 1.37 s
forward / 1.02 s adjoint (the generic triples took 14 / 12 s; 'line_fanflat' in the same rounds: 1.19 /
1.05 s); a batch of 8: 9.1 / 5.4 s; peak ~80 MiB (batch 8: ~150 MiB).
"""

from __future__ import annotations

import torch

#: image lines (rows or columns) and pixels along them per tile
TILE_LINES = 32
TILE_POSITIONS = 64
#: pixels per chunk of (view, tile) pairs (the temporaries stay within the CPU caches: measured fastest)
CHUNK_POINTS = 2**18
#: views whose geometry is computed together
VIEW_BLOCK = 64
#: the CPU path: "numba" (:mod:`.fan_kernel`) or "torch" (the tiles here, the path of other devices; what
#: ``tests/test_ct_fan_onthefly.py`` tests)
KERNEL = "numba"


def tile_shape(op) -> tuple[int, int]:
    """``(lines, positions)`` per tile."""
    return min(TILE_LINES, op.image_size), min(TILE_POSITIONS, op.image_size)


def _starts(n: int, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Tile starts along ``n`` (the last one flush with the end: it may overlap the one before) and the first
    index each tile owns (pixels before it belong to the tile before)."""
    starts = list(range(0, n - size + 1, size))
    if starts[-1] + size < n:
        starts.append(n - size)
    owned = [starts[0]] + [max(s, p + size) for p, s in zip(starts, starts[1:])]
    return torch.tensor(starts), torch.tensor(owned)


def _tile_index(n: int, h: int, w: int, rows: bool) -> torch.Tensor:
    """Flat pixel index ``(tiles, h, w)`` of each tile's pixels (rows: lines are image rows; else columns); a
    pixel an earlier tile owns points to ``N * N`` (a zero appended to the image, a discarded sum)."""
    ls, lown = _starts(n, h)
    ps, pown = _starts(n, w)
    lines = (ls.view(-1, 1) + torch.arange(h)).view(-1, 1, h, 1)
    pos = (ps.view(-1, 1) + torch.arange(w)).view(1, -1, 1, w)
    flat = lines * n + pos if rows else pos * n + lines
    owned = (lines >= lown.view(-1, 1, 1, 1)) & (pos >= pown.view(1, -1, 1, 1))
    return torch.where(owned, flat, n * n).view(-1, h, w)


def _pairs(op, rows: bool, views: torch.Tensor, h: int, w: int, dtype, device) -> dict:
    """The (view, tile) pairs of one pass (rows: lines are image rows, else columns) that hold pixels of the pass
    at ``views``, and their geometry (float64 here, then ``dtype`` on ``device``): ``view`` (in the block),
    ``tile``, window start ``s`` (a bin edge) and ``qmax`` (edges in the window - 1); per line ``(P, h)``:
    ``beta(m) - s = (a + b m) / (c + d m)`` (``b``, ``d`` per pair, ``m`` local to the tile), the pass's pixels
    ``[lo, hi)``, ``across2`` and ``inv = 1 / across``; per position ``(P, w)``: ``along2``."""
    n, d_so, du, n_det = op.image_size, op.source_distance, op.detector_spacing, op.n_detectors
    d_sd, e0, f64 = d_so + op.detector_distance, -n_det * op.detector_spacing / 2, torch.float64
    nv = views.numel()
    theta = op.angles_tensor()[views]
    cos, sin = torch.cos(theta).view(-1, 1), torch.sin(theta).view(-1, 1)
    coord = torch.arange(n, dtype=f64) - (n - 1) / 2  # x of column j; the y of row i is -coord[i]
    ls, _ = _starts(n, h)
    ps, _ = _starts(n, w)
    nlt, npt = ls.numel(), ps.numel()
    # a line's coordinate (rows: y, columns: x); along it, boundary m at z = m - N/2 (rows: x) or N/2 - m (y);
    # pn = z kz + l kl and dist = z gz + l gl + d_so; the ray from the source (d_so sin, -d_so cos) through the
    # pixel centres as the footprints compute it: across the line (rows: y + d_so cos) and along it
    if rows:
        lc, z0 = -coord, ps.to(f64) - n / 2
        across, along = lc.view(1, -1) + d_so * cos, coord.view(1, -1) - d_so * sin
        kz, kl, gz, gl, alpha, gamma = cos, sin, -sin, cos, cos, -sin
    else:
        lc, z0 = coord, n / 2 - ps.to(f64)
        across, along = lc.view(1, -1) - d_so * sin, (-coord).view(1, -1) + d_so * cos
        kz, kl, gz, gl, alpha, gamma = sin, cos, cos, -sin, -sin, -cos
    lines = (ls.view(-1, 1) + torch.arange(h)).view(-1)
    pos = (ps.view(-1, 1) + torch.arange(w)).view(-1)
    # the pixels of the pass on each line: an interval [lo, hi) (|along| is convex along a line), found with the
    # footprints' test (rows: |across| >= |along|, columns: |across| > |along|) on the same float64 numbers
    a_abs = across.abs()
    if rows:
        lo = torch.searchsorted(along.contiguous(), (-a_abs).contiguous())
        hi = torch.searchsorted(along.contiguous(), a_abs.contiguous(), right=True)
    else:  # along decreases along a column: search its negation
        neg = (coord.view(1, -1) - d_so * cos).contiguous()
        lo = torch.searchsorted(neg, (-a_abs).contiguous(), right=True)
        hi = torch.searchsorted(neg, a_abs.contiguous())
    lo_t = (lo.unsqueeze(2) - ps).clamp_(0, w)  # (V, N, npt): within each position tile
    hi_t = torch.maximum((hi.unsqueeze(2) - ps).clamp_(0, w), lo_t)
    live = (hi_t > lo_t).index_select(1, lines).view(nv, nlt, h, npt).any(2)  # (V, nlt, npt)
    whole = ((hi_t - lo_t) == w).index_select(1, lines).view(nv, nlt, h, npt).all(2)  # every pixel in the pass
    # each tile's window of bin edges: beta is monotone along lines and across them: its extremes are at the
    # tile's corners (first / last line, first / last boundary)
    lz = lc[torch.stack([ls, ls + h - 1], 1)].view(1, nlt, 2, 1, 1)
    zz = torch.stack([z0, z0 + (w if rows else -w)], 1).view(1, 1, 1, npt, 2)
    v5 = (nv, 1, 1, 1, 1)
    pn = zz * kz.view(v5) + lz * kl.view(v5)
    dist = zz * gz.view(v5) + lz * gl.view(v5) + d_so
    corner = ((d_sd * pn - e0 * dist) / (du * dist)).transpose(2, 3).reshape(nv, nlt, npt, 4)
    s_all = torch.floor(corner.amin(3))
    q_all = torch.ceil(corner.amax(3)) - s_all
    key = torch.cat([(live & whole).view(-1).nonzero().view(-1), (live & ~whole).view(-1).nonzero().view(-1)])
    n_whole = int((live & whole).sum())  # the pairs [0, n_whole) need no clamping of boundaries
    v, lt, pt = key // (nlt * npt), (key // npt) % nlt, key % npt
    s, qmax = s_all.view(-1).index_select(0, key), q_all.view(-1).index_select(0, key)
    at_line, at_pos = v * nlt + lt, v * npt + pt

    def per(t, at, k):  # rows of the per-(view, tile) table t (V, tiles * k) for the pairs
        return t.reshape(-1, k).index_select(0, at)

    lp = lc[lines].view(nlt, h).index_select(0, lt)  # (P, h)
    zp = z0.index_select(0, pt).view(-1, 1)
    cv = [t.view(-1).index_select(0, v).view(-1, 1) for t in (kz, kl, gz, gl, alpha, gamma)]
    pn0, dist0 = zp * cv[0] + lp * cv[1], zp * cv[2] + lp * cv[3] + d_so  # at each line's first boundary
    shift = (e0 + s * du).view(-1, 1)
    a, b = d_sd * pn0 - shift * dist0, d_sd * cv[4] - shift * cv[5]  # beta(m) - s = (a + b m) / (c + d m)
    c, d = du * dist0, du * cv[5]
    at_bound = ((v * n).view(-1, 1) + ls[lt].view(-1, 1) + torch.arange(h)) * npt + pt.view(-1, 1)  # (V, N, npt)
    out = {"view": v, "tile": lt * npt + pt, "s": s.long(), "qmax": qmax,
           "a": a.to(dtype), "b": b.to(dtype), "c": c.to(dtype), "d": d.to(dtype),
           "lo": lo_t.view(-1)[at_bound].to(dtype), "hi": hi_t.view(-1)[at_bound].to(dtype),
           "across2": per(across.square().to(dtype).index_select(1, lines), at_line, h),
           "inv": per(across.reciprocal().to(dtype).index_select(1, lines), at_line, h),
           "along2": per(along.square().to(dtype).index_select(1, pos), at_pos, w)}
    return {"rows": rows, "qmax_list": qmax.tolist(), "n_whole": n_whole, **{k: t.to(device) for k, t in out.items()}}


def _factor(g: dict, sl: slice) -> torch.Tensor:
    """``|ray| / across`` ``(P, h, w)`` of the pairs ``sl``: the footprints' factor, with the sign of the direction
    in which the footprints of a line run on the detector."""
    fm = torch.add(g["along2"][sl].unsqueeze(1), g["across2"][sl].unsqueeze(2)).sqrt_()
    return fm.mul_(g["inv"][sl].unsqueeze(2))


def _beta(g: dict, sl: slice, w: int) -> torch.Tensor:
    """``beta(m) - s`` ``(P, h, w + 1)`` at the tiles' pixel boundaries ``m``, in bins; in the tiles with pixels of
    both passes, ``m`` clamped to the line's pixels of the pass, ``[lo, hi]``: the others get no footprint (this
    is the mask)."""
    a, b, c, d = g["a"][sl].unsqueeze(2), g["b"][sl].view(-1, 1, 1), g["c"][sl].unsqueeze(2), g["d"][sl].view(-1, 1, 1)
    m = torch.arange(w + 1, dtype=a.dtype, device=a.device).view(1, 1, -1)
    if sl.stop <= g["n_whole"]:
        return torch.add(a, b * m).div_(torch.add(c, d * m))
    m = m.expand(a.shape[0], a.shape[1], -1)
    m = torch.minimum(torch.maximum(m, g["lo"][sl].unsqueeze(2)), g["hi"][sl].unsqueeze(2))  # (faster than clamp)
    den = torch.mul(m, d).add_(c)
    return m.mul_(b).add_(a).div_(den)


def _chunks(g: dict, per_pair: int):
    """``(slice, width)`` chunks of about :data:`CHUNK_POINTS` pixels of the pairs of ``g`` (``per_pair`` each;
    the pairs ``[0, n_whole)`` and the others apart), ``width``: the largest window in the chunk (edges)."""
    qmax, step = g["qmax_list"], max(1, CHUNK_POINTS // per_pair)
    for start, stop in ((0, g["n_whole"]), (g["n_whole"], len(qmax))):
        for p0 in range(start, stop, step):
            sl = slice(p0, min(stop, p0 + step))
            yield sl, int(max(qmax[sl])) + 1


def _kernel(t: torch.Tensor):
    """:mod:`.fan_kernel` when it applies to ``t`` (see :data:`KERNEL`), else None (the torch tiles)."""
    if t.device.type != "cpu" or KERNEL == "torch":
        return None
    from . import fan_kernel

    return fan_kernel


def fan_forward(op, x: torch.Tensor) -> torch.Tensor:
    """``A x`` of a fan beam for ``x`` ``(B, N*N)``; returns ``(B, V, D)``: the numba kernel on the CPU, else
    :func:`torch_forward`."""
    kernel = _kernel(x)
    return torch_forward(op, x) if kernel is None else kernel.forward(op, x)


def fan_adjoint(op, y: torch.Tensor) -> torch.Tensor:
    """``A^T y`` of a fan beam for ``y`` ``(B, V, D)``; returns ``(B, N*N)``: the numba kernel on the CPU, else
    :func:`torch_adjoint`."""
    kernel = _kernel(y)
    return torch_adjoint(op, y) if kernel is None else kernel.adjoint(op, y)


def torch_forward(op, x: torch.Tensor) -> torch.Tensor:
    """``A x`` in torch tiles (any device; the kernel's reference) for ``x`` ``(B, N*N)``; returns ``(B, V, D)``
    (the transpose of :func:`torch_adjoint`: each pixel boundary's jump of ``x * factor`` splatted linearly onto
    its tile's window of bins, whose cumulative sum is the tile's share of the bins)."""
    b, n, n_det = x.shape[0], op.image_size, op.n_detectors
    dt, dev = x.dtype, x.device
    h, w = tile_shape(op)
    out = x.new_empty(b, op.n_views, n_det)
    xz = torch.cat([x, x.new_zeros(b, 1)], 1)  # pixels a tile does not own read the appended zero
    tiles = {rows: xz.index_select(1, _tile_index(n, h, w, rows).to(dev).view(-1)).view(b, -1, h, w)
             for rows in (True, False)}
    for v0 in range(0, op.n_views, VIEW_BLOCK):
        views = torch.arange(v0, min(op.n_views, v0 + VIEW_BLOCK))
        nb = views.numel()
        geoms = [_pairs(op, rows, views, h, w, dt, dev) for rows in (True, False)]
        most = max([int(max(g["qmax_list"])) + 2 for g in geoms if g["qmax_list"]] + [1])
        stride = n_det + most + 2  # bin k of a view at k + 1; room for windows that run off the detector
        acc = x.new_zeros(b, nb * stride)
        for g in geoms:
            for sl, width in _chunks(g, h * w):
                p, width = sl.stop - sl.start, width + 1  # window bins: edges 0 .. qmax, and one beyond
                pos = _beta(g, sl, w)
                idx = pos.to(torch.int32)  # truncation: pos >= 0 (to rounding)
                idx = idx.add_((torch.arange(p, dtype=torch.int32, device=dev) * width).view(p, 1, 1)).view(-1).long()
                frac = pos.frac_()
                xf = tiles[g["rows"]].index_select(1, g["tile"][sl]).mul_(_factor(g, sl))
                jump = x.new_empty(b, p, h, w + 1)  # the jumps of x * factor at the boundaries (0 outside)
                jump[..., 0] = xf[..., 0]
                torch.sub(xf[..., 1:], xf[..., :-1], out=jump[..., 1:w])
                torch.neg(xf[..., w - 1], out=jump[..., w])
                upper = jump.mul(frac)
                # a jump J at i + f: (1 - f) J on window bin i and f J on i + 1
                lower, higher = x.new_zeros(b, p, width), x.new_zeros(b, p, width)
                for i in range(b):  # 1-D scatters: faster than along an axis
                    lower[i].view(-1).scatter_add_(0, idx, jump[i].view(-1))
                    higher[i].view(-1).scatter_add_(0, idx, upper[i].view(-1))
                lower.sub_(higher)[..., 1:] += higher[..., :-1]
                cols = (g["view"][sl] * stride + g["s"][sl] + 1).view(-1, 1) + torch.arange(width, device=dev)
                acc.index_add_(1, cols.view(-1), lower.cumsum_(2).view(b, -1))
        out[:, v0 : v0 + nb] = acc.view(b, nb, stride)[:, :, 1 : n_det + 1]
    return out


def torch_adjoint(op, y: torch.Tensor) -> torch.Tensor:
    """``A^T y`` in torch tiles (any device) for ``y`` ``(B, V, D)``; returns ``(B, N*N)``."""
    b, n, n_det = y.shape[0], op.image_size, op.n_detectors
    dt, dev = y.dtype, y.device
    h, w = tile_shape(op)
    index = {rows: _tile_index(n, h, w, rows).to(dev) for rows in (True, False)}
    acc = {rows: y.new_zeros(b, index[rows].shape[0], h, w) for rows in (True, False)}
    for v0 in range(0, op.n_views, VIEW_BLOCK):
        views = torch.arange(v0, min(op.n_views, v0 + VIEW_BLOCK))
        nb = views.numel()
        # H + i dH per view at edges -1 .. D + 1 (bin k's value at k + 1), centred: from -sum/2 to sum/2
        tab = y.new_zeros(b, nb, n_det + 3, 2)
        torch.cumsum(y[:, v0 : v0 + nb], 2, out=tab[:, :, 2 : n_det + 2, 0])
        tab[:, :, n_det + 2, 0] = tab[:, :, n_det + 1, 0]
        tab[..., 0] -= tab[:, :, -1:, 0] / 2
        tab[:, :, 1 : n_det + 1, 1] = y[:, v0 : v0 + nb]
        table = torch.view_as_complex(tab).view(b, -1)
        for rows in (True, False):
            g = _pairs(op, rows, views, h, w, dt, dev)
            for sl, _ in _chunks(g, h * w):
                p = sl.stop - sl.start
                pos = _beta(g, sl, w)
                idx = pos.to(torch.int32)  # truncation: pos >= 0 (to rounding)
                frac = pos.frac_()
                idx += (g["view"][sl] * (n_det + 3) + g["s"][sl] + 1).to(torch.int32).view(-1, 1, 1)
                idx = idx.view(-1)
                fm = _factor(g, sl)
                contrib = y.new_empty(b, p, h, w)
                for i in range(b):
                    e = torch.view_as_real(table[i].index_select(0, idx)).view(p, h, w + 1, 2)
                    hq = torch.addcmul(e[..., 0], e[..., 1], frac)
                    torch.mul(hq[..., 1:] - hq[..., :-1], fm, out=contrib[i])
                acc[rows].index_add_(1, g["tile"][sl], contrib)
    out = y.new_zeros(b, n * n + 1)  # the last: the sums of pixels a tile does not own (zero anyway)
    for rows in (True, False):
        out.index_add_(1, index[rows].view(-1), acc[rows].view(b, -1))
    return out[:, : n * n]
