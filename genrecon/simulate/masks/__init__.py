"""k-space sampling masks, registered in :data:`genrecon.registry.MASKS`.

A mask is built from keyword-only parameters (the YAML ``mask:`` block less its ``name``) and called as
``mask(shape, generator) -> bool (H, W)``; ``True`` marks a sampled k-space location, with k-space centred
(zero frequency at ``(H // 2, W // 2)``, as :func:`~genrecon.operators.fft.fft2c` puts it). Cartesian
line masks pick columns: phase encoding runs along the width (last dim), like fastMRI's masks.
Randomness comes only from the ``generator`` argument (never the global RNG): the same seed gives the
same mask, on any machine.

Example:
    >>> import torch
    >>> from genrecon.registry import MASKS
    >>> mask = MASKS.build("random", {"acceleration": 4, "center_fraction": 0.08})
    >>> m = mask((64, 64), torch.Generator().manual_seed(0))
    >>> m.shape, m.dtype
    (torch.Size([64, 64]), torch.bool)
"""

from __future__ import annotations

import math
from numbers import Real

import torch

from ...errors import ConfigError, ShapeError
from ...registry import MASKS

# fastMRI pairs 4x with 8% and 8x with 4% of centre lines: center_fraction * acceleration = 0.32
_FASTMRI_CENTER_PRODUCT = 0.32


# -- helpers --------------------------------------------------------------------------------------
def achieved_acceleration(mask: torch.Tensor) -> float:
    """``(number of locations) / (number sampled)`` of a mask ``(H, W)`` or ``(W,)``; ``inf`` if empty."""
    sampled = int(torch.count_nonzero(mask))
    return mask.numel() / sampled if sampled else math.inf


def _check_number(name: str, value, *, ge: float | None = None, lt: float | None = None, gt: float | None = None):
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value):
        raise ConfigError(f"mask {name}: expected a finite number, got {value!r}")
    if ge is not None and value < ge:
        raise ConfigError(f"mask {name}: must be >= {ge}, got {value}")
    if gt is not None and value <= gt:
        raise ConfigError(f"mask {name}: must be > {gt}, got {value}")
    if lt is not None and value >= lt:
        raise ConfigError(f"mask {name}: must be < {lt}, got {value}")
    return float(value)


def _check_acceleration(value) -> float:
    return _check_number("acceleration", value, ge=1)


def _check_center_fraction(value) -> float:
    return _check_number("center_fraction", value, ge=0, lt=1)


def _check_bool(name: str, value) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"mask {name}: expected true or false, got {value!r}")
    return value


def _check_call(who: str, shape, generator) -> tuple[int, int]:
    try:
        h, w = (int(s) for s in shape)
    except (TypeError, ValueError):
        raise ShapeError(f"{who}: expected shape (H, W), got {shape!r}") from None
    if h < 1 or w < 1:
        raise ShapeError(f"{who}: expected a positive shape (H, W), got {(h, w)}")
    if not isinstance(generator, torch.Generator):
        raise TypeError(f"{who}: pass a torch.Generator (masks never use the global RNG), got {generator!r}")
    return h, w


def _uniform(n: int, generator: torch.Generator) -> torch.Tensor:
    """``n`` uniform numbers in [0, 1), float64 on the CPU, drawn from ``generator`` (on its device)."""
    return torch.rand(n, generator=generator, dtype=torch.float64, device=generator.device).cpu()


def _randint(high: int, generator: torch.Generator) -> int:
    return int(torch.randint(0, max(int(high), 1), (1,), generator=generator, device=generator.device).item())


def _center_lines(w: int, num_low: int) -> torch.Tensor:
    """Bool ``(W,)`` with ``num_low`` centre columns set, placed as fastMRI places them."""
    mask = torch.zeros(w, dtype=torch.bool)
    pad = (w - num_low + 1) // 2
    mask[pad : pad + num_low] = True
    return mask


def _kspace_radius(h: int, w: int) -> torch.Tensor:
    """Elliptical distance from the k-space centre, 1 at the middle of each edge: ``(H, W)`` float64."""
    ky = (torch.arange(h, dtype=torch.float64) - h // 2) / max(h / 2, 0.5)
    kx = (torch.arange(w, dtype=torch.float64) - w // 2) / max(w / 2, 0.5)
    return torch.sqrt(ky[:, None] ** 2 + kx[None, :] ** 2)


def _center_disc(h: int, w: int, center_fraction: float) -> torch.Tensor:
    """Bool ``(H, W)`` disc of diameter ``center_fraction * min(H, W)`` around the k-space centre."""
    radius = center_fraction * min(h, w) / 2
    yy = (torch.arange(h, dtype=torch.float64) - h // 2)[:, None]
    xx = (torch.arange(w, dtype=torch.float64) - w // 2)[None, :]
    return yy**2 + xx**2 <= radius**2


def _gumbel_top_k(log_weight: torch.Tensor, k: int, u: torch.Tensor) -> torch.Tensor:
    """Indices of ``k`` items drawn without replacement with probabilities ``~ exp(log_weight)``.

    Gumbel-top-k: ``argtop_k(log_weight - log(-log u))`` with ``u`` uniform (one per item).
    """
    if k <= 0:
        return torch.zeros(0, dtype=torch.long)
    keys = log_weight - torch.log(-torch.log(u.clamp_min(1e-300)))
    return torch.argsort(keys, descending=True)[:k]


def _line_budget_check(acceleration: float, center_fraction: float) -> None:
    if acceleration > 1 and center_fraction * acceleration >= 1:
        raise ConfigError(
            f"mask center_fraction: the fully sampled centre ({center_fraction}) must be smaller than "
            f"1/acceleration ({1 / acceleration:.4g}); lower center_fraction or acceleration"
        )


def _disc_budget_check(acceleration: float, center_fraction: float) -> None:
    if acceleration > 1 and math.pi / 4 * center_fraction**2 * acceleration >= 1:
        raise ConfigError(
            f"mask center_fraction: the fully sampled centre disc ({center_fraction}) holds more than "
            f"1/acceleration of k-space; lower center_fraction or acceleration"
        )


def _default_center_fraction(acceleration: float, center_fraction) -> float:
    if center_fraction is None:
        return _FASTMRI_CENTER_PRODUCT / acceleration
    return _check_center_fraction(center_fraction)


# -- Cartesian line masks ---------------------------------------------------------------------------
@MASKS.register("random")
class RandomLines:
    """Random Cartesian columns plus a fully sampled centre (fastMRI's RandomMaskFunc).

    ``num_low = round(W * center_fraction)`` centre columns are always sampled; every column is also
    sampled with probability ``(W / acceleration - num_low) / (W - num_low)``, so the expected number of
    columns is ``W / acceleration``. With ``fixed_count`` exactly ``round(W / acceleration)`` columns are
    sampled (the centre plus a uniformly random choice of the rest).

    Args:
        acceleration: target ``W / (sampled columns)``, >= 1.
        center_fraction: fraction of fully sampled centre columns in [0, 1), below ``1/acceleration``;
            default ``0.32 / acceleration`` (fastMRI's pairs: 4x with 0.08, 8x with 0.04).
        fixed_count: sample exactly ``round(W / acceleration)`` columns instead of a random number.
    """

    def __init__(self, *, acceleration: float, center_fraction: float | None = None, fixed_count: bool = False):
        self.acceleration = _check_acceleration(acceleration)
        self.center_fraction = _default_center_fraction(self.acceleration, center_fraction)
        self.fixed_count = _check_bool("fixed_count", fixed_count)
        _line_budget_check(self.acceleration, self.center_fraction)

    def __call__(self, shape: tuple[int, int], generator: torch.Generator) -> torch.Tensor:
        h, w = _check_call("random mask", shape, generator)
        num_low = round(w * self.center_fraction)
        lines = _center_lines(w, num_low)
        u = _uniform(w, generator)
        if self.fixed_count:
            n_extra = round(w / self.acceleration) - num_low
            if n_extra > 0:
                u[lines] = 2.0  # never chosen: smallest keys win
                lines[torch.topk(u, n_extra, largest=False).indices] = True
        elif num_low < w:
            prob = (w / self.acceleration - num_low) / (w - num_low)
            lines |= u < prob
        return lines.expand(h, w).clone()


@MASKS.register("equispaced")
class EquispacedLines:
    """Equally spaced Cartesian columns from a random offset plus a fully sampled centre (fastMRI).

    ``exact=False`` is fastMRI's EquiSpacedMaskFunc: every ``acceleration``-th column from a random
    offset in ``[0, round(acceleration))``, plus the centre, so the achieved acceleration is below the
    nominal one. ``exact=True`` is fastMRI's EquispacedMaskFractionFunc: the spacing is adjusted to
    ``acceleration (num_low - W) / (num_low acceleration - W)`` so that about ``W / acceleration``
    columns are sampled in all.

    Args:
        acceleration: nominal spacing (``exact=False``) or target acceleration (``exact=True``), >= 1.
        center_fraction: fraction of fully sampled centre columns in [0, 1), below ``1/acceleration``;
            default ``0.32 / acceleration`` (fastMRI's pairs).
        exact: adjust the spacing to match the acceleration, counting the centre.
    """

    def __init__(self, *, acceleration: float, center_fraction: float | None = None, exact: bool = False):
        self.acceleration = _check_acceleration(acceleration)
        self.center_fraction = _default_center_fraction(self.acceleration, center_fraction)
        self.exact = _check_bool("exact", exact)
        _line_budget_check(self.acceleration, self.center_fraction)

    def __call__(self, shape: tuple[int, int], generator: torch.Generator) -> torch.Tensor:
        h, w = _check_call("equispaced mask", shape, generator)
        num_low = round(w * self.center_fraction)
        lines = _center_lines(w, num_low)
        acc = self.acceleration
        if acc == 1:
            lines[:] = True
        elif self.exact:
            if num_low * acc < w:
                spacing = acc * (num_low - w) / (num_low * acc - w)
                offset = _randint(round(spacing), generator)
                pos = torch.arange(offset, w - 1, spacing, dtype=torch.float64).round().long()
                lines[pos.clamp_(0, w - 1)] = True
        else:
            offset = _randint(round(acc), generator)
            pos = torch.arange(offset, w, acc, dtype=torch.float64).round().long()
            lines[pos[pos < w]] = True
        return lines.expand(h, w).clone()


# -- 2-D point masks ---------------------------------------------------------------------------------
@MASKS.register("gaussian2d")
class Gaussian2D:
    """2-D variable-density random points with a Gaussian density and a fully sampled centre disc.

    Exactly ``round(H W / acceleration)`` points are sampled: the centre disc (diameter
    ``center_fraction * min(H, W)``), then points drawn without replacement with weights
    ``exp(-rho^2 / (2 sigma^2))``, ``rho`` the elliptical k-space radius (1 at the edge midpoints).

    Args:
        acceleration: ``H W / (sampled points)``, >= 1.
        center_fraction: diameter of the fully sampled centre disc as a fraction of ``min(H, W)``, [0, 1).
        sigma: width of the Gaussian density in units of the k-space half-width, > 0.
    """

    def __init__(self, *, acceleration: float, center_fraction: float = 0.08, sigma: float = 0.35):
        self.acceleration = _check_acceleration(acceleration)
        self.center_fraction = _check_center_fraction(center_fraction)
        self.sigma = _check_number("sigma", sigma, gt=0)
        _disc_budget_check(self.acceleration, self.center_fraction)

    def __call__(self, shape: tuple[int, int], generator: torch.Generator) -> torch.Tensor:
        h, w = _check_call("gaussian2d mask", shape, generator)
        mask = _center_disc(h, w, self.center_fraction).flatten()
        u = _uniform(h * w, generator)
        log_weight = -_kspace_radius(h, w).flatten() ** 2 / (2 * self.sigma**2)
        log_weight[mask] = -math.inf
        n_extra = round(h * w / self.acceleration) - int(mask.sum())
        mask[_gumbel_top_k(log_weight, n_extra, u)] = True
        return mask.view(h, w)


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


@MASKS.register("radial")
class Radial:
    """Radial spokes through the k-space centre, rasterised on the Cartesian grid.

    Give ``n_spokes``, or ``acceleration`` to use the number of spokes whose rasterised mask comes
    closest to it.
    Spokes span the full width and height (an ellipse for non-square k-space); angles are uniform in
    ``[0, pi)`` or golden-angle increments (``pi / golden ratio``, about 111.25 degrees). The mask is
    deterministic: the generator is not used.

    Args:
        n_spokes: number of spokes, >= 1.
        acceleration: target ``H W / (sampled points)`` instead of ``n_spokes``, >= 1.
        golden_angle: golden-angle spoke ordering instead of uniform angles.
    """

    def __init__(self, *, n_spokes: int | None = None, acceleration: float | None = None, golden_angle: bool = False):
        if (n_spokes is None) == (acceleration is None):
            raise ConfigError(
                f"mask radial: give exactly one of n_spokes and acceleration, got n_spokes={n_spokes!r}, "
                f"acceleration={acceleration!r}"
            )
        if n_spokes is not None and (isinstance(n_spokes, bool) or not isinstance(n_spokes, int) or n_spokes < 1):
            raise ConfigError(f"mask n_spokes: expected an integer >= 1, got {n_spokes!r}")
        self.n_spokes = n_spokes
        self.acceleration = None if acceleration is None else _check_acceleration(acceleration)
        self.golden_angle = _check_bool("golden_angle", golden_angle)

    def spokes(self, h: int, w: int, n_spokes: int) -> torch.Tensor:
        """The rasterised mask of ``n_spokes`` spokes: bool ``(H, W)``."""
        if self.golden_angle:
            angles = torch.arange(n_spokes, dtype=torch.float64) * (math.pi * 2 / (1 + math.sqrt(5)))
        else:
            angles = torch.arange(n_spokes, dtype=torch.float64) * (math.pi / n_spokes)
        n_t = 4 * max(h, w) + 1  # half-pixel steps: no gaps
        t = torch.linspace(-1.0, 1.0, n_t, dtype=torch.float64)
        ky = (h // 2 + t[None, :] * torch.sin(angles)[:, None] * (h / 2)).round().long().clamp_(0, h - 1)
        kx = (w // 2 + t[None, :] * torch.cos(angles)[:, None] * (w / 2)).round().long().clamp_(0, w - 1)
        mask = torch.zeros(h * w, dtype=torch.bool)
        mask[(ky * w + kx).flatten()] = True
        return mask.view(h, w)

    def __call__(self, shape: tuple[int, int], generator: torch.Generator) -> torch.Tensor:
        h, w = _check_call("radial mask", shape, generator)
        if self.n_spokes is not None:
            return self.spokes(h, w, self.n_spokes)
        target = h * w / self.acceleration
        lo, hi = 1, math.ceil(math.pi * max(h, w) / 2) + 1  # enough spokes to fill the inscribed ellipse
        while lo < hi:  # bisection: about the fewest spokes with H W / acceleration points
            mid = (lo + hi) // 2
            if int(self.spokes(h, w, mid).sum()) >= target:
                hi = mid
            else:
                lo = mid + 1
        # the count is not monotone in the number of uniform spokes: take the best nearby
        candidates = [self.spokes(h, w, n) for n in range(max(1, lo - 2), lo + 3)]
        return min(candidates, key=lambda m: abs(int(m.sum()) - target))
