"""Peer toolkits the benchmarks compare against: BART, SigPy, ASTRA, scikit-image and DeepInverse.

None of them is a dependency of genrecon. :func:`peer_status` says for each whether it is present (with its
version) or missing (with the reason and how to install it); a suite shows a missing peer as
``missing (reason)`` in its tables, never leaves it out silently. The wrappers here run a peer on numpy
data the way its users would; the ASTRA projector is also wrapped as a genrecon :class:`LinearOperator`,
so genrecon's own FISTA-TV can run on it.

Example:
    >>> status = peer_status()
    >>> sorted(status) == sorted(PEERS)
    True
    >>> all(s["status"] in ("present", "missing") for s in status.values())
    True
"""

from __future__ import annotations

import functools
import math
import shutil
import subprocess
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ..operators.base import LinearOperator

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


# -- adjoint tests on numpy callables ------------------------------------------------------------------
def _randn(rng: np.random.Generator, shape, is_complex: bool) -> np.ndarray:
    if is_complex:
        return ((rng.standard_normal(shape) + 1j * rng.standard_normal(shape)) / math.sqrt(2)).astype(np.complex64)
    return rng.standard_normal(shape).astype(np.float32)


def numpy_adjoint_errors(fwd: Callable, adj: Callable, shape_x, shape_y, *, is_complex: bool = False,
                         scale: float = 1.0, seed: int = 0, power_iter: int = 20) -> tuple[float, float]:
    """Adjoint errors of numpy callables (``adj`` multiplied by ``scale``) with zero-mean Gaussian ``x``, ``y``.

    Returns ``(scale_free, relative)``: ``|<Ax,y> - <x,A'y>| / (||A|| ||x|| ||y||)`` (genrecon's measure,
    ``||A||`` by ``power_iter`` power-method steps) and ``|<Ax,y> - <x,A'y>| / |<Ax,y>|``.
    """
    rng = np.random.default_rng(seed)
    v = _randn(rng, shape_x, is_complex)
    for _ in range(power_iter):
        v = scale * adj(fwd(v))
        v = v / np.linalg.norm(v)
    norm = math.sqrt(abs(float(np.vdot(v, scale * adj(fwd(v))).real)))
    x = _randn(rng, shape_x, is_complex)
    y = _randn(rng, shape_y, is_complex)
    lhs = np.vdot(np.asarray(fwd(x), dtype=np.complex128), y.astype(np.complex128)).real
    rhs = np.vdot(x.astype(np.complex128), scale * np.asarray(adj(y), dtype=np.complex128)).real
    diff = abs(float(lhs - rhs))
    return diff / (norm * float(np.linalg.norm(x)) * float(np.linalg.norm(y))), diff / max(abs(float(lhs)), 1e-300)


# -- BART --------------------------------------------------------------------------------------------------
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


def bart_pics_tv(ksp: np.ndarray, lam: float, n_iter: int, workdir: Path) -> Callable[[], np.ndarray]:
    """``bart pics -S -i n_iter -R T:3:0:lam`` (ADMM, isotropic TV over x, y) on single-coil k-space ``(H, W)``.

    The k-space uses the centred orthonormal FFT, which is BART's convention; sensitivities are ones. The
    returned callable runs the whole ``bart pics`` process (file I/O included, as a user runs it) and gives
    the magnitude image.
    """
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    write_cfl(workdir / "ksp", ksp)
    write_cfl(workdir / "sens", np.ones_like(ksp))
    cmd = ["bart", "pics", "-S", "-d0", "-i", str(n_iter), "-R", f"T:3:0:{lam}",
           str(workdir / "ksp"), str(workdir / "sens"), str(workdir / "out")]

    def go() -> np.ndarray:
        subprocess.run(cmd, check=True, capture_output=True)
        return np.abs(read_cfl(workdir / "out"))

    return go


# -- SigPy -------------------------------------------------------------------------------------------------
def sigpy_tv(ksp: np.ndarray, mask: np.ndarray, lam: float, n_iter: int) -> Callable[[], np.ndarray]:
    """SigPy's ``TotalVariationRecon`` (primal-dual) on single-coil k-space ``(H, W)``; returns the magnitude."""
    import sigpy.mri.app as app

    y = ksp[None].astype(np.complex64)
    mps = np.ones_like(y)
    weights = np.asarray(mask, dtype=np.float32)
    return lambda: np.abs(app.TotalVariationRecon(y, mps, lam, weights=weights, max_iter=n_iter,
                                                  show_pbar=False).run())


def sigpy_sense(maps: np.ndarray, mask: np.ndarray):
    """SigPy's SENSE operator ``sigpy.mri.linop.Sense`` (centred orthonormal FFT, mask as weights)."""
    import sigpy.mri.linop as linop

    return linop.Sense(np.asarray(maps, dtype=np.complex64), weights=np.asarray(mask, dtype=np.float32))


# -- ASTRA ---------------------------------------------------------------------------------------------------
class AstraProjector(LinearOperator):
    """An ASTRA projector as a genrecon operator: ``(B, 1, N, N)`` float32 -> ``(B, 1, V, D)`` (via ``OpTomo``).

    Args:
        image_size: ``N``.
        angles: radians.
        n_detectors: ``D`` (bins of width 1 pixel for parallel beams).
        kind: ASTRA projector type: ``line``, ``linear``, ``strip`` (parallel, CPU), ``line_fanflat``,
            ``strip_fanflat`` (fan, CPU) or ``cuda`` (GPU, either geometry).
        fan: ``(source_distance, detector_distance, detector_spacing)`` in pixels for a flat fan beam.
        normalize: divide by the operator norm (power method), like genrecon's ``normalize=True``.

    Data go through numpy on the CPU (ASTRA copies to the GPU itself for ``cuda``).
    """

    def __init__(self, *, image_size: int, angles, n_detectors: int, kind: str = "linear",
                 fan: tuple[float, float, float] | None = None, normalize: bool = False):
        import astra

        angles = np.asarray(angles, dtype=np.float64)
        super().__init__((1, image_size, image_size), (1, len(angles), n_detectors))
        vol = astra.create_vol_geom(image_size, image_size)
        if fan is None:
            proj = astra.create_proj_geom("parallel", 1.0, n_detectors, angles)
        else:
            d_so, d_od, spacing = fan
            proj = astra.create_proj_geom("fanflat", spacing, n_detectors, angles, d_so, d_od)
        self.kind = kind
        self._pid = astra.create_projector(kind, proj, vol)
        self._W = astra.OpTomo(self._pid)
        self.scale = 1.0
        if normalize:
            g = np.random.default_rng(0)
            v = g.standard_normal(image_size * image_size).astype(np.float32)
            for _ in range(30):
                v = self._W.T @ (self._W @ v)
                v /= np.linalg.norm(v)
            self.scale = 1.0 / math.sqrt(float(np.vdot(v, self._W.T @ (self._W @ v))))

    @property
    def name(self) -> str:
        return f"ASTRA[{self.kind}]"

    def _run(self, t: torch.Tensor, transpose: bool) -> torch.Tensor:
        src = t.detach().to("cpu", torch.float32).numpy()
        out_shape = self.domain_shape if transpose else self.range_shape
        out = np.empty((src.shape[0], *out_shape), dtype=np.float32)
        W = self._W.T if transpose else self._W
        for b in range(src.shape[0]):
            out[b, 0] = (W @ src[b, 0].ravel()).reshape(out_shape[1:]) * self.scale
        return torch.from_numpy(out).to(device=t.device, dtype=t.dtype)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._run(x, transpose=False)

    def _adjoint(self, y: torch.Tensor) -> torch.Tensor:
        return self._run(y, transpose=True)

    def release(self) -> None:
        """Free ASTRA's projector object."""
        import astra

        astra.projector.delete(self._pid)


def astra_fbp_sirt(sino: np.ndarray, angles, image_size: int, n_detectors: int, *, algorithm: str,
                   n_iter: int = 100, kind: str = "linear") -> np.ndarray:
    """ASTRA's CPU ``FBP`` (ram-lak) or ``SIRT`` (``MinConstraint 0``) on a parallel-beam sinogram ``(V, D)``."""
    import astra

    vol = astra.create_vol_geom(image_size, image_size)
    proj = astra.create_proj_geom("parallel", 1.0, n_detectors, np.asarray(angles, dtype=np.float64))
    pid = astra.create_projector(kind, proj, vol)
    sid = astra.data2d.create("-sino", proj, np.ascontiguousarray(sino, dtype=np.float32))
    rid = astra.data2d.create("-vol", vol, 0.0)
    cfg = astra.astra_dict(algorithm)
    cfg.update(ProjectorId=pid, ProjectionDataId=sid, ReconstructionDataId=rid)
    if algorithm == "SIRT":
        cfg["option"] = {"MinConstraint": 0.0}
    aid = astra.algorithm.create(cfg)
    try:
        astra.algorithm.run(aid, n_iter if algorithm == "SIRT" else 1)
        return astra.data2d.get(rid).astype(np.float32)
    finally:
        astra.algorithm.delete(aid)
        astra.data2d.delete([sid, rid])
        astra.projector.delete(pid)


# -- scikit-image --------------------------------------------------------------------------------------------
def skimage_radon(n: int, theta_deg: np.ndarray):
    """scikit-image's ``radon`` and unfiltered ``iradon`` on flat vectors, and the number of detector bins.

    ``iradon(filter_name=None)`` is a backprojection that is not scaled as ``radon``'s adjoint; callers fit
    the best constant (see the operators suite).
    """
    from skimage.transform import iradon, radon

    theta = np.asarray(theta_deg, dtype=np.float64)

    def fwd(v):
        return radon(np.asarray(v, dtype=np.float32).reshape(n, n), theta=theta, circle=False).astype(np.float32).ravel()

    bins = radon(np.zeros((n, n), np.float32), theta=theta[:1], circle=False).shape[0]

    def adj(v):
        sino = np.asarray(v, dtype=np.float32).reshape(bins, len(theta))
        return iradon(sino, theta=theta, filter_name=None, circle=False, output_size=n).astype(np.float32).ravel()

    return fwd, adj, bins
