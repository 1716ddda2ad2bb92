"""What a run folder's results were made with, and whether they belong to a config.

Every case record (``cases/<case>/case.json``) stores the hash of the config parts its measurement depends
on (:func:`case_hash`: data, simulate, seed, version) and every method record (``<label>.json``) the hash
of those plus the method's own entry (:func:`method_hash`). A result counts for a config only when its
stored hash is that config's: :func:`check_output_dir` refuses to run a config into a folder that holds
results of another one (naming the keys that differ), and :mod:`genrecon.report` counts only matching
results, reporting the others as stale.

Example:
    >>> from genrecon.config import load_config_dict
    >>> base = {"data": {"source": "phantom:shepp-logan"}, "output": {"dir": "runs/x"},
    ...         "simulate": {"modality": "mri", "mask": {"name": "random", "acceleration": 4}},
    ...         "reconstructors": [{"name": "zero_filled"}]}
    >>> a = load_config_dict(base)
    >>> b = load_config_dict({**base, "simulate": {**base["simulate"], "mask": {"name": "random",
    ...                                                                          "acceleration": 8}}})
    >>> config_differences(a, b)
    ['simulate.mask.acceleration (4 -> 8)']
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from ..config import RunConfig, config_hash, load_config, to_dict
from ..errors import ConfigError, GenreconError
from ..io.atomic import remove_path

#: the sections every stored measurement depends on (a difference in any makes every case stale)
CASE_SECTIONS = ("version", "seed", "data", "simulate")
#: what a run folder holds besides the cases: derived from them, remade by ``genrecon evaluate``
DERIVED = ("report.json", "report.csv", "report.md", "recon")


def case_hash(cfg: RunConfig) -> str:
    """Hash of what a case's simulated measurement depends on."""
    return config_hash({k: getattr(cfg, k) for k in ("data", "simulate", "seed", "version")})


def method_hash(cfg: RunConfig, index: int) -> str:
    """Hash of what method ``index``'s result depends on: the case's settings and the method's entry."""
    return config_hash({"case": case_hash(cfg), "method": cfg.reconstructors[index]})


def read_record(path: Path) -> dict | None:
    """A JSON record; None when the file does not exist; :class:`ValueError` when it exists but is unreadable."""
    try:
        text = Path(path).read_text()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ValueError(str(exc)) from None
    rec = json.loads(text)
    if not isinstance(rec, dict):
        raise ValueError("not a JSON object")
    return rec


def _flat(obj: Any, prefix: str, out: dict[str, Any]) -> None:
    if isinstance(obj, dict):
        for k, v in obj.items():
            _flat(v, f"{prefix}.{k}" if prefix else str(k), out)
    else:
        out[prefix] = obj


def _diff(old: Any, new: Any, prefix: str) -> list[str]:
    a: dict[str, Any] = {}
    b: dict[str, Any] = {}
    _flat(to_dict(old), prefix, a)
    _flat(to_dict(new), prefix, b)
    out = []
    for key in sorted(set(a) | set(b), key=lambda k: (k not in a, k)):
        if a.get(key, "<unset>") != b.get(key, "<unset>"):
            out.append(f"{key} ({_short(a.get(key, '<unset>'))} -> {_short(b.get(key, '<unset>'))})")
    return out


def _short(v: Any) -> str:
    text = json.dumps(v, default=str) if not isinstance(v, str) else v
    return text if len(text) <= 40 else text[:37] + "..."


def case_differences(old: RunConfig, new: RunConfig) -> list[str]:
    """Keys of :data:`CASE_SECTIONS` whose values differ, as ``"key (old -> new)"``."""
    return _diff({k: getattr(old, k) for k in CASE_SECTIONS}, {k: getattr(new, k) for k in CASE_SECTIONS}, "")


def method_differences(old: RunConfig, new: RunConfig) -> dict[str, list[str]]:
    """Per label present in both configs, the keys of its entry that differ (labels only in one are new
    or dropped methods, whose results cannot be confused)."""
    before = {r.label: r for r in old.reconstructors}
    out = {}
    for i, r in enumerate(new.reconstructors):
        if r.label in before:
            diff = _diff(before[r.label], r, f"reconstructors.{i}")
            if diff:
                out[r.label] = diff
    return out


def config_differences(old: RunConfig, new: RunConfig) -> list[str]:
    """Every difference that makes stored results of ``old`` wrong for ``new``."""
    return case_differences(old, new) + [d for diffs in method_differences(old, new).values() for d in diffs]


def _stored_config(out: Path) -> RunConfig | None:
    path = out / "config.yaml"
    if not path.is_file():
        return None
    try:
        return load_config(path, check_files=False, build=False)
    except GenreconError as exc:
        raise ConfigError(f"{out}: its config.yaml is not a valid run config ({exc}); use --overwrite to replace "
                          "the results in it, or another output.dir") from None


def _foreign_cases(out: Path, cfg: RunConfig) -> bool:
    """True when a folder without config.yaml holds a case record made with other settings."""
    want = case_hash(cfg)
    for rec_path in (out / "cases").glob("*/case.json"):
        try:
            rec = read_record(rec_path)
        except ValueError:
            continue  # half-written: redone by the run
        if rec is not None and rec.get("hash") != want:
            return True
    return False


def check_output_dir(cfg: RunConfig, *, overwrite: bool = False) -> list[str]:
    """Refuse (a one-line :class:`ConfigError`, exit 2) a run into a folder holding other settings' results.

    With ``overwrite`` the results made with other settings are deleted instead (every case when a data,
    simulate, seed or version key differs; else the changed methods' files), the reports too; results that
    match are kept. Resuming the same config, adding methods or dropping some is always allowed.

    Returns:
        What was deleted (empty unless ``overwrite``), for a message.
    """
    out = Path(cfg.output.dir)
    if not out.is_dir():
        return []
    old = _stored_config(out)
    if old is None:
        if not _foreign_cases(out, cfg):
            return []
        case_diff, method_diff = ["cases made with another config (no config.yaml to compare)"], {}
    else:
        case_diff, method_diff = case_differences(old, cfg), method_differences(old, cfg)
    if not case_diff and not method_diff:
        return []
    if not overwrite:
        keys = case_diff + [d for diffs in method_diff.values() for d in diffs]
        shown = "; ".join(keys[:6]) + (f"; and {len(keys) - 6} more" if len(keys) > 6 else "")
        raise ConfigError(
            f"{out} holds results made with other settings: {shown}. Pass --overwrite to replace them, or "
            "choose another output.dir")
    removed = []
    if case_diff:
        if (out / "cases").exists():
            shutil.rmtree(out / "cases")
            removed.append("cases/")
    else:
        for label in method_diff:
            n = 0
            for case_dir in (out / "cases").glob("*"):
                n += remove_method_files(case_dir, label)
            if n:
                removed.append(f"{label} ({n} case(s))")
    for name in DERIVED:
        remove_path(out / name)
    return removed


def remove_method_files(case_dir: Path, label: str) -> int:
    """Delete a method's files in one case folder (as listed in its record); 1 if there was a record."""
    rec_path = case_dir / f"{label}.json"
    try:
        rec = read_record(rec_path)
    except ValueError:
        rec = {}
    if rec is None:
        return 0
    files = rec.get("files") or [f"{label}.npy", f"{label}_std.npy", f"{label}_samples.npy"]
    for name in files:
        if "/" not in name and (case_dir / name).is_file():
            (case_dir / name).unlink()
    rec_path.unlink()
    return 1
