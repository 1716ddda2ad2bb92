"""Fan-beam geometries shared by the tests of the matrix-free fan beam (``test_ct_fan_onthefly.py``: the torch
tiles; ``test_ct_fan_kernel.py``: the numba kernel): both paths are checked on the same awkward cases."""

import math

from genrecon.operators.ct import FanBeam

DEG = math.pi / 180
# views at exactly 0, 45, 90, 135, 180, 270 degrees and just off them (the row / column split of the pixels
# changes there, and at 45 degrees some pixels tie), plus arbitrary ones
EDGE_ANGLES = sorted({a * DEG + e for a in (0, 45, 90, 135, 180) for e in (0.0, -1e-9, 1e-9)}
                     | {45 * DEG + 1e-7, 270 * DEG - 1e-9, 2.0, 5.0})


def fan_op(matrix, n, views=None, angles=None, source=2.0, detector=1.0, offset=0.0, **kw):
    """A :class:`FanBeam` of side ``n``: ``views`` equally spaced over 360 degrees from ``offset`` views (or the
    given ``angles``), source ``source * n`` from the isocentre, detector ``detector * n`` beyond it."""
    angles = angles if angles is not None else [2 * math.pi * (i + offset) / views for i in range(views)]
    return FanBeam(image_size=n, angles=angles, source_distance=source * n, detector_distance=detector * n,
                   matrix=matrix, **kw)


CASES = {  # name -> kwargs of fan_op
    "even": {"n": 24, "views": 19},
    "odd": {"n": 23, "views": 13},
    "off_grid_views": {"n": 22, "views": 17, "offset": 0.3},
    "edge_angles_even": {"n": 20, "angles": EDGE_ANGLES},
    "edge_angles_odd": {"n": 17, "angles": EDGE_ANGLES},
    "no_gap_detector": {"n": 18, "views": 11, "detector": 0.0},  # detector through the isocentre
    "close_source": {"n": 16, "views": 6, "source": 0.85, "detector": 0.5},  # source close to the image
    "spacing_0.7_more_bins": {"n": 21, "views": 12, "detector_spacing": 0.7, "n_detectors": 90},
    "spacing_2.3": {"n": 19, "views": 10, "detector_spacing": 2.3},
    "spacing_2.3_short_scan": {"n": 19, "angles": [0.3 + 3.9 * i / 10 for i in range(10)],
                               "detector_spacing": 2.3},
    "normalised": {"n": 16, "views": 10, "normalize": True},
}


def rel(a, b) -> float:
    """``max |a - b| / max |b|``."""
    return float((a - b).abs().max() / b.abs().max())
