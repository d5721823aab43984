"""Minimal stand-in for RoiStatsTable/RoiStats (same fields as the contract in BRIEF.md).

Used only in tests so compare_sides can be tested before the ROI branch is merged.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class StandInRoiStats:
    level: str
    side: str
    segment: str
    parameter: str
    unit: str
    n_voxels: int
    n_excluded: int
    volume_mm3: float
    mean: float
    median: float
    sd: float
    iqr: float
    p5: float
    p95: float
    values: np.ndarray | None = None


@dataclass
class StandInTable:
    rows: list = field(default_factory=list)

    def to_records(self):
        return [{k: v for k, v in r.__dict__.items() if k != "values"} for r in self.rows]


def make_row(level, side, values, *, segment="ganglion", parameter="adc", unit="mm^2/s",
             voxel_mm3=9.0, keep_values=True):
    v = np.asarray(values, dtype=float)
    return StandInRoiStats(
        level=level, side=side, segment=segment, parameter=parameter, unit=unit,
        n_voxels=int(v.size), n_excluded=0, volume_mm3=v.size * voxel_mm3,
        mean=float(v.mean()) if v.size else float("nan"),
        median=float(np.median(v)) if v.size else float("nan"),
        sd=float(v.std(ddof=1)) if v.size > 1 else float("nan"),
        iqr=float(np.subtract(*np.percentile(v, [75, 25]))) if v.size else float("nan"),
        p5=float(np.percentile(v, 5)) if v.size else float("nan"),
        p95=float(np.percentile(v, 95)) if v.size else float("nan"),
        values=v if keep_values else None,
    )


def table(*rows):
    return StandInTable(list(rows))
