"""The train-prior loop: learning, bit-exact resume, seeds, budgets, signals, outputs."""

from __future__ import annotations

import csv
import dataclasses
import os
import signal

import numpy as np
import pytest
import torch

from genrecon.errors import ConfigError, DataError, Interrupted
from genrecon.priors import load_prior
from genrecon.training import parse_train_config, save_grid, train_prior
from genrecon.training.augment import augment
from genrecon.training.state import weights_sha256
from genrecon.training.data import ShardedBatches, load_prior_data, write_prior_data


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def disks(n: int, size: int, seed: int) -> np.ndarray:
    """Bright disks of random centre, radius and intensity on a black background."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size] / (size - 1)
    out = np.zeros((n, size, size), np.float32)
    for i in range(n):
        cx, cy, r = rng.uniform(0.3, 0.7), rng.uniform(0.3, 0.7), rng.uniform(0.15, 0.3)
        out[i] = ((x - cx) ** 2 + (y - cy) ** 2 < r * r) * rng.uniform(0.5, 1.0)
    return out


@pytest.fixture(scope="module")
def tiny_h5(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "tiny.h5"
    return write_prior_data(path, disks(32, 16, 0), disks(8, 16, 1), modality="test", normalisation="max",
                            sources="synthetic disks", licence="CC0")


def config(tmp_path, data, kind="diffusion", **train):
    model = ({"base_channels": 8, "channel_mults": [1, 2], "attention_levels": [1], "groups": 4, "timesteps": 50}
             if kind == "diffusion" else
             {"latent_dim": 8, "base_channels": 8, "channel_mults": [1, 2], "groups": 4, "beta_warmup_steps": 4})
    raw = {
        "version": 1, "seed": 3, "device": "cpu", "kind": kind,
        "data": {"path": str(data), "size": 16, "max_val": 8},
        "model": model,
        "train": {"steps": 8, "batch_size": 4, "lr": 2e-3, "warmup_steps": 2, "ema": 0.9, "checkpoint_every": 4,
                  "sample_every": 100, "log_every": 2, "n_samples": 4, "sample_steps": 3, **train},
        "augment": {"flips": True, "rotation_deg": 10, "intensity_scale": 0.1},
        "output": {"dir": str(tmp_path / "run"), "name": "tiny"},
    }
    return parse_train_config(raw)


def state(path):
    return torch.load(path, weights_only=True)["model"]


def same(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("kind", ["diffusion", "edm", "generator"])
def test_training_reduces_loss(tmp_path, tiny_h5, kind):
    cfg = config(tmp_path, tiny_h5, "diffusion" if kind == "edm" else kind, steps=30, lr=3e-3, log_every=10,
                 sample_every=30)
    factor = 0.8
    if kind == "edm":  # log-normal sigmas make the EDM loss noisier
        cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, schedule="edm"))
        kind, factor = "diffusion", 0.9
    summary = train_prior(cfg)
    with open(tmp_path / "run" / "loss.csv") as fh:
        rows = list(csv.DictReader(fh))
    train = [float(r["train_loss"]) for r in rows if r["train_loss"]]
    assert len(train) == 3 and train[-1] < factor * train[0]
    assert summary["status"] == "completed" and summary["steps"] == 30 and summary["val_loss"] > 0
    model, meta = load_prior(summary["export"], kind=kind, image_size=16)
    assert meta["steps"] == 30 and meta["data"]["n_train"] == 32 and meta["training"]["kind"] == kind
    assert meta["normalisation"] == {"range": [0, 1], "source": "max"}
    for name in ("config.yaml", "summary.json", "checkpoint.pt", "samples/step_000030.png", "samples/final.png"):
        assert (tmp_path / "run" / name).is_file()


def test_resume_equals_uninterrupted(tmp_path, tiny_h5):
    full = config(tmp_path / "a", tiny_h5)
    train_prior(full)
    half = dataclasses.replace(config(tmp_path / "b", tiny_h5), train=dataclasses.replace(full.train, steps=4))
    first = train_prior(half)
    assert first["steps"] == 4
    second = train_prior(config(tmp_path / "b", tiny_h5), resume=True)
    assert second["resumed_from"] == 4 and second["steps"] == 8
    assert same(state(tmp_path / "a/run/checkpoint.pt"), state(tmp_path / "b/run/checkpoint.pt"))
    assert second["export_weights_sha256"] == weights_sha256(load_prior(tmp_path / "a/run/prior.pt")[0])
    # loss.csv continues without duplicated steps
    with open(tmp_path / "b/run/loss.csv") as fh:
        steps = [int(r["step"]) for r in csv.DictReader(fh) if r["train_loss"]]
    assert steps == [2, 4, 6, 8]


def test_signal_saves_checkpoint_then_resume_matches(tmp_path, tiny_h5):
    def interrupt(step, total, metrics):
        if step == 3:
            os.kill(os.getpid(), signal.SIGTERM)

    cfg = config(tmp_path / "s", tiny_h5, checkpoint_every=100)
    with pytest.raises(Interrupted, match="SIGTERM at step 3.*--resume"):
        train_prior(cfg, progress=interrupt)
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL  # handler restored
    assert torch.load(tmp_path / "s/run/checkpoint.pt", weights_only=True)["step"] == 3
    with pytest.raises(ConfigError, match="already holds a training checkpoint"):
        train_prior(cfg)
    train_prior(cfg, resume=True)
    train_prior(config(tmp_path / "u", tiny_h5, checkpoint_every=100))
    assert same(state(tmp_path / "s/run/checkpoint.pt"), state(tmp_path / "u/run/checkpoint.pt"))


def test_same_seed_same_weights_other_seed_differs(tmp_path, tiny_h5):
    a = train_prior(config(tmp_path / "a", tiny_h5, steps=3))
    b = train_prior(config(tmp_path / "b", tiny_h5, steps=3))
    c = train_prior(dataclasses.replace(config(tmp_path / "c", tiny_h5, steps=3), seed=4))
    assert a["weights_sha256"] == b["weights_sha256"] != c["weights_sha256"]


def test_global_rng_untouched(tmp_path, tiny_h5):
    before = torch.random.get_rng_state()
    train_prior(config(tmp_path, tiny_h5, steps=2))
    assert torch.equal(torch.random.get_rng_state(), before)


def test_time_budget_stops_and_exports(tmp_path, tiny_h5):
    summary = train_prior(config(tmp_path, tiny_h5, steps=10_000, max_minutes=0.0005))
    assert summary["status"] == "time_budget" and 0 < summary["steps"] < 10_000
    assert load_prior(summary["export"])[1]["steps"] == summary["steps"]


def test_resume_refuses_changed_model(tmp_path, tiny_h5):
    train_prior(config(tmp_path, tiny_h5, steps=2))
    cfg = config(tmp_path, tiny_h5, steps=4)
    cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, base_channels=16))
    with pytest.raises(ConfigError, match="model differ"):
        train_prior(cfg, resume=True)


def test_amp_needs_cuda_or_cpu(tmp_path, tiny_h5):
    """train.amp runs on CUDA or the CPU (bf16: tests/test_fullsize_training.py); other devices are refused."""
    with pytest.raises(ConfigError, match="train.amp"):
        train_prior(dataclasses.replace(config(tmp_path, tiny_h5, amp=True), device="mps"))


def test_data_errors(tmp_path, tiny_h5):
    with pytest.raises(DataError, match="not found"):
        load_prior_data(tmp_path / "none.h5", size=16)
    with pytest.raises(DataError, match="holds 16x16 images but data.size is 32"):
        load_prior_data(tiny_h5, size=32)
    bad = write_prior_data(tmp_path / "bad.h5", disks(4, 16, 0) * 2, disks(2, 16, 1))
    with pytest.raises(DataError, match=r"must lie in \[0, 1\]"):
        load_prior_data(bad, size=16)
    data = load_prior_data(tiny_h5, size=16, max_train=5)
    assert data.train.shape == (5, 1, 16, 16) and data.val.shape == (8, 1, 16, 16)
    assert data.summary["sources"] == "synthetic disks"


def test_sharded_batches_disjoint_and_resumable():
    one = ShardedBatches(20, 8, seed=0)
    ranks = [ShardedBatches(20, 8, seed=0, rank=r, world_size=2) for r in range(2)]
    for _ in range(5):  # crosses epoch boundaries (2 batches per epoch)
        full = one.next_indices()
        parts = [r.next_indices() for r in ranks]
        assert torch.equal(torch.cat(parts), full) and not set(parts[0].tolist()) & set(parts[1].tolist())
    resumed = ShardedBatches(20, 8, seed=0)
    resumed.load_state_dict(one.state_dict())
    assert torch.equal(resumed.next_indices(), one.next_indices())
    with pytest.raises(ConfigError, match="multiple of the 3 processes"):
        ShardedBatches(20, 8, seed=0, rank=0, world_size=3)


def test_augment_seeded_and_in_range():
    x = torch.rand(6, 1, 16, 16)
    kw = dict(flips=True, rotation_deg=20.0, intensity_scale=0.3)
    a = augment(x, torch.Generator().manual_seed(1), **kw)
    b = augment(x, torch.Generator().manual_seed(1), **kw)
    assert torch.equal(a, b) and a.min() >= 0 and a.max() <= 1 and not torch.equal(a, x)
    # rotation by 0 degrees and scale 0 with flips off is the identity
    assert torch.equal(augment(x, torch.Generator(), flips=False, rotation_deg=0.0, intensity_scale=0.0), x)


def test_save_grid(tmp_path):
    from PIL import Image

    images = torch.zeros(5, 1, 4, 6)
    images[2] = 1.0
    path = save_grid(images, tmp_path / "g.png", nrow=3)
    arr = np.asarray(Image.open(path))
    assert arr.shape == (2 * (4 + 2) + 2, 3 * (6 + 2) + 2)
    assert (arr[2:6, 2 + 2 * 8 : 2 + 2 * 8 + 6] == 255).all() and (arr[2:6, 2:8] == 0).all()


def test_cosine_learning_rate_schedule(tmp_path, tiny_h5):
    from genrecon.training.state import lr_at

    lr, lo, warm, total = 1e-3, 1e-5, 10, 110
    ramp = [lr_at(s, lr, warm, schedule="cosine", total=total, lr_min=lo) for s in range(warm)]
    assert ramp == pytest.approx([lr * (s + 1) / warm for s in range(warm)])
    decay = [lr_at(s, lr, warm, schedule="cosine", total=total, lr_min=lo) for s in range(warm, total + 1)]
    assert decay[0] == pytest.approx(lr) and decay[-1] == pytest.approx(lo)
    assert decay[50] == pytest.approx((lr + lo) / 2)  # half-way down the half cosine
    assert all(a >= b for a, b in zip(decay, decay[1:]))
    assert lr_at(500, lr, warm, schedule="constant", total=total) == lr
    # the loop uses it: the logged rate (of each row's last update) peaks after the warm-up, then falls toward lr_min
    cfg = config(tmp_path, tiny_h5, steps=8, lr=2e-3, warmup_steps=2, lr_schedule="cosine", lr_min=1e-4, log_every=2)
    train_prior(cfg)
    with open(tmp_path / "run/loss.csv") as fh:
        rates = [float(r["lr"]) for r in csv.DictReader(fh) if r["train_loss"]]
    assert rates[0] == pytest.approx(2e-3) and rates[-1] < 0.15 * 2e-3
    assert all(a > b for a, b in zip(rates, rates[1:]))
    with pytest.raises(ConfigError, match="lr_min"):
        config(tmp_path, tiny_h5, lr=1e-3, lr_schedule="cosine", lr_min=1e-2)


def test_dropout_is_seeded_resumable_and_leaves_the_global_rng_alone(tmp_path, tiny_h5):
    """Dropout draws from torch's global generator; the loop seeds it per step from the run's seed."""
    def with_dropout(path, **train):
        cfg = config(path, tiny_h5, **train)
        return dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, dropout=0.3))

    before = torch.random.get_rng_state()
    train_prior(with_dropout(tmp_path / "a"))
    assert torch.equal(torch.random.get_rng_state(), before)
    torch.manual_seed(12345)  # another global state: the run must not depend on it
    train_prior(with_dropout(tmp_path / "b", steps=4))
    train_prior(with_dropout(tmp_path / "b"), resume=True)
    assert same(state(tmp_path / "a/run/checkpoint.pt"), state(tmp_path / "b/run/checkpoint.pt"))
    train_prior(config(tmp_path / "c", tiny_h5))  # without dropout the weights differ: dropout did act
    assert not same(state(tmp_path / "a/run/checkpoint.pt"), state(tmp_path / "c/run/checkpoint.pt"))
