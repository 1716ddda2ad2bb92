"""Figure panels (PNG, PIL only) for a paper or a slide: ground truth and each method with its scores, the
sampling (MRI mask or CT view angles), |error| and uncertainty maps with their grey-level window and a bar.

Small images are enlarged by an integer factor (nearest neighbour, no smoothing) so the text stays legible.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np


def _to_u8(a: np.ndarray, vmin: float, vmax: float) -> np.ndarray:
    a = np.abs(a) if np.iscomplexobj(a) else a
    scale = (vmax - vmin) if vmax > vmin else 1.0
    return (np.clip((a - vmin) / scale, 0, 1) * 255).astype(np.uint8)


def angle_diagram(angles_deg, size: int) -> np.ndarray:
    """A ``size`` x ``size`` picture of the view directions: one spoke per angle, drawn on both sides of the
    centre (parallel beam: a view and its opposite are the same line) outside a small hub, on a grey circle."""
    from PIL import Image, ImageDraw

    img = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(img)
    c, r = (size - 1) / 2, 0.45 * size
    draw.ellipse((c - r, c - r, c + r, c + r), outline=90)
    for a in angles_deg:
        t = math.radians(float(a))
        dx, dy = math.cos(t), -math.sin(t)
        for s in (1, -1):
            draw.line((c + s * 0.3 * r * dx, c + s * 0.3 * r * dy, c + s * r * dx, c + s * r * dy), fill=255)
    return np.asarray(img)


def _font(size: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)  # a scalable font (Pillow >= 10.1 with FreeType)
    except TypeError:  # pragma: no cover - older Pillow: the small bitmap font
        return ImageFont.load_default()


def case_panel(
    path: Path,
    truth: np.ndarray,
    estimates: dict[str, np.ndarray],
    data_range: float,
    *,
    stds: dict[str, np.ndarray] | None = None,
    title: str = "",
    error_scale: float = 0.2,
    scores: dict[str, str] | None = None,
    sampling: tuple[str, np.ndarray] | None = None,
) -> None:
    """Write a panel: ground truth and estimates (with ``scores``), then the sampling tile and |error| maps, then
    std maps; error and std maps share the window ``[0, error_scale * data_range]``, drawn as a bar.

    Args:
        truth: (H, W) ground truth (magnitude is shown).
        estimates: label -> (H, W) estimate.
        data_range: intensity shown as white.
        stds: label -> (H, W) per-pixel standard deviation, shown in a third row when given.
        error_scale: error and std maps are shown on ``[0, error_scale * data_range]``.
        scores: label -> a short text under its tile (e.g. ``"27.45 dB  SSIM 0.794"``).
        sampling: ``(caption, image)``: the sampling mask, or :func:`angle_diagram`, shown under the truth.
    """
    from PIL import Image, ImageDraw

    from .io.atomic import atomic_write

    stds, scores = stds or {}, scores or {}
    h, w = truth.shape[-2:]
    zoom = max(1, round(256 / max(h, w)))
    th, tw = h * zoom, w * zoom
    font, small = _font(15), _font(12)
    pad, label_h, score_h = 6, 20, 18 if scores else 0
    window = error_scale * data_range
    tiles = [("ground truth", _to_u8(truth, 0, data_range), "")]
    tiles += [(lab, _to_u8(est, 0, data_range), scores.get(lab, "")) for lab, est in estimates.items()]
    first = ("", None, "") if sampling is None else (sampling[0], _to_u8(sampling[1], 0, max(float(np.max(
        np.abs(sampling[1]))), 1e-12)), "")
    rows = [tiles, [first] + [("|error|", _to_u8(np.abs(np.abs(est) - np.abs(truth)), 0, window), "")
                              for est in estimates.values()]]
    if stds:
        rows.append([("", None, "")] + [("std", _to_u8(stds[lab], 0, window), "") if lab in stds else ("", None, "")
                                        for lab in estimates])
    bar_w = 70
    head = 2 * label_h + pad
    row_h = label_h + th + score_h + pad
    width = len(tiles) * (tw + pad) + pad + bar_w
    canvas = Image.new("L", (width, head + len(rows) * row_h + pad), 0)
    draw = ImageDraw.Draw(canvas)
    draw.text((pad, pad), title, fill=255, font=font)
    draw.text((pad, pad + label_h), f"images: black 0, white {data_range:.3g} (data_range); |error| and std: "
              f"black 0, white {window:.3g} ({error_scale:g} x data_range)", fill=200, font=small)
    for r, row in enumerate(rows):
        y0 = head + r * row_h
        for c, (label, img, score) in enumerate(row):
            if img is None:
                continue
            x0 = pad + c * (tw + pad)
            big = np.kron(img, np.ones((zoom, zoom), np.uint8)) if img.shape == (h, w) else \
                np.asarray(Image.fromarray(np.ascontiguousarray(img)).resize((tw, th), Image.NEAREST))
            canvas.paste(Image.fromarray(np.ascontiguousarray(big)), (x0, y0 + label_h))
            draw.text((x0 + 2, y0 + 2), label, fill=255, font=font)
            if score:
                draw.text((x0 + 2, y0 + label_h + th + 2), score, fill=255, font=small)
        if r >= 1:  # the grey bar of the error / std window
            bx = width - bar_w + 8
            grad = np.linspace(255, 0, th).astype(np.uint8)[:, None].repeat(14, 1)
            canvas.paste(Image.fromarray(grad), (bx, y0 + label_h))
            draw.text((bx + 18, y0 + label_h - 2), f"{window:.2g}", fill=255, font=small)
            draw.text((bx + 18, y0 + label_h + th - 14), "0", fill=255, font=small)
    with atomic_write(Path(path)) as tmp:
        canvas.save(tmp, format="PNG")
