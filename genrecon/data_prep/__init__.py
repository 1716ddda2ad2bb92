"""Real scans for genrecon: fetch public volumes, write the bundled samples and the training datasets.

Three steps, each idempotent, called by ``scripts/prepare_data.py``:

* :func:`fetch` downloads the packages that hold real scans (PyPI ``nilearn`` wheel, Debian
  ``mricron-data`` and ``invesalius-examples``) into a cache folder and unpacks the few files used.
* :func:`fetch_more` adds two clinical brain MRIs and two chest CTs (pyradiomics' source distribution) and a
  whole-head T1 average (pydeface): one subject per modality is held out whole (``test_subject/``, the
  unseen-subject split), the others join training in the extended datasets (:mod:`.subjects`).
* :func:`write_samples` writes the two small NIfTI files bundled in ``genrecon/data/samples`` and their
  ``samples.json`` sidecar. Every bundled slice comes from a held-out slab, never from training data.
* :func:`build_brain_mri_dataset` and :func:`build_head_ct_dataset` write the HDF5 training sets;
  :func:`build_dataset_from_folder` does the same for any folder of NIfTI, DICOM, fastMRI HDF5,
  PNG/TIFF or ``.npy`` files.

Modules, one purpose each: ``fetching`` (packages, download, unpacking, :class:`Source` records),
``more_sources`` (the added packages), ``nrrd`` (NRRD volumes), ``subjects`` (the unseen-subject split and the
added training volumes), ``readers`` (the inputs, read with :mod:`genrecon.io`'s readers), ``inv3`` (InVesalius projects, read
only here), ``volumes`` (reorientation, resampling, normalisation, cropping), ``slabs`` (the held-out
split), ``slicing`` (volumes to train/val slices), ``datasets`` (the HDF5 layout and the bundled
datasets), ``folder`` (a dataset from any folder), ``samples`` (the bundled samples), ``progress``.
Layers: data_prep uses :mod:`genrecon.io` and :mod:`genrecon.errors`; io never imports data_prep.

Conventions (also in ``data/README.md``):

* 3-D volumes are reoriented to RAS+ (axis 0 towards the patient's right, 1 anterior, 2 superior) and
  resampled to isotropic voxels (linear interpolation) before slicing.
* 2-D slices are display-ready in the radiological convention: axial and coronal images show the
  patient's right on the image's left; axial rows run anterior -> posterior, coronal and sagittal rows
  superior -> inferior, sagittal columns anterior -> posterior.
* MRI intensities: divided by the volume's 99.5th percentile (of voxels above 5 % of its maximum) and
  clipped to [0, 1]. CT: ``(clip(HU, -1024, 3071) + 1024) / 4095``, so ``HU = 4095 * x - 1024``.
* Held-out (val) split: whole slabs, never random slices; training slices within ``gap`` of a slab are
  dropped (neighbouring slices are near-duplicates). See :class:`SlabRule`.

Library code here never prints; progress goes through the optional ``log`` callback.

Example:
    >>> from genrecon import data_prep
    >>> sources = data_prep.fetch("data/cache")  # doctest: +SKIP
    >>> data_prep.build_datasets(sources, "data/prepared", size=128)  # doctest: +SKIP
    {'brain-mri-128.h5': {...}, 'head-ct-128.h5': {...}}
"""

from __future__ import annotations

from .datasets import build_brain_mri_dataset, build_datasets, build_head_ct_dataset, write_dataset_h5
from .fetching import (CH2_MEMBER, CH2BETTER_MEMBER, CRANIUM_MEMBER, INVESALIUS_EXAMPLES, MNI_MEMBER, MNI_NOTICE,
                       MRICRON_DATA, NILEARN, PACKAGES, FetchedSources, Package, Source, fetch, sources_from_cache)
from .folder import build_dataset_from_folder
from .inv3 import inv3_to_ras, read_inv3
from .more_sources import PYDEFACE, PYRADIOMICS, fetch_more, more_from_cache
from .nrrd import read_nrrd
from .progress import Log
from .readers import read_dicom_series, read_fastmri, read_image, read_nifti, read_npy_stack
from .samples import N_SAMPLE_SLICES, SAMPLE_SIZE, write_samples
from .slabs import BRAIN_SLABS, CT_SLABS, DEFAULT_SLABS, SlabRule
from .slicing import Collected, SliceSet, slice_stack, slice_volume
from .subjects import ADDED_SLABS, EXTRA_TRAIN, TEST_SUBJECT, TEST_SUBJECTS, WholeVolume
from .volumes import (CT_NORMALISATION, EMPTY_MIN_FRACTION, EMPTY_THRESHOLD, HU_MAX, HU_MIN, HU_OFFSET, HU_SCALE,
                      MRI_NORMALISATION, ORIENTATION_CONVENTION, ORIENTATIONS, SLICE_AXIS, crop_pad, display_stack,
                      foreground_mask, is_near_empty, normalise_ct, normalise_mri, resample_isotropic, resize,
                      square_crop_box, to_canonical)

__all__ = [
    "ADDED_SLABS", "EXTRA_TRAIN", "PYDEFACE", "PYRADIOMICS", "TEST_SUBJECT", "TEST_SUBJECTS", "WholeVolume",
    "fetch_more", "more_from_cache", "read_nrrd",
    "BRAIN_SLABS", "CH2BETTER_MEMBER", "CH2_MEMBER", "CRANIUM_MEMBER", "CT_NORMALISATION", "CT_SLABS",
    "DEFAULT_SLABS", "EMPTY_MIN_FRACTION", "EMPTY_THRESHOLD", "HU_MAX", "HU_MIN", "HU_OFFSET", "HU_SCALE",
    "INVESALIUS_EXAMPLES", "MNI_MEMBER", "MNI_NOTICE", "MRICRON_DATA", "MRI_NORMALISATION", "NILEARN",
    "N_SAMPLE_SLICES", "ORIENTATIONS", "ORIENTATION_CONVENTION", "PACKAGES", "SAMPLE_SIZE", "SLICE_AXIS",
    "Collected", "FetchedSources", "Log", "Package", "SlabRule", "SliceSet", "Source",
    "build_brain_mri_dataset", "build_dataset_from_folder", "build_datasets", "build_head_ct_dataset",
    "crop_pad", "display_stack", "fetch", "foreground_mask", "inv3_to_ras", "is_near_empty", "normalise_ct",
    "normalise_mri", "read_dicom_series", "read_fastmri", "read_image", "read_inv3", "read_nifti",
    "read_npy_stack", "resample_isotropic", "resize", "slice_stack", "slice_volume", "sources_from_cache",
    "square_crop_box", "to_canonical", "write_dataset_h5", "write_samples",
]
