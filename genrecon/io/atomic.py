"""Atomic file creation: a reader never sees a half-written output, an interrupted run leaves no debris.

Example:
    >>> import tempfile, pathlib
    >>> from genrecon.io.atomic import atomic_write
    >>> target = pathlib.Path(tempfile.mkdtemp()) / "result.txt"
    >>> with atomic_write(target) as tmp:
    ...     _ = tmp.write_text("done")
    >>> target.read_text()
    'done'
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


def temp_path(path: str | os.PathLike) -> Path:
    """The temporary name used for ``path``: ``.<name>.tmp-<pid>`` in the same folder."""
    path = Path(path)
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


@contextmanager
def atomic_write(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success rename it onto ``path`` (``os.replace``).

    The parent folder is created if needed. The temporary file is in the same folder, so the rename is
    atomic on POSIX and Windows: ``path`` holds either the old content or the complete new one. On any
    exception, ``KeyboardInterrupt`` and ``SystemExit`` included, the temporary file is deleted and the
    exception propagates; ``path`` is left untouched. (No ``fsync``: this protects against interrupted
    processes, not against power loss.)

    Args:
        path: the final file.

    Yields:
        The temporary path the body must write (the body creates the file).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(path)
    try:
        yield tmp
        if not tmp.exists():
            raise FileNotFoundError(f"atomic_write: the body did not create {tmp} (the output for {path})")
        os.replace(tmp, path)
    except BaseException:
        try:
            tmp.unlink()
        except FileNotFoundError:
            pass
        raise


def remove_path(path: str | os.PathLike) -> None:
    """Delete ``path``: a folder with its contents, or a file; nothing if it does not exist."""
    import shutil

    path = Path(path)
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()
