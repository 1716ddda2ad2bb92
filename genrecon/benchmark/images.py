"""The images the benchmarks reconstruct: bundled samples, phantoms and held-out training-set slices.

All images are ``(1, H, W)`` float32 in ``[0, 1]``: the brain sample is already normalised
(``clip(I / p99.5, 0, 1)``), CT slices in HU are mapped to the shipped CT priors' convention
``(clip(HU, -1024, 3071) + 1024) / 4095`` ("hu_unit").

Example:
    >>> key, img = bundled_slices("brain-mri", 64, mode="resize")[0]
    >>> key, tuple(img.shape), bool(img.min() >= 0) and bool(img.max() <= 1)
    ('brain-mri/0', (1, 64, 64), True)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..conventions import hu_to_unit
from ..errors import DataError

#: the held-out datasets written by ``python scripts/prepare_data.py all``
DATASETS = {"mri": "brain-mri-128.h5", "ct": "head-ct-128.h5"}


def mid_axial_index() -> int:
    """Index in ``sample:brain-mri`` of the mid-axial MNI152 slice (``samples.json``), 0 if not recorded."""
    from ..io.samples import sample_info

    entry = sample_info().get("brain-mri", {})
    return int((entry.get("mid_axial") or {}).get("index_in_file", 0))


def bundled_slices(name: str, size: int | None = None, *, mode: str = "crop_pad",
                   indices: list[int] | None = None) -> list[tuple[str, torch.Tensor]]:
    """Slices of a bundled sample (``brain-mri`` or ``head-ct``) as ``(key, (1, size, size) in [0, 1])``.

    Args:
        name: the sample's name.
        size: square size after ``mode`` (``crop_pad`` keeps the pixel grid, ``resize`` resamples); None keeps.
        mode: ``crop_pad`` or ``resize``.
        indices: slices to take (default: all).
    """
    from ..io.transforms import fit_size
    from ..registry import LOADERS

    loader = LOADERS.build("sample", {})
    source = f"sample:{name}"
    if indices is None:
        indices = list(range(loader.n_slices(source)))
    out = []
    for i in indices:
        case = loader.load(source, i)
        img = case.image.abs() if case.image.is_complex() else case.image
        img = img.float()
        if case.meta.get("units") == "HU":
            img = hu_to_unit(img)
        img = fit_size(img, size, mode).clamp(min=0.0) if size is not None else img
        out.append((f"{name}/{i}", img.contiguous()))
    return out


def shepp_logan_image(size: int) -> torch.Tensor:
    """The modified Shepp-Logan phantom ``(1, size, size)`` in [0, 1]."""
    from ..phantoms import shepp_logan

    return shepp_logan(size)[None].float()


def slice_indices(n_total: int, n: int) -> list[int]:
    """``n`` evenly spaced indices strictly inside ``[0, n_total)`` (the first and last slices are mostly air)."""
    if n <= 0:
        return []
    return [int(round(v)) for v in np.linspace(0, n_total - 1, n + 2)[1:-1]]


def dataset_path(data_dir: Path, modality: str) -> Path:
    return Path(data_dir) / DATASETS[modality]


def held_out(data_dir: Path, modality: str, n: int, split: str = "val") -> list[tuple[str, torch.Tensor]]:
    """``n`` evenly spaced interior slices ``(1, 128, 128)`` in [0, 1] of a prepared dataset's ``split``.

    ``val`` slices were never used to train the shipped priors (``data/README.md``).

    Raises:
        DataError: the dataset file is missing or has no such split.
    """
    import h5py

    path = dataset_path(data_dir, modality)
    if not path.is_file():
        raise DataError(f"{path} is missing: build the held-out datasets with 'python scripts/prepare_data.py all' "
                        f"(or pass --data DIR)")
    with h5py.File(path, "r") as f:
        if f"{split}/images" not in f:
            raise DataError(f"{path}: no '{split}/images' dataset (expected a file from scripts/prepare_data.py)")
        images = f[f"{split}/images"]
        return [(f"{modality}-{split}/{i}", torch.from_numpy(np.asarray(images[i], dtype=np.float32))[None])
                for i in slice_indices(images.shape[0], n)]
