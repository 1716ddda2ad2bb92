"""Every shipped run config validates (what `genrecon reconstruct --dry-run` checks) and plans cases."""

from pathlib import Path

import pytest

from genrecon.config import load_config
from genrecon.pipeline import make_loader, plan

ROOT = Path(__file__).resolve().parents[1]
RUN_CONFIGS = sorted(p for p in (ROOT / "configs").glob("*.yaml") if not p.name.startswith("train_prior"))


def test_there_are_run_configs():
    names = {p.name for p in RUN_CONFIGS}
    assert {"quickstart_mri.yaml", "mri_brain_8x.yaml", "ct_sparse_view_60.yaml", "ct_limited_angle_90.yaml",
            "ct_low_dose.yaml"} <= names


@pytest.mark.parametrize("path", RUN_CONFIGS, ids=lambda p: p.name)
def test_run_config_validates_and_plans(path, monkeypatch):
    monkeypatch.chdir(ROOT)
    cfg = load_config(path)
    assert plan(cfg, make_loader(cfg))
