"""The inputs of data preparation, read with the readers of :mod:`genrecon.io` (one reader per format).

Each function returns the whole volume or stack in the layout data preparation slices: float32, values
as stored (modality values for DICOM, HU for CT). The only choices made here are preparation's own:
fastMRI reference images prefer ``reconstruction_rss``, complex ``.npy`` stacks become magnitudes and
colour images the mean of their R, G, B channels. :mod:`genrecon.io` (and with it torch) is imported
when a file is read, so fetching needs neither.

Example:
    >>> from genrecon.data_prep.readers import read_nifti
    >>> data, affine = read_nifti("t1.nii.gz")  # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import DataError


def read_nifti(path: Path | str) -> tuple[np.ndarray, np.ndarray]:
    """A NIfTI file as ``(float32 array (X, Y, Z), affine)``; 4-D files keep their first volume.

    Uses :func:`genrecon.io.nifti.read_volume`.
    """
    from ..io.nifti import read_volume

    return read_volume(path, volume_index=0)


def is_dicom(path: Path) -> bool:
    """Whether a file is DICOM: a ``.dcm``/``.dicom``/``.ima`` suffix, or no suffix and the ``DICM`` preamble.

    Uses :meth:`genrecon.io.dicom.DicomLoader.accepts`.
    """
    from ..io.dicom import DicomLoader

    return Path(path).is_file() and DicomLoader.accepts(str(path))


def read_dicom_series(files: Sequence[Path]) -> list[tuple[str, np.ndarray, np.ndarray, str]]:
    """Group DICOM files by series and stack each into a 3-D volume.

    Uses :func:`genrecon.io.dicom.read_series_volumes` (values computed in float32).

    Returns:
        ``[(series_name, data (R, C, S) float32 in real units (slope/intercept applied), affine RAS,
        modality)]``; the name is ``<folder of the first slice>/<SeriesDescription or UID>``. The affine maps
        (row, column, slice) to RAS mm from ImagePositionPatient, ImageOrientationPatient and PixelSpacing.
    """
    from ..io.dicom import read_series_volumes

    out = []
    for vol in read_series_volumes(files, dtype=np.float32):
        uid = vol.series_uid
        name = str(vol.description or uid).strip().replace(" ", "_") or uid
        out.append((f"{vol.first_file.parent.name}/{name}", vol.data, vol.affine, vol.modality))
    return out


def read_fastmri(path: Path | str) -> np.ndarray:
    """Magnitude images ``(N, H, W)`` float32 of a fastMRI HDF5 file (``reconstruction_rss``, else ``_esc``).

    Uses :func:`genrecon.io.fastmri.read_reconstructions`.
    """
    from ..io.fastmri import read_reconstructions

    return read_reconstructions(path, ("reconstruction_rss", "reconstruction_esc"))


def read_image(path: Path | str) -> np.ndarray:
    """A PNG/TIFF image as a float32 ``(H, W)`` array (colour images are averaged over R, G, B).

    Uses :func:`genrecon.io.image.read_pixels`. (The loader's luminance weights are not used here: the
    training sets keep the channel mean they were built with.)
    """
    from ..io.image import read_pixels

    arr = read_pixels(path).astype(np.float32)
    if arr.ndim == 3:
        arr = arr[..., :3].mean(axis=-1)
    if arr.ndim != 2:
        raise DataError(f"{path}: expected a 2-D image, got shape {arr.shape}")
    return arr


def read_npy_stack(path: Path | str) -> np.ndarray:
    """A ``.npy`` stack ``(N, H, W)`` (one image becomes a stack of one) as float32 magnitudes.

    Uses :func:`genrecon.io.npy.read_stack`.
    """
    from ..io.npy import read_stack

    arr = read_stack(path)
    if np.iscomplexobj(arr):
        arr = np.abs(arr)
    return arr.astype(np.float32)


def stack_images(paths: Sequence[Path]) -> np.ndarray:
    """The images of one folder (sorted by name) as a stack ``(N, H, W)`` float32; all must share a shape."""
    imgs = [read_image(p) for p in sorted(paths)]
    shapes = {im.shape for im in imgs}
    if len(shapes) > 1:
        raise DataError(f"{paths[0].parent}: images of different shapes {sorted(shapes)}; put each "
                        "size in its own folder")
    return np.stack(imgs)
