"""Per-ROI statistics of a parameter map (ADC, S0, FA, …) → a tidy table.

For every nerve-root ROI the voxels whose centre lies inside the ROI are collected on the map's
grid; voxels are excluded when the fit failed (``ADCFit.status != 0``, or a NaN value) and,
optionally, when the value suggests CSF contamination (``value > csf_threshold``; for ADC in
mm²/s — free water at body temperature is ≈ 3.0×10⁻³ mm²/s, dwi_toolkit References §1.4/§1.6).
Counts of included and excluded voxels and the ROI volume are always reported
(dwi_toolkit References §2.6: "record voxel count and volume with every ROI value").

Statistics: mean, median, sample SD (ddof=1), IQR (p75 − p25), p5 and p95 (numpy's linear
percentiles). The included values are kept on each row (``values``) for bootstraps.
"""

from __future__ import annotations

import csv
import io
import logging
import math
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ..core import affines as _aff
from ..core.image import ParameterMap
from ..errors import InputDataError, RoiError
from ..roi.masks import roi_mask
from ..roi.model import RootROI, RoiSet, normalize_level, normalize_segment, normalize_side
from ..units import DIFFUSIVITY_UNIT, DISPLAY_SCALE, DISPLAY_UNIT

__all__ = ["RoiStats", "RoiStatsTable", "roi_stats", "summarize_values", "CSV_COLUMNS"]

logger = logging.getLogger(__name__)

#: Column order of :meth:`RoiStatsTable.to_records` and the CSV output.
CSV_COLUMNS = (
    "level", "side", "segment", "parameter", "unit", "n_voxels", "n_excluded", "n_excluded_fit",
    "n_excluded_mask", "n_excluded_csf", "volume_mm3", "mean", "median", "sd", "iqr", "p5", "p95",
)


def summarize_values(values: NDArray) -> dict[str, float]:
    """mean, median, sd (ddof=1), iqr, p5, p95 of a 1-D array (NaN where undefined).

    Examples
    --------
    >>> s = summarize_values(np.array([1.0, 2.0, 3.0, 4.0]))
    >>> s["mean"], s["median"], round(s["sd"], 4), s["iqr"]
    (2.5, 2.5, 1.291, 1.5)
    """
    v = np.asarray(values, dtype=float).reshape(-1)
    if v.size == 0:
        return dict.fromkeys(("mean", "median", "sd", "iqr", "p5", "p95"), math.nan)
    p5, p25, p50, p75, p95 = np.percentile(v, [5, 25, 50, 75, 95])
    return {
        "mean": float(v.mean()),
        "median": float(p50),
        "sd": float(v.std(ddof=1)) if v.size > 1 else math.nan,
        "iqr": float(p75 - p25),
        "p5": float(p5),
        "p95": float(p95),
    }


@dataclass(frozen=True, eq=False)
class RoiStats:
    """Statistics of one parameter in one ROI.

    ``n_voxels`` counts the included voxels, ``n_excluded`` the excluded ones (failed fit/NaN:
    ``n_excluded_fit``; outside the analysis mask, never fitted (status 1): ``n_excluded_mask``;
    above the CSF threshold: ``n_excluded_csf``). ``volume_mm3`` is the
    volume of the included voxels. Values are in ``unit`` (mm²/s for ADC).

    Examples
    --------
    >>> from dwi_toolkit.core.image import ParameterMap
    >>> from dwi_toolkit.roi.model import RootROI, Sphere
    >>> row = roi_stats(ParameterMap(np.full((10, 10, 10), 1.2e-3), np.eye(4), "adc", "mm^2/s"), RootROI("L5", "left", shape=Sphere([5, 5, 5], 2.0)))[0]
    >>> row.name, row.n_voxels, round(row.mean * 1e3, 3), row.unit
    ('L5_left_ganglion', 33, 1.2, 'mm^2/s')
    """

    level: str
    side: str
    segment: str
    parameter: str
    unit: str
    n_voxels: int
    n_excluded: int
    n_excluded_fit: int
    n_excluded_mask: int
    n_excluded_csf: int
    volume_mm3: float
    mean: float
    median: float
    sd: float
    iqr: float
    p5: float
    p95: float
    values: NDArray[np.float64] = field(repr=False, default_factory=lambda: np.empty(0))
    #: Voxel indices (n_voxels, 3) of ``values`` on the map's grid (for noise-correlation estimates).
    coords: NDArray[np.int64] | None = field(repr=False, default=None)
    #: Voxel size along the grid axes i, j, k in mm.
    voxel_size_mm: tuple[float, float, float] | None = field(repr=False, default=None)

    @property
    def name(self) -> str:
        """ROI name, e.g. ``"L5_left_ganglion"``."""
        return f"{self.level}_{self.side}_{self.segment}"

    def to_record(self) -> dict[str, Any]:
        """The row as a dict (CSV columns, without ``values``)."""
        return {c: getattr(self, c) for c in CSV_COLUMNS}


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return "" if math.isnan(v) else f"{v:.9g}"
    return str(v)


@dataclass(frozen=True, eq=False)
class RoiStatsTable:
    """The rows of :func:`roi_stats`, one per (ROI, parameter).

    Examples
    --------
    >>> from dwi_toolkit.core.image import ParameterMap
    >>> from dwi_toolkit.roi.model import RootROI, Sphere
    >>> table = roi_stats(ParameterMap(np.full((10, 10, 10), 1.2e-3), np.eye(4), "adc", "mm^2/s"),
    ...                   [RootROI("L5", "left", shape=Sphere([3, 5, 5], 2.0)), RootROI("L5", "right", shape=Sphere([7, 5, 5], 2.0))])
    >>> len(table), table.get("L5", "right").n_voxels
    (2, 33)
    >>> sorted(table.to_records()[0])[:3]
    ['iqr', 'level', 'mean']
    """

    rows: list[RoiStats]

    def __iter__(self) -> Iterator[RoiStats]:
        return iter(self.rows)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> RoiStats:
        return self.rows[i]

    def get(self, level: str, side: str, segment: str | None = None,
            parameter: str | None = None) -> RoiStats | None:
        """The row for (level, side[, segment][, parameter]), or ``None``.

        Raises
        ------
        RoiError
            If several rows match (give segment/parameter).
        """
        lv, sd = normalize_level(level), normalize_side(side)
        sg = normalize_segment(segment) if segment is not None else None
        found = [r for r in self.rows if r.level == lv and r.side == sd
                 and (sg is None or r.segment == sg) and (parameter is None or r.parameter == parameter)]
        if len(found) > 1:
            raise RoiError(
                f"{len(found)} rows match {lv} {sd}; pass segment= and/or parameter= "
                f"({', '.join(f'{r.segment}/{r.parameter}' for r in found)})."
            )
        return found[0] if found else None

    def to_records(self) -> list[dict[str, Any]]:
        """Rows as dicts (columns :data:`CSV_COLUMNS`; ``values`` left out)."""
        return [r.to_record() for r in self.rows]

    def to_csv_text(self) -> str:
        """CSV text (header + one line per row); floats with 9 significant digits, NaN empty."""
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(CSV_COLUMNS)
        for rec in self.to_records():
            w.writerow([_fmt(rec[c]) for c in CSV_COLUMNS])
        return buf.getvalue()

    def to_csv(self, path: str | os.PathLike):
        """Write the table as CSV, atomically; same as :meth:`save`."""
        return self.save(path)

    def save(self, path: str | os.PathLike):
        """Write the table as CSV, atomically (see :func:`dwi_toolkit.io.tables.write_csv`)."""
        from ..core.writers import get_writer  # io sits above analysis: registered, not imported

        return get_writer("csv")(path, self.to_records(), columns=CSV_COLUMNS)

    def to_dataframe(self):
        """The table as a :class:`pandas.DataFrame` (needs pandas: ``pip install pandas``)."""
        try:
            import pandas as pd
        except ImportError as err:
            raise ImportError(
                "RoiStatsTable.to_dataframe() needs pandas; install it with `pip install pandas` "
                "(or use to_records())."
            ) from err
        return pd.DataFrame.from_records(self.to_records(), columns=list(CSV_COLUMNS))

    def __str__(self) -> str:
        """Aligned table in display units (ADC ×10⁻³ mm²/s, 2 decimals; volume 0.1 mm³)."""
        lines = [("ROI", "parameter", "n", "excluded", "volume (mm³)", "mean", "median", "SD", "unit")]
        for r in self.rows:
            scale, unit, nd = ((DISPLAY_SCALE, "×10⁻³ mm²/s", 2) if r.unit == DIFFUSIVITY_UNIT
                               else (1.0, r.unit, 3))
            lines.append((r.name, r.parameter, str(r.n_voxels), str(r.n_excluded), f"{r.volume_mm3:.1f}",
                          *("–" if math.isnan(v) else f"{v * scale:.{nd}f}" for v in (r.mean, r.median, r.sd)),
                          unit))
        widths = [max(len(row[j]) for row in lines) for j in range(len(lines[0]))]
        return "\n".join("  ".join(c.ljust(w) if j in (0, 1, 8) else c.rjust(w)
                                    for j, (c, w) in enumerate(zip(row, widths))).rstrip() for row in lines)

    def __repr__(self) -> str:
        return f"RoiStatsTable({len(self)} rows: {', '.join(r.name for r in self.rows)})"

    def _repr_html_(self) -> str:
        import html

        head = ("<tr><th>ROI</th><th>parameter</th><th>n</th><th>excluded</th><th>volume (mm³)</th>"
                "<th>mean</th><th>median</th><th>SD</th><th>IQR</th><th>unit</th></tr>")
        body = []
        for r in self.rows:
            scale, unit = (DISPLAY_SCALE, DISPLAY_UNIT) if r.unit == DIFFUSIVITY_UNIT else (1.0, r.unit)
            cells = [r.name, r.parameter, r.n_voxels, r.n_excluded, f"{r.volume_mm3:.1f}"]
            cells += [f"{v * scale:.3f}" if not math.isnan(v) else "–" for v in (r.mean, r.median, r.sd, r.iqr)]
            cells.append(unit)
            body.append("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in cells) + "</tr>")
        return f"<table><caption>ROI statistics</caption>{head}{''.join(body)}</table>"


def _resolve_map(map_: Any, parameter: str | None) -> tuple[NDArray, NDArray, str, str, NDArray | None]:
    """→ (data (X,Y,Z), affine, parameter name, unit, status or None)."""
    # ADCFit (duck-typed: models sits beside roi; analysis may use it but we avoid the import)
    if hasattr(map_, "adc") and hasattr(map_, "status") and hasattr(map_, "affine"):
        name = parameter or "adc"
        if not hasattr(map_, name):
            raise InputDataError(f"the fit has no parameter {name!r}; use e.g. 'adc' or 's0'.")
        data = np.asarray(getattr(map_, name))
        unit = DIFFUSIVITY_UNIT if name == "adc" else ""
        if hasattr(map_, "map"):
            try:
                unit = map_.map(name).unit
            except Exception:  # noqa: BLE001 - unit lookup is cosmetic
                pass
        return data, np.asarray(map_.affine, float), name, unit, np.asarray(map_.status)
    if isinstance(map_, ParameterMap):
        return np.asarray(map_.data), map_.affine, parameter or map_.name, map_.unit, None
    if hasattr(map_, "get_fdata") and hasattr(map_, "affine"):  # nibabel image
        data = np.asanyarray(map_.dataobj)
        if data.ndim == 4 and data.shape[3] == 1:
            data = data[..., 0]
        return np.asarray(data, dtype=float), np.asarray(map_.affine, float), parameter or "value", "", None
    if isinstance(map_, tuple) and len(map_) == 2:
        data, affine = map_
        return np.asarray(data), np.asarray(affine, float), parameter or "value", "", None
    raise InputDataError(
        f"roi_stats needs an ADCFit, a ParameterMap, a nibabel image or (array, affine); got "
        f"{type(map_).__name__}."
    )


def roi_stats(
    map_: Any,
    rois: RoiSet | Iterable[RootROI] | RootROI,
    *,
    exclude_status: bool = True,
    csf_threshold: float | None = None,
    parameter: str | None = None,
    unit: str | None = None,
) -> RoiStatsTable:
    """Statistics of a parameter map inside each nerve-root ROI.

    Parameters
    ----------
    map_ : ADCFit, ParameterMap, nibabel image or (ndarray (X, Y, Z), affine (4, 4))
        The values and their voxel → RAS+ mm affine. For an ``ADCFit`` the ``adc`` array
        (mm²/s) is used unless `parameter` names another (``"s0"``, ``"rsquared"``), and voxels
        with ``status != 0`` are excluded.
    rois : RoiSet, iterable of RootROI, or one RootROI
        Shapes in RAS+ mm, rasterised on the map's grid (voxel centres inside).
    exclude_status : bool, optional
        Exclude failed-fit voxels (status ≠ 0). NaN values are always excluded.
    csf_threshold : float, optional
        Exclude voxels with a value above this, in the map's unit (for ADC mm²/s, e.g.
        ``2.5e-3``), as likely CSF contamination; the count is reported in ``n_excluded_csf``.
    parameter : str, optional
        Parameter name for the rows (default: ``"adc"`` for a fit, the map's name, ``"value"``).
    unit : str, optional
        Unit for the rows when the input does not carry one.

    Returns
    -------
    RoiStatsTable
        One :class:`RoiStats` row per ROI, in the order of `rois`.

    Raises
    ------
    RoiError
        If an ROI lies outside the map or covers no voxel centre.
    InputDataError
        If the map is not 3-D or of an unsupported type.

    Examples
    --------
    >>> from dwi_toolkit.roi.model import Sphere
    >>> adc = np.full((20, 20, 10), 1.2e-3)
    >>> roi = RootROI("L5", "left", shape=Sphere([5, 5, 5], 2))
    >>> row = roi_stats((adc, np.eye(4)), [roi], parameter="adc", unit="mm^2/s")[0]
    >>> row.n_voxels, round(row.mean * 1e3, 3), row.volume_mm3
    (33, 1.2, 33.0)
    """
    data, affine, pname, punit, status = _resolve_map(map_, parameter)
    if unit is not None:
        punit = unit
    if data.ndim != 3:
        raise InputDataError(f"roi_stats needs a 3-D map (X, Y, Z), got shape {data.shape}.")
    affine = _aff.check_affine(affine)
    if status is not None and status.shape != data.shape:
        raise InputDataError(f"fit status shape {status.shape} differs from the map shape {data.shape}.")
    if isinstance(rois, RootROI):
        rois = [rois]
    voxel_volume = float(abs(np.linalg.det(affine[:3, :3])))
    voxel_size = tuple(float(x) for x in np.linalg.norm(affine[:3, :3], axis=0))
    rows = []
    for roi in rois:
        mask = roi_mask(roi, data.shape, affine)
        vals = data[mask].astype(float)
        bad = ~np.isfinite(vals)
        outside = np.zeros_like(bad)
        if exclude_status and status is not None:
            outside = status[mask] == 1  # every model's "outside mask" code: never fitted
            bad |= status[mask] != 0
        n_out = int(outside.sum())
        n_fit = int(bad.sum()) - n_out
        csf = np.zeros_like(bad)
        if csf_threshold is not None:
            csf = ~bad & (vals > float(csf_threshold))
        keep = ~bad & ~csf
        kept = vals[keep]
        kept.setflags(write=False)
        if kept.size == 0:
            logger.warning("ROI %s, %s: no usable voxel (%d outside the analysis mask, %d failed fit, "
                           "%d above the CSF threshold)", roi.name, pname, n_out, n_fit, int(csf.sum()))
        rows.append(RoiStats(
            level=roi.level, side=roi.side, segment=roi.segment, parameter=pname, unit=punit,
            n_voxels=int(kept.size), n_excluded=int(n_out + n_fit + csf.sum()), n_excluded_fit=n_fit,
            n_excluded_mask=n_out,
            n_excluded_csf=int(csf.sum()), volume_mm3=round(kept.size * voxel_volume, 6),
            **summarize_values(kept), values=kept, coords=np.argwhere(mask)[keep],
            voxel_size_mm=voxel_size,
        ))
    return RoiStatsTable(rows)

