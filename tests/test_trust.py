"""Runs you can trust: no stale results merged, one writer per folder, non-finite numbers are errors,
evaluate never destroys a report, nothing left behind on bad input, duplicate YAML keys refused, output
for scripts (pipes and --json)."""

from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from conftest import quick_mri_config
from genrecon.pipeline import RunLock, RunLockedError
from genrecon.reconstructors.base import Reconstructor
from genrecon.registry import RECONSTRUCTORS
from test_cli import invoke, write_cfg  # the CLI helpers of the end-to-end tests


def strict_json(path: Path) -> dict:
    """Parse JSON refusing the NaN / Infinity tokens Python's json would accept."""
    def refuse(token):
        raise AssertionError(f"{path} holds a bare {token}")

    return json.loads(path.read_text(), parse_constant=refuse)


def cases_of(out: Path) -> list[Path]:
    return sorted(p for p in (out / "cases").iterdir() if p.is_dir())


# ---------------------------------------------------------------------------------------------------
# 1. stale results are never merged
# ---------------------------------------------------------------------------------------------------
def test_other_settings_into_the_same_folder_are_refused_naming_the_keys(tmp_path):
    out = tmp_path / "run"
    base = quick_mri_config(out, data={"source": "phantom:ellipses", "params": {"size": 32, "count": 3},
                                       "normalize": "max", "slices": "0:2"})
    base["reconstructors"] = [{"name": "zero_filled"}]
    assert invoke("reconstruct", "--config", write_cfg(tmp_path, base), "-q").exit_code == 0
    before = {p.name: (p / "zero_filled.npy").read_bytes() for p in cases_of(out)}

    changed = yaml.safe_load(yaml.safe_dump(base))
    changed["simulate"]["mask"]["acceleration"] = 8
    changed["data"]["slices"] = "0:3"
    res = invoke("reconstruct", "--config", write_cfg(tmp_path, changed, "b.yaml"), "-q")
    assert res.exit_code == 2, res.output
    msg = res.output.replace("\n", "")
    assert "simulate.mask.acceleration (4 -> 8)" in msg and "data.slices (0:2 -> 0:3)" in msg
    assert "--overwrite" in msg and "Traceback" not in msg
    # nothing was touched
    assert {p.name: (p / "zero_filled.npy").read_bytes() for p in cases_of(out)} == before
    assert yaml.safe_load((out / "config.yaml").read_text())["simulate"]["mask"]["acceleration"] == 4

    # the same config resumes; --overwrite replaces: the report holds only 8x cases, three of them
    assert invoke("reconstruct", "--config", write_cfg(tmp_path, base), "-q").exit_code == 0
    res = invoke("reconstruct", "--config", write_cfg(tmp_path, changed, "b.yaml"), "-q", "--overwrite")
    assert res.exit_code == 0, res.output
    report = strict_json(out / "report.json")
    assert report["cases"] == 3 and report["stale"] == []
    assert report["measurement"]["acceleration"] > 6  # realised 8x, not an average with 4x cases


def test_evaluate_counts_only_results_of_the_folders_config(tmp_path):
    out = tmp_path / "run"
    cfg = quick_mri_config(out, data={"source": "phantom:ellipses", "params": {"size": 32, "count": 2},
                                      "normalize": "max"})
    assert invoke("reconstruct", "--config", write_cfg(tmp_path, cfg), "-q").exit_code == 0
    # a case made with other settings (e.g. copied in, or an edited config.yaml): its hash differs
    first = cases_of(out)[0]
    rec = json.loads((first / "case.json").read_text())
    rec["hash"] = "0" * 16
    (first / "case.json").write_text(json.dumps(rec))
    second = cases_of(out)[1]
    mrec = json.loads((second / "fista_tv.json").read_text())
    mrec["hash"] = "1" * 16
    (second / "fista_tv.json").write_text(json.dumps(mrec))
    res = invoke("evaluate", out)
    assert res.exit_code == 0, res.output
    report = strict_json(out / "report.json")
    assert report["cases"] == 1
    assert report["summary"]["zero_filled"]["cases"] == 1 and "fista_tv" not in report["summary"]
    second_key = json.loads((second / "case.json").read_text())["key"]
    assert {(s["case"], s["method"]) for s in report["stale"]} == {(rec["key"], None), (second_key, "fista_tv")}
    assert "stale" in res.output


def test_adding_a_method_to_a_run_keeps_the_finished_ones(tmp_path):
    out = tmp_path / "run"
    cfg = quick_mri_config(out)
    cfg["reconstructors"] = [{"name": "zero_filled"}]
    assert invoke("reconstruct", "--config", write_cfg(tmp_path, cfg), "-q").exit_code == 0
    case = cases_of(out)[0]
    t = (case / "zero_filled.json").stat().st_mtime_ns
    cfg["reconstructors"].append({"name": "fista_tv", "params": {"tv_weight": 0.005, "n_iter": 5}})
    assert invoke("reconstruct", "--config", write_cfg(tmp_path, cfg), "-q").exit_code == 0
    assert (case / "zero_filled.json").stat().st_mtime_ns == t
    assert set(strict_json(out / "report.json")["summary"]) == {"zero_filled", "fista_tv"}


# ---------------------------------------------------------------------------------------------------
# 2. one writer per run folder
# ---------------------------------------------------------------------------------------------------
def _hold(folder: str, shard: tuple[int, int], ready, release) -> None:
    with RunLock(folder, *shard):
        ready.set()
        release.wait(30)


@pytest.fixture
def holder():
    """Start a separate process that holds a run folder's lock until the test ends."""
    ctx = multiprocessing.get_context("spawn")
    procs = []

    def start(folder: Path, shard=(0, 1)):
        ready, release = ctx.Event(), ctx.Event()
        p = ctx.Process(target=_hold, args=(str(folder), shard, ready, release))
        p.start()
        assert ready.wait(60), "the lock holder did not start"
        procs.append((p, release))
        return p

    yield start
    for p, release in procs:
        release.set()
        p.join(30)


def test_a_second_writer_is_refused_and_shards_of_one_array_are_not(tmp_path, holder):
    out = tmp_path / "run"
    p = holder(out)
    res = invoke("reconstruct", "--config", write_cfg(tmp_path, quick_mri_config(out)), "-q")
    assert res.exit_code == 1, res.output
    assert f"pid {p.pid}" in res.output and "Traceback" not in res.output
    assert not (out / "cases").exists()
    assert (out / ".lock").exists()  # the refused writer did not clean up the holder's (new) folder
    with pytest.raises(RunLockedError):  # a shard overlaps a whole run
        RunLock(out, 1, 2).acquire()


def test_shards_of_one_array_share_a_folder_other_splits_do_not(tmp_path, holder):
    out = tmp_path / "run"
    holder(out, (0, 2))
    with RunLock(out, 1, 2):  # disjoint cases: fine
        pass
    for shard in ((0, 2), (0, 1), (1, 3)):
        with pytest.raises(RunLockedError, match="shard 0/2"):
            RunLock(out, *shard).acquire()


def test_a_killed_writers_lock_is_taken_over(tmp_path):
    out = tmp_path / "run"
    child = subprocess.Popen([sys.executable, "-c",
                              "import sys, time; from genrecon.pipeline import RunLock; "
                              "RunLock(sys.argv[1]).acquire(); print('held', flush=True); time.sleep(60)", str(out)],
                             stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "held"
    with pytest.raises(RunLockedError):
        RunLock(out).acquire()
    child.kill()  # kill -9: no chance to release
    child.wait()
    assert json.loads((out / ".lock").read_text())["pid"] == child.pid
    res = invoke("reconstruct", "--config", write_cfg(tmp_path, quick_mri_config(out)), "-q")
    assert res.exit_code == 0, res.output
    assert not (out / ".lock").exists()  # released at the end


# ---------------------------------------------------------------------------------------------------
# 3. non-finite numbers are errors
# ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("key, text", [
    ("reconstructors.1.params.tv_weight", ".nan"),
    ("reconstructors.1.params.tv_weight", ".inf"),
    ("evaluate.data_range", ".nan"),
    ("simulate.noise.sigma", "-.inf"),
    ("data.params.size", ".nan"),
])
def test_non_finite_config_values_are_refused(tmp_path, key, text):
    out = tmp_path / "run"
    res = invoke("reconstruct", "--config", write_cfg(tmp_path, quick_mri_config(out)), "--set", f"{key}={text}")
    assert res.exit_code == 2, res.output
    assert key in res.output and "finite" in res.output and "Traceback" not in res.output
    assert not out.exists()


class _NaNAfter(Reconstructor):
    """Test plugin: the adjoint, with NaN in its first pixel."""

    def __init__(self, *, pixels: int = 1):
        super().__init__()
        self.pixels = pixels

    def reconstruct(self, y, op, *, x0=None, generator=None, callback=None):
        x = op.adjoint(y).clone()
        x.view(-1)[: self.pixels] = float("nan")
        self.info["step"] = float("inf")
        return x


@pytest.fixture
def nan_plugin():
    RECONSTRUCTORS.add("test_nan", _NaNAfter)
    yield "test_nan"
    RECONSTRUCTORS._items.pop("test_nan", None)


def test_a_nan_reconstruction_is_a_failed_result_not_a_number(tmp_path, nan_plugin):
    out = tmp_path / "run"
    cfg = quick_mri_config(out)
    cfg["reconstructors"] = [{"name": "zero_filled"}, {"name": nan_plugin, "params": {"pixels": 3}}]
    res = invoke("reconstruct", "--config", write_cfg(tmp_path, cfg), "-q")
    assert res.exit_code == 1, res.output
    assert "test_nan failed" in res.output and "NaN or Inf in 3 of" in res.output
    assert "test_nan (failed on 1 of 1)" in res.output  # in the table
    report = strict_json(out / "report.json")
    row = next(r for r in report["rows"] if r["method"] == nan_plugin)
    assert row["status"] == "failed" and row["psnr"] is None and "NaN" in row["reason"]
    assert report["summary"]["zero_filled"]["psnr"] > 10
    case = cases_of(out)[0]
    assert not (case / f"{nan_plugin}.npy").exists()
    assert strict_json(case / f"{nan_plugin}.json")["step"] is None
    # the failed method is tried again on a rerun; evaluate says failed too (exit 1)
    assert invoke("evaluate", out).exit_code == 1


# ---------------------------------------------------------------------------------------------------
# 4. plugin parameters type-checked before any work
# ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("value, expected", [(2.5, "expected an integer"), ("ten", "expected an integer"),
                                             (True, "expected an integer")])
def test_plugin_parameter_types_are_checked_at_validation(tmp_path, value, expected):
    out = tmp_path / "run"
    cfg = quick_mri_config(out)
    cfg["reconstructors"][1]["params"]["n_iter"] = value
    res = invoke("reconstruct", "--config", write_cfg(tmp_path, cfg))
    assert res.exit_code == 2, res.output
    assert "reconstructors.1.params.n_iter" in res.output and expected in res.output
    assert "Traceback" not in res.output and not out.exists()


def test_a_reconstructors_mapping_is_a_config_error(tmp_path):
    out = tmp_path / "run"
    cfg = quick_mri_config(out)
    cfg["reconstructors"] = {"zero_filled": {}}
    res = invoke("reconstruct", "--config", write_cfg(tmp_path, cfg))
    assert res.exit_code == 2 and "reconstructors: expected list" in res.output, res.output
    assert "Traceback" not in res.output and not out.exists()


def test_a_prior_of_another_size_is_refused_before_any_method_runs(tmp_path):
    out = tmp_path / "run"
    cfg = quick_mri_config(out)  # 64x64 phantom; the shipped prior is 128x128
    cfg["reconstructors"] = [{"name": "zero_filled"},
                             {"name": "dps", "params": {"prior": "pretrained:brain-mri-128-diffusion", "steps": 2}}]
    # size fixed in the config: refused at validation
    cfg["data"]["size"] = 64
    res = invoke("reconstruct", "--config", write_cfg(tmp_path, cfg))
    assert res.exit_code == 2, res.output
    assert "reconstructors.1" in res.output and "128x128" in res.output and "data.size: 128" in res.output
    assert not out.exists()
    # size decided by the data: refused after loading the first case, before zero_filled writes anything
    del cfg["data"]["size"]
    res = invoke("reconstruct", "--config", write_cfg(tmp_path, cfg, "b.yaml"), "-q")
    assert res.exit_code == 2, res.output
    assert "128x128" in res.output and "Traceback" not in res.output
    assert not out.exists()


# ---------------------------------------------------------------------------------------------------
# 5. undefined metrics
# ---------------------------------------------------------------------------------------------------
def test_a_constant_ground_truth_gives_undefined_metrics_not_a_crash(tmp_path):
    src = tmp_path / "zeros.npy"
    np.save(src, np.zeros((2, 32, 32), np.float32))
    out = tmp_path / "run"
    cfg = quick_mri_config(out, data={"source": str(src), "normalize": "none"})
    cfg["reconstructors"] = [{"name": "zero_filled"}]
    res = invoke("reconstruct", "--config", write_cfg(tmp_path, cfg), "-q")
    assert res.exit_code == 0, res.output
    assert "undefined metric" in res.output and "data_range is 0" in res.output
    report = strict_json(out / "report.json")
    assert report["cases"] == 2 and all(r["psnr"] is None and r["ssim"] is None for r in report["rows"])
    assert all("psnr" in r["undefined"] for r in report["rows"])


# ---------------------------------------------------------------------------------------------------
# 6. evaluate never destroys a good report
# ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("damage", ["case_json", "method_json", "truncated_npy"])
def test_evaluate_names_unreadable_files_and_keeps_the_report(tmp_path, damage):
    out = tmp_path / "run"
    cfg = quick_mri_config(out, data={"source": "phantom:ellipses", "params": {"size": 32, "count": 2},
                                      "normalize": "max"})
    assert invoke("reconstruct", "--config", write_cfg(tmp_path, cfg), "-q").exit_code == 0
    good = (out / "report.json").read_bytes()
    case = cases_of(out)[1]
    if damage == "case_json":
        bad = case / "case.json"
        bad.write_text('{"key": "trunc')
    elif damage == "method_json":
        bad = case / "fista_tv.json"
        bad.write_text("")
    else:
        bad = case / "fista_tv.npy"
        bad.write_bytes(bad.read_bytes()[:200])
    res = invoke("evaluate", out)
    assert res.exit_code == 1, res.output
    assert bad.name in res.output and "cannot be read" in res.output and "Traceback" not in res.output
    assert (out / "report.json").read_bytes() == good


# ---------------------------------------------------------------------------------------------------
# 7. nothing left behind on data errors
# ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["nan_npy", "broken_png"])
def test_a_data_error_leaves_no_output_folder(tmp_path, kind):
    if kind == "nan_npy":
        src = tmp_path / "scan.npy"
        a = np.ones((3, 32, 32), np.float32)
        a[0, 3, 3] = np.nan
        np.save(src, a)
    else:
        src = tmp_path / "scan.png"
        src.write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 20)
    out = tmp_path / "run"
    res = invoke("reconstruct", "--config", write_cfg(tmp_path, quick_mri_config(out, data={"source": str(src)})), "-q")
    assert res.exit_code == 1, res.output
    assert src.name in res.output and "Traceback" not in res.output
    assert not out.exists()


# ---------------------------------------------------------------------------------------------------
# 8. duplicate YAML keys
# ---------------------------------------------------------------------------------------------------
def test_a_repeated_yaml_key_is_an_error(tmp_path):
    out = tmp_path / "run"
    text = yaml.safe_dump(quick_mri_config(out))
    text = text.replace("seed: 0\n", "seed: 0\nseed: 5\n")
    p = tmp_path / "dup.yaml"
    p.write_text(text)
    res = invoke("reconstruct", "--config", p)
    assert res.exit_code == 2, res.output
    assert "duplicate key 'seed'" in res.output and not out.exists()


# ---------------------------------------------------------------------------------------------------
# 10. output for scripts
# ---------------------------------------------------------------------------------------------------
def test_piped_output_is_not_cut_and_json_is_offered():
    env = {**os.environ, "COLUMNS": "80"}
    out = subprocess.run([sys.executable, "-m", "genrecon.cli.main", "priors"], capture_output=True, text=True,
                         env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "pretrained:brain-mri-128-diffusion" in out.stdout and "…" not in out.stdout
    res = invoke("priors", "--json")
    assert res.exit_code == 0
    names = [p["name"] for p in json.loads(res.stdout)["priors"]]
    assert "pretrained:head-ct-128-diffusion" in names
    res = invoke("list", "reconstructors", "--json")
    doc = json.loads(res.stdout)
    fista = next(r for r in doc["reconstructors"] if r["name"] == "fista_tv")
    n_iter = next(p for p in fista["parameters"] if p["name"] == "n_iter")
    assert {"name": "n_iter", "required": False, "default": 100}.items() <= n_iter.items()  # + type, doc with Params
    dps = next(r for r in doc["reconstructors"] if r["name"] == "dps")
    steps = next(p for p in dps["parameters"] if p["name"] == "steps")
    assert steps["default"] == 100 and steps["type"] == "int" and "network evaluations" in steps["doc"]


def test_deprecated_parameter_names_are_said_not_hidden(tmp_path):
    out = tmp_path / "run"
    cfg = quick_mri_config(out)
    cfg["reconstructors"][1]["params"] = {"lam": 0.005, "n_iter": 5}  # the name before tv_weight
    res = invoke("reconstruct", "--config", write_cfg(tmp_path, cfg), "--dry-run")
    assert res.exit_code == 0, res.output
    assert "deprecated:" in res.output and "reconstructors.1.params" in res.output and "tv_weight" in res.output


def test_ct_volume_max_of_a_slice_subset_is_the_attenuation_maximum_of_the_whole_volume(tmp_path):
    """data_range volume_max on CT in HU with only some slices: the whole volume's maximum of the reference the
    simulation makes (attenuation), not of the HU image (that gave PSNR > 100 dB)."""
    import numpy as np

    base = {"version": 1, "seed": 0, "device": "cpu", "threads": 1,
            "data": {"source": "sample:head-ct", "size": 64, "normalize": "none"},
            "simulate": {"modality": "ct", "angles": {"kind": "sparse", "n_views": 20}, "hu_to_mu": {"kind": "hu"},
                         "noise": {"kind": "none"}},
            "reconstructors": [{"name": "fbp"}], "evaluate": {"data_range": "volume_max"}}
    reports = {}
    for slices in ("all", "middle"):
        cfg = {**base, "data": {**base["data"], "slices": slices}, "output": {"dir": str(tmp_path / slices)}}
        res = invoke("reconstruct", "--config", write_cfg(tmp_path, cfg, f"{slices}.yaml"), "--quiet")
        assert res.exit_code == 0, res.output
        reports[slices] = json.loads((tmp_path / slices / "report.json").read_text())
    mu_max = max(float(np.abs(np.load(p)).max()) for p in (tmp_path / "all" / "cases").glob("*/truth.npy"))
    assert reports["middle"]["rows"][0]["data_range"] == pytest.approx(mu_max, rel=1e-6)
    assert reports["middle"]["rows"][0]["psnr"] < 60
