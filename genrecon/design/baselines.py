"""Fixed patterns at the design's budget, to compare a design against (the same start, the same count).

MRI (candidates are columns; every baseline keeps the design's fully sampled centre and has exactly the
budget's number of columns):

- ``random``: the other columns uniformly at random (fastMRI's RandomMaskFunc with a fixed count);
- ``equispaced``: the other columns equally spaced over the columns outside the centre;
- ``variable_density``: the other columns drawn without replacement with probability ``~ (1 - |k| / k_max)^2``
  (polynomial variable density, Lustig et al. 2007);
- ``center``: the other columns nearest the k-space centre (a low-resolution scan);
- ``partial_fourier``: the other columns next to the centre on one side only (for a real image the other side
  is the conjugate mirror: the fixed pattern that uses the symmetry a design can find).

CT (candidates are the angle grid; exactly ``n_views`` views):

- ``equispaced``: equally spaced over 180 degrees (sparse view);
- ``random``: uniformly at random on the grid;
- ``arc``: equally spaced over a contiguous 120-degree arc (limited angle).

Random draws come from a generator seeded from (seed, "baseline", name).

Example:
    >>> sorted(mri_baselines(16, list(range(7, 9)), 6, seed=0)["equispaced"])
    [1, 5, 7, 8, 10, 14]
"""

from __future__ import annotations

import torch

from ..seeding import derive_seed
from ..simulate.masks.common import _gumbel_top_k

#: the span of the limited-angle arc baseline, as a fraction of the full angular range
ARC_FRACTION = 2.0 / 3.0


def _spread(pool: list[int], n: int) -> list[int]:
    """``n`` items of ``pool`` (sorted), equally spaced: the middle of each of ``n`` equal parts."""
    if n <= 0:
        return []
    return [pool[int((i + 0.5) * len(pool) / n)] for i in range(n)]


def equispaced_views(n_candidates: int, n_views: int) -> list[int]:
    """``n_views`` equally spaced indices of a circular grid of ``n_candidates``, from index 0 (sorted, distinct)."""
    return sorted({round(i * n_candidates / n_views) % n_candidates for i in range(n_views)})


def _generator(seed: int, name: str) -> torch.Generator:
    return torch.Generator().manual_seed(derive_seed(seed, "baseline", name))


def mri_baselines(width: int, start: list[int], budget: int, *, seed: int) -> dict[str, list[int]]:
    """``{name: columns}`` of the MRI baselines (module docstring); each has ``budget`` columns."""
    rest = [j for j in range(width) if j not in set(start)]
    n = budget - len(start)
    out: dict[str, list[int]] = {}
    perm = torch.randperm(len(rest), generator=_generator(seed, "random"))[:n].tolist()
    out["random"] = sorted(start + [rest[i] for i in perm])
    out["equispaced"] = sorted(start + _spread(rest, n))
    k = torch.tensor([abs(j - width // 2) for j in rest], dtype=torch.float64)
    weight = (1 - k / (width / 2)).clamp_min(1e-6) ** 2
    u = torch.rand(len(rest), generator=_generator(seed, "variable_density"), dtype=torch.float64)
    out["variable_density"] = sorted(start + [rest[i] for i in _gumbel_top_k(torch.log(weight), n, u).tolist()])
    out["center"] = sorted(start + sorted(rest, key=lambda j: abs(j - width // 2))[:n])
    one_side = sorted((j for j in rest if j < min(start)), reverse=True)
    one_side += sorted(j for j in rest if j > min(start))  # only when one side is too short
    out["partial_fourier"] = sorted(start + one_side[:n])
    return out


def ct_baselines(n_candidates: int, n_views: int, *, seed: int) -> dict[str, list[int]]:
    """``{name: grid indices}`` of the CT baselines (module docstring); each has ``n_views`` views."""
    out: dict[str, list[int]] = {}
    out["equispaced"] = equispaced_views(n_candidates, n_views)
    out["random"] = sorted(torch.randperm(n_candidates, generator=_generator(seed, "random"))[:n_views].tolist())
    arc = max(n_views, round(ARC_FRACTION * n_candidates))
    out["arc"] = sorted({round(i * arc / n_views) for i in range(n_views)})
    return out
