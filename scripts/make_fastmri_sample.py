#!/usr/bin/env python
"""Write SIMULATED fastMRI-format files from the bundled MNI152 T1 slices (no raw k-space is available offline).

    python scripts/make_fastmri_sample.py [--out data/fastmri_sim]

writes

- ``<out>/multicoil/file_brain_sim_mc.h5``: 12 coils, ``kspace`` ``(5, 12, 512, 288)`` complex64 and
  ``reconstruction_rss`` ``(5, 256, 256)``;
- ``<out>/singlecoil/file_brain_sim_sc.h5``: ``kspace`` ``(5, 512, 288)`` and ``reconstruction_esc``.

The images are the five bundled slices ``sample:brain-mri`` (MNI152 2009a T1, 256 x 256, [0, 1]); each gets
a smooth phase, is placed on a grid oversampled 2x in the readout direction (rows) and padded 12.5% in the
phase-encoding direction (columns), multiplied by smooth complex coil maps (multi-coil) and given complex
Gaussian noise (0.2% of the k-space RMS), by :func:`genrecon.testing.fastmri.write_fastmri_file`. The
references are computed from that noisy, fully sampled k-space as fastMRI's are. Deterministic (fixed
seeds); a few seconds. These files are simulated: say so wherever results on them are shown. They are also
slices of the template the shipped brain prior was trained on (not held out for the generative methods).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "data" / "fastmri_sim"
MULTICOIL_NAME = "file_brain_sim_mc.h5"
SINGLECOIL_NAME = "file_brain_sim_sc.h5"
COILS = 12
SEEDS = {"multicoil": 1612, "singlecoil": 1601}


def bundled_brain_slices() -> np.ndarray:
    """The five bundled MNI152 T1 slices ``(5, 256, 256)`` float32 in [0, 1] (``sample:brain-mri``)."""
    from genrecon.registry import LOADERS

    loader = LOADERS.build("sample", {})
    n = loader.n_slices("sample:brain-mri")
    images = [loader.load("sample:brain-mri", i).image[0].numpy() for i in range(n)]
    return np.clip(np.stack(images), 0, None).astype(np.float32)


def make_samples(out: str | Path = DEFAULT_OUT, images: np.ndarray | None = None, *, coils: int = COILS) -> dict:
    """Write the multi-coil and single-coil files under ``out``; return ``{kind: (path, facts)}``.

    Args:
        out: the folder; ``multicoil/`` and ``singlecoil/`` are made in it.
        images: ``(N, h, w)`` non-negative magnitudes (default: the bundled MNI152 slices, 256 x 256).
        coils: coils of the multi-coil file.

    Returns:
        ``{"multicoil": (path, facts), "singlecoil": (path, facts)}``, ``facts`` as
        :func:`~genrecon.testing.fastmri.write_fastmri_file` returns them.
    """
    from genrecon.testing.fastmri import write_fastmri_file

    out = Path(out)
    images = bundled_brain_slices() if images is None else np.asarray(images, dtype=np.float32)
    written = {}
    for kind, name, n_coils in (("multicoil", MULTICOIL_NAME, coils), ("singlecoil", SINGLECOIL_NAME, 1)):
        folder = out / kind
        folder.mkdir(parents=True, exist_ok=True)
        facts = write_fastmri_file(folder / name, images, coils=n_coils, seed=SEEDS[kind],
                                   acquisition="AXT1_SIM_MNI152")
        written[kind] = (folder / name, facts)
    return written


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder (default: data/fastmri_sim)")
    args = ap.parse_args()
    for kind, (path, facts) in make_samples(args.out).items():
        print(f"{kind}: {path} (SIMULATED from MNI152 slices): kspace {facts['kspace_shape']}, "
              f"reference max {facts['max']:.4g}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
