"""atomic_write and the writers: round trips, windows, nothing left behind on failure."""

from __future__ import annotations

import json
import os

import h5py
import nibabel as nib
import numpy as np
import pytest
import torch
from PIL import Image

from genrecon.errors import ShapeError
from genrecon.io.atomic import atomic_write, temp_path
from genrecon.io.writers import DISPLAY_AFFINE, write_h5, write_json, write_nifti, write_npy, write_png, write_text


# -- atomic_write ---------------------------------------------------------------------------------------
def test_atomic_write_replaces(tmp_path):
    target = tmp_path / "sub" / "out.txt"
    with atomic_write(target) as tmp:
        assert tmp == tmp_path / "sub" / f".out.txt.tmp-{os.getpid()}" == temp_path(target)
        tmp.write_text("first")
        assert not target.exists()  # nothing visible before the body finishes
    assert target.read_text() == "first"
    with atomic_write(target) as tmp:
        tmp.write_text("second")
        assert target.read_text() == "first"
    assert target.read_text() == "second"
    assert sorted(p.name for p in target.parent.iterdir()) == ["out.txt"]


@pytest.mark.parametrize("exc", [ValueError("boom"), KeyboardInterrupt(), SystemExit(3)])
def test_atomic_write_cleans_up_on_any_exception(tmp_path, exc):
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    with pytest.raises(type(exc)):
        with atomic_write(target) as tmp:
            tmp.write_bytes(b"half")
            raise exc
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]
    with pytest.raises(RuntimeError):  # also when the new file never existed
        with atomic_write(tmp_path / "new.bin") as tmp:
            tmp.write_bytes(b"x")
            raise RuntimeError
    assert not (tmp_path / "new.bin").exists()


def test_atomic_write_body_must_create_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="did not create"):
        with atomic_write(tmp_path / "x.txt"):
            pass
    assert list(tmp_path.iterdir()) == []


def test_writer_failure_leaves_nothing(tmp_path):
    with pytest.raises(ShapeError):
        write_nifti(tmp_path / "bad.nii.gz", np.zeros((2, 3, 4, 5)))
    with pytest.raises(TypeError):
        write_json(tmp_path / "bad.json", {"x": object()})
    with pytest.raises(TypeError):  # fails inside the atomic block: h5py cannot store an object
        write_h5(tmp_path / "bad.h5", {"a": np.array([object()])}, {})
    assert list(tmp_path.iterdir()) == []


# -- writers ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["vol.nii", "vol.nii.gz"])
def test_write_nifti_layout_and_affine(tmp_path, name):
    stack = torch.randn(3, 4, 5, generator=torch.Generator().manual_seed(0))
    affine = np.diag([0.5, 0.6, 2.0, 1.0])
    path = write_nifti(tmp_path / name, stack, affine)
    img = nib.load(path)
    assert img.shape == (4, 5, 3) and img.get_data_dtype() == np.float32
    np.testing.assert_array_equal(np.asarray(img.dataobj), stack.numpy().transpose(1, 2, 0))
    np.testing.assert_allclose(img.affine, affine)
    single = write_nifti(tmp_path / ("one_" + name), stack[0].to(torch.complex64))
    img = nib.load(single)
    assert img.shape == (4, 5, 1) and img.get_data_dtype() == np.complex64
    np.testing.assert_allclose(img.affine, DISPLAY_AFFINE)
    assert "".join(nib.aff2axcodes(img.affine)) == "PLS"


def test_write_npy_and_h5_round_trip(tmp_path):
    arr = np.arange(12, dtype=np.complex64).reshape(3, 4)
    path = write_npy(tmp_path / "a.npy", torch.from_numpy(arr))
    np.testing.assert_array_equal(np.load(path), arr)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.npy"]  # no stray ".npy" suffix files
    path = write_h5(
        tmp_path / "d.h5",
        {"images": arr.real, "group/kspace": arr},
        {"acquisition": "AXT2", "max": np.float32(2.5), "sizes": [1, 2], "config": {"a": 1}, "none": None},
    )
    with h5py.File(path, "r") as f:
        np.testing.assert_array_equal(f["images"][()], arr.real)
        np.testing.assert_array_equal(f["group/kspace"][()], arr)
        assert f.attrs["acquisition"] == "AXT2" and f.attrs["max"] == pytest.approx(2.5)
        assert list(f.attrs["sizes"]) == [1, 2] and json.loads(f.attrs["config"]) == {"a": 1}
        assert f.attrs["none"] == "null"


def test_write_png_window(tmp_path):
    image = torch.tensor([[[-1.0, 0.0, 0.5, 1.0, 2.0, float("nan")]]])
    path = write_png(tmp_path / "w.png", image, vmin=0.0, vmax=1.0)
    pixels = np.asarray(Image.open(path))
    assert Image.open(path).mode == "L"
    np.testing.assert_array_equal(pixels, [[0, 0, 128, 255, 255, 0]])
    auto = np.asarray(Image.open(write_png(tmp_path / "a.png", np.array([[2.0, 4.0]]))))
    np.testing.assert_array_equal(auto, [[0, 255]])
    mag = np.asarray(Image.open(write_png(tmp_path / "c.png", np.array([[3 + 4j, 0]]), vmin=0, vmax=5)))
    np.testing.assert_array_equal(mag, [[255, 0]])
    with pytest.raises(ShapeError, match="write_png"):
        write_png(tmp_path / "x.png", np.zeros((2, 3, 3)))


def test_write_json_and_text(tmp_path):
    obj = {"psnr": np.float32(31.5), "n": np.int64(3), "t": torch.tensor([1.0, 2.0]), "p": tmp_path, "s": {2, 1}}
    path = write_json(tmp_path / "m.json", obj)
    assert json.loads(path.read_text()) == {"psnr": 31.5, "n": 3, "t": [1.0, 2.0], "p": str(tmp_path), "s": [1, 2]}
    assert write_text(tmp_path / "r.md", "héllo\n").read_text(encoding="utf-8") == "héllo\n"
