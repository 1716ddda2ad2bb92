"""Typed reconstructor parameters (``Reconstructor.Params``): one mechanism (genrecon.schema) for config
validation, ``RECONSTRUCTORS.build`` and direct construction, each problem on one line."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import ClassVar, Literal

import pytest
import torch

from genrecon.errors import ConfigError
from genrecon.priors.gaussian import GaussianDiffusionPrior
from genrecon.reconstructors import Reconstructor
from genrecon.reconstructors.base import Renamed, plugin_problems
from genrecon.reconstructors.dps import DPS
from genrecon.reconstructors.fbp import FBP
from genrecon.registry import RECONSTRUCTORS, Registry

PRIOR = GaussianDiffusionPrior(torch.zeros(16), torch.eye(16), size=4)

#: (name, params, the problem's text after its location) for each built-in method with Params
CASES = [
    ("dps", {"prior": PRIOR, "steps": 0}, "steps: must be >= 1, got 0"),  # out of range
    ("dps", {"prior": PRIOR, "stpes": 5}, "unknown key 'stpes' (did you mean 'steps'?)"),  # unknown, did you mean
    ("dps", {"prior": PRIOR, "samples": 2.5}, "samples: expected an integer, got 2.5"),  # wrong type
    ("dps", {"prior": PRIOR, "zeta": float("nan")}, "zeta: must be a finite number, got nan"),  # not finite
    ("fbp", {"frequency_scaling": 1.5}, "frequency_scaling: must be <= 1, got 1.5"),
    ("fbp", {"filtr": "hann"}, "unknown key 'filtr' (did you mean 'filter'?)"),
    ("fbp", {"filter": "hamming"}, "filter: 'hamming' is not one of 'ramp', 'shepp-logan', 'cosine', 'hann'"),
    ("zero_filled", {"dcf": "yes"}, "dcf: expected true or false, got 'yes'"),
    ("latent_inversion", {"prior": "x.pt", "restarts": 0}, "restarts: must be >= 1, got 0"),
    ("latent_inversion", {"prior": "x.pt", "stesp": 3}, "unknown key 'stesp' (did you mean 'steps'?)"),
    ("latent_inversion", {"prior": "x.pt", "steps": "ten"}, "steps: expected an integer, got 'ten'"),
    ("latent_inversion", {"prior": "x.pt", "mode": "hybird"}, "mode: 'hybird' is not one of 'plain', 'hybrid', "
                                                              "'anchored' (did you mean 'hybrid'?)"),
]


@pytest.mark.parametrize("name, params, text", CASES)
def test_validation_and_construction_give_the_same_one_line_problem(name, params, text):
    where = "reconstructors.0.params"
    found = RECONSTRUCTORS.check_params(name, params, where=where)
    assert found[0].endswith(text) and found[0].startswith(where) and "\n" not in found[0]
    assert len(found) == (2 if "finite" in text else 1)  # schema.parse: NaN also fails its range check
    cls = RECONSTRUCTORS.get(name)
    for build in (lambda: cls(**params), lambda: RECONSTRUCTORS.build(name, params)):
        with pytest.raises(ConfigError) as err:
            build()
        problems = err.value.problems
        assert problems[0].startswith(name) and problems[0].endswith(text) and "\n" not in problems[0]
        # the same problems, located by the method's name instead of the config path
        assert [p.removeprefix(name) for p in problems] == [p.removeprefix(where) for p in found]


def test_all_problems_at_once_and_cross_field_rules():
    with pytest.raises(ConfigError) as err:
        DPS(prior=PRIOR, steps=0, eta=2, rounds=2, stesp=1)
    assert err.value.problems == [
        "dps: unknown key 'stesp' (did you mean 'steps'?)",
        "dps.steps: must be >= 1, got 0",
        "dps.eta: must be <= 1, got 2.0",
        "dps: rounds > 1 restart from data-consistent means: set consistency: project",
    ]


def test_parsed_values_are_typed_attributes_and_listed():
    rec = FBP(frequency_scaling=1)
    assert rec.frequency_scaling == 1.0 and isinstance(rec.frequency_scaling, float)
    assert rec.params == FBP.Params(filter="ramp", frequency_scaling=1.0)
    rows = {r[0]: r for r in RECONSTRUCTORS.describe("dps")}
    assert rows["steps"][1:3] == ("int", "100") and "network evaluations" in rows["steps"][3]
    assert rows["tv"][3].startswith("deprecated")
    params = RECONSTRUCTORS.parameters("latent_inversion")
    assert params["prior"].default is params["prior"].empty and params["steps"].default == 300
    assert RECONSTRUCTORS.parameter_types("fbp")["frequency_scaling"] is float
    assert RECONSTRUCTORS.describe("fista_tv") is None or RECONSTRUCTORS.params_class("fista_tv") is not None


def test_old_names_warn_once_at_construction_not_at_validation():
    params = {"prior": PRIOR, "consistency": "project", "tv": 0.1}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert RECONSTRUCTORS.check_params("dps", params) == []
    with pytest.warns(DeprecationWarning, match="dps: tv is deprecated .* write tv_weight: 0.1") as caught:
        rec = DPS(**params)
    assert caught[0].filename == __file__  # the user's line, so Python's default filters show it in scripts
    assert rec.tv_weight == 0.1 and rec.params.tv_weight == 0.1 and not hasattr(rec, "tv")
    with pytest.raises(ConfigError, match="^reconstructors.0.params: tv is the old name of tv_weight: give tv_weight"):
        raise ConfigError(RECONSTRUCTORS.check_params("dps", {**params, "tv_weight": 0.1}, "reconstructors.0.params"))


class Scaled(Reconstructor):
    """x = factor A^H y (a plugin with typed parameters and an old name)."""

    who = "scaled"

    @dataclass(frozen=True)
    class Params:
        factor: float | None = field(default=None, metadata={"gt": 0, "doc": "the scale. None: 1"})
        kind: Literal["a", "b"] = "a"
        scale: float | None = field(default=None, metadata={"doc": "deprecated: twice factor"})
        renamed: ClassVar[tuple[Renamed, ...]] = (
            Renamed("scale", "factor", default=1.0, scale=0.5, relation="2 x factor"),)

    def reconstruct(self, y, op, *, x0=None, generator=None, callback=None):
        return self.factor * op.adjoint(y)


class Keywords(Reconstructor):
    """A plugin without Params: its keyword parameters, as the README shows."""

    def __init__(self, *, n_iter: int = 3):
        super().__init__()
        self.n_iter = n_iter

    def reconstruct(self, y, op, *, x0=None, generator=None, callback=None):
        return op.adjoint(y)


def test_a_plugin_with_params_and_one_without():
    reg = Registry("reconstructor")
    reg.contract = plugin_problems
    reg.add("scaled", Scaled)
    reg.add("keywords", Keywords)
    assert reg.build("scaled", {"factor": 2}).factor == 2.0 and reg.build("scaled", {}).factor == 1.0
    with pytest.warns(DeprecationWarning, match=r"write factor: 1\.5 \(scale / 2\)"):
        assert reg.build("scaled", {"scale": 3.0}).factor == 1.5
    assert reg.check_params("scaled", {"factr": 1, "kind": "c"}, "p") == [
        "p: unknown key 'factr' (did you mean 'factor'?)", "p.kind: 'c' is not one of 'a', 'b'"]
    # without Params: the constructor's keywords, as before
    assert reg.build("keywords", {"n_iter": 5}).n_iter == 5
    assert "did you mean 'n_iter'" in reg.check_params("keywords", {"n_itr": 5})[0]
    assert reg.check_types("keywords", {"n_iter": 2.5}) == ["params.n_iter: expected an integer, got 2.5"]
    with pytest.raises(TypeError, match="unexpected parameters"):
        Reconstructor(n_iter=3)

    class BadParams(Keywords):
        Params = {"n_iter": int}

    assert "Params must be a dataclass" in plugin_problems("bad", BadParams)[0]
