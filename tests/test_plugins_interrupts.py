"""Third-party plugins through entry points (a real installed-distribution layout), and interruptions."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml
from typer.testing import CliRunner

from conftest import quick_mri_config
from genrecon.cli.main import app
from genrecon.reconstructors.base import Reconstructor
from genrecon.registry import RECONSTRUCTORS

PLUGIN = '''
from genrecon.reconstructors.base import Reconstructor

class Halve(Reconstructor):
    """Half of the adjoint (a test plugin)."""

    def __init__(self, *, factor: float = 0.5):
        super().__init__()
        self.factor = factor

    def reconstruct(self, y, op, *, x0=None, generator=None, callback=None):
        return self.factor * op.adjoint(y)
'''


def _install_plugin(root: Path) -> None:
    pkg = root / "halve_plugin"
    pkg.mkdir()
    (pkg / "__init__.py").write_text(PLUGIN)
    dist = root / "halve_plugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: halve-plugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[genrecon.reconstructors]\nhalve = halve_plugin:Halve\n")


def test_entry_point_plugin_is_listed_and_runs(tmp_path):
    _install_plugin(tmp_path)
    env = {**os.environ, "COLUMNS": "200", "PYTHONPATH": f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    listed = subprocess.run([sys.executable, "-m", "genrecon.cli.main", "list", "reconstructors"],
                            capture_output=True, text=True, env=env, timeout=120)
    assert listed.returncode == 0, listed.stderr
    assert "halve" in listed.stdout and "test plugin" in listed.stdout
    cfg = quick_mri_config(tmp_path / "run")
    cfg["data"]["params"] = {"size": 32}
    cfg["reconstructors"] = [{"name": "zero_filled"}, {"name": "halve", "params": {"factor": 0.5}}]
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    ran = subprocess.run([sys.executable, "-m", "genrecon.cli.main", "reconstruct", "--config",
                          str(tmp_path / "c.yaml"), "-q"], capture_output=True, text=True, env=env, timeout=300)
    assert ran.returncode == 0, ran.stderr
    summary = json.loads((tmp_path / "run" / "report.json").read_text())["summary"]
    assert summary["halve"]["nmse"] > summary["zero_filled"]["nmse"]


class _Interrupting(Reconstructor):
    """Raises KeyboardInterrupt on its second case (like Ctrl-C)."""

    calls = 0

    def reconstruct(self, y, op, *, x0=None, generator=None, callback=None):
        type(self).calls += 1
        if type(self).calls == 2:
            raise KeyboardInterrupt
        return op.adjoint(y)


def test_ctrl_c_keeps_finished_cases_leaves_no_partial_files_and_resumes(tmp_path):
    RECONSTRUCTORS.add("_interrupting", _Interrupting)
    try:
        cfg = quick_mri_config(tmp_path / "run")
        cfg["data"] = {"source": "phantom:ellipses", "params": {"size": 32, "count": 3}, "normalize": "max"}
        cfg["reconstructors"] = [{"name": "zero_filled"}, {"name": "_interrupting"}]
        p = tmp_path / "c.yaml"
        p.write_text(yaml.safe_dump(cfg))
        res = CliRunner().invoke(app, ["reconstruct", "--config", str(p), "-q"])
        assert res.exit_code == 130 and "interrupted" in res.output
        out = tmp_path / "run"
        assert not [f for f in out.rglob("*") if ".tmp" in f.name]
        done = [d for d in (out / "cases").iterdir() if (d / "case.json").exists()]
        assert len(done) == 1
        # the interrupted case kept its finished method, the rerun does only what is missing
        before = {d.name: (d / "zero_filled.json").stat().st_mtime_ns for d in (out / "cases").iterdir()}
        res = CliRunner().invoke(app, ["reconstruct", "--config", str(p), "-q"])
        assert res.exit_code == 0, res.output
        after = {d.name: (d / "zero_filled.json").stat().st_mtime_ns for d in (out / "cases").iterdir()
                 if d.name in before}
        assert after == before
        assert json.loads((out / "report.json").read_text())["cases"] == 3
    finally:
        RECONSTRUCTORS._items.pop("_interrupting", None)
