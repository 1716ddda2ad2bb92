"""DICOM loader: series sorting, HU rescale, geometry, several series, files to ignore, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, MRImageStorage, generate_uid

from genrecon.errors import DataError
from genrecon.io.dicom import DicomLoader
from genrecon.registry import LOADERS

H, W = 8, 6
SPACING = (0.7, 0.6)  # (row spacing, column spacing)


def write_dicom(path, pixels, *, series, instance=None, position=None, modality="CT", pixel_data=True,
                intercept=-1024.0):
    meta = FileMetaDataset()
    sop_class = CTImageStorage if modality == "CT" else MRImageStorage
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = "1.2.3"
    ds.SeriesInstanceUID = series
    ds.SeriesDescription = f"series {series[-1]}"
    ds.Modality = modality
    if instance is not None:
        ds.InstanceNumber = instance
    if position is not None:
        ds.ImagePositionPatient = [float(v) for v in position]
        ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    ds.PixelSpacing = list(SPACING)
    ds.SliceThickness = 2.5
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    if modality == "CT":
        ds.RescaleSlope = 1
        ds.RescaleIntercept = intercept
    if pixel_data:
        ds.PixelData = pixels.astype("<u2").tobytes()
    ds.save_as(path, enforce_file_format=True)


def make_series(folder, n=5, *, series="1.2.3.4.1", positions=True, seed=0):
    """Files named in an order unrelated to their InstanceNumber; returns stored pixels by instance."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    stored = rng.integers(0, 3000, size=(n, H, W)).astype(np.uint16)
    order = rng.permutation(n)
    for file_no, k in enumerate(order):
        write_dicom(folder / f"IM{file_no:03d}.dcm", stored[k], series=series, instance=int(k) + 1,
                    position=(-50.0, 30.0, 10.0 + 2.5 * k) if positions else None)
    return stored


def test_registered_and_accepts(tmp_path):
    assert LOADERS.get("dicom") is DicomLoader and DicomLoader.reads_folders
    assert DicomLoader.accepts("x/IM1.dcm") and not DicomLoader.accepts("brain.nii.gz")
    assert not DicomLoader.accepts(str(tmp_path))  # an empty folder, or one without DICOM files
    (tmp_path / "a.nii").write_bytes(b"x")
    assert not DicomLoader.accepts(str(tmp_path))
    (tmp_path / "sub").mkdir()
    write_dicom(tmp_path / "sub" / "IM0", np.zeros((H, W), np.uint16), series="1.1", instance=1)  # no suffix
    assert DicomLoader.accepts(str(tmp_path)) and DicomLoader.accepts(str(tmp_path / "sub" / "IM0"))


@pytest.mark.parametrize("positions", [True, False], ids=["by-position", "by-instance"])
def test_series_sorted_and_in_hu(tmp_path, positions):
    folder = tmp_path / "ct_series"
    stored = make_series(folder, positions=positions)
    (folder / "notes.txt").write_text("not a DICOM file")
    (folder / "DICOMDIR_like.bin").write_bytes(b"\0" * 128 + b"DICM" + b"\0" * 20)  # broken: ignored
    loader = DicomLoader()
    assert loader.n_slices(str(folder)) == 5
    for k in range(5):
        case = loader.load(str(folder), k)
        assert case.key == f"ct_series/{k}"
        assert case.image.shape == (1, H, W) and case.image.dtype == torch.float32
        np.testing.assert_array_equal(case.image[0].numpy(), stored[k].astype(np.float32) - 1024.0)
        assert case.meta["units"] == "HU" and case.meta["instance_number"] == k + 1
        assert case.meta["pixel_spacing"] == pytest.approx(list(SPACING))


def test_affine_maps_written_voxels_to_patient_space(tmp_path):
    folder = tmp_path / "geo"
    make_series(folder)
    case = DicomLoader().load(str(folder), 3)
    aff = np.array(case.meta["slice_affine"])
    vol = np.array(case.meta["affine"])
    r, c = 2, 4  # image pixel
    lps = np.array([-50.0, 30.0, 10.0 + 2.5 * 3]) + c * SPACING[1] * np.array([1, 0, 0]) \
        + r * SPACING[0] * np.array([0, 1, 0])
    ras = lps * [-1, -1, 1]
    np.testing.assert_allclose((aff @ [r, c, 0, 1])[:3], ras, atol=1e-9)
    np.testing.assert_allclose((vol @ [r, c, 3, 1])[:3], ras, atol=1e-9)


def test_written_series_reads_back_identically(tmp_path):
    from genrecon.io.nifti import NiftiLoader
    from genrecon.io.writers import write_nifti

    folder = tmp_path / "geo"
    make_series(folder)
    loader = DicomLoader()
    cases = [loader.load(str(folder), k) for k in range(5)]
    out = tmp_path / "series.nii.gz"
    write_nifti(out, np.stack([c.image[0].numpy() for c in cases]), cases[0].meta["affine"])
    back = NiftiLoader().load(str(out), 3)
    torch.testing.assert_close(back.image, cases[3].image)  # DICOM layout is the radiological display
    assert back.meta["plane"] == "axial"
    np.testing.assert_allclose(back.meta["slice_affine"], cases[3].meta["slice_affine"], atol=1e-6)


def test_single_file(tmp_path):
    pixels = np.arange(H * W, dtype=np.uint16).reshape(H, W)
    path = tmp_path / "one.dcm"
    write_dicom(path, pixels, series="9.9", instance=1, position=(0, 0, 0), modality="MR")
    loader = DicomLoader()
    assert loader.n_slices(str(path)) == 1
    case = loader.load(str(path), 0)
    assert case.key == "one/0" and case.meta["units"] != "HU" and case.meta["modality"] == "MR"
    np.testing.assert_array_equal(case.image[0].numpy(), pixels)


def test_several_series_listed_and_selectable(tmp_path):
    folder = tmp_path / "study"
    make_series(folder / "a", n=3, series="1.2.3.4.1")
    stored_b = make_series(folder / "b", n=2, series="1.2.3.4.2", seed=1)
    with pytest.raises(DataError, match=r"study.*2 series.*series_uid.*1\.2\.3\.4\.1.*3 files.*1\.2\.3\.4\.2"):
        DicomLoader().n_slices(str(folder))
    loader = DicomLoader(series_uid="1.2.3.4.2")
    assert loader.n_slices(str(folder)) == 2
    np.testing.assert_array_equal(loader.load(str(folder), 1).image[0].numpy(), stored_b[1] - 1024.0)
    with pytest.raises(DataError, match="no series with SeriesInstanceUID 7.7"):
        DicomLoader(series_uid="7.7").n_slices(str(folder))


def test_empty_folder_and_no_dicom(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match=r"empty: no DICOM images"):
        DicomLoader().n_slices(str(empty))
    (empty / "readme.txt").write_text("hello")
    with pytest.raises(DataError, match=r"empty: no DICOM images in this folder \(1 files"):
        DicomLoader().n_slices(str(empty))


def test_without_pixel_data(tmp_path):
    path = tmp_path / "nopix.dcm"
    write_dicom(path, np.zeros((H, W), np.uint16), series="5.5", instance=1, pixel_data=False)
    with pytest.raises(DataError, match=r"nopix\.dcm: DICOM file without pixel data"):
        DicomLoader().n_slices(str(path))
    junk = tmp_path / "junk.dcm"
    junk.write_bytes(b"not dicom at all" * 20)
    with pytest.raises(DataError, match=r"junk\.dcm: not a readable DICOM"):
        DicomLoader().n_slices(str(junk))
