"""genrecon's prepared datasets (``scripts/prepare_data.py``): HDF5 with ``<split>/images`` stacks in [0, 1].

The files hold ``train/images``, ``val/images`` and ``test_subject/images`` (``(N, H, W)`` float32, already
normalised: MRI ``clip(I / p99.5, 0, 1)``, CT ``hu_unit``; the file's ``normalisation`` attribute says which);
``val`` holds held-out slabs of the training subjects, ``test_subject`` whole volumes of subjects no training
set contains (the unseen-subject split; neither was used to train the shipped priors, see ``data/README.md``). The loader reads one
split, chosen by ``split`` (``data.params``), and serves its slices as cases, so the benchmark's held-out
slices run through the same pipeline as any other data. The images carry no physical units (``meta["units"]``
is ``"normalised"``): write ``data.normalize: none`` to keep them as stored.

Example:
    >>> from genrecon.io.prepared import PreparedLoader
    >>> PreparedLoader(split="val").split
    'val'
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import ConfigError, DataError
from ..registry import LOADERS
from ..types import Case
from .base import Loader
from .transforms import as_image, source_stem

SPLITS = ("train", "val", "test_subject")


@LOADERS.register("prepared")
class PreparedLoader(Loader):
    """genrecon's prepared HDF5 datasets (scripts/prepare_data.py): one split's images, in [0, 1]; loader: prepared."""

    # no suffixes: ``.h5`` files are fastMRI's unless ``data.loader: prepared`` says otherwise

    def __init__(self, *, split: str = "val"):
        if split not in SPLITS:
            raise ConfigError(f"data.params.split: {split!r} is not one of {', '.join(map(repr, SPLITS))}")
        self.split = split

    def _images(self, source: str):
        """The open file and its ``<split>/images`` dataset (the caller closes the file)."""
        import h5py

        if not Path(source).is_file():
            raise DataError(f"{source}: file not found")
        try:
            f = h5py.File(source, "r")
        except OSError as exc:
            raise DataError(f"{source}: not a readable HDF5 file (truncated or corrupt?): {exc}") from None
        name = f"{self.split}/images"
        if name not in f or getattr(f[name], "ndim", 0) != 3:
            hint = ("rerun 'python scripts/prepare_data.py datasets' (without --base-only) to add it"
                    if self.split == "test_subject" and "train/images" in f else
                    "not a dataset from scripts/prepare_data.py (fastMRI files take loader: fastmri)")
            f.close()
            raise DataError(f"{source}: no '{name}' stack (N, H, W): {hint}")
        return f, f[name]

    def n_slices(self, source: str) -> int:
        f, images = self._images(source)
        with f:
            return int(images.shape[0])

    def load(self, source: str, index: int) -> Case:
        f, images = self._images(source)
        with f:
            n = int(images.shape[0])
            if not 0 <= index < n:
                raise DataError(f"{source}: {self.split} slice {index} does not exist; it has slices 0..{n - 1}")
            plane = np.asarray(images[index], dtype=np.float32)
            normalisation = f.attrs.get("normalisation")
        return Case(
            key=f"{source_stem(source)}/{index}",
            image=as_image(plane, source, f"{self.split} slice {index}"),
            meta={
                "source": str(source),
                "slice": int(index),
                "loader": "prepared",
                "split": self.split,
                "pixel_spacing": None,
                "units": "normalised",
                "affine": None,
                "dataset_normalisation": str(normalisation) if normalisation is not None else None,
            },
        )
