"""NIfTI volumes (``.nii``, ``.nii.gz``) read slice by slice with nibabel.

Orientation. The array is kept as stored (no resampling, no reorientation of the volume); a slice is
taken along ``slice_axis`` and only its two in-plane axes are transposed and flipped (read from the
affine, nearest axis codes) so that the image is display-ready in the radiological convention used
everywhere in genrecon (DICOM's own layout, the bundled samples, the training sets):

* axial (slice axis along S/I): rows anterior -> posterior, columns patient right -> left;
* coronal (along A/P): rows superior -> inferior, columns patient right -> left;
* sagittal (along R/L): rows superior -> inferior, columns anterior -> posterior.

So an axial slice of a RAS+ volume is shown head-up (anterior at the top, patient's right on the
image's left), and a volume stored as ``data[row, column, slice]`` with a "PLS" affine (as the samples
are) is read as stored. ``meta["slice_affine"]`` maps the image's ``(row, column, 0)`` to world mm;
:func:`~genrecon.io.writers.write_nifti` stores images as ``data[row, column, n]``, so results written
with it overlay the source volume and read back unchanged.

:func:`read_volume` reads a whole volume at once, as stored (data preparation reorients and resamples it).

Example:
    >>> from genrecon.io.nifti import NiftiLoader
    >>> NiftiLoader.accepts("brain.nii.gz")
    True
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError, DataError
from ..registry import LOADERS
from ..types import Case
from .base import Loader
from .transforms import as_image, source_stem

_WORLD_AXIS = {"R": 0, "L": 0, "A": 1, "P": 1, "S": 2, "I": 2}
#: world axis of the slice normal -> (plane, (world axis, direction) of rows, of columns)
_DISPLAY = {
    2: ("axial", (1, "P"), (0, "L")),
    1: ("coronal", (2, "I"), (0, "L")),
    0: ("sagittal", (2, "I"), (1, "P")),
}


def display_axes(affine: np.ndarray, slice_axis: int) -> tuple[str | None, int, bool, int, bool]:
    """How a slice is laid out for display: ``(plane, row_axis, row_flip, col_axis, col_flip)``.

    ``row_axis`` / ``col_axis`` are the array axes that become the image's rows / columns, reversed when
    the flag is set. A degenerate affine gives the stored layout (``plane`` None).
    """
    import nibabel as nib

    u, v = [ax for ax in range(3) if ax != slice_axis]
    try:
        codes = nib.aff2axcodes(np.asarray(affine, dtype=np.float64)[:4, :4])
    except Exception:  # singular or malformed affine
        codes = (None, None, None)
    if any(c is None for c in codes[:3]):
        return None, u, False, v, False
    world = {ax: _WORLD_AXIS[codes[ax]] for ax in range(3)}
    plane, (row_world, row_to), (col_world, col_to) = _DISPLAY[world[slice_axis]]
    row_axis = u if world[u] == row_world else v
    col_axis = v if row_axis == u else u
    if world[col_axis] != col_world:  # cannot happen for a valid axis-code triple
        return None, u, False, v, False
    return plane, row_axis, codes[row_axis] != row_to, col_axis, codes[col_axis] != col_to


def slice_affine(
    affine: np.ndarray, shape: tuple[int, int, int], slice_axis: int, index: int
) -> np.ndarray:
    """Affine of slice ``index`` as displayed: maps ``(row, column, n)`` to the world position of the
    volume voxel shown there (``n`` steps along ``slice_axis`` from ``index``): ``A_slice = A @ P``."""
    _, row_axis, row_flip, col_axis, col_flip = display_axes(affine, slice_axis)
    perm = np.zeros((4, 4))
    for col, axis, flip in ((0, row_axis, row_flip), (1, col_axis, col_flip)):
        perm[axis, col] = -1.0 if flip else 1.0
        perm[axis, 3] = shape[axis] - 1.0 if flip else 0.0
    perm[slice_axis, 2] = 1.0
    perm[slice_axis, 3] = float(index)
    perm[3, 3] = 1.0
    return np.asarray(affine, dtype=np.float64) @ perm


@LOADERS.register("nifti")
class NiftiLoader(Loader):
    """NIfTI volume (.nii, .nii.gz): 2-D slices along an axis, with affine and spacing.

    Args:
        slice_axis: array axis (0, 1 or 2) the slices are taken along; 2 is axial for RAS-like volumes.
        volume_index: which volume of a 4-D file (time series, echoes) to read.

    ``meta["affine"]`` is the file's 4x4 affine, ``meta["slice_affine"]`` the affine for writing this slice
    back with ``write_nifti``, ``meta["pixel_spacing"]`` the (row, column) spacing of ``image`` in mm.
    """

    suffixes = (".nii", ".nii.gz")

    def __init__(self, slice_axis: int = 2, volume_index: int = 0):
        if isinstance(slice_axis, bool) or not isinstance(slice_axis, int) or slice_axis not in (0, 1, 2):
            raise ConfigError(f"nifti slice_axis: expected 0, 1 or 2, got {slice_axis!r}")
        if isinstance(volume_index, bool) or not isinstance(volume_index, int) or volume_index < 0:
            raise ConfigError(f"nifti volume_index: expected an integer >= 0, got {volume_index!r}")
        self.slice_axis = slice_axis
        self.volume_index = volume_index

    def _open(self, source: str) -> Any:
        import nibabel as nib

        if not Path(source).exists():
            raise DataError(f"{source}: file not found")
        try:
            img = nib.load(source)
        except Exception as exc:  # nibabel raises many kinds (ImageFileError, gzip, struct errors)
            raise DataError(f"{source}: not a readable NIfTI file: {type(exc).__name__}: {exc}") from None
        if not isinstance(img, (nib.Nifti1Image, nib.Nifti2Image)):
            raise DataError(f"{source}: expected a NIfTI image, got {type(img).__name__}")
        return img

    def _shape3(self, img: Any, source: str) -> tuple[int, int, int]:
        shape = tuple(int(s) for s in img.shape)
        while len(shape) > 4 and shape[-1] == 1:
            shape = shape[:-1]
        if len(shape) == 2:
            return (shape[0], shape[1], 1)
        if len(shape) == 3:
            return shape  # type: ignore[return-value]
        if len(shape) == 4:
            if self.volume_index >= shape[3]:
                raise ConfigError(
                    f"data.params.volume_index: {self.volume_index} is out of range for {source} with "
                    f"{shape[3]} volumes; valid: 0..{shape[3] - 1}"
                )
            return shape[:3]  # type: ignore[return-value]
        raise DataError(f"{source}: expected a 2-D, 3-D or 4-D NIfTI image, got shape {shape}")

    def _axis(self, img: Any) -> int:
        """The slice axis; a 2-D image is one slice whatever ``slice_axis`` says."""
        return 2 if len(img.shape) == 2 else self.slice_axis

    def n_slices(self, source: str) -> int:
        img = self._open(source)
        return self._shape3(img, source)[self._axis(img)]

    def load(self, source: str, index: int) -> Case:
        img = self._open(source)
        shape = self._shape3(img, source)
        axis = self._axis(img)
        n = shape[axis]
        if not 0 <= index < n:
            raise DataError(f"{source}: slice {index} does not exist along axis {axis}; valid: 0..{n - 1}")
        ndim = len(img.shape)
        key: list[Any] = [slice(None)] * ndim
        if ndim > 2:
            key[axis] = index
            if ndim >= 4:
                key[3] = self.volume_index
                for extra in range(4, ndim):
                    key[extra] = 0
        try:
            plane = np.asarray(img.dataobj[tuple(key)])
        except Exception as exc:  # truncated or corrupt data block
            raise DataError(f"{source}: cannot read slice {index}: {type(exc).__name__}: {exc}") from None
        if plane.ndim != 2:
            raise DataError(f"{source}: slice {index} has shape {plane.shape}, expected 2-D")
        affine = np.asarray(img.affine, dtype=np.float64)
        view, row_axis, row_flip, col_axis, col_flip = display_axes(affine, axis)
        u = min(ax for ax in range(3) if ax != axis)
        image = plane if row_axis == u else plane.T  # plane's axes are (u, v) in stored order
        image = image[::-1 if row_flip else 1, ::-1 if col_flip else 1]
        zooms = [float(z) for z in img.header.get_zooms()[:3]] + [1.0] * 3
        try:
            import nibabel as nib

            orientation = "".join(nib.aff2axcodes(affine))
        except Exception:  # degenerate affine
            orientation = None
        meta = {
            "source": str(source),
            "slice": int(index),
            "loader": "nifti",
            "slice_axis": axis,
            "volume_index": self.volume_index if len(img.shape) >= 4 else None,
            "pixel_spacing": [zooms[row_axis], zooms[col_axis]],
            "slice_thickness": zooms[axis],
            "units": "a.u.",
            "affine": affine.tolist(),
            "slice_affine": slice_affine(affine, shape, axis, index).tolist(),
            "orientation": orientation,
            "plane": view,
            "shape": list(img.shape),
        }
        return Case(key=f"{source_stem(source)}/{index}", image=as_image(image, source, f"slice {index}"), meta=meta)


def read_volume(source: str | Path, volume_index: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A whole NIfTI volume as stored: ``(data, affine)``, no reorientation, no resampling.

    Args:
        source: ``.nii`` or ``.nii.gz`` file.
        volume_index: which volume of a 4-D file (time series, echoes) to return.

    Returns:
        ``data`` float32 ``(X, Y, Z)`` (scaled by the header's slope and intercept; a 2-D image gets a
        third axis of length 1) and the file's 4x4 ``affine`` float64.

    Raises:
        DataError: a missing, unreadable or corrupt file, or an image that is not 2-D, 3-D or 4-D.
        ConfigError: ``volume_index`` out of range.

    Example:
        >>> from genrecon.io.nifti import read_volume
        >>> data, affine = read_volume("head.nii.gz")  # doctest: +SKIP
    """
    loader = NiftiLoader(volume_index=volume_index)
    img = loader._open(str(source))
    loader._shape3(img, str(source))  # checks the rank and the volume index
    try:
        data = np.asarray(img.dataobj, dtype=np.float32)
    except Exception as exc:  # truncated or corrupt data block
        raise DataError(f"{source}: not a readable NIfTI file: {type(exc).__name__}: {exc}") from None
    shape = data.shape
    while len(shape) > 4 and shape[-1] == 1:
        shape = shape[:-1]
    data = data.reshape(shape)
    if data.ndim == 4:
        data = data[..., volume_index]
    elif data.ndim == 2:
        data = data[..., None]
    return data, np.asarray(img.affine, dtype=np.float64)
