"""The training datasets: the HDF5 layout, its attributes, and the two datasets built from the fetched scans.

A dataset file holds ``train/*`` and ``val/*`` groups (see :func:`write_dataset_h5`) and root attributes
that say where every slice came from, under which licence, how intensities were normalised and how the
held-out slabs were chosen. :func:`build_brain_mri_dataset` slices T1 NIfTI templates in MNI space,
:func:`build_head_ct_dataset` InVesalius head CTs; :func:`build_datasets` writes both.

Example:
    >>> from genrecon.data_prep import build_datasets, fetch
    >>> counts = build_datasets(fetch("data/cache"), "data/prepared")  # doctest: +SKIP
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np

from .. import __version__
from .fetching import FetchedSources, Source
from .inv3 import inv3_to_ras, read_inv3
from .progress import Log, say
from .readers import read_nifti
from .slabs import BRAIN_SLABS, CT_SLABS, SlabRule
from .slicing import Collected, SliceSet, slice_volume
from .subjects import ADDED_SLABS, EXTRA_TRAIN, TEST_SUBJECT, TEST_SUBJECTS, WholeVolume, merged, pick, slice_added
from .volumes import (CT_NORMALISATION, EMPTY_MIN_FRACTION, EMPTY_THRESHOLD, HU_MAX, HU_MIN, HU_OFFSET, HU_SCALE,
                      MRI_NORMALISATION, ORIENTATION_CONVENTION, normalise_ct, normalise_mri, resample_isotropic,
                      to_canonical)


def write_dataset_h5(path: Path | str, data: Collected, attrs: dict) -> dict[str, int]:
    """Write ``train/*``, ``val/*`` (and ``test_subject/*`` when it has slices) and root ``attrs``.

    Returns ``{"train": n, "val": n}``, plus ``"test_subject": n`` when that group was written.

    Each group holds ``images`` ``(N, S, S)`` float32, ``source`` and ``orientation`` (strings),
    ``index`` int32 (slice index in the canonical isotropic volume, or in the stack) and
    ``position_mm`` float32 (world position along the slicing axis; the index for stacks).
    Written with :func:`genrecon.io.atomic.atomic_write`, so a crash never leaves a half-written file.
    """
    import h5py

    from ..io.atomic import atomic_write

    counts = {}
    splits = ("train", "val") + ((TEST_SUBJECT,) if len(data.test_subject) else ())
    with atomic_write(path) as tmp, h5py.File(tmp, "w") as f:
        for split in splits:
            s: SliceSet = getattr(data, split)
            g = f.create_group(split)
            size = int(attrs["size"])
            imgs = np.stack(s.images).astype(np.float32) if len(s) else np.zeros((0, size, size), np.float32)
            g.create_dataset("images", data=imgs, chunks=(1, size, size) if len(s) else None,
                             compression="gzip" if len(s) else None, compression_opts=4 if len(s) else None,
                             shuffle=bool(len(s)))
            str_dt = h5py.string_dtype()
            g.create_dataset("source", data=np.array(s.source, dtype=object), dtype=str_dt)
            g.create_dataset("orientation", data=np.array(s.orientation, dtype=object), dtype=str_dt)
            g.create_dataset("index", data=np.array(s.index, dtype=np.int32))
            g.create_dataset("position_mm", data=np.array(s.position, dtype=np.float32))
            counts[split] = len(s)
        for key, value in attrs.items():
            f.attrs[key] = value
        f.attrs["n_train"] = counts["train"]
        f.attrs["n_val"] = counts["val"]
        if TEST_SUBJECT in counts:
            f.attrs["n_test_subject"] = counts[TEST_SUBJECT]
    return counts


def created_by(func: str) -> str:
    """The ``created_by`` text of a dataset or samples file written by ``func``.

    It names ``genrecon.prepare.<func>``, as every file written so far does; that compatibility module
    re-exports ``func`` from :mod:`genrecon.data_prep`.
    """
    return f"genrecon {__version__}, scripts/prepare_data.py -> genrecon.prepare.{func}"


def common_attrs(modality: str, size: int, normalisation: str, sources: list[dict], licence: str,
                 rule: SlabRule, func: str, stats: dict) -> dict:
    """The root attributes every dataset file has (provenance, licence, normalisation, split and slice rules)."""
    return {
        "modality": modality,
        "size": int(size),
        "normalisation": normalisation,
        "sources": json.dumps(sources),
        "licence": licence,
        "created_by": created_by(func),
        "split_rule": rule.describe(),
        "slice_rule": (f"slices with less than {EMPTY_MIN_FRACTION:.0%} of pixels above "
                       f"{EMPTY_THRESHOLD:.0%} of the normalised maximum are skipped"),
        "orientation_convention": ORIENTATION_CONVENTION,
        "stats": json.dumps(stats),
    }


def _mri_volume(path: Path) -> tuple[np.ndarray, np.ndarray]:
    data, affine = read_nifti(path)
    data, affine = to_canonical(data, affine)
    data, affine = resample_isotropic(data, affine)
    vol01, _ = normalise_mri(data)
    return vol01, affine


#: the HU convention's attributes of a CT dataset (genrecon.conventions)
HU_ATTRS = {"hu_offset": HU_OFFSET, "hu_scale": HU_SCALE, "hu_min": HU_MIN, "hu_max": HU_MAX}


def _licence(sources: Sequence[Source]) -> str:
    """The ``licence`` attribute: ``name: licence`` of each source, sorted, joined by ``; ``."""
    return "; ".join(sorted({f"{s.name}: {s.licence}" for s in sources}))


def _slice_sources(sources, read_volume, modality: str, normalisation: str, size: int, rule: SlabRule,
                   created_by: str, log: Log) -> tuple[Collected, dict]:
    """Slice every source volume (``read_volume(path) -> (vol01, affine)``) by ``rule``; the slices and the
    dataset's common attributes."""
    col = Collected()
    for src in sources:
        say(log, f"slicing {src.name} ({src.path.name})")
        vol01, affine = read_volume(src.path)
        slice_volume(vol01, affine, src.name, col, size=size, rule=rule, log=log)
    attrs = common_attrs(modality, size, normalisation, [s.as_dict() for s in sources],
                         _licence(sources), rule, created_by, col.stats)
    return col, attrs


BRAIN_CONTENT = ("T1-weighted magnitude slices, axial/coronal/sagittal, from templates in MNI space: "
                 "MNI152 is a 152-subject average; ch2 and ch2better are the same single subject "
                 "(Colin27), so the slabs are in world mm and hold out the same anatomy in both")
CT_CONTENT = ("head CT: axial slices plus coronal and sagittal reformats of the volume "
              "resampled to isotropic voxels (linear interpolation along z)")
_HELD_CONTENT = ("; test_subject: whole volumes of other subjects (thick-slice scans: their acquired axial "
                 "slices), never in train or val")


def _with_sources(attrs: dict, sources: Sequence[Source], stats: dict) -> dict:
    out = dict(attrs)
    out.update(sources=json.dumps([s.as_dict() for s in sources]), stats=json.dumps(stats),
               licence=_licence(sources))
    return out


def _write_with_subjects(out: Path | str, col: Collected, attrs: dict, base: Sequence[Source], modality: str,
                         test_subjects: Sequence[Source], added: Sequence[Source], extended_out: Path | str | None,
                         size: int, log: Log) -> dict[str, dict[str, int]]:
    """Write ``out`` (``col``'s train/val plus the whole held-out volumes) and, when asked, the extended file
    (the same plus the ``added`` volumes in train/val by :data:`ADDED_SLABS`); counts per file name."""
    held = Collected()
    slice_added(test_subjects, modality, WholeVolume(), held, size=size, log=log)
    primary, primary_attrs = col, attrs
    if test_subjects:
        primary = merged(col, held)
        primary_attrs = _with_sources(attrs, [*base, *test_subjects], primary.stats)
        primary_attrs["test_subject_rule"] = (WholeVolume().describe() + "; here: "
                                              + ", ".join(t.name for t in test_subjects))
        primary_attrs["test_subjects"] = json.dumps([t.name for t in test_subjects])
        primary_attrs["content"] = attrs["content"] + _HELD_CONTENT
    counts = {Path(out).name: write_dataset_h5(out, primary, primary_attrs)}
    if extended_out is not None and added:
        more = Collected()
        slice_added(added, modality, ADDED_SLABS, more, size=size, log=log)
        ext = merged(col, more, held)
        ext_attrs = _with_sources(primary_attrs, [*base, *added, *test_subjects], ext.stats)
        names = ", ".join(a.name for a in added)
        ext_attrs["split_rule"] = attrs["split_rule"] + f"; added volumes ({names}): " + ADDED_SLABS.describe()
        ext_attrs["content"] = (primary_attrs["content"] + f"; extended: train/val also hold {names} (thick-slice "
                                "scans: their acquired axial slices only)")
        counts[Path(extended_out).name] = write_dataset_h5(extended_out, ext, ext_attrs)
    return counts


def build_brain_mri_dataset(sources: Sequence[Source], out: Path | str, *, size: int = 128,
                            rule: SlabRule = BRAIN_SLABS, log: Log = None, test_subjects: Sequence[Source] = (),
                            added: Sequence[Source] = (), extended_out: Path | str | None = None) -> dict[str, int]:
    """Write ``brain-mri-<size>.h5`` from T1 NIfTI volumes in MNI space (see :mod:`genrecon.data_prep`).

    ``test_subjects`` (NRRD or NIfTI) go whole into ``test_subject/``; with ``extended_out``, a second file also
    holds the ``added`` volumes in train/val (:mod:`~genrecon.data_prep.subjects`).

    Returns:
        ``{"train": n_train, "val": n_val}`` of ``out`` (and ``"test_subject": n`` when there are test subjects).
    """
    return _brain_mri_files(sources, out, size=size, rule=rule, log=log, test_subjects=test_subjects, added=added,
                            extended_out=extended_out)[Path(out).name]


def _brain_mri_files(sources, out, *, size, rule=BRAIN_SLABS, log, test_subjects, added,
                     extended_out) -> dict[str, dict[str, int]]:
    """:func:`build_brain_mri_dataset`, with the counts of every file written (per file name)."""
    col, attrs = _slice_sources(sources, _mri_volume, "mri", MRI_NORMALISATION, size, rule, "build_brain_mri_dataset",
                                log)
    attrs["content"] = BRAIN_CONTENT
    return _write_with_subjects(out, col, attrs, sources, "mri", test_subjects, added, extended_out, size, log)


def _ct_volume(path: Path) -> tuple[np.ndarray, np.ndarray]:
    matrix, spacing, _ = read_inv3(path)
    vol, affine = inv3_to_ras(matrix.astype(np.float32), spacing)
    vol, affine = resample_isotropic(vol, affine)
    return normalise_ct(vol), affine


def build_head_ct_dataset(sources: Sequence[Source], out: Path | str, *, size: int = 128,
                          rule: SlabRule = CT_SLABS, log: Log = None, test_subjects: Sequence[Source] = (),
                          added: Sequence[Source] = (), extended_out: Path | str | None = None) -> dict[str, int]:
    """Write ``head-ct-<size>.h5`` from InVesalius ``.inv3`` head CTs (axial + reformats).

    ``test_subjects``, ``added`` and ``extended_out`` as in :func:`build_brain_mri_dataset` (NRRD CT in HU).

    Returns:
        ``{"train": n_train, "val": n_val}`` of ``out`` (and ``"test_subject": n`` when there are test subjects).
    """
    return _head_ct_files(sources, out, size=size, rule=rule, log=log, test_subjects=test_subjects, added=added,
                          extended_out=extended_out)[Path(out).name]


def _head_ct_files(sources, out, *, size, rule=CT_SLABS, log, test_subjects, added,
                   extended_out) -> dict[str, dict[str, int]]:
    """:func:`build_head_ct_dataset`, with the counts of every file written (per file name)."""
    col, attrs = _slice_sources(sources, _ct_volume, "ct", CT_NORMALISATION, size, rule, "build_head_ct_dataset", log)
    attrs.update({**HU_ATTRS, "content": CT_CONTENT})
    return _write_with_subjects(out, col, attrs, sources, "ct", test_subjects, added, extended_out, size, log)


def build_datasets(sources: FetchedSources, prepared: Path | str, *, size: int = 128,
                   log: Log = None) -> dict[str, dict[str, int]]:
    """Write ``brain-mri-<size>.h5`` and ``head-ct-<size>.h5`` into ``prepared``; with ``sources.extra`` (see
    :func:`~genrecon.data_prep.more_sources.fetch_more`) they gain ``test_subject/`` and the extended files
    ``brain-mri-extended-<size>.h5`` and ``ct-extended-<size>.h5`` are written too. Counts per file name."""
    prepared = Path(prepared)
    extra = sources.extra
    out: dict[str, dict[str, int]] = {}
    for modality, build, base, name, ext_name in (
            ("mri", _brain_mri_files, [sources.mni152, sources.ch2, sources.ch2better],
             f"brain-mri-{size}.h5", f"brain-mri-extended-{size}.h5"),
            ("ct", _head_ct_files, [sources.cranium], f"head-ct-{size}.h5", f"ct-extended-{size}.h5")):
        added = pick(extra, EXTRA_TRAIN[modality])
        out.update(build(base, prepared / name, size=size, log=log,
                         test_subjects=pick(extra, TEST_SUBJECTS[modality]), added=added,
                         extended_out=prepared / ext_name if added else None))
    return out
