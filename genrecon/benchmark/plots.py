"""Line plots as PNG with Pillow only (no matplotlib): PSNR against measurements, time against size.

A figure is a row of panels; each panel has a title, axis labels, linear or log axes and named series of
``(x, y)`` points (None/nan points are left out, so a missing method simply has no line).

Example:
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "demo.png"
    >>> _ = line_plot(path, [{"title": "demo", "x_label": "x", "y_label": "y",
    ...                       "series": [{"label": "a", "x": [1, 2, 4], "y": [1.0, 3.0, 2.0]}]}])
    >>> from PIL import Image
    >>> Image.open(path).size[0] > 100
    True
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from ..io.atomic import atomic_write

COLOURS = [(31, 119, 180), (214, 39, 40), (44, 160, 44), (255, 127, 14), (148, 103, 189), (140, 86, 75),
           (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207)]
MARKERS = ["circle", "square", "triangle", "diamond"]


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """About ``count`` round tick values covering ``[lo, hi]`` (steps of 1, 2 or 5 times a power of ten)."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return []
    if hi <= lo:
        hi = lo + (abs(lo) if lo else 1.0)
    raw = (hi - lo) / max(count, 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)
    start = math.floor(lo / step) * step
    ticks, v = [], start
    while v <= hi + step * 1e-9:
        ticks.append(round(v, 12))
        v += step
    return ticks


def _log_ticks(lo: float, hi: float) -> list[float]:
    ticks = []
    for e in range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1):
        for m in (1, 2, 5):
            v = m * 10**e
            if lo * 0.999 <= v <= hi * 1.001:
                ticks.append(float(v))
    return ticks or [lo, hi]


def _label(v: float) -> str:
    if v == 0:
        return "0"
    if abs(v) >= 1e4 or abs(v) < 1e-2:
        return f"{v:.0e}"
    return f"{v:g}"


def _finite_points(xs, ys) -> list[tuple[float, float]]:
    pts = []
    for x, y in zip(xs, ys):
        if x is None or y is None:
            continue
        x, y = float(x), float(y)
        if math.isfinite(x) and math.isfinite(y):
            pts.append((x, y))
    return pts


def _marker(draw, x: float, y: float, kind: str, colour, r: int = 3) -> None:
    if kind == "square":
        draw.rectangle([x - r, y - r, x + r, y + r], fill=colour)
    elif kind == "triangle":
        draw.polygon([(x, y - r - 1), (x - r - 1, y + r), (x + r + 1, y + r)], fill=colour)
    elif kind == "diamond":
        draw.polygon([(x, y - r - 1), (x + r + 1, y), (x, y + r + 1), (x - r - 1, y)], fill=colour)
    else:
        draw.ellipse([x - r, y - r, x + r, y + r], fill=colour)


def _panel(draw, box: tuple[int, int, int, int], panel: dict[str, Any]) -> None:
    x0, y0, x1, y1 = box
    left, right, top, bottom = x0 + 58, x1 - 12, y0 + 36, y1 - 40
    text = str(panel.get("title", ""))[:70]
    draw.text(((left + right) // 2 - 3 * len(text), y0 + 4), text, fill=(0, 0, 0))
    series = [s for s in panel.get("series", []) if _finite_points(s.get("x", []), s.get("y", []))]
    log_x, log_y = bool(panel.get("log_x")), bool(panel.get("log_y"))
    pts_all = [p for s in series for p in _finite_points(s["x"], s["y"])]
    if log_x:
        pts_all = [p for p in pts_all if p[0] > 0]
    if log_y:
        pts_all = [p for p in pts_all if p[1] > 0]
    draw.rectangle([left, top, right, bottom], outline=(0, 0, 0))
    draw.text(((left + right) // 2 - 3 * len(panel.get("x_label", "")), bottom + 22), panel.get("x_label", ""),
              fill=(0, 0, 0))
    draw.text((x0 + 4, top - 15), panel.get("y_label", ""), fill=(0, 0, 0))
    if not pts_all:
        draw.text((left + 10, (top + bottom) // 2), "no data", fill=(120, 120, 120))
        return
    xs, ys = [p[0] for p in pts_all], [p[1] for p in pts_all]
    fx = (lambda v: math.log10(v)) if log_x else (lambda v: v)
    fy = (lambda v: math.log10(v)) if log_y else (lambda v: v)
    xlo, xhi = min(map(fx, xs)), max(map(fx, xs))
    ylo, yhi = min(map(fy, ys)), max(map(fy, ys))
    if xhi == xlo:
        xlo, xhi = xlo - 0.5, xhi + 0.5
    if yhi == ylo:
        ylo, yhi = ylo - 0.5, yhi + 0.5
    xpad, ypad = 0.05 * (xhi - xlo), 0.08 * (yhi - ylo)
    xlo, xhi, ylo, yhi = xlo - xpad, xhi + xpad, ylo - ypad, yhi + ypad

    def px(v: float) -> float:
        return left + (fx(v) - xlo) / (xhi - xlo) * (right - left)

    def py(v: float) -> float:
        return bottom - (fy(v) - ylo) / (yhi - ylo) * (bottom - top)

    distinct = sorted({x for x in xs})
    if len(distinct) <= 8:  # few x values (sizes, accelerations, views): tick exactly those
        xt = distinct
    else:
        xt = _log_ticks(10**xlo, 10**xhi) if log_x else nice_ticks(xlo, xhi)
    yt = _log_ticks(10**ylo, 10**yhi) if log_y else nice_ticks(ylo, yhi)
    for v in xt:
        if xlo <= fx(v) <= xhi:
            p = px(v)
            draw.line([(p, top), (p, bottom)], fill=(230, 230, 230))
            draw.line([(p, bottom), (p, bottom + 4)], fill=(0, 0, 0))
            draw.text((p - 3 * len(_label(v)), bottom + 6), _label(v), fill=(0, 0, 0))
    for v in yt:
        if ylo <= fy(v) <= yhi:
            p = py(v)
            draw.line([(left, p), (right, p)], fill=(230, 230, 230))
            draw.line([(left - 4, p), (left, p)], fill=(0, 0, 0))
            draw.text((left - 8 - 6 * len(_label(v)), p - 6), _label(v), fill=(0, 0, 0))
    draw.rectangle([left, top, right, bottom], outline=(0, 0, 0))
    # legend in a corner: "lower right" (the default: rising curves leave it empty), "upper right", "upper left"
    # or "lower left"
    corner = str(panel.get("legend", "lower right"))
    legend_y = top + 6 if corner.startswith("upper") else bottom - 8 - 14 * len(series)
    legend_x = left + 160 if corner.endswith("left") else right
    for i, s in enumerate(series):
        colour = tuple(s.get("colour") or COLOURS[i % len(COLOURS)])
        marker = s.get("marker") or MARKERS[i % len(MARKERS)]
        pts = [(px(x), py(y)) for x, y in sorted(_finite_points(s["x"], s["y"]))
               if (not log_x or x > 0) and (not log_y or y > 0)]
        if len(pts) > 1:
            draw.line(pts, fill=colour, width=2)
        for x, y in pts:
            _marker(draw, x, y, marker, colour)
        draw.line([(legend_x - 150, legend_y + 6), (legend_x - 132, legend_y + 6)], fill=colour, width=2)
        _marker(draw, legend_x - 141, legend_y + 6, marker, colour)
        draw.text((legend_x - 128, legend_y), str(s.get("label", ""))[:22], fill=(0, 0, 0))
        legend_y += 14


def line_plot(path: Path, panels: list[dict[str, Any]], *, title: str = "", panel_size: tuple[int, int] = (420, 320),
              ) -> Path:
    """Write a PNG with the ``panels`` side by side (atomically).

    Args:
        path: the PNG file.
        panels: dicts with ``title``, ``x_label``, ``y_label``, optional ``log_x`` / ``log_y``, ``legend``
            (a corner: ``"lower right"``, the default, ``"upper right"``, ``"upper left"``, ``"lower left"``)
            and ``series``: a list of
            ``{"label", "x": [...], "y": [...]}``.
        title: a line above the panels.
        panel_size: ``(width, height)`` of each panel in pixels.

    Returns:
        ``path``.
    """
    from PIL import Image, ImageDraw

    w, h = panel_size
    head = 22 if title else 0
    canvas = Image.new("RGB", (max(1, len(panels)) * w, h + head), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    if title:
        draw.text((8, 5), title[:160], fill=(0, 0, 0))
    for i, panel in enumerate(panels):
        _panel(draw, (i * w, head, (i + 1) * w, head + h), panel)
    with atomic_write(Path(path)) as tmp:
        canvas.save(tmp, format="PNG")
    return Path(path)
