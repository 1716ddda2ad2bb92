"""NIfTI loader: slices, orientation, affine, 4-D volumes, writing slices back, corrupt files."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
import torch

from genrecon.errors import ConfigError, DataError
from genrecon.io.nifti import NiftiLoader
from genrecon.io.writers import write_nifti
from genrecon.registry import LOADERS

AFFINE = np.array(
    [[0.8, 0.0, 0.0, -10.0], [0.0, 0.9, 0.0, 20.0], [0.0, 0.0, 2.5, -5.0], [0.0, 0.0, 0.0, 1.0]]
)


@pytest.fixture
def volume(tmp_path):
    data = np.random.default_rng(0).random((6, 5, 4)).astype(np.float32)
    path = tmp_path / "head.nii.gz"
    img = nib.Nifti1Image(data, AFFINE)
    nib.save(img, path)
    return path, data


def test_registered_and_accepts():
    assert LOADERS.get("nifti") is NiftiLoader
    assert NiftiLoader.accepts("a/b.nii.gz") and NiftiLoader.accepts("B.NII")
    assert not NiftiLoader.accepts("b.nii.gz.bak")


def display_axial_ras(s: np.ndarray) -> np.ndarray:
    """Expected display of an axial slice s[x, y] of a RAS+ volume: rows A -> P, columns R -> L."""
    return s[::-1, ::-1].T


def test_axial_slices_affine_and_spacing(volume):
    path, data = volume
    loader = NiftiLoader()
    assert loader.n_slices(str(path)) == 4
    case = loader.load(str(path), 2)
    assert case.key == "head/2"
    assert case.image.shape == (1, 5, 6) and case.image.dtype == torch.float32
    np.testing.assert_array_equal(case.image[0].numpy(), display_axial_ras(data[:, :, 2]))
    np.testing.assert_allclose(case.meta["affine"], AFFINE)
    assert case.meta["pixel_spacing"] == pytest.approx([0.9, 0.8])  # rows run along y, columns along x
    assert case.meta["orientation"] == "RAS" and case.meta["plane"] == "axial"
    assert case.meta["units"] == "a.u." and case.meta["slice"] == 2 and case.meta["loader"] == "nifti"


def test_axial_ras_slice_is_head_up_radiological(tmp_path):
    data = np.zeros((6, 5, 3), np.float32)
    data[:, -1, :] = 1.0  # most anterior row (y max)
    data[-1, :, :] += 2.0  # patient's right-most column (x max)
    path = tmp_path / "ras.nii"
    nib.save(nib.Nifti1Image(data, AFFINE), path)
    image = NiftiLoader().load(str(path), 1).image[0]
    assert torch.all(image[0, 1:] == 1.0) and torch.all(image[1:, 1:] == 0.0)  # anterior at the top
    assert torch.all(image[1:, 0] == 2.0)  # patient's right on the image's left


def flip_axis(data, affine, axis):
    """The same volume stored with ``axis`` reversed."""
    n = data.shape[axis]
    flip = np.eye(4)
    flip[axis, axis] = -1.0
    flip[axis, 3] = n - 1
    return np.flip(data, axis).copy(), affine @ flip


def swap_axes(data, affine, a, b):
    """The same volume stored with axes ``a`` and ``b`` exchanged."""
    perm = np.eye(4)
    perm[:, [a, b]] = perm[:, [b, a]]
    return np.swapaxes(data, a, b).copy(), affine @ perm


@pytest.mark.parametrize("storage", ["ras", "flip0", "flip1", "swap01", "pls", "slice-first"])
def test_display_does_not_depend_on_storage(tmp_path, volume, storage):
    """The same anatomy stored in different array layouts gives the same displayed slice."""
    _, data = volume
    arr, aff, axis = data, AFFINE, 2
    if storage == "flip0":
        arr, aff = flip_axis(data, AFFINE, 0)
    elif storage == "flip1":
        arr, aff = flip_axis(data, AFFINE, 1)
    elif storage == "swap01":
        arr, aff = swap_axes(data, AFFINE, 0, 1)
    elif storage == "pls":  # the bundled samples' layout: data[row, column, slice]
        arr, aff = swap_axes(*flip_axis(*flip_axis(data, AFFINE, 0), 1), 0, 1)
        np.testing.assert_array_equal(arr[:, :, 2], display_axial_ras(data[:, :, 2]))
    elif storage == "slice-first":
        arr, aff = swap_axes(data, AFFINE, 0, 2)
        axis = 0
    path = tmp_path / f"{storage}.nii.gz"
    nib.save(nib.Nifti1Image(arr, aff), path)
    case = NiftiLoader(slice_axis=axis).load(str(path), 2)
    np.testing.assert_array_equal(case.image[0].numpy(), display_axial_ras(data[:, :, 2]))
    assert case.meta["pixel_spacing"] == pytest.approx([0.9, 0.8])
    reference = NiftiLoader().load(str(volume[0]), 2)
    np.testing.assert_allclose(case.meta["slice_affine"], reference.meta["slice_affine"], atol=1e-9)


def test_coronal_and_sagittal(volume):
    path, data = volume
    coronal = NiftiLoader(slice_axis=1).load(str(path), 3)  # s[x, z]: rows S -> I, columns R -> L
    assert coronal.meta["plane"] == "coronal"
    np.testing.assert_array_equal(coronal.image[0].numpy(), data[:, 3, :][::-1, ::-1].T)
    sagittal = NiftiLoader(slice_axis=0).load(str(path), 4)  # s[y, z]: rows S -> I, columns A -> P
    assert sagittal.meta["plane"] == "sagittal"
    np.testing.assert_array_equal(sagittal.image[0].numpy(), data[4][::-1, ::-1].T)
    assert sagittal.meta["pixel_spacing"] == pytest.approx([2.5, 0.9])


def test_4d_volume_index(tmp_path):
    data = np.random.default_rng(1).random((4, 4, 3, 2)).astype(np.float32)
    path = tmp_path / "fmri.nii.gz"
    nib.save(nib.Nifti1Image(data, np.eye(4)), path)
    case = NiftiLoader(volume_index=1).load(str(path), 0)
    np.testing.assert_array_equal(case.image[0].numpy(), display_axial_ras(data[:, :, 0, 1]))
    with pytest.raises(ConfigError, match=r"volume_index.*valid: 0\.\.1"):
        NiftiLoader(volume_index=2).n_slices(str(path))
    assert NiftiLoader(volume_index=2).check(str(path)) == []  # check() only looks for the file


def test_2d_and_complex(tmp_path):
    path = tmp_path / "flat.nii"
    img = (np.arange(12).reshape(3, 4) + 1j).astype(np.complex64)
    nib.save(nib.Nifti1Image(img, np.eye(4)), path)
    loader = NiftiLoader(slice_axis=0)
    assert loader.n_slices(str(path)) == 1
    case = loader.load(str(path), 0)
    assert case.image.dtype == torch.complex64
    np.testing.assert_array_equal(case.image[0].numpy(), display_axial_ras(img))


def test_write_slice_back_onto_source_grid(volume, tmp_path):
    path, data = volume
    world = lambda aff, ijk: (np.asarray(aff) @ [*ijk, 1])[:3]  # noqa: E731
    for axis, index in ((2, 1), (0, 4), (1, 2)):
        case = NiftiLoader(slice_axis=axis).load(str(path), index)
        out = tmp_path / f"recon_{axis}.nii.gz"
        write_nifti(out, case.image[0] * 2, case.meta["slice_affine"])
        written = nib.load(out)
        stored = np.asarray(written.dataobj)[..., 0]
        np.testing.assert_array_equal(stored, 2 * case.image[0].numpy())  # data[row, column, n]
        # each written voxel lies where the source voxel with (half) its value lies
        voxels = [ijk for ijk in np.ndindex(*data.shape) if ijk[axis] == index]
        points = np.array([world(AFFINE, ijk) for ijk in voxels])
        for r, c in np.ndindex(*stored.shape):
            dist = np.linalg.norm(points - world(written.affine, (r, c, 0)), axis=1)
            assert dist.min() < 1e-4  # NIfTI stores the affine in float32
            assert 2 * data[voxels[int(dist.argmin())]] == pytest.approx(stored[r, c])
        # and reading the written file gives the image back, as displayed
        again = NiftiLoader().load(str(out), 0)
        torch.testing.assert_close(again.image, case.image * 2)


def test_write_without_affine_reads_back(tmp_path):
    stack = np.random.default_rng(4).random((3, 5, 7)).astype(np.float32)
    write_nifti(tmp_path / "s.nii", stack)
    loader = NiftiLoader()
    assert loader.n_slices(str(tmp_path / "s.nii")) == 3
    for k in range(3):
        np.testing.assert_array_equal(loader.load(str(tmp_path / "s.nii"), k).image[0].numpy(), stack[k])


def test_corrupt_files(tmp_path):
    junk = tmp_path / "junk.nii.gz"
    junk.write_bytes(np.random.default_rng(0).bytes(1000))
    with pytest.raises(DataError, match=r"junk\.nii\.gz.*not a readable NIfTI") as info:
        NiftiLoader().n_slices(str(junk))
    assert "\n" not in str(info.value)
    assert NiftiLoader().check(str(tmp_path / "missing.nii"))[0].startswith("data.source: file not found")
    nan = tmp_path / "nan.nii"
    data = np.ones((3, 3, 2), np.float32)
    data[1, 1, 1] = np.nan
    nib.save(nib.Nifti1Image(data, np.eye(4)), nan)
    NiftiLoader().load(str(nan), 0)
    with pytest.raises(DataError, match=r"nan\.nii: slice 1 holds 1 NaN"):
        NiftiLoader().load(str(nan), 1)


def test_bad_parameters():
    with pytest.raises(ConfigError, match="slice_axis"):
        NiftiLoader(slice_axis=3)
    with pytest.raises(ConfigError, match="volume_index"):
        NiftiLoader(volume_index=-1)
