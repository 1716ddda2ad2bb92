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
            "settings": {"split": split, "settings": settings, "source": "prepared"},
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
