"""A training dataset from any folder of scans: NIfTI, DICOM, fastMRI HDF5, PNG/TIFF or ``.npy``.

Files are read with :mod:`genrecon.data_prep.readers` (that is, with :mod:`genrecon.io`'s readers), then
prepared like the bundled datasets: 3-D volumes are reoriented, resampled and cut in every orientation,
2-D stacks are cut as stored; the file layout is :func:`~genrecon.data_prep.datasets.write_dataset_h5`'s.

Example:
    >>> from genrecon.data_prep import build_dataset_from_folder
    >>> counts = build_dataset_from_folder("scans/", "data/prepared/my-mri-128.h5",
    ...                                    modality="mri")  # doctest: +SKIP
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Callable, Sequence

from ..errors import ConfigError, DataError
from .datasets import HU_ATTRS, common_attrs, write_dataset_h5
from .progress import Log
from .readers import is_dicom, read_dicom_series, read_fastmri, read_nifti, read_npy_stack, stack_images
from .slabs import DEFAULT_SLABS, SlabRule
from .slicing import Collected, slice_stack, slice_volume
from .volumes import (CT_NORMALISATION, MRI_NORMALISATION, ORIENTATIONS, normalise_ct, normalise_mri, resample_isotropic, to_canonical)

_IMAGE_SUFFIXES = (".png", ".tif", ".tiff")


def _suffix(path: Path) -> str:
    name = path.name.lower()
    return ".nii.gz" if name.endswith(".nii.gz") else path.suffix.lower()


def build_dataset_from_folder(folder: Path | str, out: Path | str, *, modality: str, size: int = 128,
                              normalisation: str | None = None, rule: SlabRule = DEFAULT_SLABS,
                              split: str = "slab", val_fraction: float = 0.1,
                              orientations: Sequence[str] = ORIENTATIONS, log: Log = None) -> dict[str, int]:
    """Build a training HDF5 (same layout as the bundled datasets) from a folder of scans.

    Reads, recursively: NIfTI (``.nii``, ``.nii.gz``), DICOM series (``.dcm`` or files with the DICM
    preamble, grouped by SeriesInstanceUID), fastMRI HDF5 (``reconstruction_rss`` / ``_esc``), PNG/TIFF
    (each folder's sorted images form one stack) and ``.npy`` stacks ``(N, H, W)``.

    Args:
        folder: folder to scan.
        out: output ``.h5`` path.
        modality: ``"mri"`` or ``"ct"`` (stored in the attrs).
        size: output side in pixels.
        normalisation: ``"percentile"`` (magnitude images) or ``"hu"`` (CT in Hounsfield units: NIfTI,
            DICOM, ``.npy``). Defaults to ``"hu"`` for CT and ``"percentile"`` for MRI.
        rule: held-out slab rule (used when ``split="slab"``).
        split: ``"slab"`` (a slab of every volume is val) or ``"volume"`` (the last
            ``ceil(val_fraction * n)`` volumes in sorted order are val, whole; better for many volumes).
        val_fraction: fraction of volumes held out when ``split="volume"``.
        orientations: orientations cut from 3-D volumes (2-D stacks are used as stored).
        log: progress callback.

    Returns:
        ``{"train": n_train, "val": n_val}``.

    Raises:
        ConfigError: a bad option. DataError: nothing readable, or a file that cannot be read.
    """
    folder = Path(folder)
    if modality not in ("mri", "ct"):
        raise ConfigError(f"modality: expected 'mri' or 'ct', got {modality!r}")
    normalisation = normalisation or ("hu" if modality == "ct" else "percentile")
    if normalisation not in ("hu", "percentile"):
        raise ConfigError(f"normalisation: expected 'hu' or 'percentile', got {normalisation!r}")
    if split not in ("slab", "volume"):
        raise ConfigError(f"split: expected 'slab' or 'volume', got {split!r}")
    bad = [o for o in orientations if o not in ORIENTATIONS]
    if bad:
        raise ConfigError(f"orientations: expected a subset of {ORIENTATIONS}, got {bad}")
    if not folder.is_dir():
        raise DataError(f"{folder}: not a folder; pass a folder of NIfTI/DICOM/HDF5/PNG/TIFF/.npy files")

    files = sorted(p for p in folder.rglob("*") if p.is_file())
    volumes: list[tuple[str, Callable[[], tuple]]] = []  # name -> loader of ("vol", data, aff) | ("stack", arr)
    images: dict[Path, list[Path]] = {}
    dicoms: list[Path] = []
    for p in files:
        suf = _suffix(p)
        rel = str(p.relative_to(folder))
        if suf in (".nii", ".nii.gz"):
            volumes.append((rel, lambda p=p: ("vol", *read_nifti(p))))
        elif suf in (".h5", ".hdf5"):
            volumes.append((rel, lambda p=p: ("stack", read_fastmri(p))))
        elif suf == ".npy":
            volumes.append((rel, lambda p=p: ("stack", read_npy_stack(p))))
        elif suf in _IMAGE_SUFFIXES:
            images.setdefault(p.parent, []).append(p)
        elif is_dicom(p):
            dicoms.append(p)
    for parent, group in sorted(images.items()):
        rel = str(parent.relative_to(folder)) or "."
        volumes.append((rel + "/*.png|tif", lambda g=group: ("stack", stack_images(g))))
    if normalisation == "hu" and images:
        raise DataError(f"{folder}: PNG/TIFF images carry no Hounsfield units; use normalisation='percentile'")
    if dicoms:
        for name, data, aff, _mod in read_dicom_series(dicoms):
            volumes.append((name, lambda d=data, a=aff: ("vol", d, a)))
    if not volumes:
        raise DataError(f"{folder}: no NIfTI, DICOM, fastMRI HDF5, PNG/TIFF or .npy file found")
    volumes.sort(key=lambda v: v[0])

    n_val_vol = max(1, math.ceil(val_fraction * len(volumes))) if split == "volume" else 0
    if split == "volume" and len(volumes) < 2:
        raise ConfigError(f"split='volume' needs at least 2 volumes, found {len(volumes)}; use split='slab'")
    everything = SlabRule({k: (-1e9, 1e9) for k in (*ORIENTATIONS, "stored")}, units="mm", gap=0.0)
    nothing = SlabRule({k: (1e9, 2e9) for k in (*ORIENTATIONS, "stored")}, units="mm", gap=0.0)
    col = Collected()
    used = []
    for i, (name, load) in enumerate(volumes):
        vrule = rule if split == "slab" else (everything if i >= len(volumes) - n_val_vol else nothing)
        kind, *payload = load()
        norm = normalise_ct if normalisation == "hu" else (lambda a: normalise_mri(a)[0])
        if kind == "vol":
            data, aff = to_canonical(*payload)
            data, aff = resample_isotropic(data, aff)
            slice_volume(norm(data), aff, name, col, size=size, rule=vrule, orientations=orientations, log=log)
        else:
            slice_stack(norm(payload[0]), name, col, size=size, rule=vrule, log=log)
        used.append({"name": name, "kind": kind})
    rule_text = rule.describe() if split == "slab" else (
        f"whole volumes held out: the last {n_val_vol} of {len(volumes)} volumes in sorted name order")
    used_rule = rule if split == "slab" else everything
    attrs = common_attrs(modality, size, CT_NORMALISATION if normalisation == "hu" else MRI_NORMALISATION,
                         used, "as licensed by the owner of the input folder", used_rule,
                         "build_dataset_from_folder", col.stats)
    attrs["split_rule"] = rule_text
    attrs["input_folder"] = str(folder)
    if normalisation == "hu":
        attrs.update(HU_ATTRS)
    return write_dataset_h5(out, col, attrs)
