"""Side-to-side comparison of nerve-root ROI values, level by level.

For each level × segment × parameter the symptomatic-side value ``Xs`` is set against the value on
the reference side ``Xc`` (the contralateral root at the same level and segment,
dwi_toolkit References §2.4 consequence 1) and summarised with the four indices of
dwi_toolkit References §2.8, named exactly as there:

- ``ratio_pct`` = ``100 · Xs / Xc`` (%)
- ``rel_diff_pct`` = ``100 · (Xs − Xc) / Xc`` (%)
- ``asymmetry_index_pct`` = ``100 · (Xs − Xc) / ((Xs + Xc) / 2)`` (%)
- ``abs_asymmetry_index_pct`` = ``100 · abs(Xs − Xc) / ((Xs + Xc) / 2)`` (%)

``Xs`` and ``Xc`` are ROI means in the parameter's own unit (ADC: mm²/s). The uncertainty of the
difference ``Xs − Xc`` (and of the signed indices) is a percentile bootstrap over voxels: the
voxel values of each side are resampled with replacement, independently, ``n_boot`` times.
Voxels are spatially correlated, so this interval is optimistic; it reflects sampling noise within
the ROI, not scan–rescan or reader variability (dwi_toolkit References §2.7).

When the symptomatic side is unknown (``None``) or both sides are symptomatic (``"bilateral"``),
the signed indices are undefined; each row then carries ``abs_asymmetry_index_pct`` computed from
the left and right values, and the difference is reported as ``left − right``.

Nothing here says what is abnormal: no normative limits of side-to-side variation exist
(dwi_toolkit References §2.8, §4). Interpretation lives in
:mod:`dwi_toolkit.clinical.entrapment`.
"""

from __future__ import annotations

import dataclasses
import html
import logging
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import InputDataError

__all__ = [
    "INDEX_NAMES",
    "INDEX_FORMULAS",
    "SideComparisonRow",
    "SideComparison",
    "compare_sides",
    "side_indices",
]

logger = logging.getLogger(__name__)

#: Index names of dwi_toolkit References §2.8, in report order.
INDEX_NAMES = ("ratio_pct", "rel_diff_pct", "asymmetry_index_pct", "abs_asymmetry_index_pct")
#: Formula of each index as printed in reports (dwi_toolkit References §2.8).
INDEX_FORMULAS = {
    "ratio_pct": "100 · Xs / Xc",
    "rel_diff_pct": "100 · (Xs − Xc) / Xc",
    "asymmetry_index_pct": "100 · (Xs − Xc) / ((Xs + Xc)/2)",
    "abs_asymmetry_index_pct": "100 · |Xs − Xc| / ((Xs + Xc)/2)",
}
#: Level order used for sorting (cranial to caudal); unknown levels sort after, alphabetically.
LEVEL_ORDER = ("L1", "L2", "L3", "L4", "L5", "S1")
SEGMENT_ORDER = ("preganglionic", "ganglion", "postganglionic")
_SIDES = ("left", "right")
#: Default minimum voxel count per side [D]; ROI size norms do not exist (dwi_toolkit References §2.6).
DEFAULT_MIN_VOXELS = 5
#: Default coefficient of variation (sd/abs(mean)) above which an ROI is flagged noisy [D].
DEFAULT_MAX_CV = 0.5
#: Seed used when ``rng`` is None, so that the same inputs always give the same report.
DEFAULT_SEED = 0


def side_indices(xs: Any, xc: Any) -> dict[str, Any]:
    """The four side-to-side indices of dwi_toolkit References §2.8.

    Parameters
    ----------
    xs, xc : float or ndarray
        Value on the symptomatic side and on the reference (contralateral) side, same unit and
        shape (for ADC: mm²/s).

    Returns
    -------
    dict
        ``ratio_pct``, ``rel_diff_pct``, ``asymmetry_index_pct``, ``abs_asymmetry_index_pct``, all
        in %, NaN where a denominator is zero or an input is not finite.

    Examples
    --------
    The worked example of dwi_toolkit References §2.8 (ADC, Xs = 1.79, Xc = 1.50 × 10⁻³ mm²/s):

    >>> ix = side_indices(1.79e-3, 1.50e-3)
    >>> [round(float(ix[k]), 1) for k in INDEX_NAMES]
    [119.3, 19.3, 17.6, 17.6]
    """
    xs = np.asarray(xs, dtype=float)
    xc = np.asarray(xc, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(xc != 0, 100.0 * xs / xc, np.nan)
        rel = np.where(xc != 0, 100.0 * (xs - xc) / xc, np.nan)
        half_sum = (xs + xc) / 2.0
        ai = np.where(half_sum != 0, 100.0 * (xs - xc) / half_sum, np.nan)
    out = {
        "ratio_pct": ratio,
        "rel_diff_pct": rel,
        "asymmetry_index_pct": ai,
        "abs_asymmetry_index_pct": np.abs(ai),
    }
    if xs.ndim == 0 and xc.ndim == 0:
        out = {k: float(v) for k, v in out.items()}
    return out


@dataclass(frozen=True)
class SideComparisonRow:
    """Comparison of one level × segment × parameter.

    Values (``xs``, ``xc``, ``value_left``, ``value_right``, ``difference`` and their interval
    bounds) are ROI means in ``unit``; indices end in ``_pct`` and are in %; counts are voxels.
    ``xs``/``xc`` and the signed indices are NaN when no single symptomatic side is known.

    Attributes
    ----------
    flags : tuple of str
        ``"missing_side"`` (one side has no ROI or no finite value), ``"too_small"`` (fewer than
        ``min_voxels`` voxels on a side), ``"noisy"`` (coefficient of variation above ``max_cv``
        on a side), ``"no_voxel_values"`` (no voxel values to bootstrap; no interval).

    Examples
    --------
    >>> from dwi_toolkit.analysis.roi_stats import roi_stats
    >>> from dwi_toolkit.core.image import ParameterMap
    >>> from dwi_toolkit.roi.model import RootROI, Sphere
    >>> adc = np.full((20, 10, 10), 1.2e-3); adc[:10] = 1.5e-3      # voxels x < 10: patient's left
    >>> rois = [RootROI("L5", "left", shape=Sphere([5, 5, 5], 2.5)), RootROI("L5", "right", shape=Sphere([14, 5, 5], 2.5))]
    >>> row = compare_sides(roi_stats(ParameterMap(adc, np.eye(4), "adc", "mm^2/s"), rois), symptomatic_side="left", n_boot=100).get("L5")
    >>> round(row.rel_diff_pct, 1), round(row.ratio_pct, 1)      # %
    (25.0, 125.0)
    """

    level: str
    segment: str
    parameter: str
    unit: str
    symptomatic_side: str | None
    reference_side: str | None
    xs: float
    xc: float
    n_s: int
    n_c: int
    value_left: float
    value_right: float
    n_left: int
    n_right: int
    left_ci_low: float
    left_ci_high: float
    right_ci_low: float
    right_ci_high: float
    cv_left: float
    cv_right: float
    difference: float
    difference_ci_low: float
    difference_ci_high: float
    difference_convention: str
    ratio_pct: float
    rel_diff_pct: float
    asymmetry_index_pct: float
    abs_asymmetry_index_pct: float
    rel_diff_pct_ci_low: float
    rel_diff_pct_ci_high: float
    asymmetry_index_pct_ci_low: float
    asymmetry_index_pct_ci_high: float
    ci_level: float
    flags: tuple[str, ...] = ()

    @property
    def comparable(self) -> bool:
        """True when both sides are present with enough voxels (never raises)."""
        return not ({"missing_side", "too_small"} & set(self.flags))

    @property
    def ci_excludes_zero(self) -> bool | None:
        """Whether the bootstrap interval of the difference excludes 0; None without interval."""
        lo, hi = self.difference_ci_low, self.difference_ci_high
        if not (math.isfinite(lo) and math.isfinite(hi)):
            return None
        return lo > 0 or hi < 0

    def to_record(self) -> dict[str, Any]:
        """A flat dict (flags joined by ``;``) for JSON/CSV."""
        rec = dataclasses.asdict(self)
        rec["flags"] = ";".join(self.flags)
        return rec


#: Unit of every field of :class:`SideComparisonRow`; ``"{unit}"`` means the row's ``unit``.
FIELD_UNITS: dict[str, str | None] = {
    "level": None, "segment": None, "parameter": None, "unit": None,
    "symptomatic_side": None, "reference_side": None,
    "xs": "{unit}", "xc": "{unit}", "n_s": "voxels", "n_c": "voxels",
    "value_left": "{unit}", "value_right": "{unit}", "n_left": "voxels", "n_right": "voxels",
    "left_ci_low": "{unit}", "left_ci_high": "{unit}", "right_ci_low": "{unit}",
    "right_ci_high": "{unit}", "cv_left": "1", "cv_right": "1",
    "difference": "{unit}", "difference_ci_low": "{unit}", "difference_ci_high": "{unit}",
    "difference_convention": None,
    "ratio_pct": "%", "rel_diff_pct": "%", "asymmetry_index_pct": "%",
    "abs_asymmetry_index_pct": "%", "rel_diff_pct_ci_low": "%", "rel_diff_pct_ci_high": "%",
    "asymmetry_index_pct_ci_low": "%", "asymmetry_index_pct_ci_high": "%",
    "ci_level": "1", "flags": None,
}


@dataclass(frozen=True)
class SideComparison:
    """Result of :func:`compare_sides`: one :class:`SideComparisonRow` per level × segment × parameter.

    Attributes
    ----------
    rows : tuple of SideComparisonRow
        Sorted by level (L1 → S1), segment (pre → post), parameter.
    symptomatic_side : {"left", "right"} or None
        None when unknown or bilateral (then only absolute asymmetry is reported).
    settings : dict
        ``n_boot``, ``ci``, ``min_voxels``, ``max_cv``, ``seed`` as used.
    notes : tuple of str
        Plain-language notes (e.g. why signed indices are absent).

    Examples
    --------
    >>> from dwi_toolkit.analysis.roi_stats import roi_stats
    >>> from dwi_toolkit.core.image import ParameterMap
    >>> from dwi_toolkit.roi.model import RootROI, Sphere
    >>> adc = np.full((20, 10, 10), 1.2e-3); adc[:10] = 1.5e-3
    >>> rois = [RootROI("L5", "left", shape=Sphere([5, 5, 5], 2.5)), RootROI("L5", "right", shape=Sphere([14, 5, 5], 2.5))]
    >>> cmp = compare_sides(roi_stats(ParameterMap(adc, np.eye(4), "adc", "mm^2/s"), rois), symptomatic_side="left", n_boot=100)
    >>> cmp
    SideComparison(symptomatic_side='left', rows=1, levels=['L5'], parameters=['adc'])
    >>> round(cmp.get("L5").asymmetry_index_pct, 1)
    22.2
    """

    rows: tuple[SideComparisonRow, ...]
    symptomatic_side: str | None
    settings: dict[str, Any] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    convention = (
        "Xs = ROI mean on the symptomatic side, Xc = ROI mean on the contralateral side at the same "
        "level and segment; ratio_pct = 100·Xs/Xc, rel_diff_pct = 100·(Xs−Xc)/Xc, "
        "asymmetry_index_pct = 100·(Xs−Xc)/((Xs+Xc)/2), abs_asymmetry_index_pct = its absolute "
        "value (dwi_toolkit References §2.8)."
    )

    def __iter__(self):
        return iter(self.rows)

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def levels(self) -> list[str]:
        """Levels present, cranial to caudal."""
        return _sorted_unique(r.level for r in self.rows)

    @property
    def parameters(self) -> list[str]:
        """Parameters present."""
        return sorted({r.parameter for r in self.rows})

    def get(self, level: str, *, segment: str | None = None, parameter: str = "adc") -> SideComparisonRow:
        """The row for `level` (and `segment` when several are present).

        Raises
        ------
        KeyError
            If no such row exists (or several match and `segment` was not given).
        """
        hits = [
            r for r in self.rows
            if r.level == level and r.parameter == parameter and (segment is None or r.segment == segment)
        ]
        if len(hits) != 1:
            raise KeyError(
                f"{len(hits)} comparison rows match level={level!r}, segment={segment!r}, "
                f"parameter={parameter!r}; levels present: {self.levels}"
            )
        return hits[0]

    def to_records(self) -> list[dict[str, Any]]:
        """Rows as flat dicts (see :data:`FIELD_UNITS` for units)."""
        return [r.to_record() for r in self.rows]

    def to_dataframe(self):
        """Rows as a :class:`pandas.DataFrame` (needs the optional ``pandas`` extra).

        Raises
        ------
        ImportError
            If pandas is not installed (``pip install dwi_toolkit[pandas]``).
        """
        try:
            import pandas as pd
        except ImportError as err:
            raise ImportError("SideComparison.to_dataframe needs pandas: pip install dwi_toolkit[pandas]; "
                              "to_records() gives the same rows as dicts.") from err
        return pd.DataFrame.from_records(self.to_records())

    def __repr__(self) -> str:
        return (
            f"SideComparison(symptomatic_side={self.symptomatic_side!r}, rows={len(self.rows)}, "
            f"levels={self.levels}, parameters={self.parameters})"
        )

    def _repr_html_(self) -> str:
        head = ["level", "segment", "parameter", "Xs", "Xc", "n (s/c)", "difference [CI]",
                "ratio %", "rel. diff %", "AI %", "|AI| %", "flags"]
        if self.symptomatic_side is None:
            head[3:5] = ["left", "right"]
            head[5] = "n (L/R)"
        body = []
        for r in self.rows:
            s, c = (r.xs, r.xc) if self.symptomatic_side else (r.value_left, r.value_right)
            ns, nc = (r.n_s, r.n_c) if self.symptomatic_side else (r.n_left, r.n_right)
            cells = [r.level, r.segment, r.parameter, _fmt_val(s, r.unit), _fmt_val(c, r.unit),
                     f"{ns}/{nc}",
                     f"{_fmt_val(r.difference, r.unit)} [{_fmt_val(r.difference_ci_low, r.unit)}, "
                     f"{_fmt_val(r.difference_ci_high, r.unit)}]",
                     _fmt_num(r.ratio_pct), _fmt_num(r.rel_diff_pct), _fmt_num(r.asymmetry_index_pct),
                     _fmt_num(r.abs_asymmetry_index_pct), ", ".join(r.flags)]
            body.append("<tr>" + "".join(f"<td>{html.escape(str(x))}</td>" for x in cells) + "</tr>")
        side = self.symptomatic_side or "unknown"
        cap = (f"Side comparison (symptomatic side: {side}; {self.settings.get('ci', 0.95):.0%} "
               "bootstrap CI; ADC shown ×10⁻³ mm²/s)")
        return (
            f"<table><caption>{html.escape(cap)}</caption><tr>"
            + "".join(f"<th>{html.escape(h)}</th>" for h in head)
            + "</tr>" + "".join(body) + "</table>"
            + f"<p style='font-size:smaller'>{html.escape(self.convention)}</p>"
        )


# --------------------------------------------------------------------------- helpers
def _fmt_num(x: float, digits: int = 1) -> str:
    return "–" if x is None or not math.isfinite(x) else f"{x:.{digits}f}"


def _fmt_val(x: float, unit: str) -> str:
    if x is None or not math.isfinite(x):
        return "–"
    if unit in ("mm^2/s", "mm²/s"):
        return f"{x * 1e3:.3f}"
    return f"{x:.4g}"


def _level_key(level: str) -> tuple[int, str]:
    return (LEVEL_ORDER.index(level), "") if level in LEVEL_ORDER else (len(LEVEL_ORDER), level)


def _segment_key(seg: str) -> tuple[int, str]:
    return (SEGMENT_ORDER.index(seg), "") if seg in SEGMENT_ORDER else (len(SEGMENT_ORDER), str(seg))


def _sorted_unique(levels: Iterable[str]) -> list[str]:
    return sorted(set(levels), key=_level_key)


def _as_generator(rng: Any) -> tuple[np.random.Generator, Any]:
    if rng is None:
        return np.random.default_rng(DEFAULT_SEED), DEFAULT_SEED
    if isinstance(rng, np.random.Generator):
        return rng, "generator"
    try:
        return np.random.default_rng(rng), rng
    except (TypeError, ValueError) as err:
        raise InputDataError(f"rng must be None, a seed or a numpy Generator, got {rng!r}.") from err


def _finite_values(row: Any) -> np.ndarray | None:
    vals = getattr(row, "values", None)
    if vals is None:
        return None
    v = np.asarray(vals, dtype=float).reshape(-1)
    return v[np.isfinite(v)]


def _boot_means(values: np.ndarray, n_boot: int, rng: np.random.Generator,
                max_elements: int = 4_000_000) -> np.ndarray:
    """Means of `n_boot` resamples (with replacement) of `values`, vectorised in chunks."""
    n = values.size
    out = np.empty(n_boot)
    chunk = max(1, max_elements // max(n, 1))
    for start in range(0, n_boot, chunk):
        stop = min(n_boot, start + chunk)
        idx = rng.integers(0, n, size=(stop - start, n))
        out[start:stop] = values[idx].mean(axis=1)
    return out


def _quantiles(x: np.ndarray, ci: float) -> tuple[float, float]:
    x = x[np.isfinite(x)]
    if x.size == 0:
        return (math.nan, math.nan)
    a = (1.0 - ci) / 2.0
    lo, hi = np.quantile(x, [a, 1.0 - a])
    return float(lo), float(hi)


def _cv(row: Any, values: np.ndarray | None) -> float:
    if values is not None and values.size >= 2:
        m = float(np.mean(values))
        sd = float(np.std(values, ddof=1))
    else:
        m = float(getattr(row, "mean", math.nan) or math.nan)
        sd = float(getattr(row, "sd", math.nan) or math.nan)
    return abs(sd / m) if m != 0 and math.isfinite(m) and math.isfinite(sd) else math.nan


def _row_mean(row: Any, values: np.ndarray | None) -> float:
    m = getattr(row, "mean", None)
    if m is not None and math.isfinite(float(m)):
        return float(m)
    if values is not None and values.size:
        return float(np.mean(values))
    return math.nan


def _n_voxels(row: Any, values: np.ndarray | None) -> int:
    n = getattr(row, "n_voxels", None)
    if n is not None:
        return int(n)
    return 0 if values is None else int(values.size)


# --------------------------------------------------------------------------- main function
def compare_sides(
    stats: Any,
    *,
    symptomatic_side: str | None = None,
    parameters: Sequence[str] | None = None,
    n_boot: int = 2000,
    ci: float = 0.95,
    min_voxels: int = DEFAULT_MIN_VOXELS,
    max_cv: float = DEFAULT_MAX_CV,
    rng: Any = None,
) -> SideComparison:
    """Compare each nerve root on the symptomatic side with its contralateral twin.

    Parameters
    ----------
    stats : RoiStatsTable or any object with ``.rows``
        ROI statistics (:func:`dwi_toolkit.analysis.roi_stats.roi_stats`). Each row needs
        ``level``, ``side`` (``"left"``/``"right"``, the patient's side), ``segment``,
        ``parameter``, ``unit``, ``n_voxels``, ``mean`` and ``values`` (1-D voxel values used for
        the bootstrap; may be None, then no interval is given). Rows on other sides are ignored.
    symptomatic_side : {"left", "right", None, "bilateral"}, optional
        The patient's symptomatic side. None (unknown) or ``"bilateral"``: only absolute asymmetry
        (``abs_asymmetry_index_pct``) and the ``left − right`` difference are reported.
    parameters : sequence of str, optional
        Parameters to compare (e.g. ``["adc", "fa"]``); default all present in `stats`.
    n_boot : int, optional
        Bootstrap resamples (default 2000; ≥ 100).
    ci : float, optional
        Two-sided confidence level of the percentile bootstrap interval, in (0, 1) (default 0.95).
    min_voxels : int, optional
        Rows with fewer voxels than this on either side are flagged ``too_small`` (default 5, a
        design choice [D]: no ROI-size norms exist, dwi_toolkit References §2.6).
    max_cv : float, optional
        Sides whose coefficient of variation (sd/abs(mean)) exceeds this are flagged ``noisy``
        (default 0.5 [D]).
    rng : numpy.random.Generator, int or None, optional
        Random source of the bootstrap. None uses seed 0, so the same inputs give the same
        intervals (reports are reproducible).

    Returns
    -------
    SideComparison

    Raises
    ------
    InputDataError
        Invalid options, `stats` without ``.rows``, or two rows for the same
        level/side/segment/parameter.

    Notes
    -----
    Indices: dwi_toolkit References §2.8. Only homologous positions are compared (same level
    and segment, §2.4). The bootstrap resamples voxels independently on each side; because
    neighbouring voxels are correlated the interval is narrower than a scan–rescan interval.

    Examples
    --------
    >>> from types import SimpleNamespace as R
    >>> import numpy as np
    >>> rows = [R(level="L5", side=s, segment="ganglion", parameter="adc", unit="mm^2/s",
    ...           n_voxels=20, mean=m, values=np.full(20, m)) for s, m in
    ...         [("left", 1.79e-3), ("right", 1.50e-3)]]
    >>> cmp = compare_sides(R(rows=rows), symptomatic_side="left", n_boot=200)
    >>> r = cmp.get("L5")
    >>> round(r.ratio_pct, 1), round(r.asymmetry_index_pct, 1), r.flags
    (119.3, 17.6, ())
    """
    if not hasattr(stats, "rows"):
        raise InputDataError(
            f"compare_sides needs an ROI statistics table with .rows (RoiStatsTable), got "
            f"{type(stats).__name__}; compute it with dwi_toolkit.analysis.roi_stats.roi_stats()."
        )
    side = symptomatic_side.lower().strip() if isinstance(symptomatic_side, str) else symptomatic_side
    notes: list[str] = []
    if side in ("bilateral", "unknown", "none", ""):
        if side == "bilateral":
            notes.append("Symptoms are bilateral: there is no contralateral reference side, so only "
                         "absolute asymmetry is reported (an adjacent-level reference, "
                         "dwi_toolkit References §2.6, is not computed here).")
        side = None
    if side not in (None, "left", "right"):
        raise InputDataError(
            f"symptomatic_side must be 'left', 'right', 'bilateral' or None, got {symptomatic_side!r}."
        )
    if side is None and not notes:
        notes.append("Symptomatic side unknown: signed indices are undefined; absolute asymmetry "
                     "(abs_asymmetry_index_pct) and the left − right difference are reported.")
    n_boot = int(n_boot)
    if n_boot < 100:
        raise InputDataError(f"n_boot must be at least 100 for a usable interval, got {n_boot}.")
    if not 0.0 < float(ci) < 1.0:
        raise InputDataError(f"ci must lie in (0, 1), e.g. 0.95; got {ci!r}.")
    if int(min_voxels) < 1:
        raise InputDataError(f"min_voxels must be >= 1, got {min_voxels!r}.")
    gen, seed = _as_generator(rng)
    wanted = None if parameters is None else {str(p) for p in parameters}

    table: dict[tuple[str, str, str], dict[str, Any]] = {}
    for row in stats.rows:
        rside = str(getattr(row, "side", "")).lower()
        if rside not in _SIDES:
            logger.debug("ignoring ROI row on side %r (not left/right)", rside)
            continue
        param = str(getattr(row, "parameter", "adc"))
        if wanted is not None and param not in wanted:
            continue
        seg = getattr(row, "segment", None) or "ganglion"
        key = (str(row.level), str(seg), param)
        slot = table.setdefault(key, {})
        if rside in slot:
            raise InputDataError(
                f"two ROI statistics rows for level {key[0]}, side {rside}, segment {key[1]}, "
                f"parameter {param}; merge or relabel the ROIs so each root position appears once."
            )
        slot[rside] = row
    if wanted is not None:
        missing = wanted - {k[2] for k in table}
        if missing:
            logger.warning("parameters %s not found in the ROI statistics", sorted(missing))

    out: list[SideComparisonRow] = []
    for key in sorted(table, key=lambda k: (_level_key(k[0]), _segment_key(k[1]), k[2])):
        out.append(_compare_one(key, table[key], side, n_boot, float(ci), int(min_voxels),
                                float(max_cv), gen))
    return SideComparison(
        rows=tuple(out),
        symptomatic_side=side,
        settings={"n_boot": n_boot, "ci": float(ci), "min_voxels": int(min_voxels),
                  "max_cv": float(max_cv), "seed": seed, "bootstrap": "percentile, voxels "
                  "resampled with replacement independently on each side"},
        notes=tuple(notes),
    )


def _compare_one(key, slot, side, n_boot, ci, min_voxels, max_cv, gen) -> SideComparisonRow:
    level, segment, param = key
    unit = ""
    per: dict[str, dict[str, Any]] = {}
    for s in _SIDES:
        row = slot.get(s)
        if row is None:
            per[s] = {"mean": math.nan, "n": 0, "values": None, "cv": math.nan, "boot": None}
            continue
        unit = unit or str(getattr(row, "unit", "") or "")
        vals = _finite_values(row)
        per[s] = {"mean": _row_mean(row, vals), "n": _n_voxels(row, vals), "values": vals,
                  "cv": _cv(row, vals), "boot": None}
    flags: list[str] = []
    if any(per[s]["n"] == 0 or not math.isfinite(per[s]["mean"]) for s in _SIDES):
        flags.append("missing_side")
    if any(0 < per[s]["n"] < min_voxels for s in _SIDES):
        flags.append("too_small")
    if any(math.isfinite(per[s]["cv"]) and per[s]["cv"] > max_cv for s in _SIDES):
        flags.append("noisy")
    have_vals = all(per[s]["values"] is not None and per[s]["values"].size > 0 for s in _SIDES)
    if "missing_side" not in flags and not have_vals:
        flags.append("no_voxel_values")
    if have_vals:
        for s in _SIDES:
            per[s]["boot"] = _boot_means(per[s]["values"], n_boot, gen)

    if side is None:
        a, b = "left", "right"
        convention = "left - right"
    else:
        a, b = side, ("right" if side == "left" else "left")
        convention = "symptomatic - contralateral"
    xa, xb = per[a]["mean"], per[b]["mean"]
    diff = xa - xb
    ix = side_indices(xa, xb)
    d_lo = d_hi = r_lo = r_hi = ai_lo = ai_hi = math.nan
    ci_side = {s: (math.nan, math.nan) for s in _SIDES}
    if have_vals and "missing_side" not in flags:
        ba, bb = per[a]["boot"], per[b]["boot"]
        d_lo, d_hi = _quantiles(ba - bb, ci)
        bix = side_indices(ba, bb)
        r_lo, r_hi = _quantiles(bix["rel_diff_pct"], ci)
        ai_lo, ai_hi = _quantiles(bix["asymmetry_index_pct"], ci)
        ci_side = {s: _quantiles(per[s]["boot"], ci) for s in _SIDES}
    signed = side is not None
    nan = math.nan
    return SideComparisonRow(
        level=level, segment=segment, parameter=param, unit=unit,
        symptomatic_side=side, reference_side=(b if signed else None),
        xs=xa if signed else nan, xc=xb if signed else nan,
        n_s=per[a]["n"] if signed else 0, n_c=per[b]["n"] if signed else 0,
        value_left=per["left"]["mean"], value_right=per["right"]["mean"],
        n_left=per["left"]["n"], n_right=per["right"]["n"],
        left_ci_low=ci_side["left"][0], left_ci_high=ci_side["left"][1],
        right_ci_low=ci_side["right"][0], right_ci_high=ci_side["right"][1],
        cv_left=per["left"]["cv"], cv_right=per["right"]["cv"],
        difference=diff, difference_ci_low=d_lo, difference_ci_high=d_hi,
        difference_convention=convention,
        ratio_pct=ix["ratio_pct"] if signed else nan,
        rel_diff_pct=ix["rel_diff_pct"] if signed else nan,
        asymmetry_index_pct=ix["asymmetry_index_pct"] if signed else nan,
        abs_asymmetry_index_pct=ix["abs_asymmetry_index_pct"],
        rel_diff_pct_ci_low=r_lo if signed else nan, rel_diff_pct_ci_high=r_hi if signed else nan,
        asymmetry_index_pct_ci_low=ai_lo if signed else nan,
        asymmetry_index_pct_ci_high=ai_hi if signed else nan,
        ci_level=ci, flags=tuple(flags),
    )
