"""Shared fixtures: a seeded generator, the device list, tiny phantoms, a quick MRI config."""

from __future__ import annotations

import pytest
import torch

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.fixture
def one_thread():
    """One intra-op torch thread for the test (the test machine's 2 cores are shared: one thread is much faster than
    two under load), the previous count restored after. Modules that train or sample use it for every test:
    ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture
def gen() -> torch.Generator:
    return torch.Generator().manual_seed(1234)


@pytest.fixture(params=DEVICES)
def device(request) -> str:
    return request.param


def quick_mri_config(out_dir, **overrides) -> dict:
    """A small, fast run config on a Shepp-Logan phantom (as a dict)."""
    cfg = {
        "version": 1,
        "seed": 0,
        "device": "cpu",
        "data": {"source": "phantom:shepp-logan", "params": {"size": 64}, "normalize": "max"},
        "simulate": {"modality": "mri", "mask": {"name": "random", "acceleration": 4, "center_fraction": 0.08},
                     "noise": {"sigma": 0.0}},
        "reconstructors": [{"name": "zero_filled"}, {"name": "fista_tv", "params": {"tv_weight": 0.005, "n_iter": 30}}],
        "evaluate": {"metrics": ["psnr", "ssim", "nmse"], "data_range": "volume_max"},
        "output": {"dir": str(out_dir), "save": ["npy", "png"]},
    }
    for key, value in overrides.items():
        cfg[key] = value
    return cfg
