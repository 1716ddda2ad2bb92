"""BART (``bart pics``) as a genrecon reconstructor, and BART's ``.cfl``/``.hdr`` file format.

``bart_pics_tv`` runs ``bart pics -S -d0 -i n_iter -R T:3:0:lam`` (ADMM, isotropic TV over x and y) on
single-coil Cartesian k-space, with sensitivities of ones, the way a BART user runs it: one ``bart`` process per
image, through files in a temporary folder (the time includes them). BART's FFT is centred and orthonormal,
genrecon's convention, so the k-space goes in as it is. ``lam`` is BART's own TV weight (its own objective
scaling, not ``fista_tv``'s ``tv_weight``).
"""

from __future__ import annotations

import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..registry import RECONSTRUCTORS
from .base import PeerReconstructor, single_coil_mask


def write_cfl(path: str | Path, array: np.ndarray) -> None:
    """Write ``array`` as BART's ``<path>.hdr`` (text: its dimensions, padded to 16) and ``<path>.cfl``
    (complex64 little-endian, Fortran order: the first axis varies fastest)."""
    array = np.asarray(array)
    dims = list(array.shape) + [1] * (16 - array.ndim)
    Path(f"{path}.hdr").write_text("# Dimensions\n" + " ".join(str(d) for d in dims) + "\n")
    np.asarray(array, dtype="<c8").ravel(order="F").tofile(f"{path}.cfl")


def read_cfl(path: str | Path) -> np.ndarray:
    """Read BART's ``<path>.hdr`` / ``<path>.cfl`` pair into a complex64 array of the header's 16 dims
    with trailing singleton dims dropped (at least 2 kept)."""
    lines = [ln for ln in Path(f"{path}.hdr").read_text().splitlines() if ln.strip()]
    dims = [int(d) for d in lines[lines.index("# Dimensions") + 1].split()]
    while len(dims) > 2 and dims[-1] == 1:
        dims.pop()
    data = np.fromfile(f"{path}.cfl", dtype="<c8", count=int(np.prod(dims)))
    return data.reshape(dims, order="F")


def pics_tv(ksp: np.ndarray, lam: float, n_iter: int, workdir: Path) -> np.ndarray:
    """``bart pics`` with a TV regulariser on single-coil k-space ``(H, W)`` (unsampled entries 0); the complex
    image ``(H, W)``. Files are written to ``workdir``."""
    workdir = Path(workdir)
    write_cfl(workdir / "ksp", ksp)
    write_cfl(workdir / "sens", np.ones_like(ksp))
    cmd = ["bart", "pics", "-S", "-d0", "-i", str(n_iter), "-R", f"T:3:0:{lam}",
           str(workdir / "ksp"), str(workdir / "sens"), str(workdir / "out")]
    subprocess.run(cmd, check=True, capture_output=True)
    return read_cfl(workdir / "out")


@dataclass(frozen=True)
class BartPicsTVParams:
    """The parameters of ``bart_pics_tv``."""

    lam: float = field(default=0.01, metadata={"ge": 0, "doc": "BART's TV weight (-R T:3:0:lam; its own scaling)"})
    n_iter: int = field(default=100, metadata={"ge": 1, "doc": "ADMM iterations (-i)"})


@RECONSTRUCTORS.register("bart_pics_tv")
class BartPicsTV(PeerReconstructor):
    """BART ``pics -R T`` (ADMM, isotropic TV) on single-coil Cartesian MRI; needs the ``bart`` executable.

    Parameters: :class:`BartPicsTVParams`.
    """

    who = "bart_pics_tv"
    peer = "bart"
    modalities = ("mri",)
    Params = BartPicsTVParams

    def reconstruct(self, y, op, *, x0=None, generator=None, callback=None):
        mask = single_coil_mask(op, self.who).numpy() > 0
        out = []
        with tempfile.TemporaryDirectory(prefix="genrecon-bart-") as tmp:
            for b in range(y.shape[0]):
                ksp = y[b, 0].detach().cpu().numpy() * mask
                out.append(torch.from_numpy(pics_tv(ksp, self.lam, self.n_iter, Path(tmp)).astype(np.complex64)))
        x = torch.stack(out)[:, None].to(y.device)
        self.info["iterations"] = self.n_iter
        if callback is not None:
            callback(self.n_iter, x)
        return x
