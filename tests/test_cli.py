"""End-to-end CLI behaviour through typer's CliRunner: success, resume, overrides, and each kind of bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from typer.testing import CliRunner

from conftest import quick_mri_config
from genrecon.cli.main import app

runner = CliRunner()


def write_cfg(tmp_path: Path, cfg: dict, name: str = "cfg.yaml") -> Path:
    p = tmp_path / name
    p.write_text(yaml.safe_dump(cfg))
    return p


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def test_reconstruct_writes_reports_and_fista_beats_zero_filled(tmp_path):
    out = tmp_path / "run"
    res = invoke("reconstruct", "--config", write_cfg(tmp_path, quick_mri_config(out)), "--quiet")
    assert res.exit_code == 0, res.output
    for name in ("config.yaml", "report.json", "report.csv", "report.md"):
        assert (out / name).is_file()
    report = json.loads((out / "report.json").read_text())
    s = report["summary"]
    assert s["fista_tv"]["psnr"] > s["zero_filled"]["psnr"] + 2.0
    assert "data_range" in report["conventions"]
    assert "PSNR" in res.output and "fista_tv" in res.output and str(out.resolve()) in res.output.replace("\n", "")
    assert list((out / "cases").glob("*/panel.png"))
    # the resolved config is written and reproduces the run
    assert yaml.safe_load((out / "config.yaml").read_text())["reconstructors"][1]["params"]["tv_weight"] == 0.005
    # no temporary files left behind
    assert not [p for p in out.rglob("*") if ".tmp" in p.name]


def test_rerun_skips_done_cases_and_set_override_reruns_one_method(tmp_path):
    out = tmp_path / "run"
    cfg = write_cfg(tmp_path, quick_mri_config(out))
    assert invoke("reconstruct", "--config", cfg, "-q").exit_code == 0
    case = next((out / "cases").iterdir())
    zf_time = (case / "zero_filled.json").stat().st_mtime_ns
    ft_time = (case / "fista_tv.json").stat().st_mtime_ns
    assert invoke("reconstruct", "--config", cfg, "-q").exit_code == 0
    assert (case / "zero_filled.json").stat().st_mtime_ns == zf_time
    assert (case / "fista_tv.json").stat().st_mtime_ns == ft_time
    # other settings into the same folder: refused, naming the key, unless --overwrite
    res = invoke("reconstruct", "--config", cfg, "-q", "--set", "reconstructors.1.params.tv_weight=0.02")
    assert res.exit_code == 2, res.output
    assert "reconstructors.1.params.tv_weight (0.005 -> 0.02)" in res.output.replace("\n", "")
    assert (case / "fista_tv.json").stat().st_mtime_ns == ft_time
    res = invoke("reconstruct", "--config", cfg, "-q", "--set", "reconstructors.1.params.tv_weight=0.02", "--overwrite")
    assert res.exit_code == 0, res.output
    assert (case / "zero_filled.json").stat().st_mtime_ns == zf_time
    assert (case / "fista_tv.json").stat().st_mtime_ns != ft_time
    assert yaml.safe_load((out / "config.yaml").read_text())["reconstructors"][1]["params"]["tv_weight"] == 0.02


def test_same_seed_same_result_other_seed_other_mask(tmp_path):
    outs = []
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        cfg = quick_mri_config(tmp_path / name, seed=seed)
        assert invoke("reconstruct", "--config", write_cfg(tmp_path, cfg, f"{name}.yaml"), "-q").exit_code == 0
        outs.append(np.load(next((tmp_path / name / "cases").iterdir()) / "zero_filled.npy"))
    assert np.array_equal(outs[0], outs[1])
    assert not np.array_equal(outs[0], outs[2])


def test_evaluate_recomputes_the_same_metrics(tmp_path):
    out = tmp_path / "run"
    assert invoke("reconstruct", "--config", write_cfg(tmp_path, quick_mri_config(out)), "-q").exit_code == 0
    before = json.loads((out / "report.json").read_text())["summary"]
    (out / "report.json").unlink()
    res = invoke("evaluate", out)
    assert res.exit_code == 0, res.output
    after = json.loads((out / "report.json").read_text())["summary"]
    assert after["fista_tv"]["psnr"] == pytest.approx(before["fista_tv"]["psnr"])
    assert "fista_tv" in res.output


def test_dry_run_validates_and_writes_nothing(tmp_path):
    out = tmp_path / "run"
    res = invoke("reconstruct", "--config", write_cfg(tmp_path, quick_mri_config(out)), "--dry-run")
    assert res.exit_code == 0, res.output
    assert "config OK" in res.output
    assert not out.exists()


def test_all_config_problems_reported_at_once(tmp_path):
    out = tmp_path / "run"
    cfg = quick_mri_config(out)
    cfg["simulate"]["mask"]["acceleration"] = 0.5
    cfg["simulate"]["noise"]["sigma"] = -1
    cfg["reconstructors"].append({"name": "fista_tvv"})
    cfg["reconstructors"][1]["params"]["lamda"] = 0.1
    cfg["evaluate"]["metrix"] = ["psnr"]
    res = invoke("reconstruct", "--config", write_cfg(tmp_path, cfg))
    assert res.exit_code == 2
    msg = res.output
    assert "Traceback" not in msg
    assert "acceleration" in msg
    assert "sigma" in msg and ">= 0" in msg
    assert "did you mean 'fista_tv'" in msg
    assert "did you mean 'lam'" in msg
    assert "did you mean 'metrics'" in msg
    assert not out.exists()


@pytest.mark.parametrize(
    "mutate, expected",
    [
        (lambda c: c.update(data={"source": "missing/scan.nii.gz"}), "not found"),
        (lambda c: c.update(device="tpu"), "device"),
        (lambda c: c["simulate"].update(modality="pet"), "unknown modality 'pet'"),
        (lambda c: c.update(version=7), "version"),
        (lambda c: c.update(reconstructors=[]), "at least one"),
    ],
)
def test_bad_configs_exit_2_with_one_message(tmp_path, mutate, expected):
    out = tmp_path / "run"
    cfg = quick_mri_config(out)
    mutate(cfg)
    res = invoke("reconstruct", "--config", write_cfg(tmp_path, cfg))
    assert res.exit_code == 2, res.output
    assert expected in res.output and "Traceback" not in res.output
    assert not out.exists()


def test_bad_yaml_missing_config_and_bad_set(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("data: [unclosed\n")
    res = invoke("reconstruct", "--config", p)
    assert res.exit_code == 2 and "not valid YAML" in res.output
    res = invoke("reconstruct", "--config", tmp_path / "nope.yaml")
    assert res.exit_code == 2 and "not found" in res.output
    good = write_cfg(tmp_path, quick_mri_config(tmp_path / "run"))
    res = invoke("reconstruct", "--config", good, "--set", "reconstructors.9.params.tv_weight=1")
    assert res.exit_code == 2 and "not an index" in res.output
    res = invoke("reconstruct", "--config", good, "--set", "nonsense")
    assert res.exit_code == 2 and "KEY=VALUE" in res.output


def test_corrupt_input_file_exit_1_names_file_and_writes_nothing(tmp_path):
    bad = tmp_path / "scan.nii.gz"
    bad.write_bytes(b"this is not a nifti file at all" * 10)
    out = tmp_path / "run"
    cfg = quick_mri_config(out)
    cfg["data"] = {"source": str(bad), "normalize": "max"}
    res = invoke("reconstruct", "--config", write_cfg(tmp_path, cfg), "-q")
    assert res.exit_code == 1, res.output
    assert "scan.nii.gz" in res.output and "Traceback" not in res.output
    assert not list(out.rglob("*.npy")) if out.exists() else True


def test_evaluate_on_non_run_folder(tmp_path):
    res = invoke("evaluate", tmp_path)
    assert res.exit_code == 1 and "not a genrecon run folder" in res.output


def test_list_shows_plugins_with_docs():
    res = invoke("list")
    assert res.exit_code == 0, res.output
    for name in ("fista_tv", "zero_filled", "random", "equispaced", "nifti", "fastmri", "mri_single"):
        assert name in res.output
    assert invoke("list", "maskz").exit_code == 2


def test_shards_cover_each_case_once_and_merge_to_single_run(tmp_path):
    base = quick_mri_config(tmp_path / "single")
    base["data"] = {"source": "phantom:ellipses", "params": {"size": 48, "count": 5}, "normalize": "max"}
    base["reconstructors"] = [{"name": "zero_filled"}]
    assert invoke("reconstruct", "--config", write_cfg(tmp_path, base, "s.yaml"), "-q").exit_code == 0
    sharded = dict(base, output={"dir": str(tmp_path / "sharded"), "save": ["npy"]})
    cfgp = write_cfg(tmp_path, sharded, "sh.yaml")
    for i in range(3):
        assert invoke("reconstruct", "--config", cfgp, "-q", "--shard", f"{i}/3").exit_code == 0
    assert invoke("evaluate", tmp_path / "sharded").exit_code == 0
    a = json.loads((tmp_path / "single" / "report.json").read_text())
    b = json.loads((tmp_path / "sharded" / "report.json").read_text())
    assert a["cases"] == b["cases"] == 5
    rows_a = sorted((r["case"], r["psnr"]) for r in a["rows"])
    rows_b = sorted((r["case"], r["psnr"]) for r in b["rows"])
    assert rows_a == rows_b
    assert invoke("reconstruct", "--config", cfgp, "--shard", "3/3").exit_code == 2


def test_nifti_output_keeps_the_source_affine(tmp_path):
    import nibabel as nib

    src = tmp_path / "vol.nii.gz"
    vol = np.zeros((32, 32, 6), dtype=np.float32)
    vol[8:24, 10:22, :] = 1.0
    affine = np.diag([0.9, 0.9, 2.0, 1.0])
    affine[:3, 3] = [-10, 5, 3]
    nib.save(nib.Nifti1Image(vol, affine), src)
    cfg = quick_mri_config(tmp_path / "run")
    cfg["data"] = {"source": str(src), "slices": "1:5:2", "normalize": "volume_max"}
    cfg["output"]["save"] = ["npy", "nifti", "h5"]
    assert invoke("reconstruct", "--config", write_cfg(tmp_path, cfg), "-q").exit_code == 0
    out = nib.load(tmp_path / "run" / "recon" / "vol_fista_tv.nii.gz")
    truth = nib.load(tmp_path / "run" / "recon" / "vol_truth.nii.gz")
    assert out.shape[2] == 2 and (tmp_path / "run" / "recon" / "zero_filled" / "vol.h5").is_file()  # fastMRI layout
    # world positions of the two written slices are those of source slices 1 and 3
    for n, k in enumerate((1, 3)):
        centre_out = out.affine @ np.array([16, 16, n, 1.0])
        src_img = nib.load(src)
        vox = np.linalg.solve(src_img.affine, centre_out)
        assert abs(vox[2] - k) < 1e-6
    # the written ground truth is the source data at those positions (normalised by its max, 1)
    t = np.asarray(truth.dataobj)
    assert np.isclose(t.max(), 1.0) and np.isclose(t.sum(), 2 * vol[:, :, 1].sum())
    # the fastMRI-layout file carries the geometry and the intensity convention as attributes
    import h5py

    with h5py.File(tmp_path / "run" / "recon" / "zero_filled" / "vol.h5") as f:
        assert np.allclose(f.attrs["pixel_spacing"], [0.9, 0.9]) and list(f.attrs["slices"]) == [1, 3]
        assert np.allclose(np.asarray(json.loads(f.attrs["affine"]))[:3, 3], out.affine[:3, 3])
        assert json.loads(f.attrs["normalisation"])["mode"] == "volume_max"


@pytest.mark.parametrize("modality", ["mri", "ct"])
def test_check_operator_reports_a_matched_adjoint(tmp_path, modality):
    cfg = quick_mri_config(tmp_path / "run")
    if modality == "ct":
        cfg["simulate"] = {"modality": "ct", "angles": {"kind": "sparse", "n_views": 30}}
    res = invoke("check-operator", "--config", write_cfg(tmp_path, cfg), "--json", "--repeats", 2)
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert out["adjoint_error_float64"] < 1e-10 and out["adjoint_error_float32"] < 1e-4
    assert out["norm"] > 0 and out["forward_ms"] > 0 and out["adjoint_ms"] > 0
    assert not (tmp_path / "run").exists()


def test_ct_bad_geometry_one_line_errors(tmp_path):
    cfg = quick_mri_config(tmp_path / "run")
    cfg["simulate"] = {"modality": "ct", "angles": {"kind": "list", "values_deg": []}}
    res = invoke("reconstruct", "--config", write_cfg(tmp_path, cfg))
    assert res.exit_code == 2 and "Traceback" not in res.output
    cfg["simulate"] = {"modality": "ct", "angles": {"kind": "limited", "n_views": 10, "span_deg": 400}}
    res = invoke("reconstruct", "--config", write_cfg(tmp_path, cfg))
    assert res.exit_code == 2 and "span" in res.output and "Traceback" not in res.output
    cfg["simulate"] = {"modality": "ct", "geometry": "fan", "source_distance": 10, "detector_distance": 10}
    res = invoke("reconstruct", "--config", write_cfg(tmp_path, cfg), "-q")
    assert res.exit_code == 2 and "Traceback" not in res.output and "source" in res.output
    assert not list((tmp_path / "run").rglob("*.npy")) if (tmp_path / "run").exists() else True


def test_measured_sinogram_file_round_trip_nan_and_shape_errors(tmp_path):
    # simulate a noiseless sinogram, save it as a "measured" file, reconstruct from the file: same result
    cfg = quick_mri_config(tmp_path / "sim")
    cfg["data"] = {"source": "phantom:ellipses", "params": {"size": 32, "count": 2}, "normalize": "max"}
    cfg["simulate"] = {"modality": "ct", "angles": {"kind": "sparse", "n_views": 20}}
    cfg["reconstructors"] = [{"name": "fbp"}]
    assert invoke("reconstruct", "--config", write_cfg(tmp_path, cfg, "sim.yaml"), "-q").exit_code == 0
    from genrecon.config import load_config_dict
    from genrecon.pipeline import load_case, make_loader, plan
    from genrecon.simulate import ct as ct_sim

    c = load_config_dict(cfg)
    loader = make_loader(c)
    sinos = []
    for ref in plan(c, loader):
        meas = ct_sim.simulate(load_case(c, loader, ref, {}), c.simulate, generator=torch.Generator())
        sinos.append((meas.y / meas.op.scale)[0, 0].numpy())
    np.save(tmp_path / "sino.npy", np.stack(sinos))
    cfg["simulate"]["sinogram"] = str(tmp_path / "sino.npy")
    cfg["output"]["dir"] = str(tmp_path / "measured")
    res = invoke("reconstruct", "--config", write_cfg(tmp_path, cfg, "m.yaml"), "-q")
    assert res.exit_code == 0, res.output
    a = json.loads((tmp_path / "sim" / "report.json").read_text())["rows"]
    b = json.loads((tmp_path / "measured" / "report.json").read_text())["rows"]
    assert [r["psnr"] for r in a] == pytest.approx([r["psnr"] for r in b], abs=1e-3)
    assert json.loads((tmp_path / "measured" / "report.json").read_text())["measurement"]["measurement"] == "measured"
    assert json.loads((tmp_path / "sim" / "report.json").read_text())["measurement"]["measurement"] == "simulated"
    # NaN in the file: exit 1, one line naming the file, no reconstruction written
    bad = np.stack(sinos)
    bad[1, 3, 4] = np.nan
    np.save(tmp_path / "nan.npy", bad)
    cfg["simulate"]["sinogram"] = str(tmp_path / "nan.npy")
    cfg["output"]["dir"] = str(tmp_path / "nan")
    res = invoke("reconstruct", "--config", write_cfg(tmp_path, cfg, "n.yaml"), "-q")
    assert res.exit_code == 1 and "nan.npy" in res.output and "NaN" in res.output and "Traceback" not in res.output
    # slice 0 was reconstructed before slice 1 was read; nothing was written for the bad slice
    assert [p.parent.name for p in (tmp_path / "nan").rglob("fbp.npy")] == ["phantom_ellipses__0"]
    # a sinogram of another geometry, and noise on measured data: exit 2
    cfg["simulate"]["sinogram"] = str(tmp_path / "sino.npy")
    cfg["simulate"]["angles"] = {"kind": "sparse", "n_views": 30}
    cfg["output"]["dir"] = str(tmp_path / "shape")
    res = invoke("reconstruct", "--config", write_cfg(tmp_path, cfg, "s.yaml"), "-q")
    assert res.exit_code == 2 and "n_views" in res.output and "Traceback" not in res.output
    cfg["simulate"]["noise"] = {"kind": "poisson", "i0": 1000}
    res = invoke("reconstruct", "--config", write_cfg(tmp_path, cfg, "p.yaml"), "--dry-run")
    assert res.exit_code == 2 and "noise.kind: none" in res.output
