"""One writer per run folder: a lock file holding the writer's pid, host and start time.

``reconstruct`` takes ``<run>/.lock`` (or ``<run>/.lock-shard-I-of-N`` for shard ``I`` of ``N``) for as long
as it writes. Shards of one array (same ``N``, different ``I``) write disjoint cases and do not block each
other; anything else that overlaps is refused with a one-line error naming the holder. A lock left by a
process that no longer runs (killed with ``kill -9``, a crashed node's task requeued on the same host) is
detected and taken over: on the same host, its pid is gone or belongs to a process started at another
time; on another host, it was taken by an earlier attempt of the same SLURM job. A lock held on another host by
something else cannot be checked from here; the message says how to remove it.

Example:
    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> with RunLock(folder):
    ...     sorted(p.name for p in folder.iterdir())
    ['.lock']
    >>> list(folder.iterdir())
    []
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

from ..errors import GenreconError


class RunLockedError(GenreconError):
    """Another process is writing into the same run folder."""

    exit_code = 1


def _process_start(pid: int) -> str | None:
    """The start time of process ``pid`` (clock ticks since boot, from /proc), or None where unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def _alive(pid: int, start: str | None) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by someone else
    now = _process_start(pid)
    return start is None or now is None or now == start


def _slurm_task() -> str | None:
    """This process's SLURM job (``<array job>_<task>`` in an array), or None outside SLURM.

    SLURM runs one instance of a job at a time, so a lock held under the same job id was left by an
    earlier attempt of this job (requeued after a node failure, maybe on another host) and is taken over.
    """
    env = os.environ
    if env.get("SLURM_ARRAY_JOB_ID") and env.get("SLURM_ARRAY_TASK_ID"):
        return f"{env['SLURM_ARRAY_JOB_ID']}_{env['SLURM_ARRAY_TASK_ID']}"
    return env.get("SLURM_JOB_ID") or None


class RunLock:
    """The lock of a run folder (or of one shard of it); a context manager.

    Args:
        folder: the run folder (created if missing).
        shard_index: this writer's shard (0-based).
        shard_count: the number of shards (1: the whole run).
    """

    def __init__(self, folder: str | os.PathLike, shard_index: int = 0, shard_count: int = 1):
        self.folder = Path(folder)
        self.shard = (int(shard_index), int(shard_count))
        name = ".lock" if shard_count == 1 else f".lock-shard-{shard_index}-of-{shard_count}"
        self.path = self.folder / name
        host = socket.gethostname()
        self.record = {"pid": os.getpid(), "host": host, "start": _process_start(os.getpid()),
                       "since": time.strftime("%Y-%m-%dT%H:%M:%S"), "shard": list(self.shard),
                       "slurm_task": _slurm_task()}
        self.held = False
        #: whether this lock was ever taken (a failed acquire leaves it False)
        self.acquired = False

    # -- what conflicts -----------------------------------------------------------------------------
    def _conflicts(self, other: dict) -> bool:
        i, n = self.shard
        j, m = other.get("shard", [0, 1])
        return not (n > 1 and m == n and i != j)

    def _holders(self) -> list[tuple[Path, dict]]:
        """Live locks in the folder that conflict with this one (stale ones are removed on the way)."""
        out = []
        for path in sorted([*self.folder.glob(".lock"), *self.folder.glob(".lock-shard-*")]):
            if path == self.path and self.held:
                continue
            try:
                rec = json.loads(path.read_text())
            except (OSError, ValueError):
                continue  # being written, or just removed
            here = rec.get("host") == socket.gethostname()
            earlier_attempt = (not here and rec.get("slurm_task") is not None
                               and rec.get("slurm_task") == self.record["slurm_task"])
            if earlier_attempt or (here and not _alive(int(rec.get("pid", -1)), rec.get("start"))):
                try:
                    path.unlink()  # a killed writer's lock: take over
                except FileNotFoundError:
                    pass
                continue
            if self._conflicts(rec):
                out.append((path, rec))
        return out

    def _refuse(self, path: Path, rec: dict) -> None:
        j, m = rec.get("shard", [0, 1])
        what = "a run" if m == 1 else f"shard {j}/{m}"
        raise RunLockedError(
            f"{self.folder} is being written by {what} (pid {rec.get('pid')} on {rec.get('host')} since "
            f"{rec.get('since')}); wait for it to finish, or, if that process is gone, delete {path}")

    # -- taking and releasing -----------------------------------------------------------------------
    def acquire(self) -> "RunLock":
        self.folder.mkdir(parents=True, exist_ok=True)
        for path, rec in self._holders():
            self._refuse(path, rec)
        tmp = self.folder / f".lock.tmp-{os.getpid()}"
        tmp.write_text(json.dumps(self.record))
        try:
            for _ in range(100):
                try:
                    os.link(tmp, self.path)  # atomic: fails if the name exists
                    break
                except FileExistsError:
                    for path, rec in self._holders():  # a live holder refuses; a stale one is removed
                        self._refuse(path, rec)
                    time.sleep(0.01)  # the name is being written or was just freed
            else:
                raise RunLockedError(f"{self.folder}: could not take {self.path}; delete it if no run is writing")
        finally:
            tmp.unlink()
        self.held = True
        # two writers that started at the same moment each see the other's lock here; both step back
        for path, rec in self._holders():
            self.release()
            self._refuse(path, rec)
        self.acquired = True
        return self

    def release(self) -> None:
        if not self.held:
            return
        self.held = False
        try:
            if json.loads(self.path.read_text()).get("pid") == os.getpid():
                self.path.unlink()
        except (OSError, ValueError):
            pass

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
