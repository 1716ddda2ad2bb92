"""2-D k-space point sets as MRI candidates (``design.candidates: blocks``): ``by x bx`` blocks tiling the grid.

Where phase encodes are free in both directions (3-D Cartesian's two phase-encoding axes, or a 2-D point set
as in variable-density / Poisson-disc sampling), a candidate need not be a whole column. Here the ``(H, W)``
k-space grid is tiled by ``H/by x W/bx`` blocks of ``by x bx`` points (``block: [by, bx]``; ``[1, 1]`` is single
points, ``[H, 1]`` the columns again); block ``c = iy * (W / bx) + ix`` holds rows ``iy by ..`` and columns
``ix bx ..``. A block's values are its ``by bx`` complex k-space samples, scored as any candidate is
(:mod:`.score`: ``marginal`` sums ``1/2 log(1 + var / sigma^2)`` over its points, ``joint`` the log-determinant).

- start: the ``max(1, round(C center_fraction))`` blocks whose centres lie nearest the k-space centre (the
  fully sampled centre as a block set; ``C`` blocks in all, the same fraction of k-space as the columns' start);
- budget: ``round(C / acceleration)`` blocks, i.e. ``H W / acceleration`` points exactly when ``C`` is a multiple
  of the acceleration (128 x 128 with 8 x 8 blocks at 8x: 32 of 256 blocks, 2048 points = 16 columns);
- ``min_gap``: Chebyshev distance in block steps;
- the pattern: a bool mask ``(H, W)``, saved as ``mask.npy`` (``simulate.mask: {name: file, path: ...}``).

Baselines at the same number of points (:func:`block_baselines`): ``random_blocks``, ``variable_density_blocks``
(``(1 - r)^2`` on the block centre's radius, without replacement), ``center_blocks`` (low resolution),
``partial_fourier_blocks`` (the start, then the blocks nearest the centre in the lower half-plane ``ky < 0``),
all keeping the design's start; and genrecon's own 2-D point masks ``gaussian2d`` and ``poisson_disc``
(:mod:`genrecon.simulate.masks`, their default centre disc, the acceleration set so they hold the same count).

Example:
    >>> p = MRIBlocks((8, 8), sigma=0.1, block=(2, 4))
    >>> p.n_candidates, p.budget(4), int(p.pattern([0, 7]).sum())
    (8, 2, 16)
"""

from __future__ import annotations

import torch

from ..errors import ConfigError
from ..registry import MASKS
from ..simulate.masks.common import _gumbel_top_k
from .baselines import _generator
from .problem import MRIColumns

#: ``design.block`` when ``candidates: blocks`` gives none
DEFAULT_BLOCK = (8, 8)


class MRIBlocks(MRIColumns):
    """Single-coil Cartesian k-space tiled by ``block`` ``(by, bx)`` point sets (module docstring).

    Args:
        shape: ``(H, W)``; each must be a multiple of the block's side.
        sigma: complex noise std per k-space sample, > 0.
        block: ``(by, bx)`` points per block.
    """

    def __init__(self, shape: tuple[int, int], sigma: float, block: tuple[int, int]):
        super().__init__(shape, sigma)
        by, bx = (int(b) for b in block)
        h, w = self.shape
        if by < 1 or bx < 1 or h % by or w % bx:
            raise ConfigError(f"design.block: [{by}, {bx}] must tile the {h}x{w} k-space (each side a divisor)")
        self.block = (by, bx)
        self.grid = (h // by, w // bx)
        self.n_candidates = self.grid[0] * self.grid[1]

    def _corners(self, index: int) -> tuple[int, int]:
        iy, ix = divmod(int(index), self.grid[1])
        return iy * self.block[0], ix * self.block[1]

    def pattern(self, chosen: list[int]) -> torch.Tensor:
        """The bool mask ``(H, W)`` of the chosen blocks."""
        cells = torch.zeros(self.n_candidates, dtype=torch.bool)
        cells[list(chosen)] = True
        cells = cells.view(*self.grid)
        return cells.repeat_interleave(self.block[0], 0).repeat_interleave(self.block[1], 1).contiguous()

    def values(self, images: torch.Tensor) -> torch.Tensor:
        """Predicted values ``(N, C, by bx)`` complex: each block's k-space samples of each image ``(N, 1, H, W)``."""
        k = super().values(images).transpose(-1, -2)  # (N, H, W)
        (gy, gx), (by, bx) = self.grid, self.block
        k = k.reshape(k.shape[0], gy, by, gx, bx).permute(0, 1, 3, 2, 4)
        return k.reshape(k.shape[0], gy * gx, by * bx)

    def _radius(self) -> torch.Tensor:
        """``(C,)`` distance of each block's centre from the k-space centre ``(H // 2, W // 2)``, in points."""
        (gy, gx), (by, bx) = self.grid, self.block
        cy = torch.arange(gy, dtype=torch.float64) * by + (by - 1) / 2 - self.shape[0] // 2
        cx = torch.arange(gx, dtype=torch.float64) * bx + (bx - 1) / 2 - self.shape[1] // 2
        return torch.sqrt(cy[:, None] ** 2 + cx[None, :] ** 2).flatten()

    def start(self, center_fraction: float) -> list[int]:
        """The ``max(1, round(C center_fraction))`` blocks nearest the k-space centre (ties: lowest index)."""
        n = max(1, round(self.n_candidates * center_fraction))
        radius = self._radius().tolist()
        order = sorted(range(self.n_candidates), key=lambda c: (radius[c], c))
        return sorted(order[:n])

    def budget(self, acceleration: float) -> int:
        """Blocks at ``acceleration`` over the 2-D grid: ``round(C / acceleration)``."""
        return max(1, round(self.n_candidates / acceleration))

    def distance(self) -> torch.Tensor:
        """``(C, C)`` Chebyshev distance in block steps (``design.min_gap``)."""
        c = torch.arange(self.n_candidates)
        iy, ix = c // self.grid[1], c % self.grid[1]
        return torch.maximum((iy[:, None] - iy[None, :]).abs(), (ix[:, None] - ix[None, :]).abs())

    def label(self, index: int) -> str:
        y0, x0 = self._corners(index)
        cy, cx = self.shape[0] // 2, self.shape[1] // 2
        return (f"block {index} (ky {y0 - cy:+d}..{y0 + self.block[0] - 1 - cy:+d}, "
                f"kx {x0 - cx:+d}..{x0 + self.block[1] - 1 - cx:+d})")


def block_baselines(problem: MRIBlocks, start: list[int], budget: int, *, seed: int) -> dict[str, torch.Tensor]:
    """``{name: bool mask (H, W)}`` of the 2-D baselines (module docstring); each has ``budget`` blocks' points."""
    measured = set(start)
    rest = [c for c in range(problem.n_candidates) if c not in measured]
    n = budget - len(start)
    radius = problem._radius()
    half = max(problem.shape) / 2

    chosen: dict[str, list[int]] = {}
    perm = torch.randperm(len(rest), generator=_generator(seed, "random_blocks"))[:n].tolist()
    chosen["random_blocks"] = start + [rest[i] for i in perm]
    weight = (1 - radius[rest] / half).clamp_min(1e-6) ** 2
    u = torch.rand(len(rest), generator=_generator(seed, "variable_density_blocks"), dtype=torch.float64)
    chosen["variable_density_blocks"] = start + [rest[i] for i in _gumbel_top_k(torch.log(weight), n, u).tolist()]
    by_radius = sorted(rest, key=lambda c: (float(radius[c]), c))
    chosen["center_blocks"] = start + by_radius[:n]
    cy = problem.shape[0] // 2
    lower = [c for c in by_radius if problem._corners(c)[0] + problem.block[0] - 1 < cy]
    in_half = set(lower)
    lower += [c for c in by_radius if c not in in_half]  # only when the half-plane is too small
    chosen["partial_fourier_blocks"] = start + lower[:n]
    out = {name: problem.pattern(cs) for name, cs in chosen.items()}
    points = budget * problem.block[0] * problem.block[1]
    h, w = problem.shape
    for name in ("gaussian2d", "poisson_disc"):
        mask = MASKS.build(name, {"acceleration": h * w / points})
        out[name] = mask((h, w), _generator(seed, name)).to(torch.bool)
    return out
