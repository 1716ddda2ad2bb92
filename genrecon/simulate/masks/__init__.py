"""k-space sampling masks, registered in :data:`genrecon.registry.MASKS`.

A mask is built from keyword-only parameters (the YAML ``mask:`` block less its ``name``) and called as
``mask(shape, generator) -> bool (H, W)``; ``True`` marks a sampled k-space location, with k-space centred
(zero frequency at ``(H // 2, W // 2)``, as :func:`~genrecon.operators.fft.fft2c` puts it). Cartesian
line masks pick columns: phase encoding runs along the width (last dim), like fastMRI's masks.
Randomness comes only from the ``generator`` argument (never the global RNG): the same seed gives the
same mask, on any machine.

One module per family: ``lines`` (``random``, ``equispaced``), ``gaussian2d``, ``poisson_disc`` and
``radial``, and ``file`` (a saved boolean ``.npy``, e.g. a designed pattern); ``common`` holds the parameter checks and helpers they share. Importing this package registers
every family (the registry imports ``genrecon.simulate.masks``).

Example:
    >>> import torch
    >>> from genrecon.registry import MASKS
    >>> mask = MASKS.build("random", {"acceleration": 4, "center_fraction": 0.08})
    >>> m = mask((64, 64), torch.Generator().manual_seed(0))
    >>> m.shape, m.dtype
    (torch.Size([64, 64]), torch.bool)
"""

from __future__ import annotations

# the family modules register in the order of the single module they came from: random, equispaced,
# gaussian2d, poisson_disc, radial. The private helpers are re-exported for tests/test_masks.py.
from .common import _center_disc, _kspace_radius, _uniform, achieved_acceleration  # noqa: F401
from .lines import EquispacedLines, RandomLines, _center_lines  # noqa: F401  # isort: skip
from .gaussian2d import Gaussian2D  # isort: skip
from .poisson_disc import PoissonDisc, _greedy_disc_packing  # noqa: F401
from .radial import Radial
from .file import FileMask  # isort: skip

__all__ = ["achieved_acceleration", "RandomLines", "EquispacedLines", "Gaussian2D", "PoissonDisc", "Radial", "FileMask"]
