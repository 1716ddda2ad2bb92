"""The view angles of a CT simulation (``simulate.angles``): full, sparse, limited or an explicit list."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal


@dataclass(frozen=True)
class AnglesConfig:
    """View angles: ``start_deg + span_deg * i / n_views`` for i < n_views (the end angle is excluded)."""

    kind: Literal["full", "sparse", "limited", "list"] = field(
        default="full",
        metadata={
            "doc": "full: 180 views over 180 deg (fan: 360 over 360); sparse: n_views over the full range; "
            "limited: n_views over span_deg; list: values_deg"
        },
    )
    n_views: int | None = field(
        default=None,
        metadata={"ge": 1, "doc": "number of views (sparse: required; full: default 180/360; limited: 1 per degree)"},
    )
    span_deg: float | None = field(
        default=None, metadata={"gt": 0, "le": 360, "doc": "angular range in degrees (limited only)"}
    )
    start_deg: float = field(default=0.0, metadata={"doc": "first angle in degrees"})
    values_deg: list[float] | None = field(default=None, metadata={"doc": "explicit angles in degrees (list only)"})

    def problems(self) -> list[str]:
        out = []
        if not math.isfinite(self.start_deg):
            out.append(f"angles.start_deg must be finite, got {self.start_deg}")
        if self.kind == "sparse" and self.n_views is None:
            out.append("angles: kind 'sparse' needs n_views (e.g. 60)")
        if self.kind == "limited" and self.span_deg is None:
            out.append("angles: kind 'limited' needs span_deg in (0, 360] (e.g. 90)")
        if self.kind != "limited" and self.span_deg is not None:
            out.append(f"angles.span_deg is only used with kind 'limited', not '{self.kind}'")
        if self.kind == "list":
            if not self.values_deg:
                out.append("angles: kind 'list' needs a non-empty values_deg")
            elif not all(math.isfinite(v) for v in self.values_deg):
                out.append("angles.values_deg must be finite numbers")
            if self.n_views is not None:
                out.append("angles.n_views is not used with kind 'list' (the list sets the views)")
            if self.start_deg != 0.0:
                out.append("angles.start_deg is not used with kind 'list'")
        elif self.values_deg is not None:
            out.append(f"angles.values_deg is only used with kind 'list', not '{self.kind}'")
        return out

    def degrees(self, geometry: str = "parallel") -> list[float]:
        """The view angles in degrees."""
        if self.kind == "list":
            return [float(v) for v in self.values_deg or ()]
        full = 360.0 if geometry == "fan" else 180.0
        span = float(self.span_deg) if self.kind == "limited" else full
        if self.n_views is not None:
            n = self.n_views
        elif self.kind == "limited":
            n = max(1, int(round(span)))
        else:
            n = int(full)
        return [self.start_deg + span * i / n for i in range(n)]

    def span(self, geometry: str = "parallel") -> float:
        """The covered angular range in degrees (for lists: max - min plus the median step)."""
        if self.kind == "limited":
            return float(self.span_deg)
        if self.kind in ("full", "sparse"):
            return 360.0 if geometry == "fan" else 180.0
        values = sorted(self.degrees(geometry))
        steps = sorted(b - a for a, b in zip(values, values[1:]))
        return values[-1] - values[0] + (steps[len(steps) // 2] if steps else 0.0)
