from dataclasses import dataclass, field
from typing import Literal

import pytest

from genrecon.errors import RegistryError
from genrecon.registry import Registry
from genrecon.schema import parse


def test_registry_duplicate_unknown_and_params():
    reg = Registry("thing")

    @reg.register("alpha")
    class Alpha:
        """The alpha thing."""

        def __init__(self, *, size: int = 3, need: float):
            self.size, self.need = size, need

    with pytest.raises(RegistryError, match="registered twice"):
        reg.register("alpha")(type("Other", (), {}))
    with pytest.raises(RegistryError, match="did you mean 'alpha'"):
        reg.get("alpah")
    assert reg.doc("alpha") == "The alpha thing."
    problems = reg.check_params("alpha", {"szie": 4})
    assert any("did you mean 'size'" in p for p in problems)
    assert any("needs parameter 'need'" in p for p in problems)
    assert reg.build("alpha", {"need": 1.5}).need == 1.5


@dataclass(frozen=True)
class Inner:
    sigma: float = field(default=0.0, metadata={"ge": 0})
    kind: Literal["a", "b"] = "a"


@dataclass(frozen=True)
class Outer:
    name: str
    inner: Inner = field(default_factory=Inner)
    sizes: list[int] = field(default=(1,), metadata={"item": {"ge": 1}})


def test_parse_collects_every_problem():
    problems: list[str] = []
    parse(Outer, {"inner": {"sigma": -1, "knid": "a", "kind": "c"}, "sizes": [2, 0], "extra": 1}, "", problems)
    text = "\n".join(problems)
    assert "missing required key 'name'" in text
    assert "unknown key 'extra'" in text
    assert "inner: unknown key 'knid' (did you mean 'kind'?)" in text
    assert "inner.sigma: must be >= 0" in text
    assert "inner.kind: 'c' is not one of" in text
    assert "sizes.1: must be >= 1" in text
    assert len(problems) == 6


def test_parse_types_and_conversion():
    problems: list[str] = []
    obj = parse(Outer, {"name": "x", "inner": {"sigma": 1}, "sizes": [3]}, "", problems)
    assert not problems and obj.inner.sigma == 1.0 and isinstance(obj.inner.sigma, float) and obj.sizes == (3,)
    parse(Outer, {"name": 5, "inner": {"sigma": "big"}, "sizes": "x"}, "", problems)
    assert len(problems) == 3
