"""``genrecon list``: the registered plugins with one-line docs."""

from __future__ import annotations

import json

import typer
from rich.markup import escape
from rich.table import Table

from ..registry import LOADERS, MASKS, OPERATORS, RECONSTRUCTORS
from .common import console, handle_errors


@handle_errors
def list_plugins(
    kind: str = typer.Argument("all", help="all, loaders, masks, operators or reconstructors"),
    as_json: bool = typer.Option(False, "--json", help="print the plugins as JSON (for scripts)"),
) -> None:
    """List registered loaders, masks, operators and reconstructors with their parameters."""
    from ..errors import ConfigError
    from ..registry import did_you_mean

    kinds = {"loaders": LOADERS, "masks": MASKS, "operators": OPERATORS, "reconstructors": RECONSTRUCTORS}
    if kind != "all" and kind not in kinds:
        raise ConfigError(f"unknown kind '{kind}'{did_you_mean(kind, kinds)}; choose all, {', '.join(kinds)}")
    chosen = {name: reg for name, reg in kinds.items() if kind in ("all", name)}
    if as_json:
        doc = {name: [{"name": item, "doc": reg.doc(item), "parameters": _parameters(reg, item)}
                      for item in reg.names()]
               for name, reg in chosen.items()}
        typer.echo(json.dumps(doc, indent=2, default=repr))
        return
    for name, reg in chosen.items():
        table = Table(title=name, title_justify="left")
        table.add_column("name", style="bold")
        table.add_column("what it is")
        table.add_column("parameters")
        for item in reg.names():
            params = []
            for pname, p in reg.parameters(item).items():
                default = "" if p.default is p.empty else f"={p.default!r}"
                params.append(f"{pname}{default}")
            table.add_row(item, escape(reg.doc(item)), escape(", ".join(params)))  # [i+1] is text, not markup
        console.print(table)


def _parameters(reg, item: str) -> list[dict]:
    """One entry per parameter: name, required, default; with a ``Params`` dataclass also its type and doc."""
    rows = {row[0]: row for row in reg.describe(item) or ()}
    out = []
    for pname, p in reg.parameters(item).items():
        entry = {"name": pname, "required": p.default is p.empty, **({} if p.default is p.empty else {"default": p.default})}
        if pname in rows:
            entry.update(type=rows[pname][1], doc=rows[pname][3])
        out.append(entry)
    return out
