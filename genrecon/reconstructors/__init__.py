"""Reconstruction plugins; importing this package registers the built-in ones."""

from ..registry import RECONSTRUCTORS
from .base import ImageDomain, Reconstructor, plugin_problems

RECONSTRUCTORS.contract = plugin_problems  # before the built-in plugins register (and entry points load)

from . import dps, fbp, fista_tv, latent_inversion, zero_filled  # noqa: E402,F401

__all__ = ["ImageDomain", "Reconstructor", "plugin_problems"]
