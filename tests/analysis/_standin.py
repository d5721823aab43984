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


def correlated_field_table(rng, fwhm, *, n_side, levels, shape, sd, y0, spacing, shift=None):
    """Symmetric roots as ROI rows cut from one Gaussian-correlated noise field (values in mm^2/s).

    The field, of `shape` (i, j, k), is smoothed in-plane to a FWHM of `fwhm` voxels (wrapping at
    the edges) and scaled to mean 1.2e-3 and SD `sd`; each level takes an n_side x n_side x k box on
    the left (i from 40) and the right (i from 10) at j = y0 + spacing * level index. `shift` maps
    (level, side) to a relative change of that ROI's values. Rows carry voxel coordinates and a
    1 x 1 x 4 mm voxel size, for the noise-correlation estimate.
    """
    import math

    from scipy.ndimage import gaussian_filter

    f = rng.normal(size=shape)
    if fwhm:
        s = fwhm / math.sqrt(8 * math.log(2))
        f = gaussian_filter(f, sigma=(s, s, 0), mode="wrap")
    f = 1.2e-3 + sd * f / f.std()
    rows = []
    for i, lv in enumerate(levels):
        for side, x0 in (("left", 40), ("right", 10)):
            box = np.zeros(f.shape, bool)
            box[x0:x0 + n_side, y0 + spacing * i:y0 + spacing * i + n_side, :] = True
            r = make_row(lv, side, f[box] * (1 + (shift or {}).get((lv, side), 0.0)))
            r.coords = np.argwhere(box)
            r.voxel_size_mm = (1.0, 1.0, 4.0)
            rows.append(r)
    return table(*rows)
