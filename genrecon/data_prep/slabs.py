"""Held-out slabs: which slices of a volume are validation data, which are training data, which are dropped.

Validation data are whole slabs, never random slices: neighbouring slices are near-duplicates, so a
random split would leak. :data:`BRAIN_SLABS` and :data:`CT_SLABS` are the rules of the bundled datasets,
:data:`DEFAULT_SLABS` the rule for user folders.

Example:
    >>> from genrecon.data_prep.slabs import SlabRule
    >>> rule = SlabRule({"axial": (10.0, 20.0)}, units="mm", gap=4.0)
    >>> rule.split("axial", 15.0, (0.0, 100.0)), rule.split("axial", 22.0, (0.0, 100.0))
    ('val', None)
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ConfigError


@dataclass(frozen=True)
class SlabRule:
    """Which slices are held out (val), kept for training, or dropped.

    Per orientation, a slab ``[lo, hi]`` of slice positions is held out. ``units="mm"`` means world
    coordinates along the RAS axis (x for sagittal, y for coronal, z for axial), the right choice when
    volumes share a standard space (MNI): the same anatomy is held out of every volume, so one subject
    seen twice (Colin27 ``ch2`` and ``ch2better``) cannot leak. ``units="fraction"`` means a fraction of
    the head's extent along that axis (its foreground bounding box; the whole stack for 2-D stacks).
    Training slices closer than ``gap`` (mm; slices for stacks without geometry) to a slab are dropped.
    """

    slabs: dict[str, tuple[float, float]]
    units: str = "fraction"
    gap: float = 4.0

    def __post_init__(self) -> None:
        if self.units not in ("mm", "fraction"):
            raise ConfigError(f"slab units: expected 'mm' or 'fraction', got {self.units!r}")
        for key, (lo, hi) in self.slabs.items():
            if not lo < hi:
                raise ConfigError(f"slab {key}: expected lo < hi, got [{lo}, {hi}]")

    def describe(self) -> str:
        parts = [f"{k} {lo:g}..{hi:g}" for k, (lo, hi) in self.slabs.items()]
        unit = "mm (world, RAS)" if self.units == "mm" else "fraction of the head's extent along the axis"
        return (
            f"val = every slice whose position lies in the held-out slab of its orientation ("
            + "; ".join(parts) + f"; units: {unit}); train = slices farther than {self.gap:g} "
            "mm from the slab (slices in the gap are dropped); never random slices"
        )

    def split(self, orientation: str, position: float, extent: tuple[float, float]) -> str | None:
        """Return ``"val"``, ``"train"`` or ``None`` (in the gap) for a slice.

        Args:
            orientation: key of :attr:`slabs` (``"axial"``, ..., or ``"stored"`` for stacks).
            position: the slice's position (mm, or slice index for stacks).
            extent: ``(first, last)`` position of the head along the axis, for ``units="fraction"``.
        """
        if orientation not in self.slabs:
            raise ConfigError(f"slab rule has no slab for orientation {orientation!r}; "
                              f"it has {sorted(self.slabs)}")
        lo, hi = self.slabs[orientation]
        if self.units == "fraction":
            a, b = extent
            lo, hi = a + lo * (b - a), a + hi * (b - a)
        if lo <= position <= hi:
            return "val"
        if lo - self.gap <= position <= hi + self.gap:
            return None
        return "train"


#: MRI templates live in MNI space: the slabs are world mm. Axial z 12..32 mm is centred on the
#: mid-axial MNI152 slice (z = +22 mm, the upper-middle third of the brain: lateral ventricles); coronal
#: y -36..-16 mm (thalami, atria); sagittal |x| <= 10 mm is centred on the midline because the MNI152
#: 2009a symmetric template is exactly left-right symmetric: any lateral slab would have its mirror
#: image in the training set.
BRAIN_SLABS = SlabRule({"axial": (12.0, 32.0), "coronal": (-36.0, -16.0), "sagittal": (-10.0, 10.0)},
                       units="mm", gap=4.0)
#: The CT has no standard space: slabs are fractions of the head's extent (upper-middle axial slab,
#: an anterior-of-centre coronal slab, sagittal centred on the midline).
CT_SLABS = SlabRule({"axial": (0.55, 0.68), "coronal": (0.56, 0.68), "sagittal": (0.44, 0.56)},
                    units="fraction", gap=4.0)
#: default for user folders
DEFAULT_SLABS = SlabRule({"axial": (0.55, 0.67), "coronal": (0.56, 0.68), "sagittal": (0.44, 0.56),
                          "stored": (0.55, 0.67)}, units="fraction", gap=4.0)
