"""``genrecon benchmark``: the smoke suite end to end through the CLI, bad arguments, results rendering."""

from __future__ import annotations

import json
import math

import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from genrecon.benchmark import FULL, parse_suites
from genrecon.benchmark.common import data_range_note
from genrecon.benchmark.plots import nice_ticks
from genrecon.benchmark.results import md_table, render
from genrecon.cli.main import app
from genrecon.errors import ConfigError
from genrecon.registry import OPERATORS

runner = CliRunner()
THREAD_VARS = ("OMP_NUM_THREADS", "NUMBA_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


@pytest.fixture
def restore_threads(monkeypatch):
    """--threads changes torch's thread count and the peers' environment: put both back afterwards."""
    import os

    for var in THREAD_VARS:
        if var in os.environ:
            monkeypatch.setenv(var, os.environ[var])
        else:
            monkeypatch.delenv(var, raising=False)
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def test_smoke_suite_writes_json_results_and_plots_with_sane_values(tmp_path, restore_threads):
    out = tmp_path / "bench"
    res = runner.invoke(app, ["benchmark", "smoke", "--out", str(out), "--threads", "1", "--repeats", "2"])
    assert res.exit_code == 0, res.output
    doc = json.loads((out / "smoke.json").read_text())
    md = (out / "RESULTS.md").read_text()
    assert doc["suite"] == "smoke" and doc["quick"] is False

    # machine and versions are recorded
    m = doc["machine"]
    for key in ("cpu", "cores", "torch", "threads", "device", "gpu", "date", "commit", "genrecon"):
        assert key in m
    assert m["threads"] == 1 and m["device"] == "cpu" and m["torch"] == torch.__version__

    # every registered operator has a genrecon row with a matched adjoint
    ops = [r for r in doc["parts"]["operators"]["records"] if r["implementation"] == "genrecon"]
    assert {r["operator"] for r in ops} == set(OPERATORS.names())
    for r in ops:
        assert r["adjoint_error"] < 1e-4 and r["adjoint_error_float32"] < 1e-4, r
        assert r["forward_ms"] > 0 and r["adjoint_ms"] > 0
    # present peers are measured (matched ones also pass the adjoint test); missing ones say why, in the page too
    peer_rows = [r for r in doc["parts"]["operators"]["records"] if r["implementation"] != "genrecon"]
    assert peer_rows
    for r in peer_rows:
        if "missing" in r:
            assert r["missing"].startswith(("missing (", "n/a (", "failed ("))
        elif "ASTRA" in r["implementation"] or "SigPy" in r["implementation"]:
            assert r["adjoint_error_float32"] < 1e-4, r
    for name, status in doc["peers"].items():
        assert status["status"] in ("present", "missing")
        if status["status"] == "missing":
            assert status["reason"] and status["reason"] in md, name

    # classical: finite metrics, FISTA-TV beats zero-filled on the smoke slice
    classical = doc["parts"]["classical"]["records"]
    runs = [r for r in classical if "psnr" in r]
    assert runs and all(math.isfinite(r["psnr"]) and 0 < r["ssim"] <= 1 for r in runs)
    mri = {r["method"]: r["psnr"] for r in runs if r["modality"] == "mri"}
    fista = next(v for k, v in mri.items() if k.startswith("genrecon fista_tv"))
    assert fista > mri["zero-filled"] + 1.0
    ct_fbp = [r["psnr"] for r in runs if r["modality"] == "ct" and r["method"] == "genrecon fbp (ramp)"]
    assert ct_fbp and all(p > 15 for p in ct_fbp)
    expected_peers = {"bart": "BART", "sigpy": "SigPy", "astra": "ASTRA"}
    for peer, label in expected_peers.items():  # present: measured; missing: a row that says so
        rows = [r for r in classical if label in r["method"]]
        assert rows, peer
        if doc["peers"][peer]["status"] == "missing":
            assert all(r.get("missing", "").startswith("missing (") for r in rows)

    # generative: finite PSNR, DPS samples give coverage in [0, 1], the steps asked for
    gen = [r for r in doc["parts"]["generative"]["records"] if "psnr" in r]
    assert {r["setting"] for r in gen} == {"mri8", "ct30"}
    assert all(math.isfinite(r["psnr"]) and r["seconds"] >= 0 for r in gen)
    dps = [r for r in gen if r["method"].startswith("dps")]
    assert dps and all(0 <= r["coverage"] <= 1 for r in dps)
    # 2 steps each; CT's project+tv runs 5 rounds, each of the one step after its late start
    assert all(r["nfe"] == (5 if (r["method"], r["setting"]) == ("dps_project_tv", "ct30") else 2) for r in dps)
    missing_gen = [r for r in doc["parts"]["generative"]["records"] if "missing" in r]
    assert all(r["method"].startswith("latent") and "head-ct-128-generator" in r["missing"] for r in missing_gen)

    # scaling: positive times for every size and batch
    scal = doc["parts"]["scaling"]["records"]
    assert {(r["modality"], r["size"], r["batch"]) for r in scal} == {
        (mod, n, b) for mod in ("mri", "mri_2d", "ct") for n in (32, 64) for b in (1, 2)} | {
        ("mri_multi", n, 1) for n in (32, 64)}
    assert all(r["s_per_iter"] > 0 for r in scal)
    mri = [r for r in scal if r["modality"].startswith("mri")]
    assert all(r["iter_per_fft_pair"] > 0 and r["fft_pair_ms"] > 0 for r in mri)
    assert {r["coils"] for r in mri if r["modality"] == "mri_multi"} == {8}

    # the page: tables with their conventions and the plots it references
    assert md.startswith("# genrecon benchmark results")
    assert md.count("Conventions:") >= len(doc["tables"]) >= 5
    assert "data_range" in md and "magnitude" in md and "cropping" in md
    for p in doc["plots"]:
        assert f"]({p['file']})" in md
        with Image.open(out / p["file"]) as img:
            assert img.format == "PNG" and img.size[0] > 400
    assert {p["file"] for p in doc["plots"]} == {"smoke_generative_psnr.png", "smoke_scaling_time.png"}
    assert not [p for p in out.iterdir() if ".tmp" in p.name]
    assert str((out / "RESULTS.md").resolve()) in res.output.replace("\n", "")


@pytest.mark.parametrize("args, expected", [
    (["benchmark", "operatrs"], "did you mean 'operators'"),
    (["benchmark", "smoke,al"], "did you mean 'all'"),
    (["benchmark", ","], "no suite given"),
    (["benchmark", "smoke", "--device", "tpu"], "unknown device"),
    (["benchmark", "generative", "--settings", "mri8,ct300"], "unknown setting 'ct300'"),
])
def test_bad_arguments_are_one_line_errors(args, expected, tmp_path):
    res = runner.invoke(app, [*args, "--out", str(tmp_path / "out")])
    assert res.exit_code == 2, res.output
    assert expected in res.output and "Traceback" not in res.output
    assert not (tmp_path / "out").exists()


def test_generative_without_prepared_data_stops_before_running(tmp_path):
    res = runner.invoke(app, ["benchmark", "operators,generative", "--out", str(tmp_path / "out"),
                              "--data", str(tmp_path / "none")])
    assert res.exit_code == 1, res.output
    assert "prepare_data.py all" in res.output and "Traceback" not in res.output
    assert not (tmp_path / "out").exists()  # nothing ran, not even the operators suite


def test_generative_jobs_give_the_same_records_as_one_process(tmp_path, restore_threads):
    from genrecon.benchmark import generative
    from genrecon.benchmark.common import Options, no_log
    from genrecon.benchmark.smoke import PLANS

    torch.set_num_threads(1)  # as in the workers: float results depend on the thread count
    docs = {jobs: generative.run(Options(out=tmp_path, jobs=jobs, threads=1), no_log, PLANS["generative"]())
            for jobs in (1, 2)}
    rows = {jobs: [(r["setting"], r["method"], r.get("image"), r.get("psnr"), r.get("missing"))
                   for r in doc["records"]] for jobs, doc in docs.items()}
    assert rows[1] == rows[2] and any(r[3] is not None for r in rows[1])
    assert docs[2]["settings"]["jobs"] == 2


def test_parse_suites_expands_all_and_drops_duplicates():
    assert parse_suites("all") == list(FULL)
    assert parse_suites("scaling, all,smoke") == ["scaling", "operators", "classical", "generative", "smoke"]
    with pytest.raises(ConfigError, match="choose from"):
        parse_suites("fast")


def test_results_page_escapes_cells_and_marks_quick_runs():
    assert md_table(["a"], [["x|y"]]).splitlines()[-1] == "| x\\|y |"
    doc = {"suite": "scaling", "title": "T", "quick": True, "seconds": 1.0, "options": {}, "peers": {},
           "tables": [{"title": "t", "columns": ["a"], "rows": [["1"]], "conventions": "c", "notes": []}],
           "plots": [{"file": "f.png", "caption": "cap"}], "missing": ["cuda: none"]}
    page = render([doc])
    assert "Quick run" in page and "Conventions: c." in page and "![cap](f.png)" in page and "cuda: none" in page


def test_data_range_note_converts_psnr_between_conventions():
    note = data_range_note(0.5, 0.0)
    assert "-6.02 dB" in note  # 20 log10(0.5)
    assert nice_ticks(0, 10)[0] == 0 and nice_ticks(0, 10)[-1] >= 10


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_smoke_suite_on_cuda(tmp_path, restore_threads):
    out = tmp_path / "bench"
    res = runner.invoke(app, ["benchmark", "smoke", "--out", str(out), "--device", "cuda", "--repeats", "1"])
    assert res.exit_code == 0, res.output
    doc = json.loads((out / "smoke.json").read_text())
    assert doc["machine"]["device"] == "cuda" and doc["machine"]["gpu"]
    ops = [r for r in doc["parts"]["operators"]["records"] if r["implementation"] == "genrecon"]
    assert ops and all(r["device"] == "cuda" and r["adjoint_error"] < 1e-4 for r in ops)
    assert all(r["peak_mb"] is not None for r in doc["parts"]["generative"]["records"] if "psnr" in r)


def test_results_page_links_the_hand_written_pages_of_its_folder(tmp_path):
    """A rerun of the suites rewrites RESULTS.md; pages written by scripts (dps.md, fullsize.md...) stay linked."""
    from genrecon.benchmark.results import write_results

    (tmp_path / "fullsize.md").write_text("# Generative methods at full size\n\ntext\n")
    (tmp_path / "other.md").write_text("no heading\n")
    page = write_results(tmp_path).read_text()
    assert "- [Generative methods at full size](fullsize.md)" in page and "- [other.md](other.md)" in page
    assert "RESULTS.md)" not in page
