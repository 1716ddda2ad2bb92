"""Small linear-algebra kernels shared by operators and solvers; they import nothing else of genrecon.

The lowest layer below :mod:`genrecon.operators` and :mod:`genrecon.solvers` (both import from here, never from
each other): the power method (``||A||^2`` of an operator, step sizes) and the forward differences with their
matching divergence (the finite-difference operator, total variation).
"""

from .finite_difference import div2d, grad2d
from .power import power_method

__all__ = ["power_method", "grad2d", "div2d"]
