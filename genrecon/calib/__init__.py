"""Coil sensitivity estimation from measured multi-coil k-space (the measured-data path's SENSE maps).

- :func:`acs_region`: the fully sampled central block (auto-calibration region) of k-space or a mask;
- :func:`lowres_maps`: the cheap option, windowed ACS coil images over their root-sum-of-squares;
- :func:`espirit_maps`: ESPIRiT as BART's ``ecalib`` (eigenvector maps with eigenvalue ~1, cropped).

Conventions: k-space ``(coils, H, W)`` on the full grid with zeros where not sampled, columns (the last
axis) are phase-encoding lines, the centred orthonormal FFT of :mod:`genrecon.operators.fft`.

Layer: beside ``io`` and ``simulate`` (data in, data out); imports only ``errors`` and ``operators``.

Example:
    >>> import torch
    >>> from genrecon.calib import acs_region, espirit_maps
    >>> k = torch.zeros(4, 32, 32, dtype=torch.complex64)
    >>> k[:, :, 8:24] = torch.randn(4, 32, 16, dtype=torch.complex64, generator=torch.Generator().manual_seed(0))
    >>> acs_region(k)
    (slice(0, 32, None), slice(8, 24, None))
    >>> espirit_maps(k, crop=0.0)[0].shape
    torch.Size([4, 32, 32])
"""

from __future__ import annotations

from .acs import MIN_ACS_SIZE, acs_region, lowres_maps
from .espirit import espirit_maps

__all__ = ["MIN_ACS_SIZE", "acs_region", "lowres_maps", "espirit_maps"]
