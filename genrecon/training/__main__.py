"""``python -m genrecon.training --config FILE [--resume] [--set k=v]``: the entry ``torchrun`` starts."""

import sys

from .launch import main

sys.exit(main())
