"""``genrecon recon FILE``: one file, no YAML. Builds the run config from a few options (``--save-config`` writes
it out, to rerun or edit with ``genrecon reconstruct --config``) and runs it through the same pipeline.

The config it builds, by modality (``--modality``, else from the source: fastMRI ``.h5`` and ``sample:brain-mri``
are MRI, ``sample:head-ct`` and DICOM series are CT):

- MRI: a Cartesian ``--mask`` (default ``random``) at ``--acceleration`` with a ``--center-fraction`` fully sampled
  centre; fastMRI files use their measured k-space (``measurement: auto``), other images are simulated with
  complex Gaussian noise ``--noise`` (sigma, images scaled to [0, 1] by the volume maximum).
- CT: parallel beam, ``--views`` over ``--span`` degrees (180: sparse view, less: limited angle), Poisson noise
  with ``--i0`` photons (0: none), an operator of norm 1; images in Hounsfield units (DICOM, ``sample:head-ct``,
  or ``--hu``) are mapped to attenuation.

Methods (``--method``, repeatable): by default ``zero_filled`` (MRI) or ``fbp`` (CT), and ``fista_tv`` with
``--tv-weight``; ``--set`` changes any key of the built config (``reconstructors.1.params.n_iter=50``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from .common import console, handle_errors

#: fista_tv's tv_weight by modality when --tv-weight is not given (the shipped configs' values: MRI images in
#: [0, 1], CT attenuation per pixel with a norm-1 operator)
TV_WEIGHT = {"mri": 0.002, "ct": 0.000005}


def infer_modality(source: str) -> str | None:
    """``mri`` / ``ct`` when the source says which, else None."""
    s = source.lower()
    if s.startswith("sample:head-ct"):
        return "ct"
    if s.startswith("sample:brain-mri") or s.endswith((".h5", ".hdf5")):
        return "mri"
    path = Path(source)
    if path.is_dir() and any(p.suffix.lower() == ".dcm" for p in path.iterdir()) or s.endswith(".dcm"):
        return "ct"
    return None


def build_config(source: str, *, modality: str | None, methods: list[str], acceleration: float, mask: str,
                 center_fraction: float, noise: float, views: int, span: float, i0: float, hu: bool,
                 tv_weight: float | None, slices: str, size: int | None, out: str | None, threads: str) -> dict:
    """The run config (a dict, as YAML would give) of a ``genrecon recon`` command line."""
    from ..errors import ConfigError

    inferred = infer_modality(source)
    modality = modality or inferred
    if modality is None:
        raise ConfigError(f"{source}: cannot tell MRI from CT by its name: give --modality mri or --modality ct")
    fastmri = source.lower().endswith((".h5", ".hdf5"))
    data: dict = {"source": source, "slices": slices}
    if size is not None:
        data["size"] = size
    if modality == "mri":
        simulate: dict = {"modality": "mri", "mask": {"name": mask, "acceleration": acceleration,
                                                     "center_fraction": center_fraction}}
        if fastmri:
            data.update(loader="fastmri", normalize="none")
        else:
            simulate["noise"] = {"sigma": noise}
        default_methods = ["zero_filled", "fista_tv"]
    else:
        angles = {"kind": "sparse", "n_views": views} if span >= 180 else \
            {"kind": "limited", "span_deg": span, "n_views": views}
        is_hu = hu or inferred == "ct"  # sample:head-ct and DICOM carry HU
        simulate = {"modality": "ct", "angles": angles, "normalize": True,
                    "noise": {"kind": "poisson", "i0": i0} if i0 > 0 else {"kind": "none"}}
        if is_hu:
            simulate["hu_to_mu"] = {"kind": "hu"}
            data.update(normalize="none", **({"units": "hu"} if hu else {}))
        default_methods = ["fbp", "fista_tv"]
    weight = TV_WEIGHT[modality] if tv_weight is None else tv_weight
    recons = []
    for name in methods or default_methods:
        params: dict = {}
        if name == "fista_tv":
            params = {"tv_weight": weight, "n_iter": 100, **({"nonneg": True} if modality == "ct" else {})}
        recons.append({"name": name, **({"params": params} if params else {})})
    stem = source.split(":")[-1].rstrip("/").split("/")[-1].split(".")[0] or "data"
    return {
        "version": 1, "seed": 0, "device": "auto", "threads": int(threads) if threads.isdigit() else threads,
        "data": data, "simulate": simulate, "reconstructors": recons,
        "evaluate": {"metrics": ["psnr", "ssim", "nmse"], "data_range": "volume_max",
                     **({"aggregate": "volume"} if fastmri else {})},
        "output": {"dir": out or f"runs/recon-{stem}", "save": ["npy", "png"] + (["h5"] if fastmri else [])},
    }


@handle_errors
def recon(
    source: str = typer.Argument(..., help="a file, folder, sample:NAME or phantom:NAME"),
    modality: Optional[str] = typer.Option(None, "--modality", help="mri or ct (default: from the source)"),
    method: Optional[list[str]] = typer.Option(None, "--method", "-m",
                                               help="a reconstructor (repeatable; genrecon list); default: "
                                                    "zero_filled/fbp and fista_tv"),
    acceleration: float = typer.Option(4.0, "--acceleration", help="MRI: undersampling factor"),
    mask: str = typer.Option("random", "--mask", help="MRI: mask family (genrecon list masks)"),
    center_fraction: float = typer.Option(0.08, "--center-fraction", help="MRI: fully sampled centre"),
    noise: float = typer.Option(0.0, "--noise", help="MRI: complex Gaussian noise sigma (simulated k-space)"),
    views: int = typer.Option(60, "--views", help="CT: number of views"),
    span: float = typer.Option(180.0, "--span", help="CT: angular range in degrees (< 180: limited angle)"),
    i0: float = typer.Option(1e5, "--i0", help="CT: photons per detector bin (0: noiseless)"),
    hu: bool = typer.Option(False, "--hu", help="CT: the images are in Hounsfield units (NIfTI, .npy)"),
    tv_weight: Optional[float] = typer.Option(None, "--tv-weight", help="fista_tv's weight (default by modality)"),
    slices: str = typer.Option("middle", "--slices", help="all | middle | 3 | '10:20:2'"),
    size: Optional[int] = typer.Option(None, "--size", help="resample to this square size"),
    out: Optional[str] = typer.Option(None, "--out", "-o", help="run folder (default runs/recon-<name>)"),
    threads: str = typer.Option("auto", "--threads", help="torch CPU threads: a number or auto"),
    set_: Optional[list[str]] = typer.Option(None, "--set", help="override a key of the built config (repeatable)"),
    save_config: Optional[Path] = typer.Option(None, "--save-config", help="write the built config (YAML) here"),
    dry_run: bool = typer.Option(False, "--dry-run", help="build and validate the config, run nothing"),
    overwrite: bool = typer.Option(False, "--overwrite", help="replace results of other settings in the folder"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress output"),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="a line per finished case"),
) -> None:
    """Reconstruct one file with a few options, no YAML (--save-config writes the config it builds)."""
    from ..config import dump_yaml, load_config_dict
    from ..yamlio import apply_override
    from .reconstruct import run_and_report

    raw = build_config(source, modality=modality, methods=list(method or []), acceleration=acceleration, mask=mask,
                       center_fraction=center_fraction, noise=noise, views=views, span=span, i0=i0, hu=hu,
                       tv_weight=tv_weight, slices=slices, size=size, out=out, threads=threads)
    for item in set_ or []:
        apply_override(raw, item)
    cfg = load_config_dict(raw)
    if save_config is not None:
        from ..io.writers import write_text

        write_text(save_config, "# written by: genrecon recon " + source + " (rerun: genrecon reconstruct --config "
                   f"{save_config})\n" + dump_yaml(cfg))
        console.print(f"config written to {save_config}", highlight=False)
    if dry_run:
        console.print(f"config OK: {', '.join(cfg.labels())} on {source} ({cfg.modality}); outputs would go to "
                      f"{cfg.output.dir}", highlight=False)
        return
    run_and_report(cfg, quiet=quiet, verbose=verbose, overwrite=overwrite)
