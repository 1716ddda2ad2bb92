"""The README's YAML examples stay valid configs (a renamed key or parameter fails here, not for a reader)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from genrecon.config import deprecations, load_config_dict

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"```yaml\n(.*?)```", README.read_text(), re.S)
RUNS = [b for b in BLOCKS if all(k in yaml.safe_load(b) for k in ("data", "simulate"))]


def test_the_readme_has_run_configs():
    assert len(RUNS) >= 3


@pytest.mark.parametrize("text", RUNS, ids=lambda t: t.split("\n")[0][:40])
def test_every_readme_run_config_validates(text):
    cfg = yaml.safe_load(text)
    cfg.setdefault("reconstructors", [{"name": "zero_filled"}])  # snippets may show only data + simulate
    cfg.setdefault("output", {"dir": "runs/readme"})
    loaded = load_config_dict(cfg, check_files=False)
    assert not deprecations(loaded), deprecations(loaded)  # examples use the current names
