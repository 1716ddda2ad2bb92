"""Full-size prior training (issue 17 part 3): gradient checkpointing (``model.checkpointing``) gives the same
outputs, gradients, weights and export as a plain run; it is a run-time switch that exported priors never carry
and a resumed run may change; the 320 / 512 train-prior configs validate and point at files prepare_data makes."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from genrecon.errors import ConfigError
from genrecon.priors import load_prior
from genrecon.priors.diffusion import DiffusionPrior
from genrecon.priors.vae import ConvVAE
from genrecon.training import load_train_config, parse_train_config, train_prior
from genrecon.training.data import write_prior_data
from genrecon.training.state import weights_sha256

ROOT = Path(__file__).resolve().parents[1]
FULLSIZE = {"brain_diffusion_320": ("brain-mri", 320), "ct_diffusion_512": ("head-ct", 512)}


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def _perturbed(module: torch.nn.Module) -> torch.nn.Module:
    """float64, every parameter (zero-initialised output layers too) moved off its initial value."""
    module = module.double()
    g = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=g, dtype=p.dtype))
    return module.train()


def _outputs_and_grads(module, checkpointing, call, x):
    module.checkpointing = checkpointing
    for p in module.parameters():
        p.grad = None
    x = x.clone().requires_grad_(True)
    with torch.random.fork_rng():
        torch.manual_seed(7)  # dropout draws from the global generator; checkpointing replays it on recomputation
        y = call(module, x)
        (y.square().sum() + y.sum()).backward()
    return y.detach(), x.grad, {n: p.grad.clone() for n, p in module.named_parameters()}


@pytest.mark.parametrize("kind", ["unet", "vae"])
def test_checkpointed_network_matches_plain(kind):
    if kind == "unet":
        prior = DiffusionPrior.build(
            {"unet": {"base_channels": 8, "channel_mults": [1, 2], "num_res_blocks": 2, "attention_levels": [1],
                      "groups": 4, "dropout": 0.2, "patch_size": 2}, "schedule": {"name": "vp", "timesteps": 50}},
            image_size=16, generator=torch.Generator().manual_seed(0))
        net, x = _perturbed(prior.net), torch.randn(2, 1, 16, 16, dtype=torch.float64)
        call = lambda m, v: m(v, torch.tensor([3.0, 40.0], dtype=torch.float64))  # noqa: E731
    else:
        arch = {"latent_dim": 32, "base_channels": 8, "channel_mults": [1, 2], "groups": 4, "latent_channels": 2}
        net = _perturbed(ConvVAE.build(arch, image_size=16, generator=torch.Generator().manual_seed(0)))
        x = torch.rand(2, 1, 16, 16, dtype=torch.float64)
        call = lambda m, v: m.decode_logits(sum(m.encode(v)))  # noqa: E731  (mu + logvar: both get gradients)
    y0, gx0, gp0 = _outputs_and_grads(net, False, call, x)
    y1, gx1, gp1 = _outputs_and_grads(net, True, call, x)
    assert torch.allclose(y0, y1, rtol=0, atol=1e-10) and torch.allclose(gx0, gx1, rtol=0, atol=1e-10)
    assert gp0.keys() == gp1.keys() and all(torch.allclose(gp0[k], gp1[k], rtol=0, atol=1e-10) for k in gp0)
    assert float(gx0.abs().sum()) > 0
    net.eval()
    with torch.no_grad():  # no gradients: checkpointing is bypassed
        net.checkpointing = False
        y0 = call(net, x)
        net.checkpointing = True
        assert torch.equal(call(net, x), y0)


def _disks(n: int, size: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size] / (size - 1)
    r = rng.uniform(0.15, 0.3, (n, 1, 1))
    return (((x - rng.uniform(0.3, 0.7, (n, 1, 1))) ** 2 + (y - 0.5) ** 2 < r * r) * 0.8).astype(np.float32)


@pytest.fixture(scope="module")
def tiny_h5(tmp_path_factory):
    return write_prior_data(tmp_path_factory.mktemp("data") / "tiny.h5", _disks(16, 16, 0), _disks(4, 16, 1))


def _config(out, data, checkpointing, kind="diffusion", steps=3, **train):
    model = ({"base_channels": 8, "channel_mults": [1, 2], "attention_levels": [1], "groups": 4, "timesteps": 50}
             if kind == "diffusion" else
             {"latent_dim": 8, "base_channels": 8, "channel_mults": [1, 2], "groups": 4, "beta_warmup_steps": 2})
    return parse_train_config({
        "version": 1, "seed": 1, "device": "cpu", "kind": kind, "data": {"path": str(data), "size": 16, "max_val": 4},
        "model": {**model, "checkpointing": checkpointing},
        "train": {"steps": steps, "batch_size": 4, "lr": 2e-3, "warmup_steps": 1, "ema": 0.5, "checkpoint_every": 2,
                  "sample_every": 100, "log_every": 1, "n_samples": 2, "sample_steps": 2, **train},
        "augment": {"flips": True, "rotation_deg": 5},
        "output": {"dir": str(out / "run")},
    })


@pytest.mark.parametrize("kind", ["diffusion", "generator"])
def test_checkpointed_run_trains_and_exports_the_same_prior(tmp_path, tiny_h5, kind):
    plain = train_prior(_config(tmp_path / "plain", tiny_h5, False, kind))
    ckpt = train_prior(_config(tmp_path / "ckpt", tiny_h5, True, kind))
    assert ckpt["steps"] == 3 and ckpt["train_loss"] == pytest.approx(plain["train_loss"], rel=1e-6)
    model, meta = load_prior(ckpt["export"], kind=kind, image_size=16)  # weights_only=True inside
    ref, ref_meta = load_prior(plain["export"], kind=kind, image_size=16)
    assert meta["arch_params"] == ref_meta["arch_params"] and "checkpointing" not in str(meta["arch_params"])
    assert meta["training"]["model"]["checkpointing"] is True  # recorded in the resolved config only
    assert (model.net if kind == "diffusion" else model).checkpointing is False  # inference never checkpoints
    for a, b in zip(model.state_dict().values(), ref.state_dict().values()):
        assert torch.allclose(a, b, rtol=0, atol=1e-6)
    same = lambda m: m.sample(2, steps=3, generator=torch.Generator().manual_seed(0))  # noqa: E731
    assert torch.allclose(same(model), same(ref), rtol=0, atol=1e-5)


def test_resume_may_switch_checkpointing(tmp_path, tiny_h5):
    """checkpointing is not architecture: a run checkpointed without it resumes with it (and old training
    checkpoints, whose stored config has no such key, still resume); other model keys stay fixed."""
    train_prior(_config(tmp_path, tiny_h5, False, steps=2))
    stored = tmp_path / "run" / "checkpoint.pt"
    state = torch.load(stored, weights_only=True)
    del state["config"]["model"]["checkpointing"]  # as written before the key existed
    torch.save(state, stored)
    resumed = train_prior(_config(tmp_path, tiny_h5, True, steps=4), resume=True)
    whole = train_prior(_config(tmp_path / "whole", tiny_h5, False, steps=4))
    assert resumed["resumed_from"] == 2 and resumed["steps"] == 4
    assert resumed["train_loss"] == pytest.approx(whole["train_loss"], rel=1e-6)
    assert weights_sha256(load_prior(resumed["export"])[0]) != ""  # the export loads
    cfg = _config(tmp_path, tiny_h5, True, steps=6)
    with pytest.raises(ConfigError, match="model differ"):
        train_prior(dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, base_channels=12)), resume=True)


def test_amp_on_the_cpu_trains_in_bf16_with_checkpointing(tmp_path, tiny_h5):
    """train.amp on the CPU: bf16 autocast (no loss scaling), float32 weights and export; close to the float32 run."""
    amp = train_prior(_config(tmp_path / "amp", tiny_h5, True, amp=True))
    fp32 = train_prior(_config(tmp_path / "fp32", tiny_h5, True))
    assert amp["steps"] == 3 and amp["weights_sha256"] != fp32["weights_sha256"]
    assert amp["train_loss"] == pytest.approx(fp32["train_loss"], rel=0.05)
    model, meta = load_prior(amp["export"], kind="diffusion", image_size=16)
    assert meta["training"]["train"]["amp"] is True
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert torch.load(tmp_path / "amp" / "run" / "checkpoint.pt", weights_only=True)["scaler"] == {}


def test_checkpointing_key_is_validated():
    base = {"version": 1, "kind": "diffusion", "data": {"path": "x.h5", "size": 32}, "output": {"dir": "runs/t"}}
    assert parse_train_config(base).model.checkpointing is False  # default: old configs run as before
    cfg = parse_train_config({**base, "model": {"checkpointing": True}})
    assert cfg.model.checkpointing is True and "checkpointing" not in str(cfg.model.arch_params())
    with pytest.raises(ConfigError, match="checkpointing"):
        parse_train_config({**base, "model": {"checkpointing": "sometimes"}})
    with pytest.raises(ConfigError, match="did you mean 'checkpointing'"):
        parse_train_config({**base, "model": {"checkpointng": True}})


@pytest.mark.parametrize("name", sorted(FULLSIZE))
def test_fullsize_configs_validate_and_name_prepare_data_files(name):
    path = ROOT / "configs" / f"train_prior_{name}.yaml"
    cfg = load_train_config(path)
    modality, size = FULLSIZE[name]
    assert cfg.kind == "diffusion" and cfg.data.size == size and cfg.data.size % cfg.model.size_multiple() == 0
    assert cfg.model.checkpointing and cfg.train.amp and cfg.output.storage_dtype == "float16"
    # the file `scripts/prepare_data.py datasets --size S` writes (genrecon.data_prep.build_datasets names)
    assert cfg.data.path == f"data/prepared/{modality}-{size}.h5"
    text = path.read_text()
    assert f"python scripts/prepare_data.py datasets --size {size}" in text
    assert f"genrecon train-prior --config configs/train_prior_{name}.yaml" in text
    assert cfg.output.name == f"{modality}-{size}-diffusion"
    assert not re.search(r"insighttoolkit|dipy|pydicom", text.lower())
    assert yaml.safe_load(text)["model"]["checkpointing"] is True
