"""``RESULTS.md``: every suite document found in a folder, rendered as Markdown tables with their conventions.

The page is regenerated from the JSON files each time a suite finishes, so running one suite keeps the
others' results; each section says on which machine, with which versions and when its numbers were taken.

Example:
    >>> md_table(["a", "b"], [["1", "x|y"]])
    '| a | b |\\n|---|---|\\n| 1 | x\\\\|y |'
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..io.writers import write_text
from .common import machine_line

ORDER = ("operators", "classical", "generative", "scaling", "smoke")


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def md_table(columns: list[str], rows: list[list[str]]) -> str:
    """A GitHub Markdown table (``|`` in cells escaped)."""
    lines = ["| " + " | ".join(_cell(c) for c in columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def load_documents(out_dir: Path) -> list[dict[str, Any]]:
    """The suite documents present, in the suites' order: ``<out_dir>/<suite>.json``, then its variants
    ``<suite>_<variant>.json`` (the generative suite's other splits); unreadable ones skipped."""
    docs = []
    for name in ORDER:
        for path in [Path(out_dir) / f"{name}.json", *sorted(Path(out_dir).glob(f"{name}_*.json"))]:
            if not path.is_file():
                continue
            try:
                doc = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            if isinstance(doc, dict) and doc.get("suite") == name:
                docs.append(doc)
    return docs


def _split_gap(docs: list[dict[str, Any]]) -> list[str]:
    """The generative suite's val-against-unseen table, when both splits' documents are present."""
    from .generative_tables import split_gap

    gen = {d.get("settings", {}).get("split", "val"): d for d in docs
           if d.get("suite") == "generative" and not d.get("quick")}
    t = split_gap(gen["val"], gen["test_subject"]) if {"val", "test_subject"} <= gen.keys() else None
    if t is None:
        return []
    out = ["## Generative: held-out slabs against unseen subjects", "", f"### {t['title']}", "",
           md_table(t["columns"], t["rows"]), ""]
    return out + [f"Note: {n}" + ("" if n.rstrip().endswith(".") else ".") for n in t.get("notes", [])] + [""]


def _peers_line(peers: dict[str, dict]) -> str:
    parts = []
    for name, st in peers.items():
        if st.get("status") == "present":
            parts.append(f"{name} {st.get('version', '')}".strip())
        else:
            parts.append(f"{name}: missing ({st.get('reason', '?')})")
    return "; ".join(parts)


def _first_heading(path: Path) -> str:
    """A companion page's title (its first Markdown heading), else its file name."""
    try:
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.startswith("#"):
                return line.lstrip("#").strip()
    except OSError:
        pass
    return path.name


def render(docs: list[dict[str, Any]], companions: list[Path] = ()) -> str:
    """The Markdown page for ``docs``, then links to the hand-written ``companions`` (other ``*.md`` pages of the
    folder: measurements by scripts, with their own commands), which a rerun of the suites keeps."""
    out = ["# genrecon benchmark results", "",
           "Written by `genrecon benchmark` from the suite files (`<suite>.json`) in this folder; rerun a suite to "
           "update its section (`genrecon benchmark SUITE --out DIR`). Every table states its metric conventions: "
           "numbers taken under other conventions (fastMRI: data_range = the volume's maximum; DIVal: max - min) are "
           "not directly comparable; each quality table gives the conversion for its images.", ""]
    if not docs:
        out.append("No suite results yet.")
    for doc in docs:
        m = doc.get("machine", {})
        out += [f"## {doc.get('title', doc.get('suite'))}", ""]
        if doc.get("quick"):
            out += ["**Quick run** (`--quick`): fewer sizes, slices and iterations; it checks the code, its numbers "
                    "are not representative.", ""]
        opts = doc.get("options", {})
        out += [f"- suite: `{doc.get('suite')}`, {doc.get('seconds', 0):.0f} s; options: repeats {opts.get('repeats')}, "
                f"threads {opts.get('threads') or 'default'}, device {opts.get('device')}",
                f"- machine: {machine_line(m)}" if m else "- machine: unknown",
                f"- peers: {_peers_line(doc.get('peers', {}))}"]
        for part in doc.get("merged", []):
            out.append(f"- merged run: {', '.join(part['settings'])} in {part.get('seconds', 0):.0f} s on "
                       f"{machine_line(part['machine']) if part.get('machine') else 'an unknown machine'}")
        for item in doc.get("missing", []):
            out.append(f"- not measured: {item}")
        out.append("")
        for t in doc.get("tables", []):
            out += [f"### {t['title']}", "", md_table(t["columns"], t["rows"]), ""]
            if t.get("conventions"):
                out += [f"Conventions: {t['conventions']}.", ""]
            for note in t.get("notes", []):
                out += [f"Note: {note}" + ("" if note.rstrip().endswith(".") else "."), ""]
        for p in doc.get("plots", []):
            out += [f"![{p.get('caption', p['file'])}]({p['file']})", "", f"*{p.get('caption', '')}*", ""]
    out += _split_gap(docs)
    if companions:
        out += ["## More measurements (their own pages, written by the scripts they name)", ""]
        out += [f"- [{_first_heading(p)}]({p.name})" for p in companions]
    return "\n".join(out).rstrip() + "\n"


def write_results(out_dir: Path) -> Path:
    """(Re)write ``<out_dir>/RESULTS.md`` from every suite document in ``out_dir`` (atomically)."""
    companions = sorted(p for p in Path(out_dir).glob("*.md") if p.name != "RESULTS.md")
    return write_text(Path(out_dir) / "RESULTS.md", render(load_documents(out_dir), companions))
