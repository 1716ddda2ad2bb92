"""fastMRI-format files made from real images, for tests and benchmarks (no raw k-space is available offline).

:func:`write_fastmri_file` builds what a fastMRI file holds from magnitude images: each image gets a smooth
phase, is placed on an acquisition grid oversampled in the readout direction (rows, 2x as fastMRI's knee
data: 640 rows for a 320-row reference) and a little in the phase-encoding direction, is multiplied by
smooth complex coil maps (multi-coil), Fourier transformed (centred, orthonormal) and given complex
Gaussian noise. The references are then computed from that noisy, fully sampled k-space as fastMRI's are:
``reconstruction_esc`` (single coil: the magnitude of the centre crop of the inverse FFT) or
``reconstruction_rss`` (multi-coil: root-sum-of-squares of the cropped coil images), with the ``max`` and
``norm`` attributes of the reference volume. Files made this way are simulated; say so wherever they are used.

Example:
    >>> import tempfile, pathlib, numpy as np, h5py
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "file_sim_0.h5"
    >>> facts = write_fastmri_file(path, np.ones((2, 16, 16), np.float32), coils=4, seed=0)
    >>> with h5py.File(path) as f:
    ...     f["kspace"].shape, f["kspace"].dtype, f["reconstruction_rss"].shape
    ((2, 4, 32, 18), dtype('complex64'), (2, 16, 16))
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch


def _smooth_phase(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    y, x = np.meshgrid(np.linspace(-1, 1, h), np.linspace(-1, 1, w), indexing="ij")
    c = rng.uniform(-1, 1, 6)
    return math.pi * c[0] + (math.pi / 3) * (c[1] * x + c[2] * y + c[3] * x**2 + c[4] * y**2 + c[5] * x * y)


def write_fastmri_file(
    path: str | Path,
    images: np.ndarray,
    *,
    coils: int = 1,
    readout_oversampling: int = 2,
    phase_padding: float = 0.125,
    noise: float = 0.002,
    seed: int = 0,
    acquisition: str = "AXT1_SIM",
) -> dict:
    """Write a fastMRI-format ``.h5`` file whose k-space measures ``images``.

    Args:
        path: the file to write.
        images: ``(N, h, w)`` non-negative magnitude images (the reference grid).
        coils: 1 (single-coil file: ``kspace`` ``(N, Hk, Wk)``, ``reconstruction_esc``) or more (multi-coil:
            ``kspace`` ``(N, C, Hk, Wk)``, ``reconstruction_rss``), with smooth complex coil maps.
        readout_oversampling: ``Hk = readout_oversampling * h`` (rows are the readout direction).
        phase_padding: ``Wk = w + 2 round(phase_padding w / 2)`` columns (phase encoding).
        noise: std of the complex k-space noise, relative to the RMS of the noiseless k-space.
        seed: seeds the phase, the coil maps and the noise.
        acquisition: the ``acquisition`` attribute.

    Returns:
        ``{"kspace_shape", "reference", "max", "maps"}`` (``maps`` ``(C, Hk, Wk)`` or None).
    """
    import h5py

    from ..io.atomic import atomic_write
    from ..operators.fft import fft2c, ifft2c
    from ..simulate.coils import simulate_coil_maps

    images = np.asarray(images, dtype=np.float64)
    if images.ndim != 3:
        raise ValueError(f"write_fastmri_file: images must be (N, h, w), got shape {images.shape}")
    n, h, w = images.shape
    hk = readout_oversampling * h
    wk = w + 2 * int(round(phase_padding * w / 2))
    rng = np.random.default_rng(seed)
    grid = np.zeros((n, hk, wk), np.complex128)
    top, left = (hk - h) // 2, (wk - w) // 2
    for i in range(n):
        grid[i, top : top + h, left : left + w] = images[i] * np.exp(1j * _smooth_phase(h, w, rng))
    x = torch.from_numpy(grid)[:, None]  # (N, 1, Hk, Wk)
    maps = None
    if coils > 1:
        g = torch.Generator().manual_seed(seed)
        maps = simulate_coil_maps(coils, (hk, wk), generator=g, dtype=torch.complex128)
        x = x * maps[None]
    k = fft2c(x)
    sigma = noise * float(k.abs().square().mean().sqrt())
    k = k + sigma * torch.from_numpy((rng.standard_normal(k.shape) + 1j * rng.standard_normal(k.shape)) / math.sqrt(2))
    coil_images = ifft2c(k)[..., top : top + h, left : left + w]
    if coils > 1:
        reference = coil_images.abs().square().sum(1).sqrt().numpy()
        name, kspace = "reconstruction_rss", k.numpy()
    else:
        reference = coil_images[:, 0].abs().numpy()
        name, kspace = "reconstruction_esc", k[:, 0].numpy()
    with atomic_write(path) as tmp:
        with h5py.File(tmp, "w") as f:
            f.create_dataset("kspace", data=kspace.astype(np.complex64))
            f.create_dataset(name, data=reference.astype(np.float32))
            f.create_dataset("ismrmrd_header", data=np.bytes_(
                f"<ismrmrdHeader><encoding><encodedSpace><matrixSize><x>{hk}</x><y>{wk}</y></matrixSize>"
                f"</encodedSpace><reconSpace><matrixSize><x>{h}</x><y>{w}</y></matrixSize></reconSpace>"
                "</encoding></ismrmrdHeader>"))
            f.attrs.update(acquisition=acquisition, max=float(reference.max()),
                           norm=float(np.linalg.norm(reference)), patient_id=f"sim-{seed}")
    return {"kspace_shape": tuple(kspace.shape), "reference": reference.astype(np.float32), "max": float(reference.max()),
            "maps": None if maps is None else maps.to(torch.complex64)}
