"""`genrecon train-prior` and `genrecon priors` through the CLI, and DPS with a trained prior in a run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import yaml
from typer.testing import CliRunner

from conftest import quick_mri_config
from genrecon.cli.main import app
from genrecon.training.data import write_prior_data

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()


def _train(tmp_path, *extra):
    rng = np.random.default_rng(0)
    data = write_prior_data(tmp_path / "tiny.h5", rng.uniform(0, 1, (12, 32, 32)), rng.uniform(0, 1, (4, 32, 32)))
    out = tmp_path / "train"
    args = ["train-prior", "--config", str(ROOT / "configs" / "train_prior_tiny.yaml"), "-q",
            "--set", f"data.path={data}", "--set", "train.steps=6", "--set", "train.sample_every=100", "--set", "train.checkpoint_every=3", "--set", f"output.dir={out}",
            "--set", f"output.export={out / 'prior.pt'}", *extra]
    return runner.invoke(app, args), out


def test_train_prior_resume_list_and_card(tmp_path):
    res, out = _train(tmp_path)
    assert res.exit_code == 0, res.output
    assert (out / "prior.pt").is_file() and (out / "loss.csv").is_file()
    # a second run without --resume refuses to overwrite; with --resume it continues
    res, _ = _train(tmp_path)
    assert res.exit_code != 0 and "resume" in res.output and "Traceback" not in res.output
    res, _ = _train(tmp_path, "--resume", "--set", "train.steps=8")
    assert res.exit_code == 0, res.output
    listed = runner.invoke(app, ["priors", "--dir", str(out)])
    assert listed.exit_code == 0 and "diffusion" in listed.output and "│ 8 " in listed.output
    assert "not priors" in listed.output and "checkpoint.pt" in listed.output
    card = runner.invoke(app, ["priors", str(out / "prior.pt")])
    assert card.exit_code == 0 and "diffusion" in card.output


def test_train_prior_bad_config_exit_2(tmp_path):
    res = runner.invoke(app, ["train-prior", "--config", str(ROOT / "configs" / "train_prior_tiny.yaml"),
                              "--set", "train.lr=-1", "--set", "trian.steps=3"])
    assert res.exit_code == 2
    assert "lr" in res.output and "did you mean 'train'" in res.output and "Traceback" not in res.output


def test_dps_with_a_trained_prior_in_a_run_and_wrong_size_error(tmp_path):
    res, out = _train(tmp_path)
    assert res.exit_code == 0, res.output
    cfg = quick_mri_config(tmp_path / "run")
    cfg["data"] = {"source": "phantom:shepp-logan", "params": {"size": 32}, "normalize": "max"}
    cfg["reconstructors"] = [{"name": "zero_filled"},
                             {"name": "dps", "params": {"prior": str(out / "prior.pt"), "steps": 4, "samples": 2,
                                                        "consistency": "project"}}]
    p = tmp_path / "c.yaml"
    p.write_text(yaml.safe_dump(cfg))
    res = runner.invoke(app, ["reconstruct", "--config", str(p), "-q"])
    assert res.exit_code == 0, res.output
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert report["summary"]["dps"]["cases"] == 1 and "coverage_2sigma" in report["rows"][1]
    assert list((tmp_path / "run" / "cases").glob("*/dps_std.npy"))
    # a prior of another size: a one-line error naming the fix, exit 2, before/while reconstructing
    cfg["data"]["params"] = {"size": 48}
    cfg["output"]["dir"] = str(tmp_path / "run2")
    p.write_text(yaml.safe_dump(cfg))
    res = runner.invoke(app, ["reconstruct", "--config", str(p), "-q"])
    assert res.exit_code == 2 and "set data.size: 32" in res.output and "Traceback" not in res.output
    # a generator-kind request of a diffusion prior
    cfg["reconstructors"] = [{"name": "latent_inversion", "params": {"prior": str(out / "prior.pt")}}]
    p.write_text(yaml.safe_dump(cfg))
    res = runner.invoke(app, ["reconstruct", "--config", str(p), "--dry-run"])
    assert res.exit_code == 2 and "generator" in res.output


def test_init_from_continues_an_exported_prior_and_refuses_another_architecture(tmp_path):
    import torch

    from genrecon.priors.checkpoint import load_prior

    res, out = _train(tmp_path)
    assert res.exit_code == 0, res.output
    src, _ = load_prior(out / "prior.pt")
    data = tmp_path / "tiny.h5"
    base = ["train-prior", "--config", str(ROOT / "configs" / "train_prior_tiny.yaml"), "-q",
            "--set", f"data.path={data}", "--set", "train.steps=1", "--set", "train.lr=1e-12",
            "--set", "train.warmup_steps=0", "--set", f"train.init_from={out / 'prior.pt'}"]
    res = runner.invoke(app, [*base, "--set", f"output.dir={tmp_path / 'cont'}",
                              "--set", f"output.export={tmp_path / 'cont' / 'prior.pt'}"])
    assert res.exit_code == 0, res.output
    cont, cont_meta = load_prior(tmp_path / "cont" / "prior.pt")
    src_steps = load_prior(out / "prior.pt")[1]["steps"]
    assert cont_meta["extra"]["init_steps"] == src_steps and cont_meta["steps"] == src_steps + 1  # the card's sum
    for (k, a), (_, b) in zip(src.state_dict().items(), cont.state_dict().items()):
        assert torch.allclose(a.float(), b.float(), atol=1e-5), k
    res = runner.invoke(app, [*base, "--set", f"output.dir={tmp_path / 'other'}", "--set", "model.base_channels=16",
                              "--set", f"output.export={tmp_path / 'other' / 'prior.pt'}"])
    assert res.exit_code == 1 and "another architecture" in res.output and "Traceback" not in res.output
