"""Distance-driven weights of a block of (pixel, view) pairs: the entries of the CT system matrix.

Each pixel's mid-line segment (horizontal when the ray through it is closer to vertical, else vertical) is
projected onto the detector (the projector's ``_footprints``); its overlap with each detector bin, divided by
the bin width and multiplied by the ray's secant to the stepping axis, is the matrix entry. Both the stored
matrix (:mod:`.matrix`) and the generic on-the-fly path (:mod:`.onthefly`) take their entries from
:func:`block_weights`, so they are the same numbers.
"""

from __future__ import annotations

import math

import torch

from .geometry import pixel_coordinates


def n_candidates(op) -> int:
    """Candidate bins per (pixel, view): the widest footprint in bins, plus one."""
    return int(math.ceil(op._max_footprint() / op.detector_spacing - 1e-9)) + 1


def block_weights(op, p0: int, p1: int, views: torch.Tensor, *, out=None, device=None):
    """Bins and weights of pixels ``p0:p1`` (row-major) at ``views`` (indices into ``op.angles``).

    Args:
        op: a CT projector (gives ``_footprints``, the detector and the angles).
        p0, p1: pixel range, row-major.
        views: int64 view indices ``(nb,)``.
        out: optional ``(cols, vals)`` to write into, shapes ``(p1 - p0, nb, K)``.
        device: where to compute (default the CPU).

    Returns:
        ``cols`` int32 ``(P, nb, K)``: the row of the entry within the block, ``local view * n_detectors + bin``
        (a candidate off the detector points to bin 0 or D - 1 with weight 0); ``vals`` float64 ``(P, nb, K)``.
    """
    n, n_det, du = op.image_size, op.n_detectors, op.detector_spacing
    theta = op.angles_tensor(device=device)[views.to(device)]
    cos, sin = torch.cos(theta).view(1, -1), torch.sin(theta).view(1, -1)
    nb, n_cand = theta.numel(), n_candidates(op)
    if out is None:
        out = (torch.empty((p1 - p0, nb, n_cand), dtype=torch.int32, device=device),
               torch.empty((p1 - p0, nb, n_cand), dtype=torch.float64, device=device))
    cols, vals = out
    xs, ys = pixel_coordinates(n, device=device)
    x, y = xs.reshape(-1)[p0:p1].reshape(-1, 1), ys.reshape(-1)[p0:p1].reshape(-1, 1)
    lo, hi, factor = op._footprints(x, y, cos, sin)
    start = (lo - (-n_det * du / 2)) / du  # footprint in bin units, from the left edge of bin 0
    k0 = torch.floor(start)
    lo_rel = start.sub_(k0)  # in [0, 1): where the footprint starts within bin k0
    hi_rel = (hi - lo).div_(du).add_(lo_rel)
    k0 = k0.to(torch.int32)
    view_offset = (torch.arange(nb, dtype=torch.int32, device=device) * n_det).view(1, nb)
    clipped = int(k0.min()) < 0 or int(k0.max()) + n_cand > n_det  # some candidates miss the detector
    for j in range(n_cand):
        overlap = torch.clamp(hi_rel, max=j + 1.0).sub_(lo_rel if j == 0 else j).clamp_(min=0.0)
        if clipped:
            k = k0 + j
            overlap.mul_((k >= 0) & (k < n_det))
            torch.add(k.clamp_(0, n_det - 1), view_offset, out=cols[:, :, j])
        else:
            torch.add(k0, view_offset + j, out=cols[:, :, j])
        torch.mul(overlap, factor, out=vals[:, :, j])
    return cols, vals
