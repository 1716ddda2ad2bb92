"""Loaders, image preparation and writers.

Importing this package registers every built-in loader in :data:`genrecon.registry.LOADERS`: ``fastmri``
(``.h5``), ``nifti`` (``.nii``, ``.nii.gz``), ``dicom`` (file or series folder), ``image`` (PNG, TIFF),
``npy``, ``prepared`` (genrecon's prepared datasets, ``data.loader: prepared``), ``phantom`` (``phantom:shepp-logan``, ``phantom:ellipses``) and ``sample``
(``sample:brain-mri``, ``sample:head-ct``). Every loader returns :class:`~genrecon.types.Case` records
with key ``"<source stem>/<slice index>"``, image ``(1, H, W)`` float32 or complex64 and ``meta`` with
``source``, ``slice``, ``loader``, ``pixel_spacing``, ``units`` and ``affine`` (None where unknown).
Heavy readers (h5py, nibabel, pydicom, PIL, tifffile) are imported only when a file is read.

Example:
    >>> from genrecon.registry import LOADERS
    >>> LOADERS.names()
    ['dicom', 'fastmri', 'image', 'nifti', 'npy', 'phantom', 'prepared', 'sample']
    >>> LOADERS.doc("phantom")
    'Synthetic phantoms (phantom:shepp-logan, phantom:ellipses): no files needed.'
"""

from __future__ import annotations

from . import dicom, fastmri, image, nifti, npy, phantom, prepared, samples  # noqa: F401  (registration)
from .base import Loader
from .dicom import DicomLoader
from .fastmri import FastMRILoader
from .image import ImageLoader
from .nifti import NiftiLoader
from .npy import NpyLoader
from .phantom import PhantomLoader
from .prepared import PreparedLoader
from .samples import SampleLoader

__all__ = [
    "Loader",
    "DicomLoader",
    "FastMRILoader",
    "ImageLoader",
    "NiftiLoader",
    "NpyLoader",
    "PhantomLoader",
    "PreparedLoader",
    "SampleLoader",
]
