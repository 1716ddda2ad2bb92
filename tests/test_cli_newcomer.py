"""A newcomer's first hour (issue 19): fast --help, readable progress in logs, thread count printed, --set shown
by --dry-run, realised acceleration named as such."""

from __future__ import annotations

import json
import subprocess
import sys

import yaml
from typer.testing import CliRunner

from conftest import quick_mri_config
from genrecon.cli.main import app
from genrecon.cli.reconstruct import CaseLines
from genrecon.pipeline.plan import resolve_threads

runner = CliRunner()


def test_help_does_not_import_torch():
    """``genrecon --help`` and every command's module load without torch (it took 17-39 s on a busy machine)."""
    code = ("import sys, genrecon.cli.main; "
            "print(sorted(m for m in ('torch', 'numpy.linalg', 'scipy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "torch" not in out, out


def test_help_shows_flags_without_a_bool_metavar():
    res = runner.invoke(app, ["reconstruct", "--help"])
    assert res.exit_code == 0
    assert "--dry-run" in res.output and "<bool>" not in res.output


def test_threads_auto_takes_idle_cores_and_a_number_is_kept():
    n, why = resolve_threads("auto")
    assert n >= 1 and why.startswith("threads: auto")
    assert resolve_threads(None)[0] == n or resolve_threads(None)[1].startswith("threads: auto")  # load may move
    assert resolve_threads(2) == (2, "threads: 2")


def test_case_lines_print_one_line_per_case_with_an_eta():
    lines: list[str] = []
    p = CaseLines(lines.append)
    p("plan", cases=2, methods=["a", "b"], out="x", device="cpu", threads=1, threads_why="threads: 1")
    p("method_done", key="k/0", label="a", seconds=1.25)
    p("method_done", key="k/0", label="b", seconds=0.5)
    p("case_done", key="k/0")
    p("case_skip", key="k/1")
    assert len(lines) == 2
    assert lines[0].startswith("[1/2] k/0: a 1.2 s, b 0.5 s; elapsed 0:0") and "ETA 0:0" in lines[0]
    assert lines[1].startswith("[2/2] k/1: skipped") and lines[1].endswith("ETA 0:00")


def test_run_in_a_log_prints_plan_threads_and_case_lines(tmp_path):
    """Output that is not a terminal (CliRunner, SLURM logs) gets plain lines as cases finish, the thread count,
    the realised acceleration under that name and every output file."""
    cfg = quick_mri_config(tmp_path / "run")
    cfg["threads"] = 1
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    res = runner.invoke(app, ["reconstruct", "--config", str(path)])
    assert res.exit_code == 0, res.output
    assert "1 torch thread(s) (threads: 1)" in res.output
    n_cases = json.loads((tmp_path / "run" / "report.json").read_text())["cases"]
    assert sum(line.startswith(f"[") and f"/{n_cases}]" in line for line in res.output.splitlines()) == n_cases
    assert "realised acceleration" in res.output
    assert "report.json" in res.output
    records = [json.loads(p.read_text()) for p in (tmp_path / "run" / "cases").glob("*/fista_tv.json")]
    assert records and all(r["threads"] == 1 and r["device"] == "cpu" for r in records)


def test_dry_run_shows_what_set_made_of_a_key(tmp_path):
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(quick_mri_config(tmp_path / "run")))
    res = runner.invoke(app, ["reconstruct", "--config", str(path), "--dry-run",
                              "--set", "reconstructors.1.params.n_iter=7"])
    assert res.exit_code == 0, res.output
    assert "override: reconstructors.1.params.n_iter = 7" in res.output
    assert not (tmp_path / "run").exists()


def test_list_shows_plain_text_docs_with_their_indices():
    """reST markup is not shown raw, and [i+1] in a formula is text, not rich markup that vanishes."""
    res = runner.invoke(app, ["list"])
    assert res.exit_code == 0
    assert "``" not in res.output and ":class:" not in res.output
    assert "x[i+1,j]" in res.output


def test_report_csv_rows_state_their_conventions_and_the_mask_is_mask_npy(tmp_path):
    import csv

    cfg = quick_mri_config(tmp_path / "run")
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert runner.invoke(app, ["reconstruct", "--config", str(path), "--quiet"]).exit_code == 0
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    with open(tmp_path / "run" / "report.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert rows and all(r["conventions"] == report["conventions"] and "data_range" in r["conventions"] for r in rows)
    case_dirs = [p for p in (tmp_path / "run" / "cases").iterdir() if p.is_dir()]
    assert case_dirs and all((d / "mask.npy").is_file() and not (d / "mask_tensor.npy").exists() for d in case_dirs)


def test_batch_submit_without_a_controller_says_so_in_one_line(tmp_path, monkeypatch):
    """The real sbatch with no slurm.conf anywhere: a one-line 'no SLURM controller reachable' (not DNS errors)."""
    import shutil
    from pathlib import Path

    import pytest

    if shutil.which("sbatch") is None or Path("/etc/slurm/slurm.conf").exists():
        pytest.skip("needs sbatch installed and no system slurm.conf")
    monkeypatch.delenv("SLURM_CONF", raising=False)
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(quick_mri_config(tmp_path / "run")))
    res = runner.invoke(app, ["batch", "submit", "--config", str(path), "--array", "1"])
    assert res.exit_code == 1, res.output
    assert "no SLURM controller reachable" in res.output and "--dry-run" in res.output
    assert "Traceback" not in res.output


def test_benchmark_tables_wider_than_the_screen_print_one_line_per_row(monkeypatch):
    import io

    from rich.console import Console

    import genrecon.cli.benchmark as bench

    buf = io.StringIO()
    monkeypatch.setattr(bench, "console", Console(file=buf, width=60))
    cols = ["setting", "method", "PSNR dB", "SSIM", "s / slice", "NFE", "2-sigma coverage", "peak MiB"]
    wide = {"title": "wide", "columns": cols, "rows": [["MRI 8x", "dps", "9.20 ± 0.00", "0.019", "0.3", "2", "0.83",
                                                       "63"]], "conventions": "data_range 1"}
    narrow = {"title": "narrow", "columns": ["a", "b"], "rows": [["1", "2"]]}
    bench._print_doc({"suite": "smoke", "tables": [wide, narrow]})
    text = buf.getvalue()
    assert "code-path check" in text
    assert "MRI 8x / dps: PSNR dB 9.20 ± 0.00, SSIM 0.019" in text  # one line, no cell folded
    assert "┃ a" in text.replace("┃ a ", "┃ a")  # the narrow one stays a table


def test_angle_diagram_draws_one_spoke_pair_per_view():
    import numpy as np

    from genrecon.figures import angle_diagram

    img = angle_diagram([0.0, 90.0], 101)
    c = 50
    assert img[c, c + 40] == 255 and img[c, c - 40] == 255      # 0 deg: the horizontal spokes
    assert img[c - 40, c] == 255 and img[c + 40, c] == 255      # 90 deg: the vertical ones
    assert img[c, c] == 0                                        # the hub stays clear
    assert img[c - 28, c + 28] == 0                              # no spoke at 45 deg
    assert np.count_nonzero(angle_diagram([0.0, 45.0, 90.0], 101)) > np.count_nonzero(img)


def test_panel_shows_the_sampling_mask_and_a_window_bar(tmp_path):
    import numpy as np
    from PIL import Image

    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(quick_mri_config(tmp_path / "run")))
    assert runner.invoke(app, ["reconstruct", "--config", str(path), "--quiet"]).exit_code == 0
    case = next(p for p in (tmp_path / "run" / "cases").iterdir() if p.is_dir())
    panel = np.asarray(Image.open(case / "panel.png"))
    mask = np.load(case / "mask.npy").squeeze()
    h = mask.shape[0]
    zoom = max(1, round(256 / h))
    assert panel.shape[1] == 3 * (h * zoom + 6) + 6 + 70          # truth + 2 methods, the bar column
    head, row_h, label_h = 2 * 20 + 6, 20 + h * zoom + 18 + 6, 20
    tile = panel[head + row_h + label_h: head + row_h + label_h + h * zoom, 6: 6 + h * zoom]
    assert np.array_equal(tile[0, ::zoom] > 127, mask[0] > 0)   # the mask's columns, as sampled
    bar = panel[head + row_h + label_h: head + row_h + label_h + h * zoom, -62:-48]
    assert bar[0].min() > 240 and bar[-1].max() < 15            # white (the window's top) to black (0)


def test_recon_one_liner_builds_a_config_that_reproduces_its_numbers(tmp_path):
    """`genrecon recon FILE --method ... --acceleration 8 --save-config` runs, and the saved config run by
    `genrecon reconstruct` gives the same numbers."""
    saved = tmp_path / "built.yaml"
    res = runner.invoke(app, ["recon", "phantom:shepp-logan", "--modality", "mri", "--acceleration", "8",
                              "--method", "zero_filled", "--method", "fista_tv", "--size", "64", "--threads", "1",
                              "--out", str(tmp_path / "a"), "--save-config", str(saved), "-q"])
    assert res.exit_code == 0, res.output
    built = yaml.safe_load(saved.read_text())
    assert built["simulate"]["mask"]["acceleration"] == 8 and built["threads"] == 1
    assert [r["name"] for r in built["reconstructors"]] == ["zero_filled", "fista_tv"]
    built["output"]["dir"] = str(tmp_path / "b")
    saved.write_text(yaml.safe_dump(built))
    assert runner.invoke(app, ["reconstruct", "--config", str(saved), "-q"]).exit_code == 0
    a, b = (json.loads((tmp_path / d / "report.json").read_text())["summary"] for d in ("a", "b"))
    assert a["fista_tv"]["psnr"] == b["fista_tv"]["psnr"] and a["fista_tv"]["psnr"] > a["zero_filled"]["psnr"]


def test_recon_needs_a_modality_it_cannot_guess_and_checks_the_rest(tmp_path):
    res = runner.invoke(app, ["recon", str(tmp_path / "scan.nii.gz")])
    assert res.exit_code == 2 and "give --modality mri or --modality ct" in res.output
    res = runner.invoke(app, ["recon", "sample:head-ct", "--views", "0", "--dry-run"])
    assert res.exit_code == 2 and "n_views" in res.output and "Traceback" not in res.output
    res = runner.invoke(app, ["recon", "sample:head-ct", "--span", "90", "--views", "45", "--dry-run"])
    assert res.exit_code == 0 and "fbp, fista_tv" in res.output
