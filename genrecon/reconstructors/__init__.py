"""Reconstruction plugins; importing this package registers the built-in ones."""

from . import dps, fbp, fista_tv, latent_inversion, zero_filled  # noqa: F401
from .base import Reconstructor

__all__ = ["Reconstructor"]
