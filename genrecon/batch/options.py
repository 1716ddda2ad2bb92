"""What a batch submission may ask of SLURM: :class:`SlurmOptions`, ``--time`` parsing, and their checks.

Example:
    >>> time_limit_seconds("1-12"), time_limit_seconds("2:00:00"), time_limit_seconds("1h")
    (129600, 7200, None)
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ..errors import GenreconError

_TIME_FORMATS = [  # SLURM's --time formats -> (days, hours, minutes, seconds) group names
    re.compile(r"^(?P<m>\d+)$"),
    re.compile(r"^(?P<m>\d+):(?P<s>\d{1,2})$"),
    re.compile(r"^(?P<h>\d+):(?P<m>\d{1,2}):(?P<s>\d{1,2})$"),
    re.compile(r"^(?P<d>\d+)-(?P<h>\d+)$"),
    re.compile(r"^(?P<d>\d+)-(?P<h>\d+):(?P<m>\d{1,2})$"),
    re.compile(r"^(?P<d>\d+)-(?P<h>\d+):(?P<m>\d{1,2}):(?P<s>\d{1,2})$"),
]
_NAME = re.compile(r"^[A-Za-z0-9_.+-]+$")
_NAMES = re.compile(r"^[A-Za-z0-9_.+-]+(,[A-Za-z0-9_.+-]+)*$")
_MEM = re.compile(r"^[1-9]\d*[KMGT]?$")
_GPUS = re.compile(r"^([A-Za-z0-9_.-]+:)?[1-9]\d*$")


class SlurmError(GenreconError):
    """SLURM is missing, refused a job, or did not answer."""

    exit_code = 1


def time_limit_seconds(text: str) -> int | None:
    """Seconds of a SLURM ``--time`` value (``MM``, ``MM:SS``, ``HH:MM:SS``, ``D-HH[:MM[:SS]]``), else None."""
    for pattern in _TIME_FORMATS:
        m = pattern.match(text)
        if m:
            g = {k: int(v) for k, v in m.groupdict().items() if v is not None}
            return ((g.get("d", 0) * 24 + g.get("h", 0)) * 60 + g.get("m", 0)) * 60 + g.get("s", 0)
    return None


@dataclass(frozen=True)
class SlurmOptions:
    """Resources and behaviour of the submitted jobs; ``None`` leaves a setting to the cluster's default.

    Args:
        partition: ``--partition`` (one name or a comma-separated list).
        time: ``--time`` limit, e.g. ``"30"`` (minutes), ``"2:00:00"`` or ``"1-12"``.
        gpus: ``--gpus`` per array task (``"1"`` or ``"a100:1"``); per node for training.
        cpus: ``--cpus-per-task``; also sets ``OMP_NUM_THREADS`` in the job.
        mem: ``--mem`` per node, e.g. ``"16G"``.
        account: ``--account`` to charge.
        signal_before: seconds before the time limit at which the job script gets SIGTERM.
        max_requeue: how many times a task stopped by that signal (or preemption) requeues itself.
        setup: shell lines run before genrecon, e.g. ``"module load cuda/12.1"``.

    Example:
        >>> SlurmOptions(time="1", signal_before=60).problems()  # doctest: +ELLIPSIS
        ['--time 1: the job would be told to stop at once (--signal-before is 60 s): ...']
    """

    partition: str | None = None
    time: str | None = None
    gpus: str | None = None
    cpus: int | None = None
    mem: str | None = None
    account: str | None = None
    signal_before: int = 60
    max_requeue: int = 3
    setup: tuple[str, ...] = field(default=())

    def problems(self) -> list[str]:
        """Every invalid option, each as ``--option: expected ..., got ...``."""
        out = []
        if self.partition is not None and not _NAMES.match(self.partition):
            out.append(f"--partition: expected a partition name (or a comma-separated list), got {self.partition!r}")
        if self.account is not None and not _NAME.match(self.account):
            out.append(f"--account: expected an account name, got {self.account!r}")
        if self.mem is not None and not _MEM.match(self.mem):
            out.append(f"--mem: expected a size such as 16G, 8000M or 4000 (MB), got {self.mem!r}")
        if self.gpus is not None and not _GPUS.match(self.gpus):
            out.append(f"--gpus: expected a count such as 1 or TYPE:COUNT such as a100:2, got {self.gpus!r}")
        if self.cpus is not None and self.cpus < 1:
            out.append(f"--cpus: expected an integer >= 1, got {self.cpus}")
        if self.signal_before < 1:
            out.append(f"--signal-before: expected seconds >= 1, got {self.signal_before}")
        if self.max_requeue < 0:
            out.append(f"--max-requeue: expected an integer >= 0, got {self.max_requeue}")
        if self.time is not None:
            seconds = time_limit_seconds(self.time)
            if seconds is None or seconds == 0:
                out.append(f"--time: expected MM, MM:SS, HH:MM:SS, D-HH, D-HH:MM or D-HH:MM:SS, got {self.time!r}")
            elif seconds <= self.signal_before:
                out.append(f"--time {self.time}: the job would be told to stop at once (--signal-before is "
                           f"{self.signal_before} s): give a longer limit or a smaller --signal-before")
        for line in self.setup:
            if "\n" in line or not line.strip():
                out.append(f"--setup: expected one non-empty shell line per option, got {line!r}")
        return out

    def directives(self, *, gpus_flag: str = "--gpus") -> list[str]:
        """The ``#SBATCH`` lines of the options that are set."""
        pairs = [("--partition", self.partition), ("--account", self.account), ("--time", self.time),
                 (gpus_flag, self.gpus), ("--cpus-per-task", self.cpus), ("--mem", self.mem)]
        return [f"#SBATCH {flag}={value}" for flag, value in pairs if value is not None]


def _check_count(name: str, value: int, low: int = 1) -> list[str]:
    """``[]`` when ``value`` is an integer >= ``low``, else the one problem (``--name: expected ...``)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        return [f"{name}: expected an integer >= {low}, got {value!r}"]
    return []
