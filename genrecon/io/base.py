"""Loader contract.

A loader turns a source (a file, a folder, or a pseudo-source such as ``phantom:shepp-logan``) into
cases, one 2-D slice at a time, lazily: ``n_slices`` must not read pixel data, ``load`` reads one slice.
Loaders register in :data:`genrecon.registry.LOADERS`; the pipeline picks one by the config's
``data.loader`` or, failing that, by :meth:`Loader.accepts`.
"""

from __future__ import annotations

from pathlib import Path

from ..types import Case


class Loader:
    """Base class of loaders. Constructor keyword parameters are the config's ``data.params``."""

    #: file suffixes (lower case, with the dot) this loader reads; ``accepts`` uses them
    suffixes: tuple[str, ...] = ()
    #: pseudo-source prefixes (``"phantom:"``) this loader serves
    prefixes: tuple[str, ...] = ()

    @classmethod
    def accepts(cls, source: str) -> bool:
        if any(source.startswith(p) for p in cls.prefixes):
            return True
        name = Path(source).name.lower()
        return bool(cls.suffixes) and any(name.endswith(s) for s in cls.suffixes)

    def check(self, source: str) -> list[str]:
        """Problems found without reading pixel data (missing file...), for config validation."""
        if self.prefixes and any(source.startswith(p) for p in self.prefixes):
            return []
        return [] if Path(source).exists() else [f"data.source: file not found: {source}"]

    def n_slices(self, source: str) -> int:  # pragma: no cover - abstract
        raise NotImplementedError

    def load(self, source: str, index: int) -> Case:  # pragma: no cover - abstract
        """Read slice ``index`` as a :class:`Case` with ``image`` of shape ``(1, H, W)``."""
        raise NotImplementedError
