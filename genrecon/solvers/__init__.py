"""Pure algorithms over callables; they know nothing of MRI or CT."""

from .cg import conjugate_gradient
from .power import power_method

__all__ = ["conjugate_gradient", "power_method"]
