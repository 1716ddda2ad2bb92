"""What is being designed: the candidates of a modality, their predicted values, and the measurement of a set.

Two problems, one interface:

- :class:`MRIColumns`: single-coil Cartesian k-space, one candidate per phase-encoding column (the last
  axis, fastMRI's convention); a candidate's values are the ``H`` complex k-space samples of its column;
  noise complex Gaussian with ``E|n|^2 = sigma^2`` per sample. The pattern is a bool mask ``(H, W)``.
- :class:`CTViews`: a candidate per view angle of a grid of ``n_candidates`` angles over 180 degrees
  (parallel beam; 360 for fan beam); its values are the view's detector row of line integrals; noise
  Gaussian with std ``sigma`` on the line integrals (before the operator's normalisation). The pattern is a
  list of angles in degrees.

A third, :class:`genrecon.design.blocks.MRIBlocks` (``design.candidates: blocks``), is :class:`MRIColumns` with
2-D k-space point blocks as candidates.

The full noisy measurement of every candidate is simulated once per case (:meth:`full`); a measured set is
its restriction (:meth:`measure`), so a candidate's data never change between design rounds.

Example:
    >>> import torch
    >>> p = MRIColumns((8, 8), sigma=0.1)
    >>> full = p.full(torch.ones(1, 1, 8, 8, dtype=torch.complex64), torch.Generator().manual_seed(0))
    >>> y, op = p.measure(full, [3, 4])
    >>> int(op.mask.sum()), p.values(torch.ones(2, 1, 8, 8)).shape
    (16, torch.Size([2, 8, 8]))
"""

from __future__ import annotations

import dataclasses
import math

import torch

from ..operators.fft import fft2c
from ..operators.mri import SingleCoilMRI
from ..simulate import ct as ct_sim
from ..simulate.noise import complex_gaussian
from .baselines import equispaced_views
from .score import circular_distance, line_distance


class MRIColumns:
    """Single-coil Cartesian k-space columns (see the module docstring).

    Args:
        shape: ``(H, W)`` of the image and k-space.
        sigma: complex noise std per k-space sample, > 0.
    """

    modality = "mri"

    def __init__(self, shape: tuple[int, int], sigma: float):
        self.shape = (int(shape[0]), int(shape[1]))
        self.sigma = float(sigma)
        self.n_candidates = self.shape[1]

    def full(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Noisy k-space of every column: ``(1, 1, H, W)`` complex64 from the image ``x`` ``(1, 1, H, W)``."""
        k = fft2c(x.to(torch.complex64))
        return k + complex_gaussian(k, self.sigma, generator)

    def pattern(self, chosen: list[int]) -> torch.Tensor:
        """The bool mask ``(H, W)`` of the chosen columns."""
        cols = torch.zeros(self.shape[1], dtype=torch.bool)
        cols[list(chosen)] = True
        return cols.expand(*self.shape).clone()

    def measure(self, full: torch.Tensor, chosen: list[int]):
        """``(y, op)``: the chosen columns of ``full`` (zeros elsewhere) and their :class:`SingleCoilMRI`."""
        op = SingleCoilMRI(self.pattern(chosen))
        return full * op.mask, op

    def values(self, images: torch.Tensor) -> torch.Tensor:
        """Predicted values ``(N, W, H)`` complex: column ``j`` of the k-space of each image ``(N, 1, H, W)``."""
        x = images if images.is_complex() else images.to(torch.complex64)
        return fft2c(x)[:, 0].transpose(-1, -2)

    def start(self, center_fraction: float) -> list[int]:
        """The fully sampled centre: ``round(W center_fraction)`` columns placed as fastMRI places them."""
        w = self.shape[1]
        num_low = max(1, round(w * center_fraction))
        pad = (w - num_low + 1) // 2
        return list(range(pad, pad + num_low))

    def budget(self, acceleration: float) -> int:
        """Columns at ``acceleration``: ``round(W / acceleration)``."""
        return max(1, round(self.shape[1] / acceleration))

    def distance(self) -> torch.Tensor:
        """``(W, W)`` column steps between candidates (``design.min_gap``)."""
        return line_distance(self.n_candidates)

    def label(self, index: int) -> str:
        return f"column {index} (k = {index - self.shape[1] // 2:+d})"


class CTViews:
    """View angles on a grid (see the module docstring).

    Args:
        cfg: the CT ``simulate`` config (:class:`genrecon.simulate.ct.Config`): geometry, detector,
            attenuation mapping, ``noise`` (``gaussian`` with ``sigma``) and ``normalize``; its angles are replaced.
        size: image size ``N`` (square images).
        n_candidates: number of angles on the grid over 180 degrees (parallel) or 360 (fan).
    """

    modality = "ct"

    def __init__(self, cfg: ct_sim.Config, size: int, n_candidates: int):
        self.cfg = cfg
        self.size = int(size)
        self.n_candidates = int(n_candidates)
        full = 360.0 if cfg.geometry == "fan" else 180.0
        self.angles_deg = [full * i / self.n_candidates for i in range(self.n_candidates)]
        self.sigma = float(cfg.noise.sigma)
        # the raw (unnormalised) projector of every candidate: values in line-integral units
        self._all = self._operator(list(range(self.n_candidates)), normalize=False)

    def _operator(self, chosen: list[int], *, normalize: bool):
        angles = ct_sim.AnglesConfig(kind="list", values_deg=[self.angles_deg[i] for i in chosen])
        cfg = dataclasses.replace(self.cfg, angles=angles, normalize=normalize)
        from ..types import Case

        return ct_sim.build_operator(cfg, Case("design", torch.zeros(1, self.size, self.size)))

    def full(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Noisy line integrals of every candidate view: ``(1, 1, n_candidates, D)`` float64 (physical units)."""
        with torch.no_grad():
            p = self._all(x.to(torch.float32)).to(torch.float64)
        noise = torch.randn(p.shape, generator=generator, dtype=torch.float64, device=generator.device).cpu()
        return p + self.sigma * noise

    def pattern(self, chosen: list[int]) -> list[float]:
        """The chosen angles in degrees, sorted."""
        return sorted(self.angles_deg[i] for i in chosen)

    def measure(self, full: torch.Tensor, chosen: list[int]):
        """``(y, op)``: the sinogram of the chosen views (sorted by angle), scaled as the operator is."""
        order = sorted(chosen, key=lambda i: self.angles_deg[i])
        op = self._operator(order, normalize=self.cfg.normalize)
        return (full[:, :, order] * op.scale).to(torch.float32), op

    def values(self, images: torch.Tensor) -> torch.Tensor:
        """Predicted line integrals ``(N, n_candidates, D)`` of each image ``(N, 1, S, S)``."""
        with torch.no_grad():
            return self._all(images.to(torch.float32))[:, 0]

    def start(self, n_views: int) -> list[int]:
        """``n_views`` equally spaced views of the grid, from angle 0."""
        return equispaced_views(self.n_candidates, n_views)

    def budget(self, n_views: int) -> int:
        return int(n_views)

    def distance(self) -> torch.Tensor:
        """``(C, C)`` grid steps between view angles, on the circle (0 and 180 degrees are neighbours)."""
        return circular_distance(self.n_candidates)

    def label(self, index: int) -> str:
        return f"view {self.angles_deg[index]:.4g} deg"


def stage_rounds(n_rounds: int, stages: int) -> list[int]:
    """``stages`` rounds spread over ``0 .. n_rounds - 1`` (first and last included) whose std maps are kept."""
    if n_rounds <= 0 or stages <= 0:
        return []
    if stages == 1:
        return [0]
    return sorted({round(i * (n_rounds - 1) / (stages - 1)) for i in range(stages)})


def rounds_needed(n_start: int, budget: int, batch: int) -> int:
    """Sampling rounds to go from ``n_start`` measured candidates to ``budget`` in batches of ``batch``."""
    return max(0, math.ceil((budget - n_start) / batch))
