"""A mask read from a file (``file``): a saved boolean ``.npy``, e.g. a pattern ``genrecon design`` chose.

YAML::

    simulate:
      mask: {name: file, path: runs/design-mri-8x/mask.npy}

The file holds a boolean (or 0/1 integer) array ``(H, W)`` on the centred k-space grid (``True``: sampled),
or ``(W,)`` Cartesian columns (phase encoding along the width, expanded to every row). Its shape must match
the image's; the generator is not used (the mask is the same for every case).

Example:
    >>> import numpy as np, tempfile, torch, os
    >>> path = os.path.join(tempfile.mkdtemp(), "m.npy")
    >>> np.save(path, np.arange(8) % 4 == 0)
    >>> FileMask(path=path)((4, 8), torch.Generator()).sum().item()
    8
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ...errors import ConfigError, DataError, ShapeError
from ...registry import MASKS
from .common import _check_call


def read_mask_file(path: str | Path) -> np.ndarray:
    """The boolean array of a mask file ``(H, W)`` or ``(W,)``; one-line errors for anything else."""
    p = Path(path)
    if p.suffix.lower() != ".npy":
        raise ConfigError(f"mask path: expected a .npy file, got {str(path)!r}")
    if not p.is_file():
        raise ConfigError(f"mask path: file not found: {path}")
    try:
        data = np.load(p, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: not a readable .npy mask ({exc})") from None
    if data.ndim not in (1, 2) or data.size == 0:
        raise ShapeError(f"{path}: a mask is (H, W) or (W,) columns, got shape {tuple(data.shape)}")
    if data.dtype != np.bool_:
        if data.dtype.kind not in "iu" or not np.isin(data, (0, 1)).all():
            raise DataError(f"{path}: a mask holds booleans (or 0/1 integers), got dtype {data.dtype}")
        data = data.astype(bool)
    if not data.any():
        raise DataError(f"{path}: the mask samples nothing")
    return data


@MASKS.register("file")
class FileMask:
    """A boolean mask saved as ``.npy``: ``(H, W)`` k-space locations or ``(W,)`` columns (the generator is unused).

    Args:
        path: the ``.npy`` file (``True``: sampled, on the centred k-space grid).
    """

    def __init__(self, *, path: str):
        if not isinstance(path, (str, Path)) or not str(path):
            raise ConfigError(f"mask path: expected the path of a .npy file, got {path!r}")
        self.path = str(path)
        self.data = read_mask_file(self.path)

    def __call__(self, shape: tuple[int, int], generator: torch.Generator) -> torch.Tensor:
        h, w = _check_call("file mask", shape, generator)
        data = self.data
        if data.ndim == 1:
            if data.shape[0] != w:
                raise ShapeError(f"mask file {self.path}: {data.shape[0]} columns, the k-space is {h}x{w} "
                                 f"(needs {w} columns)")
            return torch.from_numpy(data.copy()).expand(h, w).clone()
        if tuple(data.shape) != (h, w):
            raise ShapeError(f"mask file {self.path}: shape {data.shape[0]}x{data.shape[1]}, the k-space is {h}x{w}")
        return torch.from_numpy(data.copy())
