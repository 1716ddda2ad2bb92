"""2-D k-space blocks as MRI design candidates (issue 20, ``design.candidates: blocks``): closed-form scores,
exact budgets, no block twice, resuming, old configs' hashes unchanged, the 2-D mask through a file mask."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from genrecon.design.blocks import MRIBlocks, block_baselines
from genrecon.design.config import load_design, load_design_dict
from genrecon.design.loop import Item, new_state, run_rounds
from genrecon.design.run import _settings_hash
from genrecon.design.score import gains, set_gain, whiten
from genrecon.errors import ConfigError
from genrecon.registry import MASKS
from test_design import (BASE, ExactGaussianSampler, _cov, _exact_gain, _gaussian, assert_resumes,
                         reconstruct_with_mask, run_design_command)

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def _blocks(h=4, w=8, block=(2, 2), sigma=0.3, n=8):
    cov = _cov(h * w, seed=7)
    problem = MRIBlocks((h, w), sigma, block)
    x = _gaussian(cov, 1, seed=8).float().reshape(1, 1, h, w)
    item = Item("toy/0", problem.full(x, torch.Generator().manual_seed(0)))
    return problem, item, ExactGaussianSampler(cov, (h, w), sigma / math.sqrt(2), n), cov


def _rows(problem, start):
    """The real measurement rows of every block ``(C, 2 by bx, d)`` and the posterior covariance given ``start``."""
    h, w = problem.shape
    basis = torch.eye(h * w).reshape(-1, 1, h, w).to(torch.complex64)
    k = problem.values(basis)  # (d, C, by bx)
    rows = torch.cat([k.real, k.imag], -1).double().permute(1, 2, 0)  # (C, 2 by bx, d)
    return rows, torch.cat([rows[c] for c in start])


def test_block_values_and_pattern_tile_the_grid():
    p = MRIBlocks((8, 12), 0.1, (2, 4))
    assert p.n_candidates == 12 and p.pattern(list(range(12))).all()
    img = torch.randn(3, 1, 8, 12)
    v = p.values(img)  # every k-space value once, in its block
    assert v.shape == (3, 12, 8)
    from genrecon.operators.fft import fft2c

    k = fft2c(img.to(torch.complex64))[:, 0]
    for c in (0, 5, 11):
        mask = p.pattern([c])
        assert int(mask.sum()) == 8
        assert torch.allclose(v[:, c], k[:, mask].reshape(3, 8))
    with pytest.raises(ConfigError, match="tile"):
        MRIBlocks((8, 12), 0.1, (3, 4))


def test_block_gain_is_the_closed_form_sum_over_points_and_logdet():
    problem, item, sampler, cov = _blocks(n=4000)
    start = problem.start(0.25)
    y, op = problem.measure(item.full, start)
    sampler(y, op, generator=torch.Generator().manual_seed(1))
    z = whiten(problem.values(sampler.info["samples"]), problem.sigma)
    rows, measured = _rows(problem, start)
    noise = problem.sigma**2 / 2  # per real value
    post = torch.linalg.inv(torch.linalg.inv(cov) + measured.T @ measured / noise)
    joint, marginal = gains(z, score="joint"), gains(z, score="marginal")
    for c in range(problem.n_candidates):
        if c in start:
            continue
        exact_joint = _exact_gain(post, rows[c], noise)  # 1/2 logdet(I + A Sigma A^T / noise) over the block
        exact_marginal = sum(_exact_gain(post, rows[c][i:i + 1], noise) for i in range(rows.shape[1]))
        assert float(joint[c]) == pytest.approx(exact_joint, rel=0.05)
        assert float(marginal[c]) == pytest.approx(exact_marginal, rel=0.05)
        assert float(joint[c]) <= float(marginal[c]) + 1e-9  # Hadamard: the points are not independent
    # a block is the set of its points: score.py's set gain over single-point candidates gives the same number
    points = MRIBlocks(problem.shape, problem.sigma, (1, 1))
    zp = whiten(points.values(sampler.info["samples"]), problem.sigma)
    for c in (0, 3, problem.n_candidates - 1):
        inside = torch.nonzero(problem.pattern([c]).flatten()).flatten().tolist()
        assert set_gain(zp, inside) == pytest.approx(float(joint[c]), rel=1e-9)
        assert float(gains(zp, score="marginal")[inside].sum()) == pytest.approx(float(marginal[c]), rel=1e-9)


@pytest.mark.parametrize("batch, min_gap", [(1, 0), (3, 0), (2, 1)])
def test_budget_met_exactly_no_block_twice_start_kept(batch, min_gap):
    problem, item, sampler, _ = _blocks()
    start, budget = problem.start(0.25), problem.budget(2)
    assert (len(start), budget) == (2, 4)
    state = run_rounds(problem, [item], sampler, new_state(start, budget), seed=0, batch=batch, min_gap=min_gap)
    assert len(state["chosen"]) == budget == len(set(state["chosen"]))
    assert state["chosen"][:len(start)] == start and state["done"]
    assert int(problem.pattern(state["chosen"]).sum()) == problem.shape[0] * problem.shape[1] // 2


def test_budget_over_the_2d_grid_and_the_centre_start():
    p = MRIBlocks((128, 128), 0.01, (8, 8))
    assert p.budget(8) * 64 == 128 * 128 // 8 and p.budget(4) * 64 == 128 * 128 // 4
    start = p.start(0.04)
    mask = p.pattern(start)
    assert len(start) == 10 and bool(mask[64, 64]) and bool(mask[60, 60])  # blocks around the k-space centre
    assert not mask[:40].any() and not mask[:, :40].any()
    base = block_baselines(p, start, p.budget(8), seed=0)
    assert {"random_blocks", "variable_density_blocks", "center_blocks", "partial_fourier_blocks", "gaussian2d",
            "poisson_disc"} == set(base)
    for name, m in base.items():
        assert m.shape == (128, 128) and int(m.sum()) == 2048, name
        if name.endswith("_blocks"):
            assert bool((m & mask).sum() == mask.sum()), name  # the design's start is kept


def test_resume_gives_the_same_blocks():
    problem, item, sampler, _ = _blocks()
    start = problem.start(0.25)
    full = run_rounds(problem, [item], sampler, new_state(start, 5), seed=3, batch=1)
    saved = []

    def interrupt(state):
        saved.append(json.loads(json.dumps(state)))
        if len(state["rounds"]) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_rounds(problem, [item], sampler, new_state(start, 5), seed=3, batch=1, save=interrupt)
    assert run_rounds(problem, [item], sampler, saved[-1], seed=3, batch=1)["chosen"] == full["chosen"]


def test_old_configs_keep_their_hash_and_columns_is_the_default():
    # the hashes of the shipped configs before design.candidates took columns / blocks (resumable folders)
    assert _settings_hash(load_design(CONFIGS / "design_mri_8x.yaml", build=False)) == "d9dc602a62d2230b"
    assert _settings_hash(load_design(CONFIGS / "design_ct_30.yaml", build=False)) == "f829a2d6cd885637"
    explicit = load_design(CONFIGS / "design_mri_8x.yaml", ["design.candidates=columns"], build=False)
    assert _settings_hash(explicit) == "d9dc602a62d2230b"
    two_d = load_design(CONFIGS / "design_mri_8x_2d.yaml", build=False)
    assert two_d.design.candidates == "blocks" and tuple(two_d.design.block) == (8, 8)
    assert _settings_hash(two_d) != "d9dc602a62d2230b"


@pytest.mark.parametrize("design, words", [
    ({"budget": {"acceleration": 4}, "candidates": 90}, "only for CT"),
    ({"budget": {"acceleration": 4}, "block": [4, 4]}, "only with design.candidates: blocks"),
    ({"budget": {"acceleration": 4}, "candidates": "blocks", "block": [4]}, r"\[by, bx\]"),
    ({"budget": {"acceleration": 4}, "candidates": "points"}, "candidates"),
])
def test_bad_block_configs_are_refused(design, words):
    with pytest.raises(ConfigError, match=words):
        load_design_dict({**BASE, "design": design}, build=False)


def test_ct_refuses_blocks():
    ct = {**BASE, "simulate": {"modality": "ct", "noise": {"kind": "gaussian", "sigma": 0.01}},
          "design": {"budget": {"n_views": 10}, "candidates": "blocks"}}
    with pytest.raises(ConfigError, match="only for MRI"):
        load_design_dict(ct, build=False)


def test_design_command_writes_a_2d_mask_a_file_mask_reads_and_resumes(tmp_path):
    from typer.testing import CliRunner

    runner = CliRunner()
    out = tmp_path / "d"
    args, case, mask, report = run_design_command(runner, "design_mri_8x_2d.yaml", out, "design.batch=11")
    assert mask.shape == (128, 128) and mask.sum() == 2048 and 0 < mask[0].sum() < 128  # not columns
    assert report["candidate_kind"] == "blocks" and report["designs"][0]["rounds"] == 2
    order = [row["candidate"] for row in report["designs"][0]["order"]]
    assert len(order) == 32 == len(set(order))
    assert all(b["points"] == 2048 for b in report["baselines"].values())
    assert (case / "mask.png").exists() and "8x8 points" in (out / "report.md").read_text()
    assert np.array_equal(MASKS.build("file", {"path": str(case / "mask.npy")})((128, 128), torch.Generator()), mask)
    assert_resumes(runner, args, case, mask)
    res = reconstruct_with_mask(runner, tmp_path / "r", case / "mask.npy")
    assert res.exit_code == 0, res.output
