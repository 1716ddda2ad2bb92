"""Pure algorithms over callables; they know nothing of MRI or CT."""

from .power import power_method

__all__ = ["power_method"]
