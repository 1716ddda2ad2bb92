"""NumPy arrays (``.npy``): a stack ``(N, H, W)`` or one image ``(H, W)``, real or complex.

The file is memory-mapped (``mmap_mode="r"``): ``n_slices`` reads only the header, ``load`` copies one
slice. Pickled (object) arrays are refused. :func:`read_stack` reads the whole stack at once.

Example:
    >>> from genrecon.io.npy import NpyLoader
    >>> NpyLoader.accepts("images.npy")
    True
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import DataError
from ..registry import LOADERS
from ..types import Case
from .base import Loader
from .transforms import as_image, source_stem


@LOADERS.register("npy")
class NpyLoader(Loader):
    """NumPy array (.npy): a stack (N, H, W) or an image (H, W), real or complex, memory-mapped."""

    suffixes = (".npy",)

    def _open(self, source: str) -> np.ndarray:
        if not Path(source).is_file():
            raise DataError(f"{source}: file not found")
        try:
            arr = np.load(source, mmap_mode="r", allow_pickle=False)
        except Exception as exc:  # bad magic, truncated header, object arrays
            raise DataError(f"{source}: not a readable .npy array: {type(exc).__name__}: {exc}") from None
        if arr.ndim not in (2, 3):
            raise DataError(f"{source}: expected an image (H, W) or a stack (N, H, W), got shape {arr.shape}")
        return arr

    def n_slices(self, source: str) -> int:
        arr = self._open(source)
        return 1 if arr.ndim == 2 else int(arr.shape[0])

    def load(self, source: str, index: int) -> Case:
        arr = self._open(source)
        n = 1 if arr.ndim == 2 else int(arr.shape[0])
        if not 0 <= index < n:
            raise DataError(f"{source}: slice {index} does not exist; the array has slices 0..{n - 1}")
        try:
            plane = np.array(arr if arr.ndim == 2 else arr[index])  # copy out of the memory map
        except (OSError, ValueError) as exc:  # truncated data block
            raise DataError(f"{source}: cannot read slice {index}: {exc}") from None
        return Case(
            key=f"{source_stem(source)}/{index}",
            image=as_image(plane, source, f"slice {index}"),
            meta={
                "source": str(source),
                "slice": int(index),
                "loader": "npy",
                "pixel_spacing": None,
                "units": "a.u.",
                "affine": None,
            },
        )


def read_stack(source: str | Path) -> np.ndarray:
    """The whole array of a ``.npy`` file as a stack ``(N, H, W)`` in memory, values and dtype as stored.

    One image ``(H, W)`` becomes a stack of one. Raises DataError for a missing or unreadable file and
    for other ranks.

    Example:
        >>> from genrecon.io.npy import read_stack
        >>> stack = read_stack("images.npy")  # doctest: +SKIP
    """
    arr = NpyLoader()._open(str(source))
    try:
        arr = np.array(arr)  # copy out of the memory map
    except (OSError, ValueError) as exc:  # truncated data block
        raise DataError(f"{source}: cannot read the array: {exc}") from None
    return arr[None] if arr.ndim == 2 else arr
