"""genrecon.testing, the public contract checks: every registered operator, mask and reconstructor passes
them, they catch broken plugins, and the README's minimal plugin installs and runs end to end."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from conftest import quick_mri_config
from genrecon.errors import RegistryError
from genrecon.reconstructors import Reconstructor
from genrecon.registry import MASKS, OPERATORS, RECONSTRUCTORS, Registry
from genrecon.reconstructors.base import plugin_problems
from genrecon.testing import check_mask, check_operator, check_reconstructor

README = Path(__file__).resolve().parents[1] / "README.md"


@pytest.mark.parametrize("name", OPERATORS.names())
def test_every_registered_operator_passes_the_contract(name):
    assert check_operator(OPERATORS.get(name).example())["adjoint_error"] < 1e-5


def _column_file() -> str:
    """A saved column mask of the contract's width (64) for the ``file`` mask."""
    import tempfile

    import numpy as np

    path = Path(tempfile.mkdtemp(prefix="genrecon-mask-")) / "columns.npy"
    np.save(path, np.arange(64) % 4 == 0)
    return str(path)


MASK_PARAMS = {"radial": {"n_spokes": 16}, "file": {"path": _column_file()}}


@pytest.mark.parametrize("name", MASKS.names())
def test_every_registered_mask_passes_the_contract(name):
    make = MASKS.build(name, MASK_PARAMS.get(name, {"acceleration": 4}))
    facts = check_mask(make, random=name not in ("radial", "equispaced", "file"))
    assert 0 < facts["sampled_fraction"] <= 1


BUILT_IN = [
    ("zero_filled", {}, "mri", 16),
    ("zero_filled", {}, "ct", 16),
    ("fbp", {}, "ct", 16),
    ("fista_tv", {"tv_weight": 0.01, "n_iter": 5}, "mri", 16),
    ("fista_tv", {"tv_weight": 0.01, "n_iter": 5, "nonneg": True}, "ct", 16),
    ("dps", {"prior": "pretrained:brain-mri-128-diffusion", "steps": 3, "samples": 2}, "mri", 128),
    ("dps", {"prior": "pretrained:head-ct-128-diffusion", "steps": 3, "consistency": "project", "cg_iter": 2},
     "ct", 128),
    ("latent_inversion", {"prior": "pretrained:brain-mri-128-generator", "steps": 3, "restarts": 1}, "mri", 128),
]


@pytest.mark.parametrize("name, params, modality, size", BUILT_IN, ids=lambda v: str(v)[:24])
def test_built_in_reconstructors_pass_the_contract(name, params, modality, size):
    facts = check_reconstructor(RECONSTRUCTORS.build(name, params), modality=modality, size=size)
    assert isinstance(facts["info_keys"], list)


def test_the_reconstructor_check_catches_broken_methods():
    class WrongShape(Reconstructor):
        def reconstruct(self, y, op, *, x0=None, generator=None, callback=None):
            return op.adjoint(y)[..., :-1]

    class GlobalRng(Reconstructor):
        def reconstruct(self, y, op, *, x0=None, generator=None, callback=None):
            x = op.adjoint(y)
            return x + 1e-3 * torch.randn(x.shape, dtype=x.real.dtype)

    class NotFinite(Reconstructor):
        def reconstruct(self, y, op, *, x0=None, generator=None, callback=None):
            return op.adjoint(y) / 0

    for cls, message in ((WrongShape, "shape"), (GlobalRng, "global RNG"), (NotFinite, "not finite")):
        with pytest.raises(AssertionError, match=message):
            check_reconstructor(cls(), modality="mri")


def test_the_operator_check_catches_a_wrong_adjoint():
    from genrecon.operators.mri import SingleCoilMRI

    class Wrong(SingleCoilMRI):
        def _adjoint(self, y):
            return 1.01 * super()._adjoint(y)

    with pytest.raises(AssertionError, match="adjoint error"):
        check_operator(Wrong.example(16))


def test_registration_refuses_a_class_that_does_not_follow_the_contract():
    class Plain:  # what the README used to describe: keyword parameters and reconstruct(), no base class
        def __init__(self, *, factor: float = 0.5):
            self.factor = factor

        def reconstruct(self, y, op, *, x0=None, generator=None, callback=None):
            return op.adjoint(y)

    class NoKeywords(Reconstructor):
        def reconstruct(self, y, op):
            return op.adjoint(y)

    assert "must subclass genrecon.reconstructors.Reconstructor" in plugin_problems("plain", Plain)[0]
    assert "x0, generator, callback" in plugin_problems("nokw", NoKeywords)[0]
    reg = Registry("reconstructor")
    reg.contract = plugin_problems
    with pytest.raises(RegistryError, match="does not follow the plugin contract"):
        reg.add("plain", Plain)
    with pytest.raises(RegistryError, match="README"):
        reg.add("nokw", NoKeywords)


# ---------------------------------------------------------------------------------------------------
# the README's plugin, installed as a distribution with an entry point, through the whole CLI
# ---------------------------------------------------------------------------------------------------
def _readme_plugin() -> tuple[str, str]:
    """The Python and TOML blocks of the README section 'Adding a method (plugins)'."""
    text = README.read_text()
    section = text.split("## Adding a method (plugins)", 1)[1].split("\n## ", 1)[0]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    toml = re.search(r"```toml\n(.*?)```", section, re.S).group(1)
    return code, toml


def _install(root: Path, code: str, toml: str, name: str = "my_package") -> dict:
    """Write the plugin as an installed distribution (package + .dist-info with entry_points.txt)."""
    entry = re.search(r'^(\w+) = "([\w.]+):(\w+)"', toml, re.M)
    module = entry.group(2)
    (root / name).mkdir()
    (root / name / "__init__.py").write_text("")
    (root / (module.replace(".", "/") + ".py")).write_text(code)
    dist = root / f"{name}-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(f"[genrecon.reconstructors]\n{entry.group(1)} = {module}:{entry.group(3)}\n")
    return {**os.environ, "PYTHONPATH": f"{root}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
            "_PLUGIN_NAME": entry.group(1)}


def test_the_readme_plugin_installs_passes_the_contract_and_runs(tmp_path):
    code, toml = _readme_plugin()
    (tmp_path / "site").mkdir()
    env = _install(tmp_path / "site", code, toml)
    plugin = env["_PLUGIN_NAME"]
    run = lambda *args: subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env,  # noqa: E731
                                       timeout=300)
    listed = run("-m", "genrecon.cli.main", "list", "reconstructors")
    assert listed.returncode == 0, listed.stderr
    assert plugin in listed.stdout
    checked = run("-c", "from genrecon.registry import RECONSTRUCTORS; from genrecon.testing import check_reconstructor; "
                        f"[check_reconstructor(RECONSTRUCTORS.build('{plugin}', {{}}), modality=m) for m in ('mri', 'ct')]")
    assert checked.returncode == 0, checked.stderr
    cfg = quick_mri_config(tmp_path / "run")
    cfg["data"]["params"] = {"size": 32}
    cfg["reconstructors"] = [{"name": "zero_filled"}, {"name": plugin, "params": {"n_iter": 30}}]
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    ran = run("-m", "genrecon.cli.main", "reconstruct", "--config", str(tmp_path / "c.yaml"), "-q")
    assert ran.returncode == 0, ran.stderr
    summary = json.loads((tmp_path / "run" / "report.json").read_text())["summary"]
    assert summary[plugin]["psnr"] > summary["zero_filled"]["psnr"]  # it iterates towards the data


def test_a_plugin_without_the_base_class_gets_one_clear_line(tmp_path):
    code, toml = _readme_plugin()
    plain = code.replace("(Reconstructor)", "").replace("super().__init__()", "self.info = {}")
    (tmp_path / "site").mkdir()
    env = _install(tmp_path / "site", plain, toml)
    res = subprocess.run([sys.executable, "-m", "genrecon.cli.main", "list", "reconstructors"], capture_output=True,
                         text=True, env=env, timeout=300)
    assert res.returncode == 2, res.stdout
    assert "must subclass genrecon.reconstructors.Reconstructor" in res.stderr and "Traceback" not in res.stderr
