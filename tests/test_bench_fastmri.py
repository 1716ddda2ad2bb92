"""The measured-k-space benchmark's pieces (scripts/bench_fastmri.py, scripts/make_fastmri_sample.py, the
configs/fastmri_multicoil_*.yaml): BART's .cfl/.hdr files round trip in BART's axis order, and the sample
files the script writes are what the shipped configs read. No BART needed; a few seconds."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = [ROOT / "configs" / "fastmri_multicoil_4x.yaml", ROOT / "configs" / "fastmri_multicoil_8x.yaml"]


def _script(name: str):
    spec = importlib.util.spec_from_file_location(f"_script_{name}", ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


bench = _script("bench_fastmri")
sample = _script("make_fastmri_sample")


def test_cfl_round_trip_keeps_values_dims_and_fortran_order(tmp_path):
    rng = np.random.default_rng(0)
    k = (rng.standard_normal((3, 6, 5)) + 1j * rng.standard_normal((3, 6, 5))).astype(np.complex64)  # (C, H, W)
    bart_k = bench.to_bart_kspace(k)
    assert bart_k.shape == (6, 5, 1, 3) and bart_k[4, 2, 0, 1] == k[1, 4, 2]  # x = readout, y = phase, z, coils
    bench.write_cfl(tmp_path / "ksp", bart_k)
    assert (tmp_path / "ksp.hdr").read_text().splitlines() == ["# Dimensions", "6 5 1 3" + " 1" * 12]
    raw = np.fromfile(tmp_path / "ksp.cfl", dtype="<c8")
    assert raw.size == k.size and raw[1] == bart_k[1, 0, 0, 0]  # the first axis varies fastest
    back = bench.read_cfl(tmp_path / "ksp")
    assert back.dtype == np.complex64 and np.array_equal(back, bart_k)
    assert np.array_equal(bench.from_bart_maps(back), k)
    # BART writes more sections after the dimensions; a 2-D image keeps its two axes
    bench.write_cfl(tmp_path / "img", k[0])
    with open(tmp_path / "img.hdr", "a") as f:
        f.write("# Command\npics -S ...\n# Creator\nBART v0.8.00\n")
    assert np.array_equal(bench.read_cfl(tmp_path / "img"), k[0])


def test_map_difference_ignores_the_per_pixel_phase_and_counts_crop_disagreements():
    rng = np.random.default_rng(1)
    a = (rng.standard_normal((4, 8, 8)) + 1j * rng.standard_normal((4, 8, 8))).astype(np.complex64)
    b = a * np.exp(1j * rng.uniform(-np.pi, np.pi, (8, 8)))
    b[:, 0, :3] = 0
    d = bench.map_difference(a, b)
    assert d["max"] < 1e-6 and d["crop_disagrees"] == 3 and d["pixels_both"] == 61
    assert bench.map_difference(a, a[::-1])["mean"] > 0.1


@pytest.fixture(scope="module")
def tiny_sample(tmp_path_factory):
    out = tmp_path_factory.mktemp("fastmri_sim")
    images = sample.bundled_brain_slices()[:2, ::8, ::8]  # 2 real slices, 32 x 32
    return out, sample.make_samples(out, images, coils=4)


def test_make_samples_writes_fastmri_files(tiny_sample):
    out, written = tiny_sample
    mc, sc = written["multicoil"][0], written["singlecoil"][0]
    assert mc == out / "multicoil" / "file_brain_sim_mc.h5" and sc == out / "singlecoil" / "file_brain_sim_sc.h5"
    with h5py.File(mc) as f:
        assert f["kspace"].shape == (2, 4, 64, 36) and f["reconstruction_rss"].shape == (2, 32, 32)
        first = f["kspace"][0, 0, 32, :4]
    with h5py.File(sc) as f:
        assert f["kspace"].shape == (2, 64, 36) and "reconstruction_esc" in f
    again = sample.make_samples(out / "again", sample.bundled_brain_slices()[:2, ::8, ::8], coils=4)
    with h5py.File(again["multicoil"][0]) as f:
        assert np.array_equal(f["kspace"][0, 0, 32, :4], first)  # seeded: the same file twice


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_the_configs_validate_on_the_scripts_files(tiny_sample, path, tmp_path):
    from genrecon.config import load_config
    from genrecon.pipeline import make_loader, plan

    out, _ = tiny_sample
    cfg = load_config(path, [f"data.source={out / 'multicoil'}", f"output.dir={tmp_path / 'run'}"])
    assert cfg.simulate.mask["name"] == "equispaced" and cfg.evaluate.aggregate == "volume"
    assert "h5" in cfg.output.save and cfg.threads == 1
    assert len(plan(cfg, make_loader(cfg))) == 2
