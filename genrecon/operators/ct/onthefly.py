"""The matrix-free path of the CT projectors: weights computed per block of views, never stored.

Generic (the default of :class:`~.projector.CTProjector` for a geometry without a faster path; the parallel
and fan beams have theirs, the fan beam's in :mod:`.fan`): :func:`block_weights` gives the (pixel, bin,
weight) triples of a chunk of pixels x views, once for the whole batch; the forward scatters them per image
(1-D ``index_add_``) into the sinogram, the adjoint applies them as a CSR matrix (a row per pixel) to the
batch-last sinograms, so ``<Ax, y> = <x, A^T y>`` to rounding and the entries equal the stored matrix's. The
weights cost ~20 float64 operations per candidate entry and dominate (the fan beam at 512 x 512 with 720
views took 12-14 s per call this way, one thread).

Parallel beam (separable, faster): for a view whose rays are closer to vertical, the footprints of one image
row tile the detector with boundaries ``b_m = (m - N/2) a + o_r`` (``a = cos``, ``o_r = y_r sin``; a view closer
to horizontal is the same on the transposed image with ``a = -sin``, ``o_r = x_r cos``). The bin-averaged
integral of the row is then a difference of its cumulative sum ``C_r`` (piecewise linear between the pixel
boundaries) taken at the bin edges ``e_k``:

    y[v, k] = sign(a) / du * sum_r (C_r(t_{r,k+1}) - C_r(t_{r,k})),   t_{r,k} = (e_k - o_r) / a + N / 2

and the adjoint is, per pixel, the difference of the sinogram's cumulative sum ``H_v`` (piecewise linear
between the bin edges) at the pixel's two boundaries, divided by ``a``. These are the distance-driven entries
of :mod:`.weights` (the same operator: the two paths agree to rounding, ~1e-14 in float64, ~1e-5 in
float32 from the cumulative sums), at one linear interpolation per (row, bin edge) or (row, pixel boundary)
instead of several candidate weights per (pixel, view). One image uses the functions here (per-image
gathers); a batch uses :mod:`.batched` (the same interpolation weights, computed once and applied to every
image as a sparse matrix product).
"""

from __future__ import annotations

import warnings

import torch

from .weights import block_weights, n_candidates


def _csr(col: torch.Tensor, val: torch.Tensor, n_cols: int) -> torch.Tensor:
    """CSR matrix with ``col.shape[0]`` rows of ``col[0].numel()`` entries each (``col`` ``(rows, ...)``)."""
    rows, per_row = col.shape[0], col[0].numel()
    crow = torch.arange(0, rows * per_row + 1, per_row, dtype=torch.int32, device=col.device)
    with warnings.catch_warnings():  # "sparse CSR support is in beta": the ops used here are stable
        warnings.simplefilter("ignore", UserWarning)
        return torch.sparse_csr_tensor(crow, col.reshape(-1), val.reshape(-1), size=(rows, n_cols),
                                       check_invariants=False)

#: image rows per tile of the parallel-beam forward (each tile is interpolated on its own window of bin edges)
TILE_ROWS = 16
#: bytes of temporaries one block of views may use (small blocks stay in the CPU caches: measured fastest)
BLOCK_BYTES = 2**20
#: the generic path: views per block, and candidate entries per chunk of (pixels, views)
GENERIC_VIEWS = 16
GENERIC_ENTRIES = 2**18


class Apply(torch.autograd.Function):
    """``x -> f(x)`` for a linear ``f`` whose adjoint ``g`` gives the backward pass."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, f, g) -> torch.Tensor:  # type: ignore[override]
        ctx.fns = (f, g)
        return f(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        f, g = ctx.fns
        return Apply.apply(grad, g, f), None, None


def views_per_block(n_views: int, bytes_per_view: float, budget_bytes: float) -> int:
    """Views per block so that a block's temporaries stay under ``min(budget_bytes, BLOCK_BYTES)``."""
    return int(max(1, min(n_views, min(budget_bytes, BLOCK_BYTES) // max(bytes_per_view, 1.0))))


# -- generic: (pixel, bin, weight) triples per chunk of pixels and block of views ---------------------------
def _generic_chunks(op):
    """``(views, p0, p1)`` chunks: blocks of :data:`GENERIC_VIEWS` views, each in ranges of pixels with about
    :data:`GENERIC_ENTRIES` candidate entries (their temporaries stay in the CPU caches)."""
    p, n_cand = op.image_size**2, n_candidates(op)
    nb = min(op.n_views, GENERIC_VIEWS)
    step = max(1, GENERIC_ENTRIES // (nb * n_cand))
    for v0 in range(0, op.n_views, nb):
        views = torch.arange(v0, min(op.n_views, v0 + nb))
        for p0 in range(0, p, step):
            yield views, p0, min(p, p0 + step)


def generic_forward(op, x: torch.Tensor) -> torch.Tensor:
    """``A x`` for ``x`` ``(B, N*N)``; returns ``(B, V, D)``. The weights of a chunk are computed once and
    scattered per image (1-D ``index_add_``: a batched scatter along the second axis was ~8x slower)."""
    b, n_det = x.shape[0], op.n_detectors
    out = x.new_zeros(b, op.n_views, n_det)
    for views, p0, p1 in _generic_chunks(op):
        cols, vals = block_weights(op, p0, p1, views, device=x.device)
        cols, vals, v0, v1 = cols.view(-1), vals.to(x.dtype), int(views[0]), int(views[-1]) + 1
        for i in range(b):
            out[i, v0:v1].view(-1).index_add_(0, cols, (x[i, p0:p1].view(-1, 1, 1) * vals).view(-1))
    return out


def generic_adjoint(op, y: torch.Tensor) -> torch.Tensor:
    """``A^T y`` for ``y`` ``(B, V, D)``; returns ``(B, N*N)``: per chunk, the weights as a CSR matrix (a row
    per pixel, its entries in the block's views) times the block of the batch-last sinograms."""
    b, p = y.shape[0], op.image_size**2
    out = y.new_zeros(p, b)
    for views, p0, p1 in _generic_chunks(op):
        if p0 == 0:
            yb = y[:, int(views[0]) : int(views[-1]) + 1].reshape(b, -1).t().contiguous()
        cols, vals = block_weights(op, p0, p1, views, device=y.device)
        out[p0:p1] += torch.sparse.mm(_csr(cols.view(p1 - p0, -1), vals.to(y.dtype).view(p1 - p0, -1),
                                           yb.shape[0]), yb)
    return out.t().contiguous()


# -- parallel beam: cumulative sums along image rows / detector bins ------------------------------------------
def _passes(op, device):
    """``(row_view, views, a, o)`` per group of views (rows closer to vertical on the image, the others on its
    transpose): pixel boundary ``m`` of image row ``r`` is at ``(m - N/2) a + o[r]`` on the detector."""
    n = op.image_size
    theta = op.angles_tensor(device=device)
    c, s = torch.cos(theta), torch.sin(theta)
    coord = torch.arange(n, dtype=torch.float64, device=device) - (n - 1) / 2
    rows = c.abs() >= s.abs()  # the same test as the footprints' max(|cos|, |sin|)
    groups = []
    for flag in (True, False):
        views = (rows if flag else ~rows).nonzero().view(-1)
        if views.numel():
            a = c[views] if flag else -s[views]
            o = (s[views] if flag else c[views]).view(-1, 1) * (-coord if flag else coord).view(1, -1)
            groups.append((flag, views, a, o))
    return groups


def _interp(table: torch.Tensor, pos: torch.Tensor, offset: torch.Tensor, hi: int) -> torch.Tensor:
    """``F`` linearly interpolated at ``clamp(pos, 0, hi) + offset`` (``pos`` is overwritten); ``table`` ``(B, M)``
    complex holds ``F + i dF`` (cumulative sums and their increments, 0 at segment ends: one gather per point).
    Returns ``(B, pos.numel())``."""
    pos.clamp_(0, hi)
    fl = torch.floor(pos)
    frac = pos.sub_(fl).view(-1)
    idx = fl.to(torch.int32).add_(offset).view(-1)
    out = frac.new_empty(table.shape[0], frac.numel())
    for i in range(table.shape[0]):  # the positions are shared; 1-D gathers per image are the fastest (CPU)
        g = torch.view_as_real(table[i].index_select(0, idx))
        torch.addcmul(g[:, 0], g[:, 1], frac, out=out[i])
    return out


def _cumsum_table(rows: torch.Tensor) -> torch.Tensor:
    """``F + i dF`` of ``rows`` ``(B, R, L)``: cumulative sums ``(B, R, L + 1)`` from 0 and the rows padded with
    a 0, packed as one complex ``(B, R * (L + 1))`` table."""
    b, r, length = rows.shape
    table = rows.new_zeros(b, r, length + 1, 2)
    torch.cumsum(rows, 2, out=table[:, :, 1:, 0])
    table[:, :, :length, 1] = rows
    return torch.view_as_complex(table).view(b, -1)


def _tile_windows(op, a: torch.Tensor, o: torch.Tensor, h: int):
    """The forward's positions and tile windows of one pass (:func:`_passes`'s ``a``, ``o``), rows padded to whole
    tiles of ``h``: ``(alpha, beta, lo, hi)`` with ``t[v, r, k] = k alpha[v] + beta[v, r]`` the bin edge ``k`` in
    pixel boundaries of row ``r``, and ``[lo, hi]`` ``(views, tiles)`` the edges a tile's footprints cover."""
    n, n_det, du = op.image_size, op.n_detectors, op.detector_spacing
    nt = -(-n // h)
    o = torch.cat([o, o[:, -1:].expand(-1, nt * h - n)], 1)
    alpha, beta = du / a, (-n_det * du / 2 - o) / a.view(-1, 1) + n / 2  # t[v, r, k] = k alpha + beta[v, r]
    e1, e2 = -beta / alpha.view(-1, 1), (n - beta) / alpha.view(-1, 1)  # where t = 0 and t = N
    lo = torch.floor(torch.minimum(e1, e2).view(-1, nt, h).amin(2))
    hi = torch.ceil(torch.maximum(e1, e2).view(-1, nt, h).amax(2))
    return alpha, beta, lo, hi


def parallel_forward(op, x: torch.Tensor) -> torch.Tensor:
    """``A x`` of a parallel beam for ``x`` ``(B, N*N)``; returns ``(B, V, D)``.

    Rows go in tiles of :data:`TILE_ROWS`; a tile is interpolated only at the bin edges inside its rows'
    footprints (a window of ~``N |a| / du`` edges, not all ``D + 1``): on one side of the window its ``C_r`` are
    0, on the other the row sums, which enter the bin differences once, at the window's edge.
    """
    b, n, n_det, du = x.shape[0], op.image_size, op.n_detectors, op.detector_spacing
    dt, dev, f64 = x.dtype, x.device, torch.float64
    h = min(TILE_ROWS, n)
    nt = -(-n // h)
    image = torch.nn.functional.pad(x.view(b, n, n), (0, 0, 0, nt * h - n))  # zero rows up to whole tiles
    out = x.new_empty(b, op.n_views, n_det)
    offset = (torch.arange(nt * h, dtype=torch.int32, device=dev) * (n + 1)).view(1, nt, h, 1)
    for row_view, views, a, o in _passes(op, dev):
        img = image if row_view else torch.nn.functional.pad(x.view(b, n, n).transpose(1, 2), (0, 0, 0, nt * h - n))
        table = _cumsum_table(img)
        tile_sums = img.sum(2).view(b, nt, h).sum(2)
        alpha, beta, lo, hi = _tile_windows(op, a, o, h)
        width = min(int((hi - lo).max()) + 1, n_det + 1)
        start = lo.clamp(0, n_det + 1 - width)  # (views, tiles): the first edge of each tile's window
        q = torch.arange(width, dtype=f64, device=dev)
        nb_max = views_per_block(views.numel(), n * width * (12 + 3 * x.element_size() * b),
                                 op.memory_budget_mib * 2**20 / 4)
        for v0 in range(0, views.numel(), nb_max):
            av, bv, sv = alpha[v0 : v0 + nb_max], beta[v0 : v0 + nb_max], start[v0 : v0 + nb_max]
            nb = av.numel()
            pos = (q * av.view(-1, 1, 1, 1)).to(dt) + (sv.view(nb, nt, 1, 1) * av.view(-1, 1, 1, 1)
                                                       + bv.view(nb, nt, h, 1)).to(dt)
            g = _interp(table, pos, offset, n).view(b, nb, nt, h, width).sum(3)
            # each tile's bin differences, with its value below (0 or the row sums) and above the window: small
            # numbers are accumulated into the sinogram, not the large cumulative sums (float32 accuracy)
            ends = tile_sums.view(b, 1, nt, 1) * torch.ones(nb, 1, 1, dtype=dt, device=dev)
            rising = (av > 0).view(1, -1, 1, 1)
            g = torch.cat([torch.where(rising, 0.0, ends), g, torch.where(rising, ends, 0.0)], 3)
            rows = torch.arange(nb, device=dev).view(-1, 1, 1) * (n_det + 2)
            s = x.new_zeros(b, nb * (n_det + 2))  # bin k at k + 1: room for the differences just off the detector
            s.index_add_(1, (rows + sv.long().view(nb, nt, 1) + torch.arange(width + 1, device=dev)).view(-1),
                         (g[..., 1:] - g[..., :-1]).reshape(b, -1))
            out[:, views[v0 : v0 + nb]] = s.view(b, nb, -1)[:, :, 1 : n_det + 1].mul_(
                (torch.sign(av) / du).to(dt).view(-1, 1))
    return out


def parallel_adjoint(op, y: torch.Tensor) -> torch.Tensor:
    """``A^T y`` of a parallel beam for ``y`` ``(B, V, D)``; returns ``(B, N*N)``."""
    b, n, n_det, du = y.shape[0], op.image_size, op.n_detectors, op.detector_spacing
    dt, dev = y.dtype, y.device
    m = torch.arange(n + 1, dtype=torch.float64, device=dev) - n / 2
    edge0 = -n_det * du / 2
    acc = [y.new_zeros(b, n, n), y.new_zeros(b, n, n)]
    nb_max = views_per_block(op.n_views, n * (n + 1) * (12 + 3 * y.element_size() * b),
                             op.memory_budget_mib * 2**20 / 4)
    for row_view, views, a, o in _passes(op, dev):
        for v0 in range(0, views.numel(), nb_max):
            av, ov, vv = a[v0 : v0 + nb_max], o[v0 : v0 + nb_max], views[v0 : v0 + nb_max]
            nb = av.numel()
            table = _cumsum_table(y[:, vv] / av.to(dt).view(1, -1, 1))  # 1/a folded in
            pos = (m.view(1, 1, -1) * (av / du).view(-1, 1, 1)).to(dt) + ((ov - edge0) / du).to(dt).unsqueeze(-1)
            offset = (torch.arange(nb, dtype=torch.int32, device=dev) * (n_det + 1)).view(-1, 1, 1)
            q = _interp(table, pos, offset, n_det).view(b, nb, n, n + 1).sum(1)
            acc[0 if row_view else 1] += q[:, :, 1:] - q[:, :, :-1]
    return (acc[0] + acc[1].transpose(1, 2)).reshape(b, n * n)
