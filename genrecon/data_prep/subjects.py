"""The unseen-subject split and the added training volumes (issue 18): which whole volumes are never trained on.

Rule (also in ``data/README.md``): per modality, the added subject with the higher number in its package is held
out whole -- every non-empty slice of its volume goes to ``test_subject/`` of both the dataset and its extended
version, never to ``train/`` or ``val/`` of any file:

* MRI: pyradiomics ``brain2`` (contrast-enhanced T1 of a patient; axial slices as acquired, 6.5 mm apart);
* CT: pyradiomics ``lung2`` (chest CT of a patient; axial slices as acquired, 5 mm apart).

The other added volumes join training only in the *extended* datasets (``brain-mri-extended-<size>.h5``,
``ct-extended-<size>.h5``), split by :data:`ADDED_SLABS` (fractions of the head's or body's extent): pyradiomics
``brain1`` and pydeface's whole-head average for MRI, pyradiomics ``lung1`` for CT. The original datasets keep
their ``train``/``val`` groups unchanged (same volumes, rule and slices) and gain ``test_subject``.

Thick-slice volumes (slice spacing above 2 mm) are not resampled along the slice axis and give axial slices
only: their slices are the acquired ones, not interpolated reformats.

Example:
    >>> from genrecon.data_prep.subjects import WholeVolume
    >>> WholeVolume().split("axial", 12.0, (0.0, 100.0))
    'test_subject'
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np

from ..errors import DataError
from .fetching import Source
from .progress import Log, say
from .readers import read_nifti
from .slabs import SlabRule
from .slicing import Collected, slice_volume
from .volumes import ORIENTATIONS, normalise_ct, normalise_mri, resample_isotropic, to_canonical

#: the split name of whole held-out volumes (a group of the prepared HDF5 files)
TEST_SUBJECT = "test_subject"
#: held out whole, per modality (never in train/ or val/ of any prepared file)
TEST_SUBJECTS = {"mri": ("radiomics_brain2",), "ct": ("radiomics_lung2",)}
#: added to training in the extended datasets only
EXTRA_TRAIN = {"mri": ("radiomics_brain1", "pydeface_mean"), "ct": ("radiomics_lung1",)}
#: slabs of the added training volumes: fractions of the foreground's extent (none is in MNI space)
ADDED_SLABS = SlabRule({"axial": (0.55, 0.68), "coronal": (0.56, 0.68), "sagittal": (0.44, 0.56)},
                       units="fraction", gap=4.0)
THICK_MM = 2.0  # a volume with a voxel side above this is sliced only across that axis, as acquired


@dataclass(frozen=True)
class WholeVolume:
    """Every slice of a volume goes to one group (no slab, no gap): whole held-out subjects."""

    group: str = TEST_SUBJECT

    def describe(self) -> str:
        return (f"{self.group} = every non-empty slice of whole volumes of subjects that no training set "
                "contains (no slab, no gap)")

    def split(self, orientation: str, position: float, extent: tuple[float, float]) -> str:
        return self.group


def _read_canonical(path: Path) -> tuple[np.ndarray, np.ndarray]:
    if path.name.endswith(".nrrd"):
        from .nrrd import read_nrrd

        data, affine = read_nrrd(path)
    else:
        data, affine = read_nifti(path)
    return to_canonical(data, affine)


def read_added_volume(path: Path, modality: str) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """An added volume, canonical (RAS+) and normalised, with the orientations to cut from it.

    Isotropic resampling only for volumes without thick slices; thick ones keep their acquired axial slices.
    """
    data, affine = _read_canonical(Path(path))
    orientations: tuple[str, ...] = ORIENTATIONS
    zooms = np.sqrt((affine[:3, :3] ** 2).sum(axis=0))  # voxel sides in mm
    if zooms.max() > THICK_MM:
        if int(np.argmax(zooms)) != 2:
            raise DataError(f"{path}: thick slices along RAS axis {int(np.argmax(zooms))}; only axial supported")
        orientations = ("axial",)
    else:
        data, affine = resample_isotropic(data, affine)
    vol01 = normalise_ct(data) if modality == "ct" else normalise_mri(data)[0]
    return vol01, affine, orientations


def slice_added(sources: Sequence[Source], modality: str, rule, out: Collected, *, size: int,
                log: Log = None, read: Callable = read_added_volume) -> None:
    """Slice the added volumes into ``out`` by ``rule`` (:class:`WholeVolume` or a :class:`SlabRule`)."""
    for src in sources:
        say(log, f"slicing {src.name} ({src.path.name})")
        vol01, affine, orientations = read(src.path, modality)
        slice_volume(vol01, affine, src.name, out, size=size, rule=rule, orientations=orientations, log=log)


def pick(extra: Mapping[str, Source], names: Sequence[str]) -> list[Source]:
    """The sources of ``extra`` named in ``names`` that were fetched, in the order of ``names``."""
    return [extra[n] for n in names if n in extra]


def merged(*parts: Collected) -> Collected:
    """One collection of slices from several (train, val and test_subject lists concatenated in order)."""
    out = Collected()
    for part in parts:
        for split in ("train", "val", TEST_SUBJECT):
            src, dst = getattr(part, split), getattr(out, split)
            for i in range(len(src)):
                dst.add(src.images[i], src.source[i], src.orientation[i], src.index[i], src.position[i])
        out.stats.update(part.stats)
    return out
