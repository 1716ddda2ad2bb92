"""Public contract checks for operators, masks and reconstructors: for genrecon's own tests and for plugins.

Each check runs the thing on a small problem and raises :class:`AssertionError` with a message naming
what broke (so it reads well under pytest); it returns a dict of what it measured. A third-party plugin's
test suite can call them on its own classes::

    from genrecon.testing import check_mask, check_operator, check_reconstructor

    def test_my_method_follows_the_contract():
        check_reconstructor(MyMethod(lam=0.1), modality="mri")

Layer: this package sits beside ``cli/`` at the top; it imports the operators, masks and reconstructors it
checks, and nothing imports it but tests.
"""

from .masks import check_mask
from .operators import check_operator
from .reconstructors import check_reconstructor, example_problem

__all__ = ["check_mask", "check_operator", "check_reconstructor", "example_problem"]
