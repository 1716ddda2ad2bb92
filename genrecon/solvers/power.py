"""The power method lives in :mod:`genrecon.linalg.power` (below operators and solvers); this path re-exports it."""

from ..linalg.power import power_method

__all__ = ["power_method"]
