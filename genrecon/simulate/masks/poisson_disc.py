"""2-D variable-density Poisson-disc points (``poisson_disc``): greedy dart throwing in parallel rounds."""

from __future__ import annotations

import math

import torch

from ...registry import MASKS
from .common import (
    _center_disc,
    _check_acceleration,
    _check_call,
    _check_center_fraction,
    _check_number,
    _disc_budget_check,
    _gumbel_top_k,
    _kspace_radius,
    _uniform,
)

# The greedy packing below ends with about 0.54 / r^2 points per unit area (measured on grids of
# 128 to 320 for accelerations 3 to 16; continuous random sequential adsorption gives 0.70): it seeds
# the search for the radius scale.
_RSA_DENSITY = 0.54
# On the grid the set of conflicting offsets changes in steps (at r = 1, sqrt 2, 2, ...); a per-point
# jitter of the radius makes the density a smooth function of the scale, so the count can be tuned.
_RADIUS_JITTER = 0.15


@MASKS.register("poisson_disc")
class PoissonDisc:
    """2-D variable-density Poisson-disc points with a fully sampled centre disc.

    The minimum distance between points grows linearly from ``r`` at the k-space centre to
    ``spacing_ratio * r`` at the edge midpoints (each point's radius jittered by +-15%); ``r`` is tuned
    (a few passes) so that about ``H W / acceleration`` points are sampled, then the count is made
    exact by dropping random points or adding density-weighted ones (typically under 2%; a uniform
    disc, ``spacing_ratio: 1``, cannot pack the grid densely enough below about 3x). The packing is
    dart throwing over the grid points in a random order, computed in parallel rounds as the greedy
    maximal independent set: a point is accepted once every conflicting point of higher priority is
    rejected.

    Args:
        acceleration: ``H W / (sampled points)``, >= 1.
        center_fraction: diameter of the fully sampled centre disc as a fraction of ``min(H, W)``, [0, 1).
        spacing_ratio: edge spacing over centre spacing, >= 1 (1: uniform Poisson disc).
    """

    max_passes = 4

    def __init__(self, *, acceleration: float, center_fraction: float = 0.08, spacing_ratio: float = 2.5):
        self.acceleration = _check_acceleration(acceleration)
        self.center_fraction = _check_center_fraction(center_fraction)
        self.spacing_ratio = _check_number("spacing_ratio", spacing_ratio, ge=1)
        _disc_budget_check(self.acceleration, self.center_fraction)

    def __call__(self, shape: tuple[int, int], generator: torch.Generator) -> torch.Tensor:
        h, w = _check_call("poisson_disc mask", shape, generator)
        n = h * w
        target = round(n / self.acceleration)
        centre = _center_disc(h, w, self.center_fraction).flatten()
        priority = _uniform(n, generator)
        u_adjust = _uniform(n, generator)
        jitter = 1 + _RADIUS_JITTER * (2 * _uniform(n, generator) - 1)
        if target >= n:
            return torch.ones(h, w, dtype=torch.bool)
        profile = (1 + (self.spacing_ratio - 1) * _kspace_radius(h, w)).flatten() * jitter
        free = ~centre
        n_free = target - int(centre.sum())
        scale = math.sqrt(_RSA_DENSITY * float((1 / profile[free] ** 2).sum()) / max(n_free, 1))
        best = None
        for _ in range(self.max_passes):
            mask = _greedy_disc_packing((scale * profile).view(h, w), priority, centre)
            count = int(mask.sum())
            if best is None or abs(count - target) < abs(int(best.sum()) - target):
                best = mask
            if abs(count - target) <= 0.02 * target:
                break
            scale *= math.sqrt(count / target)  # density ~ 1 / scale^2
        return _adjust_count(best, target, centre, -2 * torch.log(profile), u_adjust).view(h, w)


def _adjust_count(
    mask: torch.Tensor, target: int, fixed: torch.Tensor, log_density: torch.Tensor, u: torch.Tensor
) -> torch.Tensor:
    """Make ``mask`` (flat bool) hold ``target`` points: drop random free ones or add weighted ones."""
    mask = mask.clone()
    count = int(mask.sum())
    if count > target:
        keys = u.clone()
        keys[~mask | fixed] = 2.0  # only free sampled points may go, the smallest keys go first
        mask[torch.topk(keys, count - target, largest=False).indices] = False
    elif count < target:
        log_weight = log_density.clone()
        log_weight[mask] = -math.inf
        mask[_gumbel_top_k(log_weight, target - count, u)] = True
    return mask


def _greedy_disc_packing(radius: torch.Tensor, priority: torch.Tensor, fixed: torch.Tensor) -> torch.Tensor:
    """Greedy maximal set of grid points with pairwise distances >= the local radius.

    Points ``p, q`` conflict when ``|p - q| < max(r_p, r_q)``. Points are taken in decreasing
    ``priority`` (``fixed`` points first, all taken); the result equals sequential dart throwing in that
    order, computed in parallel rounds: a point's parents are its conflicting neighbours of higher
    priority; it is rejected once a parent is accepted and accepted once all its parents are rejected.

    Args:
        radius: ``(H, W)`` minimum distance at each point (compared in float32).
        priority: ``(H W,)`` distinct priorities (only their order matters).
        fixed: ``(H W,)`` bool points that are sampled regardless.

    Returns:
        ``(H W,)`` bool mask.
    """
    h, w = radius.shape
    r_max = float(radius.max())
    pad = math.ceil(r_max) - 1  # largest integer offset with |d| < r_max
    offsets = [
        (dy, dx, math.hypot(dy, dx))
        for dy in range(-pad, pad + 1)
        for dx in range(-pad, pad + 1)
        if 0 < dy * dy + dx * dx < r_max * r_max
    ]
    if not offsets:  # no two grid points can conflict
        return torch.ones(h * w, dtype=torch.bool)

    # static part, from strided views of the padded grid (outside: radius 0, priority -1, not fixed)
    # int32 ranks (distinct, exact) and float32 radii halve the memory traffic of the (K, H, W) steps
    rank = torch.empty(h * w, dtype=torch.int32)
    rank[torch.argsort(priority)] = torch.arange(h * w, dtype=torch.int32)
    rank = torch.where(fixed, h * w, rank).view(h, w)  # fixed points outrank every free one
    radius = radius.float()
    fixed2d = fixed.view(h, w)
    dys = torch.tensor([o[0] + pad for o in offsets])
    dxs = torch.tensor([o[1] + pad for o in offsets])
    dist = torch.tensor([o[2] for o in offsets], dtype=radius.dtype)[:, None, None]

    def shifted(t: torch.Tensor, value) -> torch.Tensor:  # (K, H, W): t[i + dy, j + dx] per offset
        t_pad = torch.nn.functional.pad(t[None], (pad, pad, pad, pad), value=value)[0]
        wp = t_pad.shape[1]
        return t_pad.as_strided((2 * pad + 1, 2 * pad + 1, h, w), (wp, 1, wp, 1))[dys, dxs]

    parent = torch.maximum(shifted(radius, 0.0), radius) > dist
    parent &= shifted(rank, -1) > rank
    has_parent = parent.any(0)
    fixed_parent = (parent & shifted(fixed2d, False)).any(0)

    # first round in closed form: points without parents are taken, neighbours of fixed points dropped
    accepted = fixed2d | ~has_parent
    undecided = ~accepted & ~fixed_parent
    wp = w + 2 * pad
    acc_pad = torch.nn.functional.pad(accepted[None], (pad, pad, pad, pad), value=False)[0].flatten()
    rej_pad = torch.nn.functional.pad(fixed_parent[None], (pad, pad, pad, pad), value=True)[0].flatten()
    ys, xs = undecided.nonzero(as_tuple=True)
    active = (ys + pad) * wp + (xs + pad)  # flat indices in the padded grid
    step = torch.tensor([dy * wp + dx for dy, dx, _ in offsets])
    parent = parent[:, ys, xs]  # (K, n_active)
    nbr = active[None, :] + step[:, None]
    while active.numel():
        any_acc = (parent & acc_pad[nbr]).any(0)
        all_rej = (~parent | rej_pad[nbr]).all(0)
        new_acc = ~any_acc & all_rej
        rej_pad[active[any_acc]] = True
        acc_pad[active[new_acc]] = True
        still = ~(any_acc | new_acc)
        if bool(still.all()):  # cannot happen with distinct priorities; guards against a stall
            raise RuntimeError("poisson_disc: greedy packing made no progress")
        active, parent, nbr = active[still], parent[:, still], nbr[:, still]
    return acc_pad.view(h + 2 * pad, wp)[pad : pad + h, pad : pad + w].flatten()
