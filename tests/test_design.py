"""Measurement design (issue 20): scores against closed forms, the loop's guarantees, resuming, configs, files."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from genrecon.design.baselines import ct_baselines, mri_baselines
from genrecon.design.config import load_design_dict
from genrecon.design.loop import Item, new_state, run_rounds
from genrecon.design.problem import CTViews, MRIColumns, stage_rounds
from genrecon.design.score import compact, condition, gains, gram, select, whiten
from genrecon.errors import ConfigError, DataError, ShapeError
from genrecon.registry import MASKS
from genrecon.schema import parse
from genrecon.simulate import ct as ct_sim


def _cov(d: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(d, d, generator=g, dtype=torch.float64)
    return a @ a.T / d + 0.1 * torch.eye(d, dtype=torch.float64)


def _gaussian(cov: torch.Tensor, n: int, seed: int = 1) -> torch.Tensor:
    z = torch.randn(n, cov.shape[0], generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return z @ torch.linalg.cholesky(cov).T


def _exact_gain(cov: torch.Tensor, a: torch.Tensor, noise_var: float) -> float:
    """1/2 log det(I + A Sigma A^T / noise_var): the information gain of y = A x + n, x ~ N(., Sigma)."""
    m = torch.eye(a.shape[0], dtype=torch.float64) + a @ cov @ a.T / noise_var
    return 0.5 * float(torch.linalg.slogdet(m)[1])


# -- the score against closed forms (linear-Gaussian) ---------------------------------------------------
def test_scores_equal_the_exact_gaussian_information_gain():
    d, sigma = 6, 0.5
    cov = _cov(d)
    x = _gaussian(cov, 40000)
    rows = torch.randn(3, 2, d, generator=torch.Generator().manual_seed(2), dtype=torch.float64)  # 3 candidates
    z = whiten(torch.einsum("cvd,nd->ncv", rows, x), sigma)  # (N, C=3, D=2) values
    joint = gains(compact(z), score="joint")
    marginal = gains(z, score="marginal")
    for c in range(3):
        assert joint[c] == pytest.approx(_exact_gain(cov, rows[c], sigma**2), rel=0.03)
        exact_marginal = sum(_exact_gain(cov, rows[c, i:i + 1], sigma**2) for i in range(2))
        assert marginal[c] == pytest.approx(exact_marginal, rel=0.03)
    # one-value candidates: both scores are 1/2 log(1 + a^T Sigma a / sigma^2)
    z1 = whiten(x[:, :, None], sigma)
    exact = [0.5 * math.log(1 + float(cov[i, i]) / sigma**2) for i in range(d)]
    assert gains(z1).tolist() == pytest.approx(exact, rel=0.02)
    assert gains(compact(z1), score="joint").tolist() == pytest.approx(exact, rel=0.02)


def test_conditioned_gain_is_the_exact_conditional_gain_and_the_chain_rule_holds():
    d, sigma = 5, 0.3
    cov = _cov(d, seed=3)
    z = compact(whiten(_gaussian(cov, 40000)[:, :, None], sigma))
    g = gram(z)
    factor = condition(None, g[0])
    e = torch.eye(d, dtype=torch.float64)
    post = torch.linalg.inv(torch.linalg.inv(cov) + e[:1].T @ e[:1] / sigma**2)
    for j in range(1, d):
        assert float(gains(z, factor)[j]) == pytest.approx(0.5 * math.log(1 + float(post[j, j]) / sigma**2), rel=0.03)
    pair = _exact_gain(cov, e[[0, 3]], sigma**2)  # I(0) + I(3 | 0) = I(0, 3)
    assert float(gains(z)[0] + gains(z, factor)[3]) == pytest.approx(pair, rel=0.03)


def test_complex_values_count_real_and_imaginary_parts_with_half_the_noise_each():
    d, sigma = 4, 0.4
    cov = _cov(d, seed=5)
    x = _gaussian(cov, 40000)
    v = torch.complex(x[:, :2], x[:, 2:])[:, None, :]  # one candidate, two complex values
    a = torch.eye(d, dtype=torch.float64)
    assert float(gains(compact(whiten(v, sigma)), score="joint")[0]) == pytest.approx(
        _exact_gain(cov, a, sigma**2 / 2), rel=0.03)


def test_select_never_repeats_and_respects_availability():
    z = whiten(torch.randn(6, 10, 3, generator=torch.Generator().manual_seed(0)), 0.1)
    available = torch.ones(10, dtype=torch.bool)
    available[[2, 5]] = False
    for diversity in ("condition", "none"):
        picks = [i for i, _ in select([z], available, 8, diversity=diversity)]
        assert len(set(picks)) == 8 and not {2, 5} & set(picks)
    with pytest.raises(ValueError):
        select([z], available, 9)


# -- the loop, with an exact Gaussian posterior sampler ------------------------------------------------
class ExactGaussianSampler:
    """Exact posterior samples of real images ``x ~ N(0, cov)`` given ``y = op(x) + n`` (real noise std per
    real value ``noise``; complex data count real and imaginary parts)."""

    def __init__(self, cov: torch.Tensor, shape: tuple[int, int], noise: float, n: int = 8):
        self.cov, self.shape, self.noise, self.n = cov, shape, noise, n
        self.info: dict = {}

    def _real(self, t: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        flat = t.reshape(t.shape[0], -1)[:, keep]
        return torch.cat([flat.real, flat.imag], 1).double() if flat.is_complex() else flat.double()

    def __call__(self, y, op, generator=None):
        d = self.cov.shape[0]
        basis = torch.eye(d, dtype=torch.float32).reshape(d, 1, *self.shape)
        if op.complex_domain:
            basis = basis.to(torch.complex64)
        cols = op(basis)
        keep = (cols.reshape(d, -1).abs() > 0).any(0)
        a = self._real(cols, keep).T  # (values, d)
        prec = torch.linalg.inv(self.cov) + a.T @ a / self.noise**2
        post = torch.linalg.inv(prec)
        post = (post + post.T) / 2
        mean = post @ a.T @ self._real(y, keep)[0] / self.noise**2
        z = torch.randn(self.n, d, generator=generator, dtype=torch.float64)
        samples = mean + z @ torch.linalg.cholesky(post).T
        self.info = {"samples": samples.float().reshape(self.n, 1, *self.shape)}
        return samples.mean(0).float().reshape(1, 1, *self.shape)


def _mri(h=6, w=8, sigma=0.3, n=8):
    cov = _cov(h * w, seed=7)
    problem = MRIColumns((h, w), sigma)
    x = _gaussian(cov, 1, seed=8).float().reshape(1, 1, h, w)
    item = Item("toy/0", problem.full(x, torch.Generator().manual_seed(0)))
    return problem, item, ExactGaussianSampler(cov, (h, w), sigma / math.sqrt(2), n), cov


def _ct(size=12, sigma=0.05, n=8, n_candidates=24):
    problems: list[str] = []
    cfg = parse(ct_sim.Config, {"modality": "ct", "noise": {"kind": "gaussian", "sigma": sigma}, "normalize": False},
                "simulate", problems)
    assert not problems
    cov = 0.01 * _cov(size * size, seed=9)
    problem = CTViews(cfg, size, n_candidates)
    x = _gaussian(cov, 1, seed=10).float().reshape(1, 1, size, size)
    item = Item("toy/ct", problem.full(x, torch.Generator().manual_seed(0)))
    return problem, item, ExactGaussianSampler(cov, (size, size), sigma, n), cov


def test_first_round_gain_matches_the_closed_form_through_the_mri_problem():
    problem, item, sampler, cov = _mri(n=3000)
    start = problem.start(0.25)
    y, op = problem.measure(item.full, start)
    sampler(y, op, generator=torch.Generator().manual_seed(1))
    z = compact(whiten(problem.values(sampler.info["samples"]), problem.sigma))
    h, w = problem.shape
    basis = torch.eye(h * w).reshape(-1, 1, h, w).to(torch.complex64)
    k = problem.values(basis)  # (d, W, H): column values of each basis image
    post_a = torch.cat([k.real, k.imag], -1).double()  # (d, W, 2H)
    a_m = torch.cat([post_a[:, j].T for j in start])  # the measured rows
    post = torch.linalg.inv(torch.linalg.inv(cov) + a_m.T @ a_m / (problem.sigma**2 / 2))
    got = gains(z, score="joint")
    for j in range(w):
        if j in start:
            continue
        assert float(got[j]) == pytest.approx(_exact_gain(post, post_a[:, j].T, problem.sigma**2 / 2), rel=0.05)


@pytest.mark.parametrize("make, batch", [(_mri, 1), (_mri, 3), (_ct, 4), (_ct, 5)])
def test_budget_met_exactly_no_candidate_twice_start_kept(make, batch):
    problem, item, sampler, _ = make()
    start = problem.start(0.25) if problem.modality == "mri" else problem.start(3)
    budget = 6 if problem.modality == "mri" else 11
    state = run_rounds(problem, [item], sampler, new_state(start, budget), seed=0, batch=batch)
    assert len(state["chosen"]) == budget == len(set(state["chosen"]))
    assert state["chosen"][:len(start)] == start and state["done"]
    assert sum(len(r["chosen"]) for r in state["rounds"]) == budget - len(start)
    assert all(g >= 0 for r in state["rounds"] for g in r["gains"])


def test_same_seed_same_design_and_resume_gives_the_same_result():
    problem, item, sampler, _ = _mri()
    full = run_rounds(problem, [item], sampler, new_state([3, 4], 7), seed=5, batch=1)
    again = run_rounds(problem, [item], sampler, new_state([3, 4], 7), seed=5, batch=1)
    assert full["chosen"] == again["chosen"] and full["rounds"][0]["gains"] == again["rounds"][0]["gains"]

    saved = []

    def interrupt(state):
        saved.append(json.loads(json.dumps(state)))
        if len(state["rounds"]) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_rounds(problem, [item], sampler, new_state([3, 4], 7), seed=5, batch=1, save=interrupt)
    resumed = run_rounds(problem, [item], sampler, saved[-1], seed=5, batch=1)
    assert resumed["chosen"] == full["chosen"]
    other = run_rounds(problem, [item], sampler, new_state([3, 4], 7), seed=6, batch=1)
    assert other["rounds"][0]["gains"] != full["rounds"][0]["gains"]  # the seed reaches the sampler


def test_population_design_uses_every_image():
    problem, item, sampler, _ = _mri()
    other = Item("toy/1", problem.full(torch.zeros(1, 1, 6, 8, dtype=torch.complex64), torch.Generator().manual_seed(3)))
    state = run_rounds(problem, [item, other], sampler, new_state([3, 4], 6), seed=0, batch=2)
    assert len(set(state["chosen"])) == 6


def test_a_sampler_without_samples_is_a_one_line_error():
    problem, item, _, _ = _mri()

    class MapOnly:
        info: dict = {}

        def __call__(self, y, op, generator=None):
            return op.adjoint(y)

    with pytest.raises(DataError, match="no posterior samples"):
        run_rounds(problem, [item], MapOnly(), new_state([3], 4), seed=0, batch=1)


# -- baselines, stages ------------------------------------------------------------------------------------
def test_baselines_have_the_budget_and_keep_the_start():
    for name, cols in mri_baselines(128, list(range(62, 67)), 16, seed=0).items():
        assert len(set(cols)) == 16 and set(range(62, 67)) <= set(cols), name
    for name, views in ct_baselines(180, 30, seed=0).items():
        assert len(set(views)) == 30 and all(0 <= v < 180 for v in views), name
    assert max(ct_baselines(180, 30, seed=0)["arc"]) < 120
    assert stage_rounds(6, 3) == [0, 2, 5] and stage_rounds(1, 3) == [0] and stage_rounds(4, 0) == []


# -- the file mask ------------------------------------------------------------------------------------------
def test_file_mask_round_trip_and_one_line_errors(tmp_path):
    cols = np.zeros(8, dtype=bool)
    cols[[1, 4]] = True
    np.save(tmp_path / "cols.npy", cols)
    np.save(tmp_path / "mask.npy", np.tile(cols, (6, 1)))
    g = torch.Generator()
    for name in ("cols.npy", "mask.npy"):
        m = MASKS.build("file", {"path": str(tmp_path / name)})((6, 8), g)
        assert m.dtype == torch.bool and m.shape == (6, 8) and int(m.sum()) == 12
    with pytest.raises(ShapeError, match="6x8"):
        MASKS.build("file", {"path": str(tmp_path / "mask.npy")})((8, 8), g)
    np.save(tmp_path / "float.npy", np.ones(8) * 0.5)
    with pytest.raises(DataError, match="booleans"):
        MASKS.build("file", {"path": str(tmp_path / "float.npy")})
    with pytest.raises(ConfigError, match="not found"):
        MASKS.build("file", {"path": str(tmp_path / "missing.npy")})
    np.save(tmp_path / "empty.npy", np.zeros(8, dtype=bool))
    with pytest.raises(DataError, match="samples nothing"):
        MASKS.build("file", {"path": str(tmp_path / "empty.npy")})


def test_a_file_mask_runs_through_the_pipeline(tmp_path):
    from genrecon.config import load_config_dict
    from genrecon.pipeline.execute import run

    np.save(tmp_path / "m.npy", np.arange(16) % 3 == 0)
    cfg = load_config_dict({"data": {"source": "phantom:shepp-logan", "size": 16}, "threads": 1,
                            "simulate": {"modality": "mri", "mask": {"name": "file", "path": str(tmp_path / "m.npy")}},
                            "reconstructors": [{"name": "zero_filled"}], "output": {"dir": str(tmp_path / "run")}})
    report = run(cfg)
    assert report["cases"] == 1
    saved = np.load(next((tmp_path / "run" / "cases").iterdir()) / "mask.npy")
    assert saved.sum() == 16 * 6


# -- the config ---------------------------------------------------------------------------------------------
BASE = {"data": {"source": "phantom:shepp-logan", "size": 16},
        "simulate": {"modality": "mri", "noise": {"sigma": 0.05}},
        "sampler": {"name": "dps", "params": {"prior": "pretrained:brain-mri-128-diffusion", "samples": 4}},
        "design": {"budget": {"acceleration": 4}}, "output": {"dir": "runs/x"}}


@pytest.mark.parametrize("change, words", [
    ({"simulate": {"modality": "mri", "noise": {"sigma": 0.05}, "mask": {"name": "random", "acceleration": 4}}},
     "the design chooses the mask"),
    ({"simulate": {"modality": "mri"}}, "give sigma > 0"),
    ({"sampler": {"name": "dps", "params": {"prior": "pretrained:brain-mri-128-diffusion", "samples": 1}}},
     "samples"),
    ({"design": {"budget": {"n_views": 30}}}, "only for CT"),
    ({"design": {"budget": {"acceleration": 4}, "bacth": 2}}, "did you mean 'batch'"),
    ({"simulate": {"modality": "ct", "noise": {"kind": "poisson", "i0": 1000}}}, "Gaussian noise"),
])
def test_bad_design_configs_are_refused_in_one_message(change, words):
    with pytest.raises(ConfigError, match=words):
        load_design_dict({**BASE, **change}, build=False)


@pytest.mark.parametrize("name", ["design_mri_8x.yaml", "design_mri_8x_2d.yaml", "design_ct_30.yaml"])
def test_shipped_design_configs_validate(name):
    from pathlib import Path

    from genrecon.design.config import load_design

    cfg = load_design(Path(__file__).resolve().parents[1] / "configs" / name)
    assert cfg.run.reconstructors[0].label == "sampler"
    # the measured settings (benchmarks/design.md): MRI one column a round; CT batches of 4 with the gap rule
    assert (cfg.design.batch, cfg.design.min_gap) == ((1, 0) if cfg.modality == "mri" else (4, 3))


# -- the command, end to end (the shipped config, made tiny) ---------------------------------------------------
def design_args(config: str, out, *sets: str) -> list[str]:
    """``genrecon design`` arguments for a shipped config made tiny (2 sampler steps, 2 samples), plus ``sets``."""
    args = ["design", "--config", f"configs/{config}", "--set", f"output.dir={out}",
            "--set", "sampler.params.steps=2", "--set", "sampler.params.samples=2"]
    for item in sets:
        args += ["--set", item]
    return args


def reconstruct_with_mask(runner: CliRunner, out, mask_path):
    """``genrecon reconstruct`` of the MRI quickstart (middle slice, zero-filled) through a design's mask file."""
    from genrecon.cli.main import app

    return runner.invoke(app, ["reconstruct", "--config", "configs/quickstart_mri.yaml", "--quiet",
                               "--set", "data.slices=middle", "--set", f"output.dir={out}",
                               "--set", f"simulate.mask={{name: file, path: {mask_path}}}",
                               "--set", "reconstructors=[{name: zero_filled}]"])


def run_design_command(runner: CliRunner, config: str, out, *sets: str):
    """``genrecon design`` of :func:`design_args` (must succeed): ``(args, the first case's folder, its mask,
    report.json)``."""
    from genrecon.cli.main import app

    args = design_args(config, out, *sets)
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    case = next((out / "cases").iterdir())
    return args, case, np.load(case / "mask.npy"), json.loads((out / "report.json").read_text())


def assert_resumes(runner: CliRunner, args: list[str], case, mask) -> None:
    """The same ``genrecon design`` again resumes: nothing redone, the same pattern."""
    from genrecon.cli.main import app

    again = runner.invoke(app, args)
    assert again.exit_code == 0 and np.array_equal(np.load(case / "mask.npy"), mask)


def test_design_command_writes_a_mask_a_config_can_use_and_resumes(tmp_path):
    from genrecon.cli.main import app

    runner = CliRunner()
    out = tmp_path / "d"
    args, case, mask, report = run_design_command(runner, "design_mri_8x.yaml", out, "design.batch=6")
    assert mask.shape == (128, 128) and mask[0].sum() == 16
    assert report["designs"][0]["rounds"] == 2 and len(report["designs"][0]["order"]) == 16
    assert {"random", "equispaced", "variable_density", "center", "partial_fourier"} == set(report["baselines"])
    assert (case / "std_round_0.png").exists() and (out / "report.md").exists()
    assert_resumes(runner, args, case, mask)
    other = runner.invoke(app, [*args, "--set", "seed=1"])
    assert other.exit_code == 2 and "other settings" in other.output
    res = reconstruct_with_mask(runner, tmp_path / "r", case / "mask.npy")
    assert res.exit_code == 0, res.output
