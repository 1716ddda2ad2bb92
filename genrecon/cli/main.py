"""The ``genrecon`` command: assembles the commands and is the error boundary (exit 2 usage, 1 data)."""

from __future__ import annotations

import importlib

import typer

app = typer.Typer(
    name="genrecon",
    help="MRI and CT reconstruction with generative priors: simulate, reconstruct, compare.",
    no_args_is_help=True,
    add_completion=True,           # genrecon --install-completion (bash, zsh, fish)
    rich_markup_mode=None,         # plain help: flags without a '<bool>' metavar, defaults shown
    pretty_exceptions_enable=False,
)

# (command name, module, function) — each module holds one command
COMMANDS = [
    ("reconstruct", "reconstruct", "reconstruct"),
    ("recon", "recon", "recon"),
    ("evaluate", "evaluate", "evaluate"),
    ("list", "list_cmd", "list_plugins"),
    ("check-operator", "check_operator", "check_operator"),
    ("train-prior", "train_prior", "train_prior"),
    ("priors", "priors", "priors"),
    ("benchmark", "benchmark", "benchmark"),
    ("design", "design", "design"),
]

for _name, _module, _func in COMMANDS:
    app.command(_name)(getattr(importlib.import_module(f"genrecon.cli.{_module}"), _func))
app.add_typer(importlib.import_module("genrecon.cli.batch").app, name="batch")


def _version(value: bool) -> None:
    if value:
        from .. import __version__

        typer.echo(f"genrecon {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="print the version"),
) -> None:
    """MRI and CT reconstruction with generative priors: simulate, reconstruct, compare."""


def main() -> None:
    app()


if __name__ == "__main__":
    main()
