"""Measured k-space is the measurement (issue 16): fastMRI-format files made from real brain slices (smooth
phase, readout oversampling, noise; simulated files, see genrecon.testing.fastmri), retrospective
undersampling on the acquired grid, crops to the reference grid, whole-volume data_range, fastMRI's
volume aggregation and its prediction files."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
import yaml
from typer.testing import CliRunner

from genrecon.cli.main import app
from genrecon.io.transforms import fit_size
from genrecon.registry import LOADERS
from genrecon.testing.fastmri import write_fastmri_file

runner = CliRunner()


def brain_slices(n: int = 4, size: int = 32) -> np.ndarray:
    """``n`` real T1 brain slices (the bundled MNI152 sample) resized to ``size``."""
    loader = LOADERS.build("sample", {})
    out = [fit_size(loader.load("sample:brain-mri", i).image, size, "resize")[0].numpy() for i in range(n)]
    return np.clip(np.stack(out), 0, None).astype(np.float32)


def config(source, out, **simulate) -> dict:
    return {
        "data": {"source": str(source), "normalize": "none"},
        "simulate": {"modality": "mri", "mask": {"name": "equispaced", "acceleration": 4, "center_fraction": 0.16},
                     **simulate},
        "reconstructors": [{"name": "zero_filled"}, {"name": "fista_tv", "params": {"n_iter": 40}}],
        "evaluate": {"metrics": ["psnr", "ssim", "nmse"]},
        "output": {"dir": str(out), "save": ["npy", "h5"]},
    }


def run(tmp_path: Path, cfg: dict, name: str = "c.yaml"):
    p = tmp_path / name
    p.write_text(yaml.safe_dump(cfg))
    return runner.invoke(app, ["reconstruct", "--config", str(p), "-q"])


@pytest.fixture(scope="module")
def single_file(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fastmri_single")
    images = brain_slices()
    images[3] *= 1.5  # the volume's maximum lies outside the slices some tests select
    facts = write_fastmri_file(folder / "file_brain_sc.h5", images, coils=1, seed=3)
    return folder / "file_brain_sc.h5", facts


def test_the_files_kspace_is_what_is_reconstructed(tmp_path, single_file):
    path, facts = single_file
    assert facts["kspace_shape"] == (4, 64, 36)  # readout oversampled 2x, phase encoding padded
    res = run(tmp_path, config(path, tmp_path / "a"))
    assert res.exit_code == 0, res.output
    case = tmp_path / "a" / "cases" / "file_brain_sc__1"
    zf = np.load(case / "zero_filled.npy")
    mask = np.load(case / "mask.npy")
    assert zf.shape == (32, 32) and mask.shape == (64, 36)  # reconstructed on 64x36, cropped to 32x32
    with h5py.File(path) as f:
        k = f["kspace"][1]
    expected = np.fft.fftshift(np.fft.ifft2(np.fft.ifftshift(k * mask), norm="ortho"))[16:48, 2:34]
    assert np.allclose(zf, expected, atol=1e-5)  # the adjoint of the masked measured k-space
    report = json.loads((tmp_path / "a" / "report.json").read_text())
    assert report["measurement"]["measurement"] == "measured"
    assert report["summary"]["fista_tv"]["psnr"] > report["summary"]["zero_filled"]["psnr"]

    # the same file with its k-space replaced by noise gives other reconstructions
    noisy = tmp_path / "file_brain_sc.h5"
    noisy.write_bytes(path.read_bytes())
    with h5py.File(noisy, "r+") as f:
        rng = np.random.default_rng(0)
        f["kspace"][...] = (rng.standard_normal(f["kspace"].shape) * 1e-3).astype(np.complex64)
    assert run(tmp_path, config(noisy, tmp_path / "b")).exit_code == 0
    assert not np.allclose(np.load(tmp_path / "b" / "cases" / "file_brain_sc__1" / "fista_tv.npy"),
                           np.load(case / "fista_tv.npy"), atol=1e-3)


def test_fully_sampled_measured_kspace_gives_back_the_reference(tmp_path, single_file):
    path, facts = single_file
    cfg = config(path, tmp_path / "run")
    cfg["simulate"]["mask"] = {"name": "equispaced", "acceleration": 1, "center_fraction": 0.0}
    cfg["reconstructors"] = [{"name": "zero_filled"}]
    assert run(tmp_path, cfg).exit_code == 0
    zf = np.load(tmp_path / "run" / "cases" / "file_brain_sc__2" / "zero_filled.npy")
    assert np.allclose(np.abs(zf), facts["reference"][2], atol=1e-5)  # reconstruction_esc, as fastMRI made it


def test_simulation_can_be_asked_for_and_simulation_keys_are_refused_on_measured_data(tmp_path, single_file):
    path, _ = single_file
    cfg = config(path, tmp_path / "sim", measurement="simulated")
    cfg["reconstructors"] = [{"name": "zero_filled"}]
    assert run(tmp_path, cfg).exit_code == 0
    report = json.loads((tmp_path / "sim" / "report.json").read_text())
    assert report["measurement"]["measurement"] == "simulated"
    mask = np.load(tmp_path / "sim" / "cases" / "file_brain_sc__0" / "mask.npy")
    assert mask.shape == (32, 32)  # simulated from the 32x32 reference
    bad = config(path, tmp_path / "bad", noise={"sigma": 0.01})
    res = run(tmp_path, bad, "bad.yaml")
    assert res.exit_code == 2 and "measured k-space" in res.output and "simulate.noise" in res.output
    assert not (tmp_path / "bad").exists()
    bad = config(path, tmp_path / "bad", measurement="measured", coils=4)
    res = run(tmp_path, bad, "bad2.yaml")
    assert res.exit_code == 2 and "remove coils" in res.output
    sized = config(path, tmp_path / "bad")
    sized["data"]["size"] = 16
    res = run(tmp_path, sized, "bad3.yaml")
    assert res.exit_code == 2 and "acquired grid" in res.output and not (tmp_path / "bad").exists()


def test_volume_max_uses_the_whole_volume_and_volume_aggregation_is_fastmris(tmp_path, single_file):
    path, facts = single_file
    cfg = config(path, tmp_path / "run")
    cfg["data"]["slices"] = "1:3"
    cfg["evaluate"]["aggregate"] = "volume"
    assert run(tmp_path, cfg).exit_code == 0
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert report["cases"] == 2
    whole = float(facts["reference"].max())
    assert all(r["data_range"] == pytest.approx(whole, rel=1e-6) for r in report["rows"])
    assert whole > facts["reference"][1:3].max()  # the selection alone would give another data_range
    # fastMRI's evaluate, written out independently: PSNR/NMSE over the volume's voxels, mean slice SSIM
    from skimage.metrics import structural_similarity

    with h5py.File(tmp_path / "run" / "recon" / "fista_tv" / "file_brain_sc.h5") as f:
        pred = f["reconstruction"][()]
        assert pred.dtype == np.float32 and pred.shape == (2, 32, 32)
    gt = facts["reference"][1:3]
    psnr = 10 * np.log10(whole**2 / np.mean((gt - pred) ** 2))
    nmse = np.linalg.norm(gt - pred) ** 2 / np.linalg.norm(gt) ** 2
    ssim = np.mean([structural_similarity(g, p, data_range=whole, win_size=7) for g, p in zip(gt, pred)])
    row = next(v for v in report["volumes"] if v["method"] == "fista_tv")
    assert row["psnr"] == pytest.approx(psnr, abs=0.01) and row["nmse"] == pytest.approx(nmse, rel=1e-4)
    assert row["ssim"] == pytest.approx(ssim, abs=1e-4)
    assert report["summary"]["fista_tv"]["psnr"] == pytest.approx(psnr, abs=0.01)
    assert report["summary"]["fista_tv"]["volumes"] == 1 and report["summary"]["fista_tv"]["cases"] == 2
    assert "per volume as fastMRI" in report["conventions"]


def test_a_file_without_kspace_is_simulated_and_measured_without_kspace_is_an_error(tmp_path):
    src = tmp_path / "images.npy"
    np.save(src, brain_slices(2, 32))
    cfg = config(src, tmp_path / "run", measurement="measured")
    res = run(tmp_path, cfg)
    assert res.exit_code == 1 and "holds no k-space" in res.output
    assert not (tmp_path / "run").exists()
    cfg = config(src, tmp_path / "run")
    assert run(tmp_path, cfg, "d.yaml").exit_code == 0
    assert json.loads((tmp_path / "run" / "report.json").read_text())["measurement"]["measurement"] == "simulated"


def test_measured_kspace_keeps_the_references_scale_under_normalisation(tmp_path, single_file):
    path, facts = single_file
    cfg = config(path, tmp_path / "run")
    cfg["data"]["normalize"] = "volume_max"
    cfg["simulate"]["mask"] = {"name": "equispaced", "acceleration": 1, "center_fraction": 0.0}
    cfg["reconstructors"] = [{"name": "zero_filled"}]
    assert run(tmp_path, cfg).exit_code == 0
    case = tmp_path / "run" / "cases" / "file_brain_sc__0"
    truth, zf = np.load(case / "truth.npy"), np.load(case / "zero_filled.npy")
    assert np.abs(truth).max() == pytest.approx(facts["reference"][0].max() / facts["max"], rel=1e-5)
    assert np.allclose(np.abs(zf), np.abs(truth), atol=1e-5)  # k-space divided by the same scale


def test_without_a_reference_the_crop_of_the_kspace_image_is_the_target(tmp_path, single_file):
    path, facts = single_file
    copy = tmp_path / "noref.h5"
    copy.write_bytes(path.read_bytes())
    with h5py.File(copy, "r+") as f:
        del f["reconstruction_esc"]
    case = LOADERS.build("fastmri", {}).load(str(copy), 2)
    assert case.meta["target"] == "kspace" and tuple(case.image.shape) == (1, 32, 32)  # the header's reconSpace
    assert np.allclose(case.image.abs()[0].numpy(), facts["reference"][2], atol=1e-5)


# ---------------------------------------------------------------------------------------------------
# CT volumes in HU from formats that do not carry units
# ---------------------------------------------------------------------------------------------------
def _head_ct_hu(n: int = 2) -> np.ndarray:
    loader = LOADERS.build("sample", {})
    return np.stack([loader.load("sample:head-ct", i).image[0].numpy() for i in range(n)])


def ct_config(source, out, **data) -> dict:
    return {"data": {"source": str(source), "size": 64, "resize": "resize", **data},
            "simulate": {"modality": "ct", "angles": {"kind": "sparse", "n_views": 30}},
            "reconstructors": [{"name": "fbp"}], "output": {"dir": str(out)}}


def test_a_npy_ct_volume_declared_hu_is_normalised_and_checked(tmp_path):
    from genrecon.conventions import hu_to_unit

    hu = _head_ct_hu()
    assert hu.min() <= -1000  # real HU: air
    src = tmp_path / "head_hu.npy"
    np.save(src, hu)
    res = run(tmp_path, ct_config(src, tmp_path / "plain", normalize="hu_unit"))
    assert res.exit_code == 2 and "declare data.units: hu" in res.output
    res = run(tmp_path, ct_config(src, tmp_path / "hu", normalize="hu_unit", units="hu"))
    assert res.exit_code == 0, res.output
    truth = np.load(tmp_path / "hu" / "cases" / "head_hu__0" / "truth.npy")
    expected = hu_to_unit(fit_size(torch.from_numpy(hu[:1]), 64, "resize")).numpy()[0]
    assert np.allclose(truth, expected, atol=1e-6)
    # not HU at all (values in [0, 1]): refused, naming the check
    np.save(tmp_path / "unit.npy", (hu - hu.min()) / (hu.max() - hu.min()))
    res = run(tmp_path, ct_config(tmp_path / "unit.npy", tmp_path / "bad", normalize="hu_unit", units="hu"))
    assert res.exit_code == 1 and "air is about -1000 HU" in res.output and not (tmp_path / "bad").exists()


def test_a_nifti_ct_volume_declared_hu_feeds_the_hu_to_mu_physics(tmp_path):
    import nibabel as nib

    hu = _head_ct_hu(1)
    src = tmp_path / "head.nii.gz"
    nib.save(nib.Nifti1Image(np.ascontiguousarray(hu.transpose(1, 2, 0)).astype(np.float32), np.eye(4)), src)
    cfg = ct_config(src, tmp_path / "run", normalize="none", units="hu")
    cfg["simulate"]["hu_to_mu"] = {"kind": "hu", "pixel_size_mm": 1.0}
    res = run(tmp_path, cfg)
    assert res.exit_code == 0, res.output
    truth = np.load(tmp_path / "run" / "cases" / "head__0" / "truth.npy")
    assert truth.min() >= 0 and 0.005 < truth.max() < 0.1  # attenuation per pixel (water 0.0192 / mm)


# ---------------------------------------------------------------------------------------------------
# multi-coil: sensitivities estimated from the undersampled data's ACS region
# ---------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def multi_file(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fastmri_multi")
    facts = write_fastmri_file(folder / "file_brain_mc.h5", brain_slices(2, 48), coils=8, seed=5)
    return folder / "file_brain_mc.h5", facts


@pytest.mark.parametrize("maps", ["espirit", "lowres"])
def test_measured_multicoil_uses_maps_from_the_data(tmp_path, multi_file, maps):
    path, facts = multi_file
    cfg = config(path, tmp_path / "run", coil_maps=maps)
    cfg["simulate"]["mask"] = {"name": "equispaced", "acceleration": 3, "center_fraction": 0.2}
    cfg["data"]["slices"] = 0
    assert run(tmp_path, cfg).exit_code == 0
    case = tmp_path / "run" / "cases" / "file_brain_mc__0"
    est_maps = np.load(case / "coil_maps.npy")
    assert est_maps.shape == (8, 96, 54) and np.iscomplexobj(est_maps)  # saved with the outputs
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert report["measurement"]["measurement"] == "measured" and report["measurement"]["coils"] == 8
    s = report["summary"]
    assert s["fista_tv"]["psnr"] > s["zero_filled"]["psnr"] + 1.0
    # the maps are the true ones up to a per-pixel phase, where the object is
    support = np.abs(np.pad(facts["reference"][0], ((24, 24), (3, 3)))) > 0.2 * facts["max"]
    true = facts["maps"].numpy()
    align = np.abs(np.sum(np.conj(est_maps) * true, axis=0)) / np.maximum(
        np.linalg.norm(est_maps, axis=0) * np.linalg.norm(true, axis=0), 1e-12)
    assert np.median(align[support]) > (0.98 if maps == "espirit" else 0.9)


def test_fully_sampled_multicoil_sense_combination_matches_the_rss_reference(tmp_path, multi_file):
    path, facts = multi_file
    cfg = config(path, tmp_path / "run")
    cfg["simulate"]["mask"] = {"name": "equispaced", "acceleration": 1, "center_fraction": 0.0}
    cfg["reconstructors"] = [{"name": "zero_filled"}]
    cfg["data"]["slices"] = 1
    assert run(tmp_path, cfg).exit_code == 0
    zf = np.abs(np.load(tmp_path / "run" / "cases" / "file_brain_mc__1" / "zero_filled.npy"))
    ref = facts["reference"][1]
    inside = ref > 0.2 * facts["max"]
    assert np.median(np.abs(zf[inside] - ref[inside]) / ref[inside]) < 0.02


def test_generative_methods_run_on_measured_multicoil_data_with_a_lowres_phase(tmp_path):
    """The priors model magnitudes; measured images have a smooth phase: with phase lowres (one adjoint of the
    windowed central k-space) DPS fits the data, with the zero phase it cannot. MNI152 slices: the brain
    prior's own training template, so this checks the code path, not generalisation."""
    images = brain_slices(1, 128)[:, 32:96, :]  # 64 x 128 reference -> a 128 x 128 acquired grid (2x readout)
    write_fastmri_file(tmp_path / "file_gen_mc.h5", images, coils=8, phase_padding=0.0, seed=7)
    dps = {"prior": "pretrained:brain-mri-128-diffusion", "consistency": "project", "steps": 20, "cg_iter": 5}
    cfg = config(tmp_path / "file_gen_mc.h5", tmp_path / "run")
    cfg["data"]["normalize"] = "volume_max"
    cfg["reconstructors"] = [
        {"name": "dps", "label": "dps_zero_phase", "params": dps},
        {"name": "dps", "label": "dps_lowres_phase", "params": {**dps, "phase": "lowres"}},
        {"name": "latent_inversion", "params": {"prior": "pretrained:brain-mri-128-generator", "steps": 20,
                                                 "restarts": 1, "phase": "lowres"}},
    ]
    res = run(tmp_path, cfg)
    assert res.exit_code == 0, res.output
    s = json.loads((tmp_path / "run" / "report.json").read_text())["summary"]
    assert s["dps_lowres_phase"]["psnr"] > s["dps_zero_phase"]["psnr"] + 1.0
    assert np.isfinite(s["latent_inversion"]["psnr"])


def test_an_already_undersampled_file_is_reconstructed_as_it_is_without_metrics(tmp_path, single_file):
    path, facts = single_file
    test_file = tmp_path / "file_brain_test.h5"
    test_file.write_bytes(path.read_bytes())
    cols = np.zeros(36, bool)
    cols[::3] = True
    cols[15:21] = True
    with h5py.File(test_file, "r+") as f:  # as fastMRI's test/challenge files: masked k-space, a mask, no target
        f["kspace"][...] = f["kspace"][()] * cols
        del f["reconstruction_esc"]
        f.create_dataset("mask", data=cols.astype(np.float32))
    cfg = config(test_file, tmp_path / "run")
    res = run(tmp_path, cfg)
    assert res.exit_code == 0, res.output
    case = tmp_path / "run" / "cases" / "file_brain_test__1"
    assert not (case / "truth.npy").exists()
    assert np.array_equal(np.load(case / "mask.npy")[0], cols)  # the file's mask, not a drawn one
    assert np.load(case / "fista_tv.npy").shape == (32, 32)  # cropped to the header's reconSpace
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert report["measurement"]["mask"] == "file"
    assert all(r["psnr"] is None and r["reference"] is False for r in report["rows"])
    with h5py.File(tmp_path / "run" / "recon" / "fista_tv" / "file_brain_test.h5") as f:
        assert f["reconstruction"].shape == (4, 32, 32)  # a prediction file for the challenge
