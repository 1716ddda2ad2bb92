"""The mask contract: ``make(shape, generator) -> bool tensor`` of ``shape``, seeded, no global RNG."""

from __future__ import annotations

from typing import Callable

import torch


def check_mask(make: Callable[[tuple[int, int], torch.Generator], torch.Tensor], shape: tuple[int, int] = (48, 64),
               *, random: bool = True) -> dict:
    """Check a sampling-mask maker.

    Args:
        make: the mask maker (e.g. ``MASKS.build("random", {"acceleration": 4})``).
        shape: ``(H, W)`` to draw masks of.
        random: whether different seeds should give different masks (False for deterministic patterns).

    Returns:
        ``{"sampled_fraction": ...}`` of the mask drawn with seed 0.
    """
    state = torch.random.get_rng_state()
    a = make(shape, torch.Generator().manual_seed(0))
    b = make(shape, torch.Generator().manual_seed(0))
    assert torch.equal(torch.random.get_rng_state(), state), "the mask maker used torch's global RNG"
    assert isinstance(a, torch.Tensor) and a.dtype == torch.bool, f"expected a bool tensor, got {type(a)} {a.dtype}"
    assert tuple(a.shape) == tuple(shape), f"expected a mask of shape {tuple(shape)}, got {tuple(a.shape)}"
    assert torch.equal(a, b), "the same generator seed gave different masks"
    assert bool(a.any()), "the mask samples nothing"
    if random:
        others = [make(shape, torch.Generator().manual_seed(s)) for s in range(1, 5)]
        assert any(not torch.equal(a, o) for o in others), "different seeds always gave the same mask"
    return {"sampled_fraction": float(a.float().mean())}
