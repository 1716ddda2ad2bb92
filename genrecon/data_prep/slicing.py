"""Cut normalised volumes and 2-D stacks into square training slices, filed by split (train / val / test_subject).

Each orientation of a volume is cropped to one square around the head (its foreground bounding box over
the whole stack, plus a margin), resized to ``size`` and clipped to [0, 1]; near-empty slices are skipped
and the held-out slab rule (:mod:`~genrecon.data_prep.slabs`) says where each slice goes.

Example:
    >>> import numpy as np
    >>> from genrecon.data_prep.slabs import DEFAULT_SLABS
    >>> from genrecon.data_prep.slicing import Collected, slice_stack
    >>> stack = np.zeros((20, 32, 32), np.float32); stack[:, 8:24, 8:24] = 1.0
    >>> col = Collected()
    >>> slice_stack(stack, "demo", col, size=16, rule=DEFAULT_SLABS)
    >>> len(col.train) + len(col.val) + col.stats["demo"]["gap"]
    20
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from ..errors import DataError
from .progress import Log, say
from .slabs import SlabRule
from .volumes import (EMPTY_THRESHOLD, ORIENTATIONS, SLICE_AXIS, crop_pad, display_stack, foreground_mask,
                      is_near_empty, resize, square_crop_box)


@dataclass
class SliceSet:
    """Slices collected for one split."""

    images: list[np.ndarray] = field(default_factory=list)
    source: list[str] = field(default_factory=list)
    orientation: list[str] = field(default_factory=list)
    index: list[int] = field(default_factory=list)
    position: list[float] = field(default_factory=list)

    def add(self, img: np.ndarray, source: str, orientation: str, index: int, position: float) -> None:
        self.images.append(img)
        self.source.append(source)
        self.orientation.append(orientation)
        self.index.append(index)
        self.position.append(position)

    def __len__(self) -> int:
        return len(self.images)


@dataclass
class Collected:
    """Train, val and test_subject slices plus bookkeeping (skipped and gap counts per volume).

    ``test_subject`` holds whole volumes of held-out subjects (:mod:`~genrecon.data_prep.subjects`).
    """

    train: SliceSet = field(default_factory=SliceSet)
    val: SliceSet = field(default_factory=SliceSet)
    stats: dict = field(default_factory=dict)
    test_subject: SliceSet = field(default_factory=SliceSet)


def _summary(name: str, counts: dict) -> str:
    held = f", {counts['test_subject']} test_subject" if "test_subject" in counts else ""
    return (f"{name}: {counts['train']} train, {counts['val']} val{held}, {counts['gap']} in gaps, "
            f"{counts['empty']} near-empty skipped")


def slice_volume(vol01: np.ndarray, affine: np.ndarray, name: str, out: Collected, *, size: int,
                 rule: SlabRule, orientations: Sequence[str] = ORIENTATIONS, step_mm: float = 1.0,
                 margin: float = 0.04, log: Log = None) -> None:
    """Cut a normalised, canonical, isotropic volume into square slices and file them by split.

    Args:
        vol01: ``(X, Y, Z)`` float32 in [0, 1], RAS+, isotropic voxels.
        affine: its voxel-to-world affine (axis-aligned).
        name: volume name stored in ``*/source``.
        out: collection that receives the slices.
        size: output side in pixels.
        rule: held-out slab rule (:class:`SlabRule`), or :class:`~genrecon.data_prep.subjects.WholeVolume` for
            a whole held-out subject.
        orientations: which orientations to cut.
        step_mm: distance between kept slices (every ``round(step_mm / voxel)``-th slice).
        margin: margin around the head's bounding box, relative to its larger side.
        log: progress callback.
    """
    mask = foreground_mask(vol01)
    zooms = np.sqrt((affine[:3, :3] ** 2).sum(axis=0))
    counts = {"train": 0, "val": 0, "gap": 0, "empty": 0}
    for orient in orientations:
        ax = SLICE_AXIS[orient]
        stack = display_stack(vol01, orient)
        mstack = display_stack(mask, orient)
        row0, col0, side = square_crop_box(mstack.any(axis=0), margin)
        occupied = np.flatnonzero(mstack.any(axis=(1, 2)))
        pos_of = lambda s: float(affine[ax, ax] * s + affine[ax, 3])  # noqa: E731 (axis-aligned)
        extent = tuple(sorted((pos_of(occupied[0]), pos_of(occupied[-1]))))
        step = max(1, int(round(step_mm / zooms[ax])))
        for s in range(0, stack.shape[0], step):
            position = pos_of(s)
            split = rule.split(orient, position, extent)
            if split is None:
                counts["gap"] += 1
                continue
            img = np.clip(resize(crop_pad(stack[s], row0, col0, side), size), 0.0, 1.0)
            if is_near_empty(img):
                counts["empty"] += 1
                continue
            getattr(out, split).add(img, name, orient, s, position)
            counts[split] = counts.get(split, 0) + 1
    out.stats[name] = counts
    say(log, _summary(name, counts))


def slice_stack(stack01: np.ndarray, name: str, out: Collected, *, size: int, rule: SlabRule,
                margin: float = 0.04, log: Log = None) -> None:
    """Like :func:`slice_volume` for a 2-D stack ``(N, H, W)`` without geometry (orientation ``stored``).

    Positions are slice indices; the slab is ``rule.slabs['stored']`` as a fraction of the stack, and
    ``rule.gap`` counts slices.
    """
    counts = {"train": 0, "val": 0, "gap": 0, "empty": 0}
    mask = stack01 > EMPTY_THRESHOLD
    if not mask.any():
        raise DataError(f"{name}: no pixel above 10% of the normalised maximum; nothing to slice")
    row0, col0, side = square_crop_box(mask.any(axis=0), margin)
    extent = (0.0, float(stack01.shape[0] - 1))
    for s in range(stack01.shape[0]):
        split = rule.split("stored", float(s), extent)
        if split is None:
            counts["gap"] += 1
            continue
        img = np.clip(resize(crop_pad(stack01[s], row0, col0, side), size), 0.0, 1.0)
        if is_near_empty(img):
            counts["empty"] += 1
            continue
        getattr(out, split).add(img, name, "stored", s, float(s))
        counts[split] = counts.get(split, 0) + 1
    out.stats[name] = counts
    say(log, _summary(name, counts))
