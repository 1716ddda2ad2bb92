"""The generative suite's settings are run configs (benchmarks/configs/generative/) read through the pipeline,
and the ``prepared`` loader serves genrecon's prepared datasets to it."""

from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from genrecon.benchmark import classical, generative
from genrecon.benchmark.common import Options
from genrecon.config import load_config_dict
from genrecon.errors import ConfigError, DataError
from genrecon.io.prepared import PreparedLoader
from genrecon.pipeline import make_loader, plan

ROOT = Path(__file__).resolve().parents[1]


def _prepared(path: Path, n_val: int, n_train: int = 3, size: int = 8) -> Path:
    """A file laid out as scripts/prepare_data.py writes them: ``train/images`` and ``val/images`` in [0, 1]."""
    rng = np.random.default_rng(0)
    with h5py.File(path, "w") as f:
        f["train/images"] = rng.uniform(0, 1, (n_train, size, size)).astype(np.float32)
        f["val/images"] = rng.uniform(0, 1, (n_val, size, size)).astype(np.float32)
        f.attrs["normalisation"] = "x = clip(I / p99.5, 0, 1)"
    return path


def test_prepared_loader_reads_the_chosen_split(tmp_path):
    path = str(_prepared(tmp_path / "set-8.h5", n_val=4, n_train=6))
    with h5py.File(path) as f:
        val2, train5 = f["val/images"][2], f["train/images"][5]
    val, train = PreparedLoader(split="val"), PreparedLoader(split="train")
    assert (val.n_slices(path), train.n_slices(path)) == (4, 6)
    case = val.load(path, 2)
    assert case.key == "set-8/2" and case.meta["units"] == "normalised" and case.meta["split"] == "val"
    assert torch.equal(case.image[0], torch.from_numpy(val2))
    assert torch.equal(train.load(path, 5).image[0], torch.from_numpy(train5))
    with pytest.raises(DataError, match="val slice 4 does not exist"):
        val.load(path, 4)
    with pytest.raises(ConfigError, match="split"):
        PreparedLoader(split="test")


def test_prepared_loader_refuses_other_files_in_one_line(tmp_path):
    with h5py.File(tmp_path / "kspace.h5", "w") as f:
        f["kspace"] = np.zeros((2, 4, 4), np.complex64)
    with pytest.raises(DataError, match="no 'val/images' stack.*loader: fastmri"):
        PreparedLoader().n_slices(str(tmp_path / "kspace.h5"))
    with pytest.raises(DataError, match="file not found"):
        PreparedLoader().n_slices(str(tmp_path / "none.h5"))


@pytest.mark.parametrize("setting", generative.SETTINGS)
def test_every_setting_is_a_valid_run_config_on_its_prepared_data(setting, tmp_path, monkeypatch):
    """Each file validates as written (priors load, parameters check) and plans its slices on a stand-in dataset
    with as many val slices as the real one needs (data/prepared is git-ignored)."""
    monkeypatch.chdir(ROOT)
    raw = generative.setting_config(setting)
    n_val = max(raw["data"]["slices"]) + 1
    raw["data"]["source"] = str(_prepared(tmp_path / Path(raw["data"]["source"]).name, n_val))
    cfg = load_config_dict(raw)
    assert len(plan(cfg, make_loader(cfg))) == len(raw["data"]["slices"]) == 12
    assert cfg.labels()[:2] in (["zero_filled", "fista_tv"], ["fbp", "fista_tv"])


def test_the_suite_overrides_only_what_its_options_say(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    data = tmp_path / "data"
    data.mkdir()
    _prepared(data / "head-ct-128.h5", n_val=9)
    opts = Options(out=tmp_path / "out", data_dir=data, seed=3, threads=1, quick=True)
    plan_ = generative.default_plan(opts)
    raw, missing = generative.run_config("ct30", plan_, opts, tmp_path / "run")
    written = generative.setting_config("ct30")
    assert not missing
    assert raw["data"]["source"] == str(data / "head-ct-128.h5") and raw["data"]["slices"] == [4]  # 1 interior slice
    assert (raw["seed"], raw["threads"], raw["output"]["dir"]) == (3, 1, str(tmp_path / "run"))
    for got, want in zip(raw["reconstructors"], written["reconstructors"]):
        changed = {k for k in want.get("params", {}) if got["params"][k] != want["params"][k]}
        expected = {"latent_inversion": {"restarts", "steps"}, "dps": {"steps", "samples"}}.get(want["name"], set())
        assert changed <= expected, (want.get("label"), changed)
        assert {k: v for k, v in got["params"].items() if k not in expected} == \
               {k: v for k, v in want.get("params", {}).items() if k not in expected}
    # a prior that cannot be read: that method is reported missing with the reason, the others run
    monkeypatch.setattr(generative, "prior_problem", lambda prior: "not shipped" if prior and "diffusion" in prior
                        else None)
    raw, missing = generative.run_config("ct30", plan_, opts, tmp_path / "run")
    assert {m["method"] for m in missing} == {"dps", "dps_project", "dps_project_tv"}
    assert all(m["missing"] == "not shipped" for m in missing)
    assert [r["name"] for r in raw["reconstructors"]] == ["fbp", "fista_tv"] + ["latent_inversion"] * 3


def test_the_unseen_subject_split_reads_whole_held_out_subjects(tmp_path, monkeypatch):
    """--split test_subject: the same configs on the subjects never trained on, 12 evenly spaced slices of them."""
    from genrecon.benchmark.images import slice_indices

    monkeypatch.chdir(ROOT)
    data = tmp_path / "data"
    data.mkdir()
    path = _prepared(data / "brain-mri-128.h5", n_val=200)
    with h5py.File(path, "a") as f:
        f["test_subject/images"] = np.zeros((23, 8, 8), np.float32)
    opts = Options(out=tmp_path / "out", data_dir=data, split="test_subject")
    raw, _ = generative.run_config("mri8", generative.default_plan(opts), opts, tmp_path / "run")
    assert raw["data"]["params"]["split"] == "test_subject"
    assert raw["data"]["slices"] == slice_indices(23, 12)
    cfg = load_config_dict(raw)
    assert len(plan(cfg, make_loader(cfg))) == 12


def test_benchmark_refuses_an_unknown_split(tmp_path):
    from typer.testing import CliRunner

    from genrecon.cli.main import app

    res = CliRunner().invoke(app, ["benchmark", "generative", "--split", "test", "--out", str(tmp_path / "o")])
    assert res.exit_code == 2 and "--split: 'test' is not one of" in res.output
    assert not (tmp_path / "o").exists()


# -- the classical suite ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("setting", list(classical.SETTINGS))
def test_every_classical_setting_is_a_run_config_with_labelled_weight_grids(setting, monkeypatch):
    """Each file validates as written (peers present here; a missing one is refused, tested in test_peers.py) and
    every TV method's grid entry is labelled ``<method>@<its weight>`` with one iteration budget for all."""
    from genrecon.peers.status import available

    monkeypatch.chdir(ROOT)
    raw = classical.setting_config(setting)
    needed = {classical.PEER_OF.get(rc["name"]) for rc in raw["reconstructors"]} - {None}
    if raw["simulate"].get("projector", "genrecon") != "genrecon":
        needed.add("astra")
    if not all(available(p) for p in needed):
        pytest.skip(f"needs {', '.join(sorted(needed))}")
    cfg = load_config_dict(raw, check_files=False, build=False)
    weights = {}
    for rc in cfg.reconstructors:
        w = classical.weight_of(rc.params)
        if w is not None:
            assert rc.label.startswith(f"{rc.name}@") and float(rc.label.split("@")[1]) == w
            weights.setdefault(rc.name, []).append(w)
    assert len({tuple(v) for v in weights.values()}) == 1  # every TV method gets the same grid
    assert {rc.params.get("n_iter") for rc in cfg.reconstructors if "n_iter" in rc.params} == {100}


def test_classical_overrides_keep_the_grid_entries_asked_for_and_report_missing_peers(tmp_path, monkeypatch):
    from genrecon.peers import status

    monkeypatch.chdir(ROOT)
    monkeypatch.setattr(status, "available", lambda peer: peer != "bart")
    plan = classical.Plan(size=64, resize="resize", slices=(1,), n_iter=7, weights={"mri": (0.01,), "ct": (1e-4,)})
    raw, methods, missing = classical.run_config("mri8", plan, Options(out=tmp_path), tmp_path / "run")
    assert [rc.get("label", rc["name"]) for rc in raw["reconstructors"]] == ["zero_filled", "fista_tv@0.01", "sigpy_tv@0.01"]
    assert all(rc["params"]["n_iter"] == 7 for rc in raw["reconstructors"][1:])
    assert raw["data"]["size"] == 64 and raw["data"]["slices"] == [1]
    assert [m["method"] for m in missing] == [f"{status.label('bart')} pics -R T"]
    assert methods["sigpy_tv@0.01"][1] == 0.01
