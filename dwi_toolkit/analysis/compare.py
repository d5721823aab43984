"""Side-to-side comparison of nerve-root ROI values, level by level.

For each level × segment × parameter the symptomatic-side value ``Xs`` is set against the value on
the reference side ``Xc`` (the contralateral root at the same level and segment,
``dwi_toolkit References §2.4`` consequence 1) and summarised with the four indices of
``dwi_toolkit References §2.8``, named exactly as there:

- ``ratio_pct`` = ``100 · Xs / Xc`` (%)
- ``rel_diff_pct`` = ``100 · (Xs − Xc) / Xc`` (%)
- ``asymmetry_index_pct`` = ``100 · (Xs − Xc) / ((Xs + Xc) / 2)`` (%)
- ``abs_asymmetry_index_pct`` = ``100 · abs(Xs − Xc) / ((Xs + Xc) / 2)`` (%)

``Xs`` and ``Xc`` are ROI means in the parameter's own unit (ADC: mm²/s). Neighbouring DWI voxels
share noise (zero-filling, partial Fourier, filtering), so by default (``interval="effective-n"``)
the spatial noise correlation is estimated from the ROI voxels (centring-corrected moments,
Gaussian model, FWHM per voxel axis; :mod:`dwi_toolkit.analysis.spatial_noise`) and the intervals
are Welch t intervals with each ROI's effective number of independent voxels, their degrees of
freedom lowered for the estimate's own uncertainty (:mod:`dwi_toolkit.analysis.power`). The
independent-voxel percentile bootstrap stays available as ``interval="iid-bootstrap"``. Every row
also carries the smallest side difference detectable at 80 % power (two-sided α = 0.05). The
intervals reflect noise within one scan, not scan–rescan or reader variability
(``dwi_toolkit References §2.7``). ``reference="adjacent"`` compares a root with the adjacent
levels on the same side instead (§2.6).

When the symptomatic side is unknown (``None``) or both sides are symptomatic (``"bilateral"``),
the signed indices are undefined; each row then carries ``abs_asymmetry_index_pct`` computed from
the left and right values, and the difference is reported as ``left − right``.

Nothing here says what is abnormal: no normative limits of side-to-side variation exist
(``dwi_toolkit References §2.8``, §4). Interpretation lives in
:mod:`dwi_toolkit.clinical.entrapment`.
"""

from __future__ import annotations

import dataclasses
import html
import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import InputDataError
from .._options import with_settings
from .options import INTERVALS
from .power import DEFAULT_ALPHA, DEFAULT_POWER, MeanEstimate, _t_ppf, contrast, pooled_mean
from .spatial_noise import NoiseCorrelation, estimate_from_rois, roi_variance

__all__ = [
    "INDEX_NAMES",
    "INDEX_FORMULAS",
    "INTERVALS",
    "REFERENCES",
    "CompareOptions",
    "NoiseCorrelation",
    "SideComparisonRow",
    "SideComparison",
    "adjacent_levels",
    "compare_sides",
    "noise_from_option",
    "estimate_noise_models",
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
    """The four side-to-side indices of ``dwi_toolkit References §2.8``.

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
        on a side), ``"no_voxel_values"`` (no voxel values; no interval),
        ``"noise_correlation_unknown"`` (no voxel positions: voxels treated as independent).
    reference, reference_levels : str
        ``"contralateral"`` or ``"adjacent"`` (then e.g. ``"L4;S1"``).
    interval_method, noise_source : str
        How the interval was computed and where the noise correlation came from.
    noise_fwhm_i_mm, noise_fwhm_j_mm, noise_fwhm_k_mm : float
        Estimated noise FWHM along voxel axes i, j, k (mm).
    n_eff_s, n_eff_c, n_eff_left, n_eff_right : float
        Effective numbers of independent voxels.
    difference_se, difference_df, p_value : float
        Standard error (unit), Welch degrees of freedom and two-sided p-value of the difference.
    detectable_difference, detectable_pct : float
        Smallest difference detectable at 80 % power, two-sided α = 0.05 (unit; % of ``xc``).

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
    reference: str = "contralateral"
    reference_levels: str = ""
    interval_method: str = "iid-bootstrap"
    noise_source: str = "unknown"
    noise_fwhm_i_mm: float = math.nan
    noise_fwhm_j_mm: float = math.nan
    noise_fwhm_k_mm: float = math.nan
    n_eff_s: float = math.nan
    n_eff_c: float = math.nan
    n_eff_left: float = math.nan
    n_eff_right: float = math.nan
    difference_se: float = math.nan
    difference_df: float = math.nan
    p_value: float = math.nan
    detectable_difference: float = math.nan
    detectable_pct: float = math.nan

    @property
    def comparable(self) -> bool:
        """True when both sides are present with enough voxels (never raises)."""
        return not ({"missing_side", "too_small"} & set(self.flags))

    @property
    def ci_excludes_zero(self) -> bool | None:
        """Whether the interval of the difference excludes 0; None without interval."""
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
    "reference": None, "reference_levels": None, "interval_method": None, "noise_source": None,
    "noise_fwhm_i_mm": "mm", "noise_fwhm_j_mm": "mm", "noise_fwhm_k_mm": "mm",
    "n_eff_s": "voxels", "n_eff_c": "voxels", "n_eff_left": "voxels", "n_eff_right": "voxels",
    "difference_se": "{unit}", "difference_df": "1", "p_value": "1",
    "detectable_difference": "{unit}", "detectable_pct": "%",
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

    def get(self, level: str, *, segment: str | None = None, parameter: str = "adc",
            side: str | None = None) -> SideComparisonRow:
        """The row for `level` (and `segment`, or the root's `side` for adjacent-level rows).

        Raises
        ------
        KeyError
            If no such row exists (or several match and `segment`/`side` was not given).
        """
        hits = [
            r for r in self.rows
            if r.level == level and r.parameter == parameter and (segment is None or r.segment == segment)
            and (side is None or r.symptomatic_side == side)
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
        method = {"iid-bootstrap": "independent-voxel bootstrap"}.get(self.settings.get("interval"),
                                                                       "effective-n Welch t")
        cap = (f"Side comparison (symptomatic side: {side}; {self.settings.get('ci', 0.95):.0%} "
               f"{method} intervals; ADC shown ×10⁻³ mm²/s)")
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


def _coords(row: Any, n_values: int) -> np.ndarray | None:
    """Voxel indices (n, 3) of the row's finite values, or None when the row carries none."""
    c = getattr(row, "coords", None)
    vals = getattr(row, "values", None)
    if c is None or vals is None:
        return None
    c = np.asarray(c, dtype=float).reshape(-1, 3)
    v = np.asarray(vals, dtype=float).reshape(-1)
    if c.shape[0] != v.size:
        return None
    c = c[np.isfinite(v)]
    return c if c.shape[0] == n_values else None


# --------------------------------------------------------------------------- options and steps
#: Reference choices of :func:`compare_sides` (dwi_toolkit References §2.4, §2.6).
REFERENCES = ("contralateral", "adjacent")


@dataclass(frozen=True)
class CompareOptions:
    """Numerical settings of :func:`compare_sides` (each also accepted as a keyword there).

    Attributes
    ----------
    n_boot : int
        Bootstrap resamples for ``interval="iid-bootstrap"`` (≥ 100; default 2000).
    ci : float
        Two-sided confidence level in (0, 1) (default 0.95).
    min_voxels : int
        Fewer voxels on a side flags ``too_small`` (default 5 [D]).
    max_cv : float
        Coefficient of variation above which a side is flagged ``noisy`` (default 0.5 [D]).
    power, alpha : float
        Power and two-sided level of the smallest detectable difference (default 0.8, 0.05).

    Examples
    --------
    >>> CompareOptions(ci=0.9).ci
    0.9
    """

    n_boot: int = 2000
    ci: float = 0.95
    min_voxels: int = DEFAULT_MIN_VOXELS
    max_cv: float = DEFAULT_MAX_CV
    power: float = DEFAULT_POWER
    alpha: float = DEFAULT_ALPHA

    def __post_init__(self) -> None:
        if int(self.n_boot) < 100:
            raise InputDataError(f"n_boot must be at least 100 for a usable interval, got {self.n_boot}.")
        if not 0.0 < float(self.ci) < 1.0:
            raise InputDataError(f"ci must lie in (0, 1), e.g. 0.95; got {self.ci!r}.")
        if int(self.min_voxels) < 1:
            raise InputDataError(f"min_voxels must be >= 1, got {self.min_voxels!r}.")
        if not (0.0 < float(self.power) < 1.0 and 0.0 < float(self.alpha) < 1.0):
            raise InputDataError(f"power and alpha must lie in (0, 1), got {self.power!r}, {self.alpha!r}.")


@dataclass
class _Side:
    """One ROI (one level × side × segment × parameter) prepared for comparison."""

    mean: float = math.nan
    n: int = 0
    values: np.ndarray | None = None
    coords: np.ndarray | None = None
    cv: float = math.nan
    est: MeanEstimate | None = None
    n_eff: float = math.nan
    boot: np.ndarray | None = None
    unit: str = ""

    @property
    def present(self) -> bool:
        return self.n > 0 and math.isfinite(self.mean)

    @property
    def has_values(self) -> bool:
        return self.values is not None and self.values.size > 0


def _normalise_side(symptomatic_side: Any, reference: str) -> tuple[str | None, list[str]]:
    side = symptomatic_side.lower().strip() if isinstance(symptomatic_side, str) else symptomatic_side
    notes: list[str] = []
    if side in ("bilateral", "unknown", "none", ""):
        if side == "bilateral" and reference == "contralateral":
            notes.append("Symptoms are bilateral: there is no contralateral reference side, so only "
                         "absolute asymmetry is reported; reference='adjacent' compares each root "
                         "with the adjacent levels on the same side (dwi_toolkit References §2.6).")
        side = None
    if side not in (None, "left", "right"):
        raise InputDataError(
            f"symptomatic_side must be 'left', 'right', 'bilateral' or None, got {symptomatic_side!r}."
        )
    if side is None and not notes and reference == "contralateral":
        notes.append("Symptomatic side unknown: signed indices are undefined; absolute asymmetry "
                     "(abs_asymmetry_index_pct) and the left − right difference are reported.")
    return side, notes


def _collect(stats: Any, wanted: set[str] | None) -> dict[tuple[str, str, str], dict[str, _Side]]:
    """ROI rows keyed by (level, segment, parameter) → side → prepared :class:`_Side`."""
    table: dict[tuple[str, str, str], dict[str, _Side]] = {}
    for row in stats.rows:
        rside = str(getattr(row, "side", "")).lower()
        if rside not in _SIDES:
            logger.debug("ignoring ROI row on side %r (not left/right)", rside)
            continue
        param = str(getattr(row, "parameter", "adc"))
        if wanted is not None and param not in wanted:
            continue
        key = (str(row.level), str(getattr(row, "segment", None) or "ganglion"), param)
        slot = table.setdefault(key, {})
        if rside in slot:
            raise InputDataError(
                f"two ROI statistics rows for level {key[0]}, side {rside}, segment {key[1]}, "
                f"parameter {param}; merge or relabel the ROIs so each root position appears once."
            )
        vals = _finite_values(row)
        slot[rside] = _Side(mean=_row_mean(row, vals), n=_n_voxels(row, vals), values=vals,
                            coords=None if vals is None else _coords(row, vals.size),
                            cv=_cv(row, vals), unit=str(getattr(row, "unit", "") or ""))
    if wanted is not None and wanted - {k[2] for k in table}:
        logger.warning("parameters %s not found in the ROI statistics", sorted(wanted - {k[2] for k in table}))
    return table


def _voxel_size(stats: Any, param: str) -> tuple[float, float, float]:
    for row in stats.rows:
        vs = getattr(row, "voxel_size_mm", None)
        if vs is not None and str(getattr(row, "parameter", "adc")) == param:
            return tuple(float(x) for x in vs)  # type: ignore[return-value]
    return (math.nan, math.nan, math.nan)


def _noise_models(stats: Any, table: dict, noise: Any) -> dict[str, NoiseCorrelation]:
    """One noise-correlation model per parameter: given, or estimated from the ROIs."""
    out: dict[str, NoiseCorrelation] = {}
    for param in sorted({k[2] for k in table}):
        if isinstance(noise, Mapping):
            given = noise.get(param)
        else:
            given = noise
        if given is not None and not isinstance(given, NoiseCorrelation):
            raise InputDataError(
                f"noise must be None, a NoiseCorrelation or a dict parameter → NoiseCorrelation, got "
                f"{type(given).__name__}; build one with NoiseCorrelation.from_fwhm() or "
                "dwi_toolkit.analysis.spatial_noise.estimate_fwhm()."
            )
        if given is None:
            pairs = [(sd.values, sd.coords) for k, slot in table.items() if k[2] == param
                     for sd in slot.values() if sd.has_values and sd.coords is not None]
            given = estimate_from_rois(pairs, _voxel_size(stats, param))
        out[param] = given
    return out


def estimate_noise_models(stats: Any) -> dict[str, NoiseCorrelation]:
    """Parameter → the noise-correlation model :func:`compare_sides` estimates from the ROI voxels
    when given ``noise=None``; pass it as ``noise`` to compare one table several times (e.g.
    with the contralateral and the adjacent reference) without estimating it again.

    Examples
    --------
    >>> import numpy as np
    >>> from dwi_toolkit.core.image import ParameterMap
    >>> from dwi_toolkit.analysis.roi_stats import roi_stats
    >>> from dwi_toolkit.roi.model import RootROI, RoiSet, Sphere
    >>> rois = RoiSet([RootROI("L5", s, shape=Sphere([x, 10, 5], 3)) for s, x in (("left", 13), ("right", 6))])
    >>> st = roi_stats(ParameterMap(np.full((20, 20, 10), 1.2e-3), np.eye(4), "adc", "mm^2/s"), rois)
    >>> sorted(estimate_noise_models(st))
    ['adc']
    """
    return _noise_models(stats, _collect(stats, None), None)


def _prepare(sd: _Side, noise: NoiseCorrelation, interval: str, opts: CompareOptions,
             gen: np.random.Generator) -> None:
    """Standard error, effective voxel count and (for the bootstrap) resampled means of one ROI."""
    if not sd.has_values or sd.est is not None:
        return
    model = noise if interval == "effective-n" else NoiseCorrelation.independent()
    rv = roi_variance(sd.values, sd.coords, model)
    sd.est = MeanEstimate(rv.mean, rv.se, rv.df, rv.var_grad, rv.fwhm_var)
    sd.n_eff = rv.n_eff
    if interval == "iid-bootstrap":
        sd.boot = _boot_means(sd.values, opts.n_boot, gen)


def _side_interval(sd: _Side, interval: str, ci: float) -> tuple[float, float]:
    if interval == "iid-bootstrap":
        return _quantiles(sd.boot, ci) if sd.boot is not None else (math.nan, math.nan)
    if sd.est is None or not (sd.est.df > 0 and math.isfinite(sd.est.se)):
        return (math.nan, math.nan)
    t = _t_ppf(0.5 + ci / 2, sd.est.df_total)
    return sd.est.mean - t * sd.est.se, sd.est.mean + t * sd.est.se


def _pair_flags(a: _Side, refs: list[_Side], opts: CompareOptions, interval: str,
                noise: NoiseCorrelation) -> list[str]:
    every = [a, *refs]
    flags: list[str] = []
    if not refs or not all(x.present for x in every):
        flags.append("missing_side")
    if any(0 < x.n < opts.min_voxels for x in every):
        flags.append("too_small")
    if any(math.isfinite(x.cv) and x.cv > opts.max_cv for x in every):
        flags.append("noisy")
    have_vals = bool(refs) and all(x.has_values for x in every)
    if "missing_side" not in flags and not have_vals:
        flags.append("no_voxel_values")
    if have_vals and interval == "effective-n" and not noise.known:
        flags.append("noise_correlation_unknown")
    return flags


def _difference_intervals(a: _Side, refs: list[_Side], interval: str, c: Any,
                          ci: float) -> tuple[float, float, float, float, float, float]:
    """(difference, rel_diff_pct, asymmetry_index_pct) interval bounds."""
    if interval == "iid-bootstrap":
        ba = a.boot
        bb = np.mean([r.boot for r in refs], axis=0)
        bix = side_indices(ba, bb)
        return (*_quantiles(ba - bb, ci), *_quantiles(bix["rel_diff_pct"], ci),
                *_quantiles(bix["asymmetry_index_pct"], ci))
    r_lo, r_hi = c.ratio_low, c.ratio_high
    return (c.low, c.high, 100.0 * (r_lo - 1.0), 100.0 * (r_hi - 1.0),
            200.0 * (r_lo - 1.0) / (r_lo + 1.0), 200.0 * (r_hi - 1.0) / (r_hi + 1.0))


def _pair_row(key: tuple[str, str, str], sides: tuple[str, str | None], a: _Side, refs: list[_Side],
              ref_info: tuple[str, str, bool], opts: CompareOptions, interval: str,
              noise: NoiseCorrelation) -> SideComparisonRow:
    """One comparison row: root `a` (on side ``sides[0]``) against the mean of `refs`.

    ``sides`` = (side of `a`, side of the reference or None for several levels);
    ``ref_info`` = (reference kind, reference levels joined by ';', signed indices defined).
    """
    level, segment, param = key
    a_side, b_side = sides
    reference, ref_levels, signed = ref_info
    nan = math.nan
    flags = _pair_flags(a, refs, opts, interval, noise)
    xa = a.mean
    xb = float(np.mean([r.mean for r in refs])) if refs else nan
    ix = side_indices(xa, xb)
    bounds = (nan,) * 6
    c = None
    if "missing_side" not in flags and "no_voxel_values" not in flags:
        c = contrast(a.est, pooled_mean([r.est for r in refs]), ci=opts.ci, power=opts.power, alpha=opts.alpha)
        bounds = _difference_intervals(a, refs, interval, c, opts.ci)
    per = {a_side: a}
    if b_side is not None and refs:
        per[b_side] = refs[0]
    ci_side = {s: _side_interval(per[s], interval, opts.ci) if s in per else (nan, nan) for s in _SIDES}
    fw = noise.fwhm_mm if noise.known else (nan, nan, nan)
    val = {s: per[s] if s in per else _Side() for s in _SIDES}
    d_pct = 100.0 * c.detectable / abs(xb) if c is not None and xb else nan
    convention = {"adjacent": "root - adjacent levels (same side)"}.get(
        reference, "symptomatic - contralateral" if signed else "left - right")
    return SideComparisonRow(
        level=level, segment=segment, parameter=param, unit=a.unit or next((r.unit for r in refs if r.unit), ""),
        symptomatic_side=a_side if signed else None, reference_side=(b_side or a_side) if signed else None,
        xs=xa if signed else nan, xc=xb if signed else nan,
        n_s=a.n if signed else 0, n_c=sum(r.n for r in refs) if signed else 0,
        value_left=val["left"].mean, value_right=val["right"].mean,
        n_left=val["left"].n, n_right=val["right"].n,
        left_ci_low=ci_side["left"][0], left_ci_high=ci_side["left"][1],
        right_ci_low=ci_side["right"][0], right_ci_high=ci_side["right"][1],
        cv_left=val["left"].cv, cv_right=val["right"].cv,
        difference=xa - xb, difference_ci_low=bounds[0], difference_ci_high=bounds[1],
        difference_convention=convention,
        ratio_pct=ix["ratio_pct"] if signed else nan,
        rel_diff_pct=ix["rel_diff_pct"] if signed else nan,
        asymmetry_index_pct=ix["asymmetry_index_pct"] if signed else nan,
        abs_asymmetry_index_pct=ix["abs_asymmetry_index_pct"],
        rel_diff_pct_ci_low=bounds[2] if signed else nan, rel_diff_pct_ci_high=bounds[3] if signed else nan,
        asymmetry_index_pct_ci_low=bounds[4] if signed else nan,
        asymmetry_index_pct_ci_high=bounds[5] if signed else nan,
        ci_level=opts.ci, flags=tuple(flags),
        reference=reference, reference_levels=ref_levels, interval_method=interval,
        noise_source=noise.source, noise_fwhm_i_mm=fw[0], noise_fwhm_j_mm=fw[1], noise_fwhm_k_mm=fw[2],
        n_eff_s=a.n_eff if signed else nan,
        n_eff_c=float(sum(r.n_eff for r in refs)) if signed and refs else nan,
        n_eff_left=val["left"].n_eff, n_eff_right=val["right"].n_eff,
        difference_se=c.se if c else nan, difference_df=c.df if c else nan,
        p_value=c.p_value if c else nan,
        detectable_difference=c.detectable if c else nan, detectable_pct=d_pct,
    )


def adjacent_levels(level: str, present: Iterable[str]) -> list[str]:
    """The levels directly above and below `level` (L1 … S1) among `present`.

    Examples
    --------
    >>> adjacent_levels("L5", ["L3", "L4", "L5", "S1"]), adjacent_levels("S1", ["L5", "S1"])
    (['L4', 'S1'], ['L5'])
    """
    if level not in LEVEL_ORDER:
        return []
    i = LEVEL_ORDER.index(level)
    have = set(present)
    return [LEVEL_ORDER[j] for j in (i - 1, i + 1) if 0 <= j < len(LEVEL_ORDER) and LEVEL_ORDER[j] in have]


def _pairs(table: dict, side: str | None, reference: str):
    """Yield (key, (a side, b side), a, refs, ref_info) for every comparison to make."""
    for key in sorted(table, key=lambda k: (_level_key(k[0]), _segment_key(k[1]), k[2])):
        level, segment, param = key
        slot = table[key]
        if reference == "contralateral":
            a_side = side or "left"
            b_side = "right" if a_side == "left" else "left"
            yield key, (a_side, b_side), slot.get(a_side, _Side()), \
                ([slot[b_side]] if b_side in slot else [_Side()]), ("contralateral", "", side is not None)
            continue
        for s in ([side] if side else list(_SIDES)):
            if s not in slot:
                continue
            same = [k[0] for k in table if k[1:] == key[1:] and s in table[k]]
            nbrs = adjacent_levels(level, same)
            yield key, (s, None), slot[s], [table[(lv, segment, param)][s] for lv in nbrs], \
                ("adjacent", ";".join(nbrs), True)


# --------------------------------------------------------------------------- main function
def compare_sides(
    stats: Any,
    *,
    symptomatic_side: str | None = None,
    parameters: Sequence[str] | None = None,
    reference: str = "contralateral",
    interval: str = "effective-n",
    noise: Any = None,
    rng: Any = None,
    options: CompareOptions | None = None,
    **settings: Any,
) -> SideComparison:
    """Compare each nerve root with its reference: the contralateral twin or the adjacent levels.

    Parameters
    ----------
    stats : RoiStatsTable or any object with ``.rows``
        ROI statistics (:func:`dwi_toolkit.analysis.roi_stats.roi_stats`). Each row needs
        ``level``, ``side`` (``"left"``/``"right"``, the patient's side), ``segment``,
        ``parameter``, ``unit``, ``n_voxels``, ``mean`` and ``values`` (1-D voxel values; may be
        None, then no interval is given). Optional ``coords`` (voxel indices (n, 3) of
        ``values``) and ``voxel_size_mm`` let the noise correlation be estimated and used.
    symptomatic_side : {"left", "right", None, "bilateral"}, optional
        The patient's symptomatic side. None (unknown) or ``"bilateral"``: with the contralateral
        reference only absolute asymmetry and the ``left − right`` difference are reported; with
        the adjacent reference both sides are compared, each with signed indices.
    parameters : sequence of str, optional
        Parameters to compare (e.g. ``["adc", "fa"]``); default all present in `stats`.
    reference : {"contralateral", "adjacent"}, optional
        ``"contralateral"`` (default): the root on the other side at the same level and segment
        (dwi_toolkit References §2.4). ``"adjacent"``: the mean of the roots directly above and
        below on the same side (e.g. L5 against L4 and S1, for bilateral or unknown-side
        symptoms, §2.6); ``reference_levels`` names them. Those roots are assumed intact.
    interval : {"effective-n", "iid-bootstrap"}, optional
        ``"effective-n"`` (default): Welch t intervals whose standard errors use each ROI's
        effective number of independent voxels under the estimated spatial noise correlation
        (:mod:`dwi_toolkit.analysis.spatial_noise`). ``"iid-bootstrap"``: the percentile
        bootstrap over voxels treated as independent — too narrow on real, correlated images.
    noise : NoiseCorrelation or dict, optional
        The noise correlation to use (one model, or one per parameter). Default: estimated by
        moments from the ROI voxel values and positions of each parameter (``noise_source =
        "roi-moments"``; its sampling variance lowers the degrees of freedom); rows without
        positions are treated as independent and flagged
        ``noise_correlation_unknown``.
    rng : numpy.random.Generator, int or None, optional
        Random source of the bootstrap. None uses seed 0 (reproducible reports).
    options : CompareOptions, optional
        Numerical settings; any of its fields (``n_boot``, ``ci``, ``min_voxels``, ``max_cv``,
        ``power``, ``alpha``) may also be given as keyword arguments, which take precedence.

    Returns
    -------
    SideComparison
        Every row carries ``interval_method``, ``noise_source``, the noise FWHM per voxel axis
        (``noise_fwhm_i_mm`` …), the effective voxel counts (``n_eff_*``), ``p_value`` and the
        smallest difference detectable at 80 % power, two-sided α = 0.05
        (``detectable_difference`` in the unit, ``detectable_pct`` in % of the reference).

    Raises
    ------
    InputDataError
        Invalid options, `stats` without ``.rows``, or two rows for the same
        level/side/segment/parameter.

    Notes
    -----
    Indices: dwi_toolkit References §2.8. Intervals describe noise within one scan, not
    scan–rescan or reader variability (§2.7). The validation study is in ``docs/report.md``.

    Examples
    --------
    >>> from types import SimpleNamespace as R
    >>> import numpy as np
    >>> rows = [R(level="L5", side=s, segment="ganglion", parameter="adc", unit="mm^2/s",
    ...           n_voxels=20, mean=m, values=np.full(20, m)) for s, m in
    ...         [("left", 1.79e-3), ("right", 1.50e-3)]]
    >>> cmp = compare_sides(R(rows=rows), symptomatic_side="left", noise=NoiseCorrelation.independent())
    >>> r = cmp.get("L5")
    >>> round(r.ratio_pct, 1), round(r.asymmetry_index_pct, 1), r.flags, r.interval_method
    (119.3, 17.6, (), 'effective-n')
    """
    if not hasattr(stats, "rows"):
        raise InputDataError(
            f"compare_sides needs an ROI statistics table with .rows (RoiStatsTable), got "
            f"{type(stats).__name__}; compute it with dwi_toolkit.analysis.roi_stats.roi_stats()."
        )
    if interval not in INTERVALS:
        raise InputDataError(f"interval must be one of {INTERVALS}, got {interval!r}.")
    if reference not in REFERENCES:
        raise InputDataError(f"reference must be one of {REFERENCES}, got {reference!r}.")
    opts = with_settings(CompareOptions, options, settings, where="compare_sides")
    side, notes = _normalise_side(symptomatic_side, reference)
    gen, seed = _as_generator(rng)
    table = _collect(stats, None if parameters is None else {str(p) for p in parameters})
    models = _noise_models(stats, table, noise)
    out: list[SideComparisonRow] = []
    for key, sides, a, refs, info in _pairs(table, side, reference):
        for sd in (a, *refs):
            _prepare(sd, models[key[2]], interval, opts, gen)
        out.append(_pair_row(key, sides, a, refs, info, opts, interval, models[key[2]]))
    if any("noise_correlation_unknown" in r.flags for r in out):
        notes.append("Some ROI rows carry no voxel positions, so the noise correlation could not be "
                     "estimated: their voxels were treated as independent (intervals may be too "
                     "narrow). Compute the ROI statistics with the toolkit's ROI-statistics function "
                     "(it keeps the voxel positions).")
    return SideComparison(
        rows=tuple(out), symptomatic_side=side,
        settings={**dataclasses.asdict(opts), "seed": seed, "interval": interval, "reference": reference,
                  "noise": {p: {"source": m.source, "fwhm_vox": list(m.fwhm_vox), "fwhm_mm": list(m.fwhm_mm),
                                "n_values": m.n_values} for p, m in models.items()},
                  "bootstrap": _INTERVAL_TEXT[interval]},
        notes=tuple(notes),
    )


def noise_from_option(spec: str | float | None, stats: Any, meta: Mapping[str, Any] | None = None,
                      ) -> NoiseCorrelation | None:
    """The noise-correlation model named by the analysis option ``noise``, for :func:`compare_sides`.

    Parameters
    ----------
    spec : str, float or None
        ``"roi"`` or None: None (:func:`compare_sides` estimates it from the ROI voxels).
        ``"metadata"``: the phase-encoding FWHM from ``AcquisitionMatrixPE``/``ReconMatrixPE``/
        ``PhaseEncodingDirection`` in `meta` (:func:`~dwi_toolkit.analysis.spatial_noise.noise_from_metadata`),
        or None (ROI estimate, logged) when those keys are absent. A number (or numeric text): that
        FWHM in voxels on the in-plane axes i and j, 0 across slices (axis k).
    stats : RoiStatsTable
        Gives the voxel size (mm) of the first parameter that has one.
    meta : mapping, optional
        The series metadata (BIDS sidecar keys).

    Returns
    -------
    NoiseCorrelation or None

    Examples
    --------
    >>> from types import SimpleNamespace as R
    >>> st = R(rows=[R(parameter="adc", voxel_size_mm=(1.0, 1.0, 4.0))])
    >>> noise_from_option("roi", st) is None
    True
    >>> nc = noise_from_option("1.5", st)
    >>> nc.fwhm_mm, nc.source
    ((1.5, 1.5, 0.0), 'option')
    >>> noise_from_option("metadata", st, {"AcquisitionMatrixPE": 96, "ReconMatrixPE": 192,
    ...                                     "PhaseEncodingDirection": "j"}).source
    'matrix'
    """
    from .spatial_noise import noise_from_metadata

    text = "roi" if spec is None else str(spec).strip().lower()
    if text == "roi":
        return None
    vs = next((_voxel_size(stats, p) for p in ("adc", *sorted({str(getattr(r, "parameter", "adc"))
                                                                 for r in stats.rows}))
               if all(math.isfinite(x) for x in _voxel_size(stats, p))), (1.0, 1.0, 1.0))
    if text == "metadata":
        nc = noise_from_metadata(dict(meta or {}), vs)
        if nc is None:
            logger.info("noise='metadata' but the series has no AcquisitionMatrixPE/ReconMatrixPE/"
                        "PhaseEncodingDirection: the noise correlation is estimated from the ROIs")
        return nc
    try:
        fwhm = float(text)
    except ValueError:
        raise InputDataError(f"noise must be 'roi', 'metadata' or a FWHM in voxels (e.g. 1.5); got {spec!r}.") from None
    return NoiseCorrelation.from_fwhm([fwhm, fwhm, 0.0], vs, source="option")


_INTERVAL_TEXT = {
    "effective-n": "none: Welch t intervals with effective voxel counts under the estimated "
                   "spatial noise correlation (log-ratio delta method for the % indices)",
    "iid-bootstrap": "percentile, voxels resampled with replacement independently on each side",
}
