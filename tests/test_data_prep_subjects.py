"""The unseen-subject split (test_subject/), the added volumes (NRRD, thick slices) and the extended datasets."""

from __future__ import annotations

import gzip
import io
import subprocess
import tarfile
import zipfile
from pathlib import Path

import h5py
import nibabel as nib
import numpy as np
import pytest

from genrecon import data_prep as P
from genrecon.data_prep import more_sources, subjects
from genrecon.errors import DataError
from genrecon.io.prepared import SPLITS, PreparedLoader


def _ellipsoid(shape, centre, radii):
    grids = np.meshgrid(*[np.arange(n, dtype=np.float32) for n in shape], indexing="ij")
    return sum(((g - c) / r) ** 2 for g, c, r in zip(grids, centre, radii)) <= 1.0


def _write_nrrd(path: Path, data: np.ndarray, spacing, origin, *, encoding="gzip", space="left-posterior-superior",
                magic=b"NRRD0004") -> Path:
    """A 3-D int16 NRRD written as Slicer does (LPS, x fastest); ``data`` is (I, J, K)."""
    dirs = " ".join(f"({','.join(str(v if i == j else 0) for j in range(3))})"
                    for i, v in enumerate(spacing))
    header = (f"type: short\ndimension: 3\nspace: {space}\nsizes: {' '.join(map(str, data.shape))}\n"
              f"space directions: {dirs}\nkinds: domain domain domain\nendian: little\nencoding: {encoding}\n"
              f"space origin: ({','.join(map(str, origin))})\n\n")
    blob = np.asarray(data, "<i2").transpose(2, 1, 0).tobytes()
    path.write_bytes(magic + b"\n" + header.encode() + (gzip.compress(blob) if encoding == "gzip" else blob))
    return path


def _head_lps(shape=(48, 48, 12), value=100):
    """A head-like ellipsoid, int16, (I, J, K) with I towards the patient's left and J towards posterior (LPS)."""
    vol = np.zeros(shape, np.int16)
    vol[_ellipsoid(shape, [(n - 1) / 2 for n in shape], [0.42 * shape[0], 0.38 * shape[1], 0.6 * shape[2]])] = value
    vol[30:34, 10:14, :] = 2 * value  # marker at the patient's left (I up) and anterior (J down)
    return vol


def test_read_nrrd_gives_ras_affine_and_ijk_array(tmp_path):
    vol = _head_lps()
    for encoding in ("gzip", "raw"):
        path = _write_nrrd(tmp_path / f"v_{encoding}.nrrd", vol, (0.8, 0.8, 6.5), (-20.0, 30.0, -40.0),
                           encoding=encoding)
        data, affine = P.read_nrrd(path)
        assert data.dtype == np.float32 and data.shape == vol.shape and np.array_equal(data, vol)
        # LPS -> RAS: first two world axes negated (directions and origin)
        assert np.allclose(affine[:3, :3], np.diag([-0.8, -0.8, 6.5]))
        assert np.allclose(affine[:3, 3], [20.0, -30.0, -40.0])
    assert nib.aff2axcodes(affine) == ("L", "P", "S")


def test_read_nrrd_refuses_what_it_cannot_read_in_one_line(tmp_path):
    vol = _head_lps()
    cases = {
        "magic": _write_nrrd(tmp_path / "a.nrrd", vol, (1, 1, 1), (0, 0, 0), magic=b"NRRX0004"),
        "encoding": _write_nrrd(tmp_path / "b.nrrd", vol, (1, 1, 1), (0, 0, 0), encoding="bzip2"),
        "space": _write_nrrd(tmp_path / "c.nrrd", vol, (1, 1, 1), (0, 0, 0), space="scanner-xyz"),
    }
    short = tmp_path / "d.nrrd"
    short.write_bytes(_write_nrrd(tmp_path / "e.nrrd", vol, (1, 1, 1), (0, 0, 0), encoding="raw").read_bytes()[:-10])
    cases["short"] = short
    for what, path in cases.items():
        with pytest.raises(DataError) as err:
            P.read_nrrd(path)
        assert "\n" not in str(err.value) and str(path) in str(err.value), what


def test_thick_volumes_keep_their_acquired_axial_slices(tmp_path):
    path = _write_nrrd(tmp_path / "thick.nrrd", _head_lps(), (0.8, 0.8, 6.5), (0, 0, 0))
    vol01, affine, orientations = subjects.read_added_volume(path, "mri")
    assert orientations == ("axial",) and vol01.shape == (48, 48, 12)  # no resampling along z
    assert 0.0 <= vol01.min() and vol01.max() == 1.0
    # canonical RAS: the marker (patient's left, anterior) is at low x and high y
    xs, ys, _ = np.nonzero(vol01 == vol01.max())
    assert xs.mean() < 24 and ys.mean() > 24
    iso = _write_nrrd(tmp_path / "iso.nrrd", _head_lps((24, 24, 24)), (1.0, 1.0, 1.0), (0, 0, 0))
    assert subjects.read_added_volume(iso, "ct")[2] == P.ORIENTATIONS


def test_whole_volume_rule_and_merged_order():
    rule = P.WholeVolume()
    assert all(rule.split(o, p, (0.0, 1.0)) == "test_subject" for o in ("axial", "sagittal") for p in (-5.0, 99.0))
    assert "no slab" in rule.describe() and rule.describe().startswith("test_subject")
    a, b = P.Collected(), P.Collected()
    img = np.zeros((4, 4), np.float32)
    a.train.add(img, "a", "axial", 0, 0.0)
    b.train.add(img + 1, "b", "axial", 1, 1.0)
    b.test_subject.add(img, "b", "axial", 2, 2.0)
    a.stats["a"], b.stats["b"] = {"train": 1}, {"train": 1}
    m = subjects.merged(a, b)
    assert m.train.source == ["a", "b"] and m.test_subject.index == [2] and list(m.stats) == ["a", "b"]


def _t1_nifti(path: Path) -> Path:
    shape = (40, 44, 40)
    vol = np.zeros(shape, np.float32)
    vol[_ellipsoid(shape, (19.5, 21.5, 19.5), (17, 19, 16))] = 100.0
    affine = np.eye(4)
    affine[:3, 3] = (-20.0, -30.0, 0.0)
    nib.save(nib.Nifti1Image(vol.astype(np.uint8), affine), str(path))
    return path


def _src(name, path):
    return P.Source(name, Path(path), "test", "0", Path(path).name, "test licence", "notice", "synthetic", "none")


def _groups(path):
    with h5py.File(path, "r") as f:
        return {g: {"images": f[g]["images"][:], "source": list(f[g]["source"].asstr()[:]),
                    "orientation": list(f[g]["orientation"].asstr()[:])} for g in f}, dict(f.attrs)


def test_test_subject_group_and_extended_file(tmp_path):
    base = [_src("t1", _t1_nifti(tmp_path / "t1.nii.gz"))]
    held = _src("held", _write_nrrd(tmp_path / "held.nrrd", _head_lps(), (0.8, 0.8, 6.5), (0, 0, 0)))
    added = _src("added", _write_nrrd(tmp_path / "added.nrrd", _head_lps((40, 40, 30)), (1.0, 1.0, 1.0), (0, 0, 0)))
    plain = P.build_brain_mri_dataset(base, tmp_path / "plain.h5", size=16)
    counts = P.build_brain_mri_dataset(base, tmp_path / "b.h5", size=16, test_subjects=[held], added=[added],
                                       extended_out=tmp_path / "ext.h5")
    assert plain == {"train": counts["train"], "val": counts["val"]} and counts["test_subject"] > 0
    g0, _ = _groups(tmp_path / "plain.h5")
    g1, a1 = _groups(tmp_path / "b.h5")
    g2, a2 = _groups(tmp_path / "ext.h5")
    assert "test_subject" not in g0 and "n_test_subject" not in _groups(tmp_path / "plain.h5")[1]
    for split in ("train", "val"):  # the original groups are unchanged by the held-out subject
        assert np.array_equal(g0[split]["images"], g1[split]["images"]) and g0[split]["source"] == g1[split]["source"]
    # every non-empty acquired slice of the held-out volume, axial only, and in no training or val group
    assert set(g1["test_subject"]["source"]) == {"held"} and set(g1["test_subject"]["orientation"]) == {"axial"}
    assert a1["n_test_subject"] == len(g1["test_subject"]["images"]) <= 12
    assert "held" in a1["test_subjects"] and "held" in a1["sources"] and "held" not in g1["train"]["source"]
    for g in (g2["train"], g2["val"]):
        assert "held" not in g["source"]
    assert np.array_equal(g2["test_subject"]["images"], g1["test_subject"]["images"])
    # the extended file: the original slices first, then the added volume's, split by the added slabs
    n0 = len(g0["train"]["images"])
    assert np.array_equal(g2["train"]["images"][:n0], g0["train"]["images"])
    assert set(g2["train"]["source"][n0:]) == {"added"} and "added" in g2["val"]["source"]
    assert "added volumes (added)" in a2["split_rule"]
    # the loader serves the new split
    loader = PreparedLoader(split="test_subject")
    assert "test_subject" in SPLITS and loader.n_slices(str(tmp_path / "b.h5")) == a1["n_test_subject"]
    assert loader.load(str(tmp_path / "b.h5"), 0).meta["split"] == "test_subject"
    with pytest.raises(DataError, match="prepare_data.py datasets"):
        loader.n_slices(str(tmp_path / "plain.h5"))


def _fake_cache(cache: Path, nrrd: bytes, nii: bytes) -> None:
    pypi = cache / "pypi"
    pypi.mkdir(parents=True)
    v = more_sources.PYRADIOMICS.version
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        members = {m: nrrd for m in more_sources._radiomics_members().values()}
        members[f"pyradiomics-{v}/LICENSE.txt"] = b"BSD"
        members[f"pyradiomics-{v}/data/README.md"] = b"test cases"
        for name, blob in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    (pypi / f"pyradiomics-{v}.tar.gz").write_bytes(buf.getvalue())
    dv = more_sources.PYDEFACE.version
    with zipfile.ZipFile(pypi / f"pydeface-{dv}-py3-none-any.whl", "w") as zf:
        zf.writestr(more_sources.PYDEFACE_MEMBER, nii)
        zf.writestr(more_sources.PYDEFACE.copyright_file.format(version=dv), "MIT")


def test_fetch_more_uses_the_cache_without_network(tmp_path, monkeypatch):
    nrrd = _write_nrrd(tmp_path / "x.nrrd", _head_lps(), (0.8, 0.8, 6.5), (0, 0, 0)).read_bytes()
    _fake_cache(tmp_path / "cache", nrrd, _t1_nifti(tmp_path / "t1.nii.gz").read_bytes())

    def no_network(*args, **kwargs):
        raise AssertionError(f"fetch_more ran a command although the cache is complete: {args}")

    monkeypatch.setattr(subprocess, "run", no_network)
    extra = P.fetch_more(tmp_path / "cache")
    assert sorted(extra) == sorted([*P.TEST_SUBJECTS["mri"], *P.TEST_SUBJECTS["ct"], *P.EXTRA_TRAIN["mri"],
                                    *P.EXTRA_TRAIN["ct"]])
    assert extra["radiomics_brain2"].path.read_bytes() == nrrd and extra["radiomics_lung1"].version == "3.0.1"
    assert "BSD-3-Clause" in extra["radiomics_lung2"].licence and "MIT" in extra["pydeface_mean"].licence
    assert not set(P.TEST_SUBJECTS["mri"]) & set(P.EXTRA_TRAIN["mri"])  # a held-out subject never trains
    assert not set(P.TEST_SUBJECTS["ct"]) & set(P.EXTRA_TRAIN["ct"])
    P.fetch_more(tmp_path / "cache")  # idempotent
    with pytest.raises(DataError, match="prepare_data.py fetch"):
        P.more_from_cache(tmp_path / "empty")


def test_fetch_more_failure_is_one_line(tmp_path, monkeypatch):
    calls = []

    def fake_run(cmd, **kwargs):
        calls.append(cmd)
        return subprocess.CompletedProcess(cmd, 1, "", "ERROR: No matching distribution found for pyradiomics\n")

    monkeypatch.setattr(subprocess, "run", fake_run)
    with pytest.raises(DataError) as err:
        P.fetch_more(tmp_path / "cache")
    assert "\n" not in str(err.value) and "pip download pyradiomics" in str(err.value)
    # pyradiomics' scans are in its source distribution only: the one pip helper asks for that, not a wheel
    assert calls and "--no-binary" in calls[0] and "--only-binary=:all:" not in calls[0]
