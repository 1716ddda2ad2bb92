"""The generative suite's two splits (issue 18 part 1): one document per split, never one in place of the other,
and RESULTS.md sets them side by side (PSNR minus FISTA-TV's on the same slice, and the gap)."""

from __future__ import annotations

import json

import pytest

from genrecon.benchmark import doc_stem, run_suite
from genrecon.benchmark.common import Options, machine_info
from genrecon.benchmark.generative_tables import split_gap
from genrecon.benchmark.results import load_documents, render


def _doc(split: str, psnr: dict[tuple[str, str, str], float]) -> dict:
    """A generative document with the given (setting, method, image) -> PSNR records."""
    settings = sorted({k[0] for k in psnr})
    return {"suite": "generative", "title": f"generative {split}", "machine": machine_info("cpu"),
            "settings": {"split": split, "settings": settings, "source": "prepared", "data_dir": "data/prepared"},
            "records": [{"setting": s, "method": m, "image": i, "psnr": v, "seconds": 1.0, "nfe": 1}
                        for (s, m, i), v in psnr.items()],
            "tables": []}


VAL = _doc("val", {("mri8", "fista_tv", "a"): 20.0, ("mri8", "dps", "a"): 24.0,
                   ("mri8", "fista_tv", "b"): 22.0, ("mri8", "dps", "b"): 23.0,
                   ("mri8", "zero_filled", "a"): 15.0})
UNSEEN = _doc("test_subject", {("mri8", "fista_tv", "c"): 18.0, ("mri8", "dps", "c"): 17.5,
                               ("mri8", "fista_tv", "d"): 19.0, ("mri8", "dps", "d"): 21.5,
                               ("mri8", "dps", "e"): 30.0})  # slice e has no FISTA-TV record: not compared


def test_the_split_names_the_file_so_one_split_never_replaces_the_other():
    assert doc_stem("generative", VAL) == "generative"
    assert doc_stem("generative", UNSEEN) == "generative_test_subject"
    assert doc_stem("operators", {"suite": "operators"}) == "operators"


def test_the_gap_table_compares_each_method_with_fista_tv_on_the_same_slices():
    t = split_gap(VAL, UNSEEN)
    assert t["columns"][0] == "setting" and len(t["rows"]) == 1  # dps only: FISTA-TV and baselines are references
    row = t["rows"][0]
    # val: +4 and +1 -> mean +2.5, worst +1; unseen: -0.5 and +2.5 -> mean +1.0, worst -0.5; gap -1.5
    assert row[1:] == ["dps", "+2.50 (+1.00)", "+1.00 (-0.50)", "-1.50", "1 / 2"]


def test_no_gap_table_without_a_common_setting():
    other = _doc("test_subject", {("ct30", "fista_tv", "x"): 30.0, ("ct30", "dps", "x"): 31.0})
    assert split_gap(VAL, other) is None


def test_results_page_loads_both_splits_and_shows_the_gap(tmp_path):
    (tmp_path / "generative.json").write_text(json.dumps(VAL))
    (tmp_path / "generative_test_subject.json").write_text(json.dumps(UNSEEN))
    (tmp_path / "generative_broken.json").write_text("{not json")
    docs = load_documents(tmp_path)
    assert [d["settings"]["split"] for d in docs] == ["val", "test_subject"]
    page = render(docs)
    assert "## generative val" in page and "## generative test_subject" in page
    assert "held-out slabs against unseen subjects" in page and "| MRI 8x | dps | +2.50 (+1.00) |" in page
    assert "held-out slabs against unseen subjects" not in render(docs[:1])  # one split: no comparison


@pytest.mark.parametrize("split", ["val", "test_subject"])
def test_run_suite_writes_the_split_s_own_file(tmp_path, monkeypatch, split):
    from genrecon.benchmark import generative

    def fake_run(opts, log):  # the suite's document as generative.run builds it, without running the methods
        return _doc(opts.split, {("mri8", "fista_tv", "a"): 20.0, ("mri8", "dps", "a"): 21.0})

    monkeypatch.setattr(generative, "run", fake_run)
    run_suite("generative", Options(out=tmp_path, split=split))
    stem = "generative" if split == "val" else "generative_test_subject"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([f"{stem}.json", f"{stem}_psnr.png"])
    assert json.loads((tmp_path / f"{stem}.json").read_text())["settings"]["split"] == split


def _run(split: str, setting: str, modality: str, psnr: float) -> dict:
    """A run's document as generative.run writes it, for one setting."""
    doc = _doc(split, {(setting, "fista_tv", f"{modality}/1"): psnr, (setting, "dps", f"{modality}/1"): psnr + 1})
    doc["seconds"] = 10.0
    doc["settings"].update(configs={setting: {"x": setting}}, methods={setting: ["fista_tv", "dps"]},
                           images={modality: [f"{modality}/1"]}, reference_max_min={modality: [psnr / 10, -psnr]})
    return doc


def test_merge_puts_disjoint_runs_in_the_suite_s_order_and_keeps_each_run_s_machine():
    from genrecon.benchmark.generative import merge

    ct, mri = _run("val", "ct30", "ct", 30.0), _run("val", "mri8", "mri", 20.0)
    ct["machine"]["commit"], mri["machine"]["commit"] = "a" * 40, "b" * 40
    doc = merge([ct, mri])
    s = doc["settings"]
    assert s["settings"] == ["mri8", "ct30"] and list(s["configs"]) == ["mri8", "ct30"]
    assert [r["setting"] for r in doc["records"]] == ["mri8", "mri8", "ct30", "ct30"]
    assert s["images"] == {"ct": ["ct/1"], "mri": ["mri/1"]} and s["reference_max_min"]["mri"] == [2.0, -20.0]
    assert doc["seconds"] == 20.0 and [p["machine"]["commit"] for p in doc["merged"]] == ["a" * 40, "b" * 40]
    assert any("| MRI 8x |" in "| " + " | ".join(r) + " |" for t in doc["tables"] for r in t["rows"])
    page = render([doc])
    assert "- merged run: ct30 in 10 s" in page and "- merged run: mri8 in 10 s" in page


@pytest.mark.parametrize("bad, match", [
    (lambda a, b: (a, _run("test_subject", "mri8", "mri", 20.0)), "split"),
    (lambda a, b: (a, _run("val", "ct30", "ct", 31.0)), "ct30 in more than one run"),
    (lambda a, b: (a, {**b, "quick": True}), "quick"),
])
def test_merge_refuses_runs_that_would_mix_numbers(bad, match):
    from genrecon.benchmark.generative import merge

    with pytest.raises(ValueError, match=match):
        merge(list(bad(_run("val", "ct30", "ct", 30.0), _run("val", "mri8", "mri", 20.0))))


def test_merge_script_writes_the_split_s_document_and_results(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    for i, (setting, mod) in enumerate([("ct30", "ct"), ("mri8", "mri")]):
        (tmp_path / f"run{i}").mkdir()
        (tmp_path / f"run{i}" / "generative_test_subject.json").write_text(
            json.dumps(_run("test_subject", setting, mod, 25.0)))
    script = Path(__file__).resolve().parents[1] / "scripts" / "merge_generative.py"
    res = subprocess.run([sys.executable, str(script), "--out", str(tmp_path / "out"), str(tmp_path / "run0"),
                          str(tmp_path / "run1")], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    doc = json.loads((tmp_path / "out" / "generative_test_subject.json").read_text())
    assert doc["settings"]["settings"] == ["mri8", "ct30"]
    assert (tmp_path / "out" / "generative_test_subject_psnr.png").is_file()
    assert "merged run: mri8" in (tmp_path / "out" / "RESULTS.md").read_text()
    res = subprocess.run([sys.executable, str(script), "--out", str(tmp_path / "o2"), str(tmp_path / "run0"),
                          str(tmp_path / "run0")], capture_output=True, text=True)
    assert res.returncode == 1 and res.stderr.startswith("error: merge: setting(s) ct30") and "Traceback" not in res.stderr
    assert not (tmp_path / "o2").exists()
