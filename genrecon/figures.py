"""Figure panels (PNG, PIL only): ground truth, each method, error maps, uncertainty maps."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _to_u8(a: np.ndarray, vmin: float, vmax: float) -> np.ndarray:
    a = np.abs(a) if np.iscomplexobj(a) else a
    scale = (vmax - vmin) if vmax > vmin else 1.0
    return (np.clip((a - vmin) / scale, 0, 1) * 255).astype(np.uint8)


def case_panel(
    path: Path,
    truth: np.ndarray,
    estimates: dict[str, np.ndarray],
    data_range: float,
    *,
    stds: dict[str, np.ndarray] | None = None,
    title: str = "",
    error_scale: float = 0.2,
) -> None:
    """Write a panel: top row ground truth and estimates; below, |error| maps (x1/error_scale) and std maps.

    Args:
        truth: (H, W) ground truth (magnitude is shown).
        estimates: label -> (H, W) estimate.
        data_range: intensity shown as white.
        stds: label -> (H, W) per-pixel standard deviation, shown in a third row when given.
        error_scale: error maps are shown on [0, error_scale * data_range].
    """
    from PIL import Image, ImageDraw

    from .io.atomic import atomic_write

    stds = stds or {}
    tiles = [("ground truth", _to_u8(truth, 0, data_range))]
    tiles += [(lab, _to_u8(est, 0, data_range)) for lab, est in estimates.items()]
    errs = [("", None)] + [
        (f"|err| x{1 / error_scale:g}", _to_u8(np.abs(np.abs(est) - np.abs(truth)), 0, error_scale * data_range))
        for est in estimates.values()
    ]
    rows = [tiles, errs]
    if stds:
        rows.append([("", None)] + [
            (f"std x{1 / error_scale:g}", _to_u8(stds[lab], 0, error_scale * data_range)) if lab in stds else ("", None)
            for lab in estimates
        ])
    h, w = truth.shape[-2:]
    pad, text_h = 4, 14
    head = text_h + pad if title else 0
    canvas = Image.new("L", (len(tiles) * (w + pad) + pad, head + len(rows) * (h + text_h + pad) + pad), 0)
    draw = ImageDraw.Draw(canvas)
    if title:
        draw.text((pad, pad), title, fill=255)
    for r, row in enumerate(rows):
        for c, (label, img) in enumerate(row):
            x0 = pad + c * (w + pad)
            y0 = head + pad + r * (h + text_h + pad)
            if img is None:
                continue
            canvas.paste(Image.fromarray(np.ascontiguousarray(img)), (x0, y0 + text_h))
            draw.text((x0 + 2, y0), label[: max(4, w // 6)], fill=255)
    with atomic_write(Path(path)) as tmp:
        canvas.save(tmp, format="PNG")
