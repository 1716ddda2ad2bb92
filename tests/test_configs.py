"""Every shipped run config validates (what `genrecon reconstruct --dry-run` checks) and plans cases."""

from pathlib import Path

import pytest

from genrecon.config import load_config
from genrecon.pipeline import make_loader, plan

ROOT = Path(__file__).resolve().parents[1]
RUN_CONFIGS = sorted(p for p in (ROOT / "configs").glob("*.yaml")
                     if not p.name.startswith(("train_prior", "design_")))  # design configs: tests/test_design.py


def test_there_are_run_configs():
    names = {p.name for p in RUN_CONFIGS}
    assert {"quickstart_mri.yaml", "mri_brain_8x.yaml", "ct_sparse_view_60.yaml", "ct_limited_angle_90.yaml",
            "ct_low_dose.yaml"} <= names


#: configs whose data a script makes (git-ignored): validated on a small copy made here the same way
MADE_DATA = "data/fastmri_sim/"


def _made_data(tmp_path: Path, source: str) -> str:
    """A small stand-in for ``python scripts/make_fastmri_sample.py`` output, in ``tmp_path``."""
    import importlib.util

    import numpy as np

    spec = importlib.util.spec_from_file_location("_make_fastmri_sample", ROOT / "scripts" / "make_fastmri_sample.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.make_samples(tmp_path, np.random.default_rng(0).uniform(0, 1, (2, 32, 32)).astype(np.float32), coils=4)
    return str(tmp_path / Path(source).relative_to(MADE_DATA))


@pytest.mark.parametrize("path", RUN_CONFIGS, ids=lambda p: p.name)
def test_run_config_validates_and_plans(path, monkeypatch, tmp_path):
    import yaml

    monkeypatch.chdir(ROOT)
    source = str(yaml.safe_load(path.read_text())["data"]["source"])
    made = source.startswith(MADE_DATA) and not (ROOT / source).exists()
    cfg = load_config(path, [f"data.source={_made_data(tmp_path, source)}"] if made else [])
    assert plan(cfg, make_loader(cfg))


def test_fista_tv_lam_is_the_deprecated_name_of_tv_weight(tmp_path):
    """A config with fista_tv's old ``lam`` validates (with a DeprecationWarning naming tv_weight) and builds the
    method ``tv_weight`` builds, with the same result; both names at once are refused."""
    import torch

    from conftest import quick_mri_config
    from genrecon.config import built_methods, deprecations, load_config_dict
    from genrecon.errors import ConfigError
    from genrecon.operators import SingleCoilMRI
    from genrecon.phantoms import shepp_logan

    cfg = quick_mri_config(tmp_path / "run")
    cfg["reconstructors"] = [{"name": "fista_tv", "label": "old", "params": {"lam": 0.005, "n_iter": 20}},
                             {"name": "fista_tv", "label": "new", "params": {"tv_weight": 0.005, "n_iter": 20}}]
    loaded = load_config_dict(cfg)  # validation collects the warning for the CLI to show
    assert any("write tv_weight: 0.005" in note for note in deprecations(loaded))
    old, new = built_methods(loaded)
    assert old.tv_weight == new.tv_weight == 0.005
    op = SingleCoilMRI(torch.rand(32, 32, generator=torch.Generator().manual_seed(0)) < 0.4)
    y = op(shepp_logan(32).reshape(1, 1, 32, 32).to(torch.complex64))
    assert torch.equal(old(y, op), new(y, op))
    cfg["reconstructors"] = [{"name": "fista_tv", "params": {"lam": 0.005, "tv_weight": 0.005}}]
    with pytest.raises(ConfigError, match=r"reconstructors\.0\.params: .*give tv_weight only"):
        load_config_dict(cfg)
