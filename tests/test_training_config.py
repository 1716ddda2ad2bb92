"""train-prior configuration: strict parsing, every problem at once, --set overrides, shipped configs."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from genrecon.errors import ConfigError
from genrecon.training.config import (
    DiffusionModel,
    GeneratorModel,
    apply_overrides,
    config_to_dict,
    load_train_config,
    parse_train_config,
)

ROOT = Path(__file__).resolve().parents[1]
MINIMAL = {"version": 1, "kind": "diffusion", "data": {"path": "x.h5", "size": 32}, "output": {"dir": "runs/x"}}


def problems_of(raw) -> list[str]:
    with pytest.raises(ConfigError) as err:
        parse_train_config(raw)
    return err.value.problems


def test_minimal_config_defaults():
    cfg = parse_train_config(MINIMAL)
    assert isinstance(cfg.model, DiffusionModel) and cfg.model.schedule == "vp"
    assert cfg.train.lr > 0 and cfg.export_path == Path("runs/x/prior.pt")
    gen = parse_train_config({**MINIMAL, "kind": "generator"})
    assert isinstance(gen.model, GeneratorModel)


def test_all_problems_collected_with_did_you_mean():
    raw = {**MINIMAL, "train": {"lr": -1.0, "stpes": 3, "batch_size": 0}, "augmnt": {}, "device": "gpu"}
    found = problems_of(raw)
    assert "unknown key 'augmnt' (did you mean 'augment'?)" in found
    assert "train: unknown key 'stpes' (did you mean 'steps'?)" in found
    assert "train.lr: must be > 0, got -1.0" in found
    assert "train.batch_size: must be >= 1, got 0" in found
    assert any(p.startswith("device:") for p in found)
    assert len(found) == 5


def test_model_section_follows_kind():
    found = problems_of({**MINIMAL, "model": {"latent_dim": 16}})
    assert found == ["model: unknown key 'latent_dim'"]
    found = problems_of({**MINIMAL, "kind": "generator", "model": {"latent_dimm": 16, "recon": "l1"}})
    assert "model: unknown key 'latent_dimm' (did you mean 'latent_dim'?)" in found
    assert any(p.startswith("model.recon: 'l1' is not one of") for p in found)


def test_missing_required_and_bad_kind():
    found = problems_of({"version": 2, "kind": "gan"})
    assert any("version" in p for p in found)
    assert any(p.startswith("kind: 'gan' is not one of") for p in found)
    assert "missing required key 'data'" in found and "missing required key 'output'" in found


def test_cross_field_size_and_attention():
    found = problems_of({**MINIMAL, "data": {"path": "x", "size": 34}, "model": {"channel_mults": [1, 2, 2]}})
    assert any("data.size 34 is not a multiple of 4" in p for p in found)
    found = problems_of({**MINIMAL, "model": {"channel_mults": [1, 2], "attention_levels": [3, -3]}})
    assert any("attention_levels [3, -3] outside the 2 levels" in p for p in found)


def test_spatial_latent_size_must_match_the_grid():
    gen = {**MINIMAL, "kind": "generator", "data": {"path": "x", "size": 32}}
    cfg = parse_train_config({**gen, "model": {"latent_channels": 4, "latent_dim": 64, "channel_mults": [1, 2, 4]}})
    assert cfg.model.arch_params()["latent_channels"] == 4
    found = problems_of({**gen, "model": {"latent_channels": 4, "latent_dim": 128, "channel_mults": [1, 2, 4]}})
    assert found == ["model.latent_dim must be latent_channels x (data.size / 2^len(channel_mults))^2 = 4 x 4^2 = "
                     "64 with a spatial latent; got 128"]


def test_overrides_yaml_values(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(MINIMAL))
    cfg = load_train_config(path, ["train.lr=1e-4", "model.channel_mults=[1, 2]", "train.max_minutes=0.5",
                                   "augment.flips=true", "output.export=out/p.pt"])
    assert cfg.train.lr == 1e-4 and cfg.model.channel_mults == (1, 2) and cfg.train.max_minutes == 0.5
    assert cfg.augment.flips is True and cfg.export_path == Path("out/p.pt")
    with pytest.raises(ConfigError) as err:
        load_train_config(path, ["train.lr", "train.lr=-2", "version.x=1"])
    found = err.value.problems
    assert any("expected KEY=VALUE" in p for p in found)
    assert "--set version.x: 'version' is a value, not a section" in found
    assert "train.lr: must be > 0, got -2.0" in found


def test_yaml_exponent_floats(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("version: 1\nkind: diffusion\ndata: {path: x.h5, size: 32}\noutput: {dir: r}\ntrain: {lr: 1e-4}\n")
    assert load_train_config(path).train.lr == 1e-4


def test_apply_overrides_creates_sections():
    raw: dict = {}
    assert apply_overrides(raw, ["a.b.c=3", "d=text with spaces"]) == []
    assert raw == {"a": {"b": {"c": 3}}, "d": "text with spaces"}


def test_file_errors(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_train_config(tmp_path / "none.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: [1, 2\nb: 3\n")
    with pytest.raises(ConfigError, match="not valid YAML \\(line"):
        load_train_config(bad)
    bad.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="mapping of sections at the top level"):
        load_train_config(bad)


def test_resolved_config_round_trips():
    cfg = parse_train_config({**MINIMAL, "model": {"channel_mults": [1, 2]}})
    plain = config_to_dict(cfg)
    yaml.safe_dump(plain)  # plain types only
    assert parse_train_config(plain) == cfg


@pytest.mark.parametrize("name", ["brain_diffusion", "brain_generator", "ct_diffusion", "ct_generator", "tiny"])
def test_shipped_configs_parse(name):
    cfg = load_train_config(ROOT / "configs" / f"train_prior_{name}.yaml")
    if name != "tiny":
        modality = "brain-mri" if name.startswith("brain") else "head-ct"
        assert cfg.export_path == Path(f"genrecon/data/priors/{modality}-128-{cfg.kind}.pt")
        assert cfg.data.size == 128 and cfg.output.name == f"{modality}-128-{cfg.kind}"


def test_module_entry_reports_config_errors(tmp_path, capsys):
    from genrecon.training.launch import main

    assert main(["--config", str(tmp_path / "none.yaml")]) == 2
    assert "not found" in capsys.readouterr().err


@pytest.mark.parametrize("path", sorted((ROOT / "configs").glob("train_prior_*.yaml")), ids=lambda p: p.stem)
def test_every_training_config_parses_and_its_init_from_fits(path):
    """Each shipped training config validates; one that continues a shipped prior (train.init_from) has that
    prior's architecture, so the run does not stop at its first step."""
    import torch

    from genrecon.priors.checkpoint import load_prior
    from genrecon.training.loop import make_task

    cfg = load_train_config(path)
    if cfg.train.init_from:
        prior, _ = load_prior(cfg.train.init_from, kind=cfg.kind, image_size=cfg.data.size)
        model = make_task(cfg).build(torch.Generator().manual_seed(0))
        model.load_state_dict({k: v.float() for k, v in prior.state_dict().items()})  # strict: same names, shapes
