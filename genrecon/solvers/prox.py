"""Simple proximal maps.

Example:
    >>> import torch
    >>> soft_threshold(torch.tensor([-2.0, 0.5, 3.0]), 1.0)
    tensor([-1.0000,  0.0000,  2.0000])
"""

from __future__ import annotations

import torch


def soft_threshold(v: torch.Tensor, t: float) -> torch.Tensor:
    """Prox of ``t ||.||_1`` (complex: shrinks magnitudes, keeps phases): ``v max(0, 1 - t / |v|)``."""
    mag = v.abs()
    return v * torch.clamp(1.0 - t / mag.clamp(min=torch.finfo(mag.dtype).tiny), min=0.0)
