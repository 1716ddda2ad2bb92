"""PNG / TIFF and .npy loaders."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
import torch
from PIL import Image

from genrecon.errors import DataError
from genrecon.io.image import ImageLoader
from genrecon.io.npy import NpyLoader
from genrecon.registry import LOADERS


def test_registered():
    assert LOADERS.get("image") is ImageLoader and LOADERS.get("npy") is NpyLoader
    assert ImageLoader.accepts("a.PNG") and ImageLoader.accepts("b.tiff") and NpyLoader.accepts("c.npy")


def test_png_gray_8_and_16_bit(tmp_path):
    rng = np.random.default_rng(0)
    for dtype, top in ((np.uint8, 255), (np.uint16, 65535)):
        pixels = rng.integers(0, top, size=(7, 9)).astype(dtype)
        path = tmp_path / f"g{pixels.itemsize}.png"
        Image.fromarray(pixels).save(path)
        loader = ImageLoader()
        assert loader.n_slices(str(path)) == 1
        case = loader.load(str(path), 0)
        assert case.key == f"g{pixels.itemsize}/0"
        assert case.image.shape == (1, 7, 9) and case.image.dtype == torch.float32
        np.testing.assert_array_equal(case.image[0].numpy(), pixels.astype(np.float32))


def test_png_rgb_to_luminance(tmp_path):
    rgb = np.random.default_rng(1).integers(0, 255, size=(5, 6, 3)).astype(np.uint8)
    path = tmp_path / "colour.png"
    Image.fromarray(rgb, mode="RGB").save(path)
    image = ImageLoader().load(str(path), 0).image[0].numpy()
    expected = 0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2]
    np.testing.assert_allclose(image, expected, rtol=1e-6)


def test_multipage_tiff(tmp_path):
    stack = np.random.default_rng(2).random((4, 6, 5)).astype(np.float32)
    path = tmp_path / "stack.tif"
    tifffile.imwrite(path, stack, photometric="minisblack")
    loader = ImageLoader()
    assert loader.n_slices(str(path)) == 4
    for k in (0, 3):
        np.testing.assert_array_equal(loader.load(str(path), k).image[0].numpy(), stack[k])
    with pytest.raises(DataError, match=r"slices 0\.\.3"):
        loader.load(str(path), 4)


def test_corrupt_images(tmp_path):
    for name in ("bad.png", "bad.tif"):
        path = tmp_path / name
        path.write_bytes(np.random.default_rng(0).bytes(300))
        with pytest.raises(DataError, match=name.replace(".", r"\.")):
            loader = ImageLoader()
            loader.load(str(path), 0)


def test_npy_stack_single_complex(tmp_path):
    rng = np.random.default_rng(3)
    stack = rng.random((3, 4, 5))  # float64 -> float32
    np.save(tmp_path / "stack.npy", stack)
    loader = NpyLoader()
    assert loader.n_slices(str(tmp_path / "stack.npy")) == 3
    case = loader.load(str(tmp_path / "stack.npy"), 2)
    assert case.key == "stack/2" and case.image.dtype == torch.float32 and case.image.shape == (1, 4, 5)
    np.testing.assert_allclose(case.image[0].numpy(), stack[2], rtol=1e-6)
    single = (rng.random((4, 4)) + 1j * rng.random((4, 4))).astype(np.complex128)
    np.save(tmp_path / "single.npy", single)
    assert loader.n_slices(str(tmp_path / "single.npy")) == 1
    case = loader.load(str(tmp_path / "single.npy"), 0)
    assert case.image.dtype == torch.complex64
    np.testing.assert_allclose(case.image[0].numpy(), single, rtol=1e-6)
    case.image.add_(1)  # a copy, not a view of the read-only memory map
    np.testing.assert_allclose(np.load(tmp_path / "single.npy"), single)


def test_npy_errors(tmp_path):
    np.save(tmp_path / "objects.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(DataError, match=r"objects\.npy"):
        NpyLoader().n_slices(str(tmp_path / "objects.npy"))
    np.save(tmp_path / "vector.npy", np.zeros(5))
    with pytest.raises(DataError, match=r"vector\.npy.*got shape \(5,\)"):
        NpyLoader().n_slices(str(tmp_path / "vector.npy"))
    bad = np.zeros((2, 3, 3))
    bad[1, 0, 0] = np.inf
    np.save(tmp_path / "inf.npy", bad)
    NpyLoader().load(str(tmp_path / "inf.npy"), 0)
    with pytest.raises(DataError, match=r"inf\.npy: slice 1 holds 1 NaN or infinite"):
        NpyLoader().load(str(tmp_path / "inf.npy"), 1)
    full = (tmp_path / "inf.npy").read_bytes()
    (tmp_path / "cut.npy").write_bytes(full[: len(full) - 40])
    with pytest.raises(DataError, match=r"cut\.npy"):
        NpyLoader().n_slices(str(tmp_path / "cut.npy"))
