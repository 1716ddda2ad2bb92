"""select_slices, fit_size, normalize, volume_stat and the loaders' shared helpers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from genrecon.errors import ConfigError, DataError
from genrecon.io.npy import NpyLoader
from genrecon.io.transforms import (
    as_image,
    fit_size,
    fit_size_affine,
    normalize,
    select_slices,
    source_stem,
    volume_stat,
)


# -- select_slices ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "n, spec, expected",
    [
        (5, "all", [0, 1, 2, 3, 4]),
        (5, "middle", [2]),
        (4, "middle", [2]),
        (1, "middle", [0]),
        (5, 3, [3]),
        (5, -1, [4]),
        (5, "-2", [3]),
        (5, [4, 0, -2], [4, 0, 3]),
        (10, "2:8:3", [2, 5]),
        (10, "-3:", [7, 8, 9]),
        (4, "::-1", [3, 2, 1, 0]),
        (5, ":2", [0, 1]),
        (5, "1:100", [1, 2, 3, 4]),  # Python slice semantics: stop is clipped
        (5, " 1 : 3 ", [1, 2]),
    ],
)
def test_select_slices(n, spec, expected):
    assert select_slices(n, spec) == expected


@pytest.mark.parametrize(
    "n, spec, message",
    [
        (10, 10, r"slice 10 is out of range with 10 slices; valid indices are 0\.\.9 \(or -10\.\.-1\)"),
        (10, -11, r"slice -11 is out of range"),
        (3, [0, 5], r"data\.slices\.1: slice 5 is out of range .*0\.\.2"),
        (3, [1, 1], r"more than once: \[1\]"),
        (3, [], r"empty"),
        (3, "5:9", r"'5:9' selects no slices .*0\.\.2"),
        (3, "::0", r"step .* must not be 0"),
        (3, "first", r"expected 'all', 'middle'"),
        (3, True, r"expected 'all'"),
        (3, 1.5, r"expected 'all'"),
        (3, [0, "1"], r"data\.slices\.1: expected an integer"),
        (0, "all", r"has no slices"),
    ],
)
def test_select_slices_errors(n, spec, message):
    with pytest.raises(ConfigError, match=message):
        select_slices(n, spec)


def test_select_slices_names_the_source():
    with pytest.raises(ConfigError, match=r"^data\.slices: slice 7 is out of range of a\.nii with 3 slices"):
        select_slices(3, 7, source="a.nii")


# -- fit_size -----------------------------------------------------------------------------------------
def test_crop_pad_centre_conventions():
    x = torch.arange(1, 31, dtype=torch.float32).reshape(1, 5, 6)
    crop = fit_size(x, (3, 4), "crop_pad")
    torch.testing.assert_close(crop, x[:, 1:4, 1:5])
    pad = fit_size(x, (8, 9), "crop_pad")
    assert pad.shape == (1, 8, 9)
    torch.testing.assert_close(pad[:, 1:6, 1:7], x)
    assert float(pad.sum()) == float(x.sum())
    mixed = fit_size(x, (3, 10), "crop_pad")  # crop rows, pad columns
    torch.testing.assert_close(mixed[:, :, 2:8], x[:, 1:4])
    assert fit_size(x, None, "crop_pad") is x
    back = fit_size(fit_size(x, 12, "crop_pad"), (5, 6), "crop_pad")
    torch.testing.assert_close(back, x)  # pad then crop returns the original


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.complex64])
def test_fit_size_keeps_dtype(dtype):
    x = torch.randn(1, 9, 7, dtype=dtype, generator=torch.Generator().manual_seed(0))
    for mode in ("crop_pad", "resize"):
        y = fit_size(x, 6, mode)
        assert y.shape == (1, 6, 6) and y.dtype == dtype


def test_resize_constant_antialias_and_complex():
    const = torch.full((1, 16, 12), 3.0)
    torch.testing.assert_close(fit_size(const, (5, 7), "resize"), torch.full((1, 5, 7), 3.0))
    checker = ((torch.arange(32)[:, None] + torch.arange(32)[None]) % 2).float()[None]
    small = fit_size(checker, 8, "resize")
    assert float((small - 0.5).abs().max()) < 0.05  # anti-aliased: the pattern averages to grey
    z = torch.complex(torch.rand(1, 10, 10, generator=torch.Generator().manual_seed(1)), checker[:, :10, :10])
    out = fit_size(z, 5, "resize")
    torch.testing.assert_close(out.real, fit_size(z.real.contiguous(), 5, "resize"))
    torch.testing.assert_close(out.imag, fit_size(z.imag.contiguous(), 5, "resize"))


def test_fit_size_bad_arguments():
    x = torch.zeros(1, 4, 4)
    with pytest.raises(ConfigError, match="resize"):
        fit_size(x, 4 + 1, "nearest")
    with pytest.raises(ConfigError, match="positive"):
        fit_size(x, 0, "crop_pad")


# -- normalize ----------------------------------------------------------------------------------------
def test_normalize_modes_and_undo():
    x = torch.linspace(0, 4, 1001).reshape(1, 7, 143)
    y, info = normalize(x, "max")
    assert info == {"mode": "max", "scale": pytest.approx(4.0)} and float(y.max()) == pytest.approx(1.0)
    torch.testing.assert_close(y * info["scale"], x)
    y, info = normalize(x, "percentile")
    assert info["scale"] == pytest.approx(float(np.percentile(x.numpy(), 99.5)))
    assert info["percentile"] == 99.5 and float(y.max()) > 1.0
    y, info = normalize(x, "volume_max", 8.0)
    assert info["scale"] == 8.0 and float(y.max()) == pytest.approx(0.5)
    y, info = normalize(x, "none")
    assert y is x and info["scale"] == 1.0
    with pytest.raises(ConfigError, match="volume_stat"):
        normalize(x, "volume_max")
    with pytest.raises(ConfigError, match="percentile"):
        normalize(x, "percentile", percentile=0.0)


def test_normalize_complex_and_empty():
    z = torch.tensor([[[3 + 4j, 0.0 + 1j]]], dtype=torch.complex64)
    y, info = normalize(z, "max")
    assert info["scale"] == pytest.approx(5.0)
    torch.testing.assert_close(torch.angle(y), torch.angle(z))
    empty, info = normalize(torch.zeros(1, 3, 3), "max")
    assert info["scale"] == 1.0 and torch.equal(empty, torch.zeros(1, 3, 3))


def test_volume_stat_over_selected_slices(tmp_path):
    stack = np.zeros((4, 6, 6), np.float32)
    stack[0, 3, 3] = 2.0
    stack[1, 0, 0] = 9.0  # on the border: cropped away by fit_size(4)
    stack[2, 2, 2] = -5.0  # magnitude counts
    stack[3, 3, 3] = 100.0  # not selected
    np.save(tmp_path / "v.npy", stack)
    loader, src = NpyLoader(), str(tmp_path / "v.npy")
    assert volume_stat(loader, src, [0, 1, 2]) == 9.0
    assert volume_stat(loader, src, [0, 1, 2], transform=lambda im: fit_size(im, 4, "crop_pad")) == 5.0
    pct = volume_stat(loader, src, [0, 1], "percentile", percentile=100.0)
    assert pct == 9.0
    with pytest.raises(ConfigError, match="no slices"):
        volume_stat(loader, src, [])


# -- loader helpers ----------------------------------------------------------------------------------
def test_source_stem_and_as_image():
    assert source_stem("/d/brain.nii.gz") == "brain" and source_stem("x/file1000.h5") == "file1000"
    assert source_stem("phantom:ellipses") == "ellipses" and source_stem("/data/series/") == "series"
    img = as_image(np.ones((3, 4), np.int16), "f")
    assert img.shape == (1, 3, 4) and img.dtype == torch.float32
    assert as_image(np.ones((1, 3, 4), np.complex128), "f").dtype == torch.complex64
    with pytest.raises(DataError, match="f: slice 2 should be a 2-D image"):
        as_image(np.ones((2, 3, 4)), "f", "slice 2")
    with pytest.raises(DataError, match="NaN"):
        as_image(np.array([[np.nan, 1.0]]), "f")


@pytest.mark.parametrize("size", [(3, 4), (8, 9), (3, 10)])
def test_fit_size_affine_keeps_pixels_in_place(size):
    x = torch.arange(1, 31, dtype=torch.float32).reshape(1, 5, 6)
    affine = np.array([[0.0, -0.7, 0, 5.0], [-0.6, 0.0, 0, 2.0], [0, 0, 3.0, 1.0], [0, 0, 0, 1]])
    y = fit_size(x, size, "crop_pad")
    new = np.array(fit_size_affine(affine, x.shape, size, "crop_pad"))
    world_old = {tuple(np.round(affine @ [r, c, 0, 1], 6)): float(x[0, r, c]) for r, c in np.ndindex(5, 6)}
    for r, c in np.ndindex(*y.shape[-2:]):
        key = tuple(np.round(new @ [r, c, 0, 1], 6))
        assert float(y[0, r, c]) == world_old.get(key, 0.0)  # same value at the same place (padding: 0)


def test_fit_size_affine_resize_keeps_field_of_view():
    affine = np.diag([1.0, 1.0, 2.0, 1.0])
    new = np.array(fit_size_affine(affine, (1, 8, 8), 4, "resize"))
    np.testing.assert_allclose(np.diag(new)[:2], [2.0, 2.0])  # pixels twice as large
    # the outer pixel edges coincide: old edge -0.5, new edge -0.5 in new pixels
    np.testing.assert_allclose(new @ [-0.5, -0.5, 0, 1], affine @ [-0.5, -0.5, 0, 1])
    np.testing.assert_allclose(new @ [3.5, 3.5, 0, 1], affine @ [7.5, 7.5, 0, 1])
    assert fit_size_affine(None, (1, 8, 8), 4) is None
