"""Exponential moving average of model weights (the weights a diffusion prior exports).

``w_ema <- d w_ema + (1 - d) w`` with ``d = min(decay, (1 + n) / (10 + n))`` at update ``n``, so early
averages are not dominated by the random initialisation.

Example:
    >>> import torch
    >>> m = torch.nn.Linear(2, 1)
    >>> ema = EMA(m, decay=0.5)
    >>> before = m.weight.detach().clone()
    >>> _ = m.weight.data.add_(1.0)
    >>> ema.update(m, step=1000)
    >>> torch.allclose(ema.shadow["weight"], before + 0.5)
    True
"""

from __future__ import annotations

import torch
from torch import nn


class EMA:
    """Shadow copies of a model's floating-point parameters and buffers.

    Args:
        model: the model being trained.
        decay: the target decay ``d`` in ``[0, 1)``.
    """

    def __init__(self, model: nn.Module, decay: float):
        self.decay = float(decay)
        self.shadow = {k: v.detach().clone() for k, v in model.state_dict().items() if v.is_floating_point()}

    def decay_at(self, step: int) -> float:
        """Effective decay at update ``step``."""
        return min(self.decay, (1 + step) / (10 + step))

    @torch.no_grad()
    def update(self, model: nn.Module, step: int) -> None:
        """Blend the model's current weights into the shadow."""
        d = self.decay_at(step)
        for k, v in model.state_dict().items():
            if k in self.shadow:
                self.shadow[k].mul_(d).add_(v.detach(), alpha=1 - d)

    @torch.no_grad()
    def copy_to(self, model: nn.Module) -> None:
        """Overwrite ``model``'s weights with the averages."""
        state = model.state_dict()
        for k, v in self.shadow.items():
            state[k].copy_(v)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {k: v.clone() for k, v in self.shadow.items()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        missing = set(self.shadow) - set(state)
        if missing:
            raise KeyError(f"EMA state lacks {sorted(missing)[:3]}")
        for k in self.shadow:
            self.shadow[k].copy_(state[k])
