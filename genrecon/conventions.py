"""Intensity conventions shared by data preparation, the pipeline, the benchmarks and the priors.

CT in ``hu_unit``: ``x = (clip(HU, -1024, 3071) + 1024) / 4095``, so ``HU = 4095 x - 1024`` (the shipped CT
priors' training data use it). One definition, used everywhere a CT image is put into ``[0, 1]``.

Example:
    >>> import torch
    >>> hu_to_unit(torch.tensor([-2000.0, -1024.0, 0.0, 3071.0, 5000.0]))
    tensor([0.0000, 0.0000, 0.2501, 1.0000, 1.0000])
    >>> float(unit_to_hu(hu_to_unit(torch.tensor(40.0))))
    40.0
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeVar, Union

import numpy as np

if TYPE_CHECKING:  # torch is not imported here: data preparation uses this module without it
    import torch

#: the HU window of ``hu_unit``
HU_MIN, HU_MAX = -1024.0, 3071.0
#: ``x = (HU + HU_OFFSET) / HU_SCALE`` inside the window
HU_OFFSET, HU_SCALE = -HU_MIN, HU_MAX - HU_MIN
#: the formula, for reports, dataset attributes and model cards
HU_UNIT_TEXT = "x = (clip(HU, -1024, 3071) + 1024) / 4095; HU = 4095 * x - 1024"

Array = TypeVar("Array", bound=Union["torch.Tensor", np.ndarray])


def hu_to_unit(hu: Array) -> Array:
    """``(clip(HU, HU_MIN, HU_MAX) + HU_OFFSET) / HU_SCALE`` for a tensor or an array (same type back)."""
    if isinstance(hu, np.ndarray) or np.isscalar(hu):
        return (np.clip(hu, HU_MIN, HU_MAX) + HU_OFFSET) / HU_SCALE
    return (hu.clamp(HU_MIN, HU_MAX) + HU_OFFSET) / HU_SCALE  # a torch tensor


def unit_to_hu(x: Array) -> Array:
    """``HU_SCALE x - HU_OFFSET``: the inverse of :func:`hu_to_unit` inside the window."""
    return x * HU_SCALE - HU_OFFSET
