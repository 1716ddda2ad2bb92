"""Reconstruction plugins; importing this package registers the built-in ones."""

import importlib.util

from .base import Reconstructor
from . import fista_tv, zero_filled  # noqa: F401

for _name in ("fbp", "latent_inversion", "dps"):
    if importlib.util.find_spec(f"{__name__}.{_name}") is not None:
        importlib.import_module(f"{__name__}.{_name}")

__all__ = ["Reconstructor"]
