"""Pieces of a training run beside the loop: the learning-rate schedule, sample grids, a weights fingerprint,
signal handling, seeded dropout."""

from __future__ import annotations

import contextlib
import hashlib
import math
import signal
import threading
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
from PIL import Image


def lr_at(step: int, lr: float, warmup: int, *, schedule: str = "constant", total: int = 1,
          lr_min: float = 0.0) -> float:
    """Learning rate of update ``step`` (0-based).

    A linear warm-up ``lr (step + 1) / warmup``, then ``lr`` (``constant``) or a half cosine from ``lr`` at the end
    of the warm-up to ``lr_min`` at update ``total`` (``cosine``).
    """
    if warmup > 0 and step < warmup:
        return lr * (step + 1) / warmup
    if schedule == "constant":
        return lr
    frac = min(1.0, max(0.0, (step - warmup) / max(1, total - warmup)))
    return lr_min + 0.5 * (lr - lr_min) * (1.0 + math.cos(math.pi * frac))


def make_grid(images: torch.Tensor, nrow: int | None = None, pad: int = 2) -> np.ndarray:
    """Tile images ``(N, C, H, W)`` in ``[0, 1]`` (first channel) into a ``uint8`` array with ``pad``-pixel gaps."""
    x = images.detach().float().cpu().clamp(0, 1)[:, 0].numpy()
    n, h, w = x.shape
    nrow = nrow or max(1, math.ceil(math.sqrt(n)))
    rows = math.ceil(n / nrow)
    grid = np.ones((rows * (h + pad) + pad, nrow * (w + pad) + pad), dtype=np.float32)
    for i in range(n):
        r, c = divmod(i, nrow)
        top, left = pad + r * (h + pad), pad + c * (w + pad)
        grid[top : top + h, left : left + w] = x[i]
    return np.round(grid * 255).astype(np.uint8)


def save_grid(images: torch.Tensor, path: str | Path, nrow: int | None = None) -> Path:
    """Write :func:`make_grid` of ``images`` as a grayscale PNG."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(make_grid(images, nrow), mode="L").save(path)
    return path


def weights_sha256(module: torch.nn.Module) -> str:
    """SHA-256 of a module's state (names and float32 bytes), to compare weights across runs or ranks."""
    h = hashlib.sha256()
    for k, v in sorted(module.state_dict().items()):
        h.update(k.encode())
        h.update(v.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return h.hexdigest()


class SignalFlag:
    """Turn SIGINT/SIGTERM into a flag while training (main thread only); restore the handlers after."""

    def __init__(self) -> None:
        self.name: str | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> "SignalFlag":
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        self.name = signal.Signals(signum).name

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


@contextlib.contextmanager
def seeded_global_rng(seed: int | None, device: torch.device) -> Iterator[None]:
    """Run the block with torch's global generator (and ``device``'s, on CUDA) seeded with ``seed``, restored
    afterwards; ``seed=None``: leave them alone.

    ``nn.Dropout`` draws from the global generator: seeding it per step from the run's seed makes dropout the
    same in every run of a config and across ``--resume`` (nothing to save), and leaves the caller's draws alone.
    (Non-reentrant gradient checkpointing stores and restores the state itself for its recomputation.)
    """
    if seed is None:
        yield
        return
    cuda = device.type == "cuda"
    with torch.random.fork_rng(devices=[device] if cuda else [], device_type="cuda" if cuda else "cpu"):
        torch.default_generator.manual_seed(seed)
        if cuda:
            with torch.cuda.device(device):
                torch.cuda.manual_seed(seed)
        yield
