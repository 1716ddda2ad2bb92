"""Every command in the README's "What you can do" block runs as written (issue 19): quick ones for real, in a
copy of the checkout's configs; the long ones (a benchmark of every suite, data preparation, training, the
fastMRI sample) are parsed by the real command line (every option and file they name must exist) without
running. A renamed flag, config or script fails here, not for a reader."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from genrecon.cli.main import app

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
BLOCK = re.search(r"## What you can do\n\n```bash\n(.*?)```", README, re.S).group(1)
#: commands that take minutes or need data the test cannot make quickly: parsed, not run
LONG = ("benchmark all", "train-prior", "prepare_data.py all", "make_fastmri_sample.py", "fastmri_multicoil",
        "design_mri")
runner = CliRunner()


def _commands() -> list[str]:
    """The block's commands without comments; ``[--opt]`` alternatives expanded into both variants."""
    out = []
    for line in BLOCK.splitlines():
        line = line.split("  #")[0].strip()
        if not line:
            continue
        for part in line.split("&&"):
            part = part.strip()
            optional = re.findall(r"\s\[([^\]]+)\]", part)
            bare = re.sub(r"\s\[[^\]]+\]", "", part)
            out.append(bare)
            if optional:
                out.append(bare + " " + " ".join(o for o in optional if o != "NAME"))
    return list(dict.fromkeys(out))


COMMANDS = _commands()


def test_the_block_lists_the_main_commands():
    names = {c.split()[1] for c in COMMANDS if c.startswith("genrecon ")}
    assert {"reconstruct", "evaluate", "list", "check-operator", "train-prior", "priors", "batch",
            "benchmark"} <= names


def _parse_only(args: list[str]) -> None:
    """Let the real command line parse ``args`` (options, files) without running the command."""
    import typer.main

    cmd = typer.main.get_command(app)
    with cmd.make_context("genrecon", list(args), resilient_parsing=False) as ctx:
        sub = cmd.get_command(ctx, args[0])
        rest = args[1:]
        if args[0] == "batch":
            sub = sub.get_command(ctx, args[1])
            rest = args[2:]
        sub.make_context(args[0], rest, parent=ctx)
    for i, a in enumerate(args):
        if a in ("--config", "-c"):
            assert (ROOT / args[i + 1]).is_file(), args[i + 1]


@pytest.mark.parametrize("command", COMMANDS)
def test_readme_command_runs_as_written(command, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    shutil.copytree(ROOT / "configs", tmp_path / "configs")
    words = shlex.split(command)
    if words[0] == "python":
        script = ROOT / words[1]
        assert script.is_file(), words[1]
        if any(k in command for k in LONG):  # its options parse: --help lists the sub-command used
            help_text = subprocess.run([sys.executable, str(script), "--help"], capture_output=True, text=True,
                                       cwd=ROOT, timeout=120)
            assert help_text.returncode == 0, help_text.stderr
            for word in words[2:]:
                assert word in help_text.stdout, (word, help_text.stdout)
            return
    assert words[0] == "genrecon", command
    args = words[1:]
    if any(k in command for k in LONG):
        _parse_only(args)
        return
    if args[0] == "evaluate":  # needs the run the first command makes: a small one, same config
        res = runner.invoke(app, ["reconstruct", "--config", "configs/mri_brain_8x.yaml", "--quiet",
                                  "--set", "data.slices=middle", "--set", "reconstructors.1.params.n_iter=5"])
        assert res.exit_code == 0, res.output
    if args[0] == "reconstruct" and "--dry-run" not in args:
        args = [*args, "--set", "data.slices=middle", "--set", "threads=1"]
        if "dps" in command:  # a few steps: the config and the prior load, the method runs
            args += ["--set", "reconstructors.2.params.steps=3", "--set", "reconstructors.3.params.steps=3",
                     "--set", "reconstructors.4.params.steps=3"]
    if args[:2] == ["batch", "submit"] and "--dry-run" not in args:
        args = [*args, "--dry-run"]  # writes the sbatch script, needs no cluster
    res = runner.invoke(app, args)
    assert res.exit_code == 0, (command, res.output)
