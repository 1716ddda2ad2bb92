"""fastMRI HDF5 loader: single- and multi-coil round trips, targets, corrupt files."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch

from genrecon.errors import ConfigError, DataError
from genrecon.io.fastmri import FastMRILoader, centered_ifft2
from genrecon.registry import LOADERS

HEADER = "<?xml version='1.0'?><ismrmrdHeader><encoding/></ismrmrdHeader>"


def fft2c(x: np.ndarray) -> np.ndarray:
    axes = (-2, -1)
    return np.fft.fftshift(np.fft.fft2(np.fft.ifftshift(x, axes=axes), axes=axes, norm="ortho"), axes=axes)


def crop(x: np.ndarray, h: int, w: int) -> np.ndarray:
    H, W = x.shape[-2:]
    return x[..., (H - h) // 2 : (H - h) // 2 + h, (W - w) // 2 : (W - w) // 2 + w]


def random_complex(rng: np.random.Generator, shape) -> np.ndarray:
    return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(np.complex64)


@pytest.fixture
def singlecoil(tmp_path):
    rng = np.random.default_rng(0)
    images = random_complex(rng, (3, 24, 20))
    kspace = fft2c(images).astype(np.complex64)
    target = np.abs(crop(images, 16, 16)).astype(np.float32)
    path = tmp_path / "file_sc.h5"
    with h5py.File(path, "w") as f:
        f["kspace"] = kspace
        f["reconstruction_esc"] = target
        f["ismrmrd_header"] = HEADER.encode()
        f.attrs.update(acquisition="CORPD_FBK", max=float(target.max()), norm=1.5, patient_id="abc")
    return path, images, kspace, target


@pytest.fixture
def multicoil(tmp_path):
    rng = np.random.default_rng(1)
    images = random_complex(rng, (2, 24, 20))
    sens = random_complex(rng, (4, 24, 20)) * 0.5
    coils = images[:, None] * sens[None]  # (slices, coils, H, W)
    kspace = fft2c(coils).astype(np.complex64)
    rss = np.sqrt((np.abs(coils) ** 2).sum(axis=1)).astype(np.float32)
    target = crop(rss, 16, 16)
    path = tmp_path / "file_mc.h5"
    with h5py.File(path, "w") as f:
        f["kspace"] = kspace
        f["reconstruction_rss"] = target
        f.attrs.update(acquisition="AXT2", max=float(target.max()), norm=2.0, patient_id="xyz")
    return path, rss, kspace, target


def test_registered_and_accepts():
    assert LOADERS.get("fastmri") is FastMRILoader
    assert FastMRILoader.accepts("/data/file1000.h5")
    assert not FastMRILoader.accepts("brain.nii.gz")


def test_singlecoil_target_and_kspace(singlecoil):
    path, images, kspace, target = singlecoil
    loader = FastMRILoader()
    assert loader.n_slices(str(path)) == 3
    case = loader.load(str(path), 1)
    assert case.key == "file_sc/1"
    assert case.image.shape == (1, 16, 16) and case.image.dtype == torch.float32
    torch.testing.assert_close(case.image[0], torch.from_numpy(target[1]))
    assert case.kspace.shape == (1, 24, 20) and case.kspace.dtype == torch.complex64
    torch.testing.assert_close(case.kspace[0], torch.from_numpy(kspace[1]))
    meta = case.meta
    assert meta["source"] == str(path) and meta["slice"] == 1 and meta["loader"] == "fastmri"
    assert meta["acquisition"] == "CORPD_FBK" and meta["patient_id"] == "abc"
    assert meta["max"] == pytest.approx(float(target.max())) and meta["norm"] == 1.5
    assert meta["ismrmrd_header"] == HEADER
    assert meta["target"] == "reconstruction_esc" and meta["multicoil"] is False


def test_singlecoil_kspace_target_is_complex_image(singlecoil):
    path, images, _, _ = singlecoil
    case = FastMRILoader(target="kspace").load(str(path), 2)
    assert case.image.dtype == torch.complex64 and case.image.shape == (1, 24, 20)
    torch.testing.assert_close(case.image[0], torch.from_numpy(images[2]), atol=1e-5, rtol=1e-5)


def test_multicoil_rss_target_and_kspace_rss(multicoil):
    path, rss, kspace, target = multicoil
    case = FastMRILoader().load(str(path), 0)  # auto -> reconstruction_rss
    assert case.meta["target"] == "reconstruction_rss" and case.meta["multicoil"] is True
    torch.testing.assert_close(case.image[0], torch.from_numpy(target[0]))
    assert case.kspace.shape == (4, 24, 20)
    torch.testing.assert_close(case.kspace, torch.from_numpy(kspace[0]))
    full = FastMRILoader(target="kspace").load(str(path), 1)
    assert full.image.dtype == torch.float32 and full.image.shape == (1, 24, 20)
    torch.testing.assert_close(full.image[0], torch.from_numpy(rss[1]), atol=1e-5, rtol=1e-5)


def test_centered_ifft2_inverts_fft2c():
    x = random_complex(np.random.default_rng(2), (5, 7))
    np.testing.assert_allclose(centered_ifft2(fft2c(x)), x, atol=1e-5)


def test_missing_target_dataset(singlecoil):
    path = singlecoil[0]
    with pytest.raises(DataError, match=r"file_sc\.h5.*reconstruction_rss"):
        FastMRILoader(target="reconstruction_rss").load(str(path), 0)


def test_not_fastmri_file(tmp_path):
    path = tmp_path / "other.h5"
    with h5py.File(path, "w") as f:
        f["images"] = np.zeros((2, 4, 4))
    with pytest.raises(DataError, match=r"other\.h5.*not a fastMRI file.*images"):
        FastMRILoader().n_slices(str(path))


def test_truncated_file(singlecoil, tmp_path):
    data = singlecoil[0].read_bytes()
    bad = tmp_path / "broken.h5"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=r"broken\.h5") as info:
        loader = FastMRILoader()
        loader.n_slices(str(bad))
        loader.load(str(bad), 0)
    assert "\n" not in str(info.value)


def test_random_bytes_and_missing_file(tmp_path):
    junk = tmp_path / "junk.h5"
    junk.write_bytes(np.random.default_rng(0).bytes(2048))
    with pytest.raises(DataError, match=r"junk\.h5.*HDF5"):
        FastMRILoader().n_slices(str(junk))
    with pytest.raises(DataError, match="not found"):
        FastMRILoader().n_slices(str(tmp_path / "none.h5"))


def test_nan_kspace_and_bad_index(tmp_path):
    path = tmp_path / "nan.h5"
    k = np.ones((2, 8, 8), np.complex64)
    k[1, 3, 3] = np.nan
    with h5py.File(path, "w") as f:
        f["kspace"] = k
    loader = FastMRILoader()
    assert loader.load(str(path), 0).meta["target"] == "kspace"  # no reference image: auto falls back
    with pytest.raises(DataError, match=r"nan\.h5.*NaN"):
        loader.load(str(path), 1)
    with pytest.raises(DataError, match=r"slices 0\.\.1"):
        loader.load(str(path), 5)


def test_bad_target_parameter():
    with pytest.raises(ConfigError, match="reconstruction_esc"):
        FastMRILoader(target="esc")
