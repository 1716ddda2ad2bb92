"""Which peer toolkits (BART, SigPy, ASTRA, scikit-image, DeepInverse) are present, with versions, or why not.

None of them is a dependency of genrecon: the peer reconstructors (:mod:`genrecon.peers`) refuse to be
configured when theirs is missing (the reason and how to install it), and the benchmark suites show a missing
peer as ``missing (reason)`` in their tables, never leave it out silently.

Example:
    >>> status = peer_status()
    >>> sorted(status) == sorted(PEERS)
    True
    >>> all(s["status"] in ("present", "missing") for s in status.values())
    True
"""

from __future__ import annotations

import functools
import shutil
import subprocess

import torch

#: peer -> how to install it
PEERS = {
    "bart": "apt-get install bart, or build it from https://mrirecon.github.io/bart",
    "sigpy": "pip install sigpy",
    "astra": "pip install astra-toolbox (or conda install -c astra-toolbox astra-toolbox)",
    "astra_gpu": "an ASTRA build with CUDA and a CUDA GPU",
    "skimage": "pip install scikit-image",
    "deepinv": "pip install deepinv; its PyPI build imports torchvision, which genrecon does not install",
}


def _missing(name: str, why: str) -> dict:
    return {"status": "missing", "reason": f"{why}; install: {PEERS[name]}"}


def _import_error(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}".splitlines()[0]


@functools.lru_cache(maxsize=None)
def _status(name: str) -> tuple[tuple[str, str], ...]:
    if name == "bart":
        exe = shutil.which("bart")
        if exe is None:
            return tuple(_missing(name, "no 'bart' executable on PATH").items())
        try:
            out = subprocess.run([exe, "version"], capture_output=True, text=True, timeout=30)
            version = out.stdout.strip() or out.stderr.strip() or "unknown"
        except (OSError, subprocess.SubprocessError) as exc:
            return tuple(_missing(name, f"'bart version' failed: {_import_error(exc)}").items())
        return (("status", "present"), ("version", version), ("path", exe))
    try:
        if name == "sigpy":
            import sigpy as mod
            import sigpy.mri.app  # noqa: F401
        elif name in ("astra", "astra_gpu"):
            import astra as mod

            if name == "astra_gpu":
                if not torch.cuda.is_available():
                    return tuple(_missing(name, "no CUDA device on this machine").items())
                if not mod.use_cuda():
                    return tuple(_missing(name, "this ASTRA build has no CUDA support or sees no GPU").items())
        elif name == "skimage":
            import skimage as mod
        elif name == "deepinv":
            import deepinv as mod
        else:  # pragma: no cover - programming error
            raise KeyError(name)
    except Exception as exc:  # noqa: BLE001 - any import failure means "missing", with its reason
        return tuple(_missing(name, _import_error(exc)).items())
    return (("status", "present"), ("version", str(getattr(mod, "__version__", "unknown"))))


def peer_status() -> dict[str, dict]:
    """Peer -> ``{"status": "present", "version": ...}`` or ``{"status": "missing", "reason": ...}``."""
    return {name: dict(_status(name)) for name in PEERS}


def available(name: str) -> bool:
    return dict(_status(name))["status"] == "present"


def missing_reason(name: str) -> str:
    """``"missing (<reason>)"`` for a missing peer (the text tables show)."""
    return f"missing ({dict(_status(name)).get('reason', '?')})"


def label(name: str) -> str:
    """``"BART v0.8.00"``-style label of a present peer."""
    pretty = {"bart": "BART", "sigpy": "SigPy", "astra": "ASTRA", "astra_gpu": "ASTRA", "skimage": "scikit-image",
              "deepinv": "DeepInverse"}[name]
    st = dict(_status(name))
    return f"{pretty} {st['version']}" if st.get("version") else pretty
