"""Tests of genrecon.data_prep: real-scan preparation, on synthetic volumes (no network) and the bundled samples."""

from __future__ import annotations

import io
import json
import lzma
import plistlib
import subprocess
import tarfile
import zipfile
from importlib import resources
from pathlib import Path

import h5py
import nibabel as nib
import numpy as np
import pytest

from genrecon import data_prep as P
from genrecon.data_prep import fetching
from genrecon.errors import ConfigError, DataError

# --------------------------------------------------------------------------------------------------
# synthetic inputs
# --------------------------------------------------------------------------------------------------


def _ellipsoid(shape, centre, radii):
    grids = np.meshgrid(*[np.arange(n, dtype=np.float32) for n in shape], indexing="ij")
    return sum(((g - c) / r) ** 2 for g, c, r in zip(grids, centre, radii)) <= 1.0


def _t1_volume():
    """(56, 48, 44) uint8-like T1 'head' in MNI-like RAS mm: x -28..27, y -30..17, z 0..43."""
    shape = (56, 48, 44)
    vol = np.zeros(shape, np.float32)
    vol[_ellipsoid(shape, (27.5, 23.5, 21.5), (24, 20, 18))] = 100.0
    vol[_ellipsoid(shape, (27.5, 23.5, 23.0), (3, 8, 5))] = 30.0  # "ventricles"
    vol[34:38, 33:37, 20:25] = 60.0  # marker: patient's right (+x), anterior (+y); below p99.5, not clipped
    affine = np.diag([1.0, 1.0, 1.0, 1.0])
    affine[:3, 3] = (-28.0, -30.0, 0.0)
    return vol, affine


@pytest.fixture()
def t1_nifti(tmp_path):
    vol, affine = _t1_volume()
    path = tmp_path / "t1.nii.gz"
    nib.save(nib.Nifti1Image(vol.astype(np.uint8), affine), str(path))
    return path


def _ct_matrix():
    """Fake InVesalius matrix (Z=60, R=64, C=64) int16 HU: skull ring, brain, air; marker anterior."""
    shape = (60, 64, 64)
    m = np.full(shape, -1024, np.int16)
    outer = _ellipsoid(shape, (29.5, 31.5, 31.5), (27, 26, 22))
    inner = _ellipsoid(shape, (29.5, 31.5, 31.5), (25, 23, 19))
    m[outer] = 1200
    m[inner] = 35
    m[20:40, 44:48, 16:22] = 400  # rows increase anterior in InVesalius storage: marker anterior, one side
    return m


def _write_inv3(path: Path, matrix: np.ndarray, spacing=(1.0, 1.0, 1.5)) -> Path:
    main = {"matrix": {"dtype": "int16", "filename": "matrix.dat", "shape": list(matrix.shape)},
            "modality": "CT", "spacing": list(spacing), "name": "fake"}
    with tarfile.open(path, "w:gz") as tar:
        for name, blob in (("tmpx/main.plist", plistlib.dumps(main)), ("tmpx/matrix.dat", matrix.tobytes())):
            info = tarfile.TarInfo(name)
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    return path


@pytest.fixture()
def fake_inv3(tmp_path):
    return _write_inv3(tmp_path / "Fake.inv3", _ct_matrix())


def _source(name, path):
    return P.Source(name, Path(path), "test", "0", path.name, "test licence", "notice", "synthetic", "none")


def _read(path):
    with h5py.File(path, "r") as f:
        out = {"attrs": dict(f.attrs)}
        for split in ("train", "val"):
            g = f[split]
            out[split] = {
                "images": g["images"][:], "source": g["source"].asstr()[:],
                "orientation": g["orientation"].asstr()[:], "index": g["index"][:],
                "position": g["position_mm"][:],
            }
    return out


REQUIRED_ATTRS = ("modality", "size", "normalisation", "sources", "licence", "created_by", "split_rule")


def _check_layout(d, size):
    for split in ("train", "val"):
        s = d[split]
        n = len(s["images"])
        assert n > 0
        assert s["images"].shape == (n, size, size) and s["images"].dtype == np.float32
        assert s["images"].min() >= 0.0 and s["images"].max() <= 1.0
        assert len(s["source"]) == len(s["orientation"]) == len(s["index"]) == len(s["position"]) == n
        # near-empty slices are skipped: every kept slice has >= 15 % of pixels above 0.1
        assert ((s["images"] > 0.1).mean(axis=(1, 2)) >= 0.15).all()
    for key in REQUIRED_ATTRS:
        assert key in d["attrs"], key
    assert d["attrs"]["size"] == size
    assert json.loads(d["attrs"]["sources"])
    keys = {split: set(zip(d[split]["source"], d[split]["orientation"], d[split]["index"].tolist()))
            for split in ("train", "val")}
    assert not keys["train"] & keys["val"]  # no slice in both splits
    assert len(keys["train"]) == len(d["train"]["images"])  # and no duplicate within a split


# --------------------------------------------------------------------------------------------------
# readers and geometry
# --------------------------------------------------------------------------------------------------


def test_read_inv3_roundtrip(fake_inv3):
    m, spacing, meta = P.read_inv3(fake_inv3)
    assert m.dtype == np.int16 and m.shape == (60, 64, 64)
    np.testing.assert_array_equal(m, _ct_matrix())
    assert spacing == (1.0, 1.0, 1.5) and meta["modality"] == "CT"


def test_read_inv3_rejects_other_archives(tmp_path):
    path = tmp_path / "bad.inv3"
    with tarfile.open(path, "w:gz") as tar:
        info = tarfile.TarInfo("x/readme.txt")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"hi"))
    with pytest.raises(DataError, match="main.plist"):
        P.read_inv3(path)
    (tmp_path / "junk.inv3").write_bytes(b"not a tar")
    with pytest.raises(DataError, match="not a readable"):
        P.read_inv3(tmp_path / "junk.inv3")


def test_display_convention_radiological():
    """A marker at the patient's right-anterior-superior shows top-left (axial, coronal), top-left (sagittal)."""
    vol = np.zeros((20, 22, 24), np.float32)
    vol[15, 18, 20] = 1.0  # +x right, +y anterior, +z superior (RAS)
    ax = P.display_stack(vol, "axial")[20]
    assert ax.shape == (22, 20)
    r, c = np.argwhere(ax)[0]
    assert r < 11 and c < 10  # anterior at top, patient right on image left
    co = P.display_stack(vol, "coronal")[18]
    r, c = np.argwhere(co)[0]
    assert co.shape == (24, 20) and r < 12 and c < 10  # superior at top, right on left
    sa = P.display_stack(vol, "sagittal")[15]
    r, c = np.argwhere(sa)[0]
    assert sa.shape == (24, 22) and r < 12 and c < 11  # superior at top, anterior on left


def test_resample_isotropic_linear_profile():
    """A linear ramp along z stays exact under linear resampling; the first voxel keeps its place."""
    z = np.arange(10, dtype=np.float32) * 1.5
    vol = np.broadcast_to(z, (3, 4, 10)).copy()
    aff = np.diag([1.0, 1.0, 1.5, 1.0])
    out, aff2 = P.resample_isotropic(vol, aff)
    assert out.shape == (3, 4, 14) and aff2[2, 2] == pytest.approx(1.0)
    np.testing.assert_allclose(out[0, 0], np.arange(14), atol=1e-5)  # value = z in mm


def test_slab_rule_splits_and_gaps():
    rule = P.SlabRule({"axial": (10.0, 20.0)}, units="mm", gap=4.0)
    assert rule.split("axial", 10.0, (0, 100)) == "val"
    assert rule.split("axial", 20.0, (0, 100)) == "val"
    assert rule.split("axial", 7.0, (0, 100)) is None
    assert rule.split("axial", 6.0, (0, 100)) is None  # exactly the gap away: still dropped
    assert rule.split("axial", 5.9, (0, 100)) == "train"
    assert rule.split("axial", 24.5, (0, 100)) == "train"
    frac = P.SlabRule({"stored": (0.5, 0.6)}, units="fraction", gap=1.0)
    assert frac.split("stored", 50.0, (0, 100)) == "val" and frac.split("stored", 40.0, (0, 100)) == "train"
    with pytest.raises(ConfigError):
        P.SlabRule({"axial": (3.0, 1.0)})
    with pytest.raises(ConfigError, match="no slab"):
        rule.split("coronal", 0.0, (0, 1))


# --------------------------------------------------------------------------------------------------
# datasets
# --------------------------------------------------------------------------------------------------


def test_brain_dataset_from_synthetic_nifti(t1_nifti, tmp_path):
    out = tmp_path / "brain.h5"
    counts = P.build_brain_mri_dataset([_source("t1", t1_nifti)], out, size=32)
    d = _read(out)
    assert counts == {"train": len(d["train"]["images"]), "val": len(d["val"]["images"])}
    _check_layout(d, 32)
    assert d["attrs"]["modality"] == "mri"
    stats = json.loads(d["attrs"]["stats"])["t1"]
    assert stats["empty"] > 0  # the empty slices around the head were skipped
    assert set(d["train"]["orientation"]) == set(P.ORIENTATIONS)
    # val slices lie in the world-mm slabs; train slices keep the gap
    for orient, (lo, hi) in P.BRAIN_SLABS.slabs.items():
        v = d["val"]["position"][d["val"]["orientation"] == orient]
        t = d["train"]["position"][d["train"]["orientation"] == orient]
        assert len(v) and ((v >= lo) & (v <= hi)).all()
        assert ((t < lo - 4.0) | (t > hi + 4.0)).all()
    assert d["train"]["images"].max() == pytest.approx(1.0)  # scaled by p99.5 and clipped


def test_ct_dataset_from_fake_inv3(fake_inv3, tmp_path):
    out = tmp_path / "ct.h5"
    P.build_head_ct_dataset([_source("fake", fake_inv3)], out, size=32)
    d = _read(out)
    _check_layout(d, 32)
    a = d["attrs"]
    assert a["modality"] == "ct" and a["hu_offset"] == 1024.0 and a["hu_scale"] == 4095.0
    hu = d["train"]["images"] * a["hu_scale"] - a["hu_offset"]
    assert hu.min() == pytest.approx(-1024.0, abs=1.0)  # air
    assert 1000.0 < hu.max() <= 1200.0 + 1e-3  # skull (resizing averages a little)
    # reformats from the isotropic volume: axial count follows the resampled 1.0 mm z grid
    n_axial = sum(int((d[s]["orientation"] == "axial").sum()) for s in ("train", "val"))
    stats = json.loads(a["stats"])["fake"]
    assert n_axial + stats["gap"] + stats["empty"] >= 88  # 60 slices at 1.5 mm -> 89 at 1.0 mm, 3 orientations
    for orient in P.ORIENTATIONS:
        assert (d["val"]["orientation"] == orient).any()


def test_samples_from_synthetic_sources_are_held_out(t1_nifti, fake_inv3, tmp_path):
    srcs = P.FetchedSources(_source("t1", t1_nifti), _source("t1", t1_nifti), _source("t1", t1_nifti),
                            _source("fake", fake_inv3))
    meta = P.write_samples(srcs, tmp_path / "samples")
    P.build_brain_mri_dataset([srcs.mni152], tmp_path / "b.h5", size=32)
    P.build_head_ct_dataset([srcs.cranium], tmp_path / "c.h5", size=32)
    for key, h5 in (("brain-mri", "b.h5"), ("head-ct", "c.h5")):
        info = meta["samples"][key]
        img = nib.load(str(tmp_path / "samples" / info["file"]))
        assert img.shape == (256, 256, 5)
        np.testing.assert_allclose(img.affine, info["affine"], atol=1e-5)
        d = _read(tmp_path / h5)
        val = d["val"]["position"][d["val"]["orientation"] == "axial"]
        train = d["train"]["position"][d["train"]["orientation"] == "axial"]
        for s in info["slices"]:
            assert val.min() - 1e-3 <= s["z_mm"] <= val.max() + 1e-3
            assert np.abs(train - s["z_mm"]).min() > 4.0  # not a training slice, nor its neighbour
    assert meta["samples"]["brain-mri"]["mid_axial"]["index_in_source"] == 22
    # the affine is exact: pixel -> world -> source voxel gives the stored (scaled) value
    vol, src_aff = _t1_volume()
    img = nib.load(str(tmp_path / "samples" / "brain-mri.nii.gz"))
    data = img.get_fdata()
    ref = vol[vol > 0.05 * vol.max()]
    p995 = np.percentile(ref, 99.5)
    r, c, s = np.meshgrid(np.arange(256), np.arange(256), np.arange(5), indexing="ij")
    pix = np.stack([r.ravel(), c.ravel(), s.ravel(), np.ones(r.size)])
    v = np.round(np.linalg.inv(src_aff) @ img.affine @ pix).astype(int)[:3]
    inside = ((v >= 0) & (v < np.array(vol.shape)[:, None])).all(axis=0)
    expect = np.zeros(r.size)
    expect[inside] = np.minimum(vol[tuple(v[:, inside])] / p995, 1.0)
    np.testing.assert_allclose(data.ravel(), expect, atol=1e-6)  # every pixel, marker included
    ct = nib.load(str(tmp_path / "samples" / "head-ct.nii.gz"))
    assert ct.get_data_dtype() == np.int16
    m = _ct_matrix()
    k = meta["samples"]["head-ct"]["slices"][0]["index_in_source"]
    pr = (256 - 64) // 2
    np.testing.assert_array_equal(np.asarray(ct.dataobj)[pr:pr + 64, pr:pr + 64, 0], m[k, ::-1, :])


# --------------------------------------------------------------------------------------------------
# any folder
# --------------------------------------------------------------------------------------------------


def _write_dicom_series(folder: Path, vol_hu: np.ndarray, spacing=(1.0, 1.0, 2.0)):
    """Axial CT series: vol_hu (S, R, C); rows run posterior (DICOM +y), columns patient-left (+x)."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian

    folder.mkdir(parents=True)
    for s, sl in enumerate(vol_hu):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = f"1.2.826.0.1.3680043.8.498.1.{s + 1}"
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID = CTImageStorage
        ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
        ds.SeriesInstanceUID = "1.2.826.0.1.3680043.8.498.2"
        ds.Modality = "CT"
        ds.SeriesDescription = "head"
        ds.Rows, ds.Columns = sl.shape
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
        ds.PixelSpacing = [spacing[0], spacing[1]]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.ImagePositionPatient = [0.0, 0.0, float(s * spacing[2])]
        ds.RescaleSlope, ds.RescaleIntercept = 1, -1024
        ds.PixelData = (sl.astype(np.int32) + 1024).astype(np.uint16).tobytes()
        # reversed file order: the reader must sort by position
        ds.save_as(folder / f"im{len(vol_hu) - s:03d}.dcm", enforce_file_format=True)


def test_folder_of_mixed_formats(tmp_path):
    from PIL import Image

    root = tmp_path / "in"
    (root / "nii").mkdir(parents=True)
    vol, aff = _t1_volume()
    nib.save(nib.Nifti1Image(vol, aff), str(root / "nii" / "a.nii.gz"))
    stack = np.zeros((20, 40, 40), np.float32)
    stack[:, 8:32, 6:34] = np.linspace(50, 200, 20)[:, None, None]
    (root / "png").mkdir()
    for i, im in enumerate(stack):
        Image.fromarray(im.astype(np.uint8)).save(root / "png" / f"s{i:02d}.png")
    np.save(root / "stack.npy", stack)
    with h5py.File(root / "file_brain_001.h5", "w") as f:
        f["reconstruction_rss"] = stack * 1e-4
        f["kspace"] = np.zeros((20, 2, 8, 8), np.complex64)
    out = tmp_path / "mri.h5"
    P.build_dataset_from_folder(root, out, modality="mri", size=24)
    d = _read(out)
    _check_layout(d, 24)
    names = set(d["train"]["source"]) | set(d["val"]["source"])
    assert {"nii/a.nii.gz", "stack.npy", "file_brain_001.h5", "png/*.png|tif"} <= names
    stored = d["val"]["orientation"] == "stored"
    assert stored.any()
    # whole-volume split: no volume in both splits
    out2 = tmp_path / "mri_vol.h5"
    P.build_dataset_from_folder(root, out2, modality="mri", size=24, split="volume", val_fraction=0.25)
    d2 = _read(out2)
    assert not set(d2["train"]["source"]) & set(d2["val"]["source"])
    assert "whole volumes" in d2["attrs"]["split_rule"]


def test_folder_dicom_ct_orientation(tmp_path):
    vol = np.full((30, 48, 48), -1024, np.int16)  # (slices, rows, cols)
    vol[:, 6:42, 6:42] = 40
    vol[:, 8:14, 8:14] = 1500  # small row = anterior, small column = patient right
    _write_dicom_series(tmp_path / "dcm" / "series", vol)
    out = tmp_path / "ct.h5"
    P.build_dataset_from_folder(tmp_path / "dcm", out, modality="ct", size=24, orientations=("axial",))
    d = _read(out)
    _check_layout(d, 24)
    assert d["attrs"]["hu_scale"] == 4095.0
    img = d["train"]["images"][0]
    hot = np.argwhere(img * 4095 - 1024 > 1000)
    assert hot[:, 0].mean() < 12 and hot[:, 1].mean() < 12  # anterior-right stays top-left


def test_folder_errors(tmp_path):
    with pytest.raises(DataError, match="not a folder"):
        P.build_dataset_from_folder(tmp_path / "nope", tmp_path / "x.h5", modality="mri")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no NIfTI"):
        P.build_dataset_from_folder(tmp_path / "empty", tmp_path / "x.h5", modality="mri")
    with pytest.raises(ConfigError, match="modality"):
        P.build_dataset_from_folder(tmp_path / "empty", tmp_path / "x.h5", modality="pet")
    (tmp_path / "kspace_only").mkdir()
    with h5py.File(tmp_path / "kspace_only" / "f.h5", "w") as f:
        f["kspace"] = np.zeros((2, 4, 4), np.complex64)
    with pytest.raises(DataError, match="reconstruction_rss"):
        P.build_dataset_from_folder(tmp_path / "kspace_only", tmp_path / "x.h5", modality="mri")


# --------------------------------------------------------------------------------------------------
# fetch (offline: a prepared cache, and failing commands)
# --------------------------------------------------------------------------------------------------


def _ar(members: dict[str, bytes]) -> bytes:
    out = b"!<arch>\n"
    for name, blob in members.items():
        header = f"{name:<16}{0:<12}{0:<6}{0:<6}{100644:<8}{len(blob):<10}`\n".encode()
        out += header + blob + (b"\n" if len(blob) % 2 else b"")
    return out


def _fake_deb(path: Path, files: dict[str, bytes]):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, blob in files.items():
            info = tarfile.TarInfo("./" + name)
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    path.write_bytes(_ar({"debian-binary": b"2.0\n", "control.tar.xz": lzma.compress(b""),
                          "data.tar.xz": lzma.compress(buf.getvalue())}))


def test_fetch_uses_cache_without_network(tmp_path, monkeypatch, t1_nifti, fake_inv3):
    cache = tmp_path / "cache"
    (cache / "pypi").mkdir(parents=True)
    (cache / "debian").mkdir()
    nii = t1_nifti.read_bytes()
    with zipfile.ZipFile(cache / "pypi" / f"nilearn-{P.NILEARN.version}-py3-none-any.whl", "w") as zf:
        zf.writestr(P.MNI_MEMBER, nii)
        zf.writestr(P.NILEARN.copyright_file.format(version=P.NILEARN.version), "BSD")
        zf.writestr("nilearn/datasets/description/icbm152_2009.rst", "MNI")
    _fake_deb(cache / "debian" / "mricron-data_1.2-4_all.deb",
              {P.CH2_MEMBER: nii, P.CH2BETTER_MEMBER: nii, P.MRICRON_DATA.copyright_file: b"BSD"})
    _fake_deb(cache / "debian" / "invesalius-examples_3.1-4_all.deb",
              {P.CRANIUM_MEMBER: fake_inv3.read_bytes(), P.INVESALIUS_EXAMPLES.copyright_file: b"GPL-2"})

    def no_network(*args, **kwargs):
        raise AssertionError(f"fetch ran a command although the cache is complete: {args}")

    monkeypatch.setattr(subprocess, "run", no_network)
    messages = []
    srcs = P.fetch(cache, log=messages.append)
    assert srcs.ch2.version == "1.2-4" and srcs.cranium.version == "3.1-4"
    assert srcs.mni152.path.read_bytes() == nii
    assert P.read_inv3(srcs.cranium.path)[0].shape == (60, 64, 64)
    assert (cache / "extracted" / "mricron-data" / P.MRICRON_DATA.copyright_file).read_bytes() == b"BSD"
    P.fetch(cache)  # idempotent: second run unpacks nothing and downloads nothing
    assert any("unpack" in m for m in messages)


def test_fetch_failures_are_one_line_errors(tmp_path, monkeypatch):
    def fake_run(cmd, **kwargs):
        stderr = "Reading package lists...\nE: Unable to locate package mricron-data\n"
        return subprocess.CompletedProcess(cmd, 100, "", stderr)

    monkeypatch.setattr(subprocess, "run", fake_run)
    with pytest.raises(DataError) as err:
        fetching._apt_download(P.MRICRON_DATA, tmp_path, None, apt_update=False)
    msg = str(err.value)
    assert "\n" not in msg and "Unable to locate package" in msg and "--apt-update" in msg

    def missing(cmd, **kwargs):
        raise FileNotFoundError(cmd[0])

    monkeypatch.setattr(subprocess, "run", missing)
    with pytest.raises(DataError, match="not found"):
        fetching._apt_download(P.MRICRON_DATA, tmp_path / "d", None, apt_update=False)
    with pytest.raises(DataError, match="pip download"):
        fetching._pip_download(P.NILEARN, tmp_path / "p", None)


def test_sources_from_cache_missing_files(tmp_path):
    with pytest.raises(DataError, match="prepare_data.py fetch"):
        P.sources_from_cache(tmp_path)


# --------------------------------------------------------------------------------------------------
# the bundled samples
# --------------------------------------------------------------------------------------------------

SAMPLES = resources.files("genrecon") / "data" / "samples"


def test_bundled_samples_exist_and_are_small():
    files = [SAMPLES / "brain-mri.nii.gz", SAMPLES / "head-ct.nii.gz", SAMPLES / "samples.json"]
    for f in files:
        assert f.is_file(), f
    total = sum(Path(str(f)).stat().st_size for f in files[:2])
    assert total < 2_000_000


def test_bundled_samples_match_their_sidecar():
    meta = json.loads((SAMPLES / "samples.json").read_text())
    for key in ("brain-mri", "head-ct"):
        info = meta["samples"][key]
        img = nib.load(str(SAMPLES / info["file"]))
        assert list(img.shape) == info["shape"] and info["shape"][:2] == [256, 256]
        assert 4 <= info["shape"][2] <= 6
        assert np.dtype(img.get_data_dtype()) == np.dtype(info["dtype"])
        np.testing.assert_allclose(img.affine, info["affine"], atol=1e-4)
        assert nib.aff2axcodes(img.affine) == ("P", "L", "S")  # rows posterior-ward, columns patient-left
        assert len(info["slices"]) == info["shape"][2]
        steps = np.diff([s["z_mm"] for s in info["slices"]])
        np.testing.assert_allclose(steps, img.affine[2, 2], atol=1e-4)  # the affine holds the slice step
        assert "held-out" in info["held_out"] and info["source"]["licence"] and info["source"]["version"]
        assert info["orientation"] == "axial"
    brain = nib.load(str(SAMPLES / "brain-mri.nii.gz")).get_fdata()
    assert brain.min() >= 0.0 and brain.max() == pytest.approx(1.0)
    mid = meta["samples"]["brain-mri"]["mid_axial"]
    assert mid["index_in_source"] == 189 // 2  # MNI152 2009a is 197 x 233 x 189
    assert (brain[:, :, mid["index_in_file"]] > 0.1).mean() > 0.2  # a full brain section
    ct = np.asarray(nib.load(str(SAMPLES / "head-ct.nii.gz")).dataobj)
    assert ct.min() == -1024 and ct.max() > 1000  # air and skull in HU
    head = ct[64:192, 64:192, :]
    assert np.median(head) == pytest.approx(35, abs=30)  # brain tissue in the centre


def test_script_folder_step_and_error_exit(tmp_path, capsys):
    import importlib.util

    script = Path(__file__).resolve().parents[1] / "scripts" / "prepare_data.py"
    spec = importlib.util.spec_from_file_location("prepare_data_script", script)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    (tmp_path / "in").mkdir()
    stack = np.zeros((12, 20, 20), np.float32)
    stack[:, 4:16, 4:16] = 1.0
    np.save(tmp_path / "in" / "s.npy", stack)
    out = tmp_path / "o.h5"
    assert mod.main(["folder", str(tmp_path / "in"), "--modality", "mri", "--out", str(out), "--size", "16"]) == 0
    assert _read(out)["train"]["images"].shape[1:] == (16, 16)
    assert mod.main(["folder", str(tmp_path / "nope"), "--modality", "mri", "--out", str(out)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and "not a folder" in err[0]


# --------------------------------------------------------------------------------------------------
# one reader per format: data_prep reads through genrecon.io; io never imports data_prep
# --------------------------------------------------------------------------------------------------


def test_readers_are_io_readers(monkeypatch, tmp_path):
    import genrecon.io.dicom as io_dicom
    import genrecon.io.fastmri as io_fastmri
    import genrecon.io.image as io_image
    import genrecon.io.nifti as io_nifti
    import genrecon.io.npy as io_npy
    from genrecon.data_prep import readers

    calls = []

    def spy(module, name, result):
        monkeypatch.setattr(module, name, lambda *a, **k: calls.append(name) or result)

    vol = np.ones((2, 3, 4), np.float32)
    spy(io_nifti, "read_volume", (vol, np.eye(4)))
    spy(io_npy, "read_stack", vol.astype(np.complex64))
    spy(io_fastmri, "read_reconstructions", vol)
    spy(io_image, "read_pixels", np.ones((3, 4, 3), np.uint8))
    spy(io_dicom, "read_series_volumes",
        [io_dicom.SeriesVolume("1.2", "t1 axial", "MR", tmp_path / "s" / "a.dcm", vol, np.eye(4))])
    assert readers.read_nifti(tmp_path / "x.nii")[0] is vol
    assert readers.read_npy_stack(tmp_path / "x.npy").dtype == np.float32
    assert readers.read_fastmri(tmp_path / "x.h5") is vol
    assert readers.read_image(tmp_path / "x.png").shape == (3, 4)
    assert readers.read_dicom_series([tmp_path / "s" / "a.dcm"])[0][0] == "s/t1_axial"
    assert calls == ["read_volume", "read_stack", "read_reconstructions", "read_pixels", "read_series_volumes"]


def test_no_second_reader_and_layers():
    root = Path(P.__file__).parent
    for path in sorted(root.glob("*.py")):
        text = path.read_text()
        for call in ("nib.load(", "nibabel.load(", "dcmread(", "Image.open(", "np.load(", "tifffile."):
            assert call not in text, f"{path.name} reads files itself ({call}); use genrecon.io"
    io_root = root.parent / "io"
    for path in sorted(io_root.glob("*.py")):
        assert "data_prep" not in path.read_text(), f"io/{path.name} imports data_prep (layer rule)"


def test_prepare_module_is_a_compatibility_alias():
    from genrecon import prepare

    for name in P.__all__:
        assert getattr(prepare, name) is getattr(P, name)
