"""Two-process data-parallel training on the CPU (gloo) under torchrun: both ranks end with equal weights."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import yaml

from genrecon.priors import load_prior
from genrecon.training.data import write_prior_data

ROOT = Path(__file__).resolve().parents[1]


def test_ddp_two_ranks_agree(tmp_path):
    rng = np.random.default_rng(0)
    data = write_prior_data(tmp_path / "d.h5", rng.uniform(0, 1, (16, 16, 16)), rng.uniform(0, 1, (4, 16, 16)))
    cfg = {
        "version": 1, "seed": 1, "device": "cpu", "kind": "diffusion",
        "data": {"path": str(data), "size": 16, "max_val": 4},
        "model": {"base_channels": 8, "channel_mults": [1, 2], "attention_levels": [], "groups": 4, "timesteps": 50},
        "train": {"steps": 4, "batch_size": 4, "lr": 1e-3, "warmup_steps": 0, "ema": 0.9, "checkpoint_every": 2,
                  "sample_every": 100, "log_every": 2, "n_samples": 2, "sample_steps": 2},
        "augment": {"flips": True, "rotation_deg": 5},
        "output": {"dir": str(tmp_path / "run")},
    }
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(cfg))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "genrecon.training", "--config", str(config), "--quiet",
           "--summary-json", str(tmp_path / "summary.{rank}.json")]
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    s0, s1 = (json.loads((tmp_path / f"summary.{r}.json").read_text()) for r in (0, 1))
    assert s0["world_size"] == s1["world_size"] == 2 and s0["steps"] == s1["steps"] == 4
    assert s0["weights_sha256"] == s1["weights_sha256"]
    assert s0["export_weights_sha256"] == s1["export_weights_sha256"]
    assert s0["export"] and s1["export"] is None  # rank 0 alone writes
    model, meta = load_prior(s0["export"], kind="diffusion", image_size=16)
    assert meta["extra"]["world_size"] == 2 and meta["data"]["n_train"] == 16
