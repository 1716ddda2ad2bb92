"""Compatibility module: data preparation now lives in :mod:`genrecon.data_prep`.

Every public name of the former ``genrecon.prepare`` is re-exported from there, so existing imports and
the ``created_by`` attribute of files written so far (``genrecon.prepare.<function>``) keep working.
New code should import :mod:`genrecon.data_prep`.

Example:
    >>> from genrecon import prepare, data_prep
    >>> prepare.build_datasets is data_prep.build_datasets
    True
"""

from __future__ import annotations

from .data_prep import *  # noqa: F401,F403
from .data_prep import __all__  # noqa: F401
