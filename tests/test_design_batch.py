"""Measurement design (issue 20), batches and coverage: the set score, the image-variance score, the gap rule."""

from __future__ import annotations

import math

import pytest
import torch

from genrecon.design.config import load_design_dict
from genrecon.design.loop import new_state, run_rounds
from genrecon.design.score import (circular_distance, compact, compact_pair, condition, gains, gram, line_distance, select,
                                   set_gain, spread, variance_reductions, whiten)
from genrecon.errors import ConfigError

from test_design import BASE, _ct, _cov, _exact_gain, _gaussian, _mri, design_args


def _one_value_ensemble(d: int, sigma: float, n: int, seed: int = 3):
    """Samples of ``x ~ N(0, cov)`` and their whitened values when candidate ``i`` measures ``x_i``."""
    cov = _cov(d, seed=seed)
    x = _gaussian(cov, n)
    return cov, x, whiten(x[:, :, None], sigma)


def _posterior(cov: torch.Tensor, measured: list[int], sigma: float) -> torch.Tensor:
    e = torch.eye(cov.shape[0], dtype=torch.float64)[measured]
    return torch.linalg.inv(torch.linalg.inv(cov) + e.T @ e / sigma**2)


def test_set_gain_is_the_closed_form_log_det_of_the_set():
    d, sigma = 6, 0.4
    cov, _, z = _one_value_ensemble(d, sigma, 40000)
    e = torch.eye(d, dtype=torch.float64)
    for s in ([1], [0, 3], [0, 2, 5], list(range(d))):
        assert set_gain(compact(z), s) == pytest.approx(_exact_gain(cov, e[s], sigma**2), rel=0.03), s
    assert set_gain(z, []) == 0.0
    # two nearly identical candidates measured together gain little more than one of them alone
    twin = torch.cat([z[:1], z[:1] * 1.001])
    assert set_gain(twin, [0, 1]) < set_gain(twin, [0]) + 0.5 * math.log(2) + 1e-6


def test_greedy_conditioned_batch_gains_add_up_to_the_set_gain_exactly():
    d, sigma = 7, 0.3
    _, _, z = _one_value_ensemble(d, sigma, 12, seed=4)  # a small, rank-deficient ensemble: exact algebra
    picks = select([z], torch.ones(d, dtype=torch.bool), 4, score="joint")
    chosen = [i for i, _ in picks]
    assert sum(g for _, g in picks) == pytest.approx(set_gain(compact(z), chosen), rel=1e-9)
    # and each greedy step took the best conditional gain: no other set of the same prefix and size does better
    for j in range(d):
        if j not in chosen:
            assert set_gain(compact(z), chosen[:3] + [j]) <= set_gain(compact(z), chosen) + 1e-9


def test_variance_score_is_the_closed_form_reduction_of_the_posterior_trace():
    d, sigma = 5, 0.5
    cov, x, z = _one_value_ensemble(d, sigma, 40000, seed=6)
    z, xs = compact_pair(z, spread(x.reshape(-1, 1, 1, d)))
    g = gram(z)
    got = variance_reductions(g, xs)
    total = float(torch.trace(cov))
    for c in range(d):
        assert float(got[c]) == pytest.approx(total - float(torch.trace(_posterior(cov, [c], sigma))), rel=0.03)
    # after measuring candidate 0 (conditioned ensemble), candidate j reduces the trace of Sigma | 0 further by
    # tr(Sigma | 0) - tr(Sigma | 0, j)
    factor = condition(None, g[0])
    after = variance_reductions(g, xs, factor)
    base = float(torch.trace(_posterior(cov, [0], sigma)))
    for j in range(d):  # j = 0: the same value measured twice (the noise averaged)
        assert float(after[j]) == pytest.approx(base - float(torch.trace(_posterior(cov, [0, j], sigma))), rel=0.05)
    assert float(after[0]) < 0.2 * float(got[0])  # measuring the same value again teaches little


def test_variance_score_is_not_the_information_gain():
    # a value with a large variance but no influence on the rest: the gain ranks by its own variance, the
    # variance score by how much of the whole image it explains
    sigma = 0.1
    cov = torch.diag(torch.tensor([2.0, 1.0, 1.0, 1.0], dtype=torch.float64))
    cov[1:, 1:] = 0.9 + 0.1 * torch.eye(3, dtype=torch.float64)  # values 1-3 move together
    x = _gaussian(cov, 40000, seed=2)
    z = whiten(x[:, :, None], sigma)
    assert int(torch.argmax(gains(z))) == 0
    assert select([z], torch.ones(4, dtype=torch.bool), 1, score="variance", xs=[spread(x.reshape(-1, 1, 1, 4))]
                  )[0][0] in (1, 2, 3)


def test_min_gap_keeps_choices_apart_from_measured_and_chosen_candidates():
    n = 36
    z = whiten(torch.randn(8, n, 3, generator=torch.Generator().manual_seed(0)), 0.1)
    available = torch.ones(n, dtype=torch.bool)
    available[[0, 12, 24]] = False
    dist = circular_distance(n)
    picks = [i for i, _ in select([z], available, 3, distance=dist, min_gap=4)]  # always feasible
    taken = [0, 12, 24] + picks
    assert len(set(picks)) == 3 and not {0, 12, 24} & set(picks)
    assert min(int(dist[a, b]) for a in taken for b in taken if a != b) >= 4
    # when no candidate is far enough the rule relaxes, so the count is still met
    picks = [i for i, _ in select([z], available, 30, distance=dist, min_gap=4)]
    assert len(set(picks)) == 30
    assert int(circular_distance(180)[0, 179]) == 1 and int(line_distance(8)[0, 7]) == 7
    with pytest.raises(ValueError, match="distances"):
        select([z], available, 2, min_gap=2)
    with pytest.raises(ValueError, match="xs"):
        select([z], available, 2, score="variance")


@pytest.mark.parametrize("make, score, gap, batch", [(_mri, "variance", 0, 1), (_mri, "marginal", 2, 2),
                                                     (_ct, "variance", 3, 4), (_ct, "marginal", 3, 1)])
def test_loop_with_new_rules_meets_the_budget_without_repeats(make, score, gap, batch):
    problem, item, sampler, _ = make()
    start = problem.start(0.25) if problem.modality == "mri" else problem.start(3)
    budget = 6 if problem.modality == "mri" else 11
    state = run_rounds(problem, [item], sampler, new_state(start, budget), seed=0, batch=batch, score=score,
                       min_gap=gap)
    assert len(state["chosen"]) == budget == len(set(state["chosen"]))
    assert all(g >= -1e-9 for r in state["rounds"] for g in r["gains"])
    if problem.modality == "ct":  # 11 of 24 views: a gap of 3 steps is feasible for the first choices
        d = problem.distance()
        first = state["rounds"][0]["chosen"][0]
        assert min(int(d[first, s]) for s in start) >= gap


def test_config_takes_the_new_keys_and_refuses_bad_values():
    cfg = load_design_dict({**BASE, "design": {"budget": {"acceleration": 4}, "score": "variance", "min_gap": 2}},
                           build=False)
    assert cfg.design.score == "variance" and cfg.design.min_gap == 2
    assert load_design_dict(BASE, build=False).design.min_gap == 0
    with pytest.raises(ConfigError, match="min_gap"):
        load_design_dict({**BASE, "design": {"budget": {"acceleration": 4}, "min_gap": -1}}, build=False)
    with pytest.raises(ConfigError, match="score"):
        load_design_dict({**BASE, "design": {"budget": {"acceleration": 4}, "score": "entropy"}}, build=False)


def test_shipped_ct_config_keeps_its_gap_end_to_end(tmp_path):
    """The shipped CT design (batch 4, min_gap 3), made tiny: the views of each round keep 3 degrees apart."""
    import json

    import yaml
    from typer.testing import CliRunner

    from genrecon.cli.main import app

    out = tmp_path / "ct"
    res = CliRunner().invoke(app, design_args("design_ct_30.yaml", out, "design.budget.n_views=14",
                                              "design.start.n_views=2"))
    assert res.exit_code == 0, res.output
    report = json.loads((out / "report.json").read_text())
    assert report["min_gap"] == 3 and report["batch"] == 4
    order = [row["candidate"] for row in report["designs"][0]["order"]]
    assert len(order) == len(set(order)) == 14
    steps = [(b - a) % 180 for a, b in zip(sorted(order), sorted(order)[1:] + sorted(order)[:1])]
    assert min(steps) >= 3  # 14 views on 180 one-degree steps: the gap is always feasible
    case = next((out / "cases").iterdir())
    angles = yaml.safe_load((case / "angles.yaml").read_text())["angles"]["values_deg"]
    assert len(angles) == 14
