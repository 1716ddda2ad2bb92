"""The import contract (README, design section): low layers never import high ones, no import circles,
small modules. Read from the source with ``ast`` (imports inside functions count too)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "genrecon"

#: layers, lowest first; a module may import its own layer or lower ones. Keys are the first name under
#: ``genrecon`` (a package or a module); ``genrecon`` itself is the package root (``__version__``).
LAYERS = [
    {"genrecon", "errors", "seeding", "conventions", "schema", "registry", "types", "yamlio"},  # core
    {"linalg"},  # power method, finite differences
    {"operators"},
    {"solvers"},
    {"sampling"},  # latent Laplace / Langevin samplers over energy callables
    {"priors"},
    {"phantoms", "metrics", "io", "simulate", "figures", "data_prep", "calib"},  # data in, data out
    {"reconstructors", "peers"},  # peers: other toolkits' methods as reconstructors
    {"config"},  # validates plugins against the registries, so above them
    {"pipeline", "report"},
    {"batch", "benchmark", "training", "prepare", "design"},
    {"testing", "cli"},
]
RANK = {name: i for i, layer in enumerate(LAYERS) for name in layer}

#: modules over the ~400-line limit when the contract was written (2026-12-03); they may only shrink
OVERSIZE: dict[str, int] = {}
LIMIT = 400


def _module(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """The genrecon modules ``path`` imports (``from a import b`` counts ``a.b`` when that is a module)."""
    mod = _module(path)
    package = mod if path.name == "__init__.py" else mod.rsplit(".", 1)[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target == "genrecon" or target.startswith("genrecon."):
                out.add(target)
                out.update(f"{target}.{a.name}" for a in node.names if f"{target}.{a.name}" in MODULES)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.startswith("genrecon"))
    return {m for m in out if m in MODULES}


MODULES = {_module(p): p for p in ROOT.rglob("*.py")}
GRAPH = {m: _imports(p) for m, p in MODULES.items()}


def _top(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "genrecon"


def test_every_module_has_a_layer():
    missing = sorted({_top(m) for m in MODULES} - set(RANK))
    assert not missing, f"add these to LAYERS (and to the README's design section): {missing}"


def test_no_import_points_to_a_higher_layer():
    bad = []
    for mod, targets in GRAPH.items():
        for t in targets:
            if RANK[_top(t)] > RANK[_top(mod)]:
                bad.append(f"{mod} -> {t}")
    assert not bad, "imports from a lower layer into a higher one:\n" + "\n".join(sorted(bad))


def test_no_import_circles():
    """No cycle among modules (a package's ``__init__`` re-exporting its submodules is not an edge back)."""
    state: dict[str, int] = {}
    stack: list[str] = []
    cycles = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for t in GRAPH[m]:
            if t == m or m.startswith(t + "."):  # a module importing its own package's names
                continue
            if state.get(t) == 1:
                cycles.append(" -> ".join(stack[stack.index(t):] + [t]))
            elif t not in state:
                visit(t)
        stack.pop()
        state[m] = 2

    for m in sorted(GRAPH):
        if m not in state:
            visit(m)
    assert not cycles, "import circles:\n" + "\n".join(cycles)


@pytest.mark.parametrize("path", sorted(str(p.relative_to(ROOT.parent)) for p in ROOT.rglob("*.py")))
def test_modules_stay_small(path):
    n = len((ROOT.parent / path).read_text().splitlines())
    ceiling = OVERSIZE.get(path, LIMIT)
    assert n <= ceiling, (f"{path} has {n} lines (limit {ceiling}): split it by purpose"
                          + (" (it is on the list of modules to shrink: it may not grow)" if path in OVERSIZE else ""))


def test_the_oversize_list_only_names_existing_oversize_modules():
    for path, ceiling in OVERSIZE.items():
        p = ROOT.parent / path
        if p.exists():
            assert len(p.read_text().splitlines()) > LIMIT, f"{path} is small now: remove it from OVERSIZE"
