"""Compare two scans of one patient: register, carry the ROIs over, and say which changes are real.

Steps of :func:`compare_sessions`:

1. **Registration** (:func:`register_sessions`): rigid (or affine) registration of the
   follow-up's mean DWI image (all volumes averaged) to the baseline's with dipy (``dipy.align.affine_registration``,
   Mattes mutual information; centre of mass → translation → rigid [→ affine]). The result is
   the world transform baseline RAS+ mm → follow-up RAS+ mm (dipy's static → moving convention).
2. **ROIs carried over**: every baseline ROI shape is moved by that transform and rasterised on
   the follow-up's own grid, so the follow-up ADC is never interpolated.
3. **ADC** of both sessions by :func:`dwi_toolkit.models.adc.fit_adc` (trace WLS, mm²/s), ROI
   means by :func:`dwi_toolkit.analysis.roi_stats.roi_stats`.
4. **Smallest real change** per ROI: either a test–retest SDC supplied by the caller (from
   :func:`dwi_toolkit.analysis.repeatability.repeatability`, a dict, or a within-subject CoV),
   or — from the data's own noise — ``t₀.₉₇₅(ν) · √(SD_b²/n_b + SD_f²/n_f + s_pos²)`` with Welch's
   ν: the 95 % limit of a difference of two ROI means whose voxel ADCs carry independent noise,
   with ``s_pos`` the SD of the follow-up ROI mean over shifts of ±1 mm along each axis (how much
   a registration error of that size alone moves the result). A
   change is called *real* when ``|change| > SDC`` (de Vet et al. 2006; Haakma et al. 2018 give
   between-week ICC 0.58–0.62 for lumbosacral DTI, so many changes are not).

The noise-based limit covers thermal noise only; between-scan effects (positioning, partial
volume, scanner drift) are covered only by a test–retest SDC, which should be preferred when one
is available for the protocol.
"""

from __future__ import annotations

import html
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ..analysis.roi_stats import RoiStatsTable, roi_stats
from ..core.image import DWISeries
from ..errors import InputDataError
from ..roi.model import RoiSet, RootROI

__all__ = ["Registration", "SessionComparison", "register_sessions", "compare_sessions", "carry_rois"]

logger = logging.getLogger(__name__)

_PIPELINES = {"rigid": ["center_of_mass", "translation", "rigid"],
              "affine": ["center_of_mass", "translation", "rigid", "affine"]}


@dataclass(frozen=True, eq=False)
class Registration:
    """A follow-up → baseline registration.

    Attributes
    ----------
    matrix : ndarray of shape (4, 4)
        World transform baseline RAS+ mm → follow-up RAS+ mm.
    mode : {"rigid", "affine"}

    Examples
    --------
    >>> r = Registration(np.eye(4), "rigid")
    >>> r.rotation_deg, r.translation_mm.tolist()
    (0.0, [0.0, 0.0, 0.0])
    """

    matrix: np.ndarray
    mode: str

    @property
    def rotation_deg(self) -> float:
        """Angle of the rotation part (degrees)."""
        u, _, vt = np.linalg.svd(self.matrix[:3, :3])
        r = u @ vt
        return float(np.degrees(np.arccos(np.clip((np.trace(r) - 1) / 2, -1.0, 1.0))))

    @property
    def translation_mm(self) -> NDArray[np.float64]:
        """Translation part (mm)."""
        return self.matrix[:3, 3].copy()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form.

        Examples
        --------
        >>> Registration(np.eye(4), "rigid").to_dict()["mode"]
        'rigid'
        """
        return {"mode": self.mode, "matrix_baseline_to_follow_up": np.round(self.matrix, 6).tolist(),
                "rotation_deg": round(self.rotation_deg, 3), "translation_mm": np.round(self.translation_mm, 3).tolist(),
                "method": "dipy.align.affine_registration, Mattes mutual information on the mean DWI images"}


def _mean_b0(series: DWISeries) -> NDArray[np.float64]:
    return np.nan_to_num(np.asarray(series.mean_b0(), dtype=float))


def _mean_dwi(series: DWISeries) -> NDArray[np.float64]:
    """Mean of all volumes: more contrast between tissues of different ADC than b=0 alone."""
    return np.nan_to_num(np.asarray(series.data, dtype=float).mean(axis=-1))


def register_sessions(baseline: DWISeries, follow_up: DWISeries, *, mode: str = "rigid",
                      level_iters: tuple[int, ...] = (1000, 200, 50)) -> Registration:
    """Register the follow-up to the baseline on their mean DWI images (dipy, mutual information).

    Parameters
    ----------
    baseline, follow_up : DWISeries
        Each needs a b=0 volume; grids and affines may differ.
    mode : {"rigid", "affine"}, optional
        Rigid (6 parameters; default, the spine is the same) or affine (12).
    level_iters : tuple of int, optional
        Optimiser iterations per resolution level (coarse → fine).

    Returns
    -------
    Registration

    Examples
    --------
    >>> from dwi_toolkit.phantom_sessions import make_session_pair
    >>> pair = make_session_pair(shape=(48, 38, 40), voxel_size=(3, 3, 5), rotation_deg=(0, 0, 5),
    ...                          translation_mm=(4, 0, 0), noise=False)
    >>> reg = register_sessions(pair.baseline.series, pair.follow_up.series, level_iters=(100, 30))
    >>> p = np.array([-20.0, 0.0, -30.0, 1.0])             # a root, baseline RAS+ mm
    >>> float(np.linalg.norm(reg.matrix @ p - pair.transform @ p)) < 3.0   # within one voxel
    True
    """
    from dipy.align import affine_registration

    if mode not in _PIPELINES:
        raise InputDataError(f"mode must be one of {list(_PIPELINES)}, got {mode!r}.")
    levels = list(level_iters)
    _, matrix = affine_registration(
        _mean_dwi(follow_up), _mean_dwi(baseline), moving_affine=follow_up.affine, static_affine=baseline.affine,
        pipeline=_PIPELINES[mode], level_iters=levels, sigmas=[3.0, 1.0, 0.0][-len(levels):] if len(levels) <= 3
        else None, factors=[4, 2, 1][-len(levels):] if len(levels) <= 3 else None)
    reg = Registration(np.asarray(matrix, dtype=float), mode)
    logger.info("registered follow-up to baseline: rotation %.2f deg, translation %s mm", reg.rotation_deg,
                np.round(reg.translation_mm, 2).tolist())
    return reg


def carry_rois(rois: RoiSet, matrix: NDArray) -> RoiSet:
    """Move baseline ROIs into the follow-up's world space.

    Parameters
    ----------
    rois : RoiSet
        Baseline ROIs (RAS+ mm).
    matrix : ndarray of shape (4, 4)
        Baseline → follow-up world transform (:attr:`Registration.matrix`).

    Returns
    -------
    RoiSet

    Examples
    --------
    >>> from dwi_toolkit.roi.model import Sphere
    >>> m = np.eye(4); m[:3, 3] = [1, 2, 3]
    >>> carry_rois(RoiSet([RootROI("L5", "left", shape=Sphere([0, 0, 0], 2))]), m)[0].shape.center.tolist()
    [1.0, 2.0, 3.0]
    """
    moved = [roi.replace(shape=roi.shape.transformed(matrix)) for roi in rois]
    return RoiSet(moved).with_meta(carried_over="baseline ROIs moved by the session registration")


def _t975(df: float) -> float:
    from scipy import stats

    return float(stats.t.ppf(0.975, df)) if math.isfinite(df) and df > 0 else 1.96


def _noise_sdc(b, f, pos_sd: float = 0.0) -> float:
    """95 % limit of the difference of two ROI means (Welch), plus a positioning term, mm²/s."""
    vb, vf = (b.sd**2 / b.n_voxels, f.sd**2 / f.n_voxels) if b.n_voxels and f.n_voxels else (math.nan, math.nan)
    se2 = vb + vf + pos_sd**2
    if not math.isfinite(se2) or se2 <= 0:
        return math.nan
    den = (vb**2 / max(b.n_voxels - 1, 1)) + (vf**2 / max(f.n_voxels - 1, 1))
    return _t975(se2**2 / den if den > 0 else math.inf) * math.sqrt(se2)


def _retest_sdc(retest: Any, row, baseline_mean: float) -> float | None:
    """SDC from a supplied test–retest source: float = within-subject CoV, mapping or table."""
    if retest is None:
        return None
    if isinstance(retest, (int, float)):
        return 1.96 * math.sqrt(2.0) * float(retest) * baseline_mean
    lookup = retest.sdc_lookup() if hasattr(retest, "sdc_lookup") else dict(retest)
    key = (row.level, row.side, row.segment, row.parameter)
    for n in range(len(key), 0, -1):
        if key[:n] in lookup:
            return float(lookup[key[:n]])
    return None


def _position_sd(fit, roi: RootROI, tolerance_mm: float, csf_threshold: float | None) -> float:
    """SD of the follow-up ROI mean when the carried ROI is shifted by ±`tolerance_mm` along each
    world axis: how much a registration error of that size alone could change the result."""
    if tolerance_mm <= 0:
        return 0.0
    means = []
    for axis in range(3):
        for sign in (-1.0, 1.0):
            shift = np.zeros(3)
            shift[axis] = sign * tolerance_mm
            try:
                row = roi_stats(fit, roi.replace(shape=roi.shape.translated(shift)), csf_threshold=csf_threshold)[0]
            except InputDataError:  # shifted out of the image
                continue
            if row.n_voxels:
                means.append(row.mean)
    return float(np.std(means, ddof=1)) if len(means) > 1 else 0.0


def _change_row(b, f, retest: Any, pos_sd: float = 0.0) -> dict[str, Any]:
    change = f.mean - b.mean
    sdc = _retest_sdc(retest, b, b.mean)
    source = "test-retest" if sdc is not None else "noise"
    if sdc is None:
        sdc = _noise_sdc(b, f, pos_sd)
    real = bool(math.isfinite(sdc) and abs(change) > sdc)
    return {
        "level": b.level, "side": b.side, "segment": b.segment, "parameter": b.parameter, "unit": b.unit,
        "baseline_mean": b.mean, "follow_up_mean": f.mean, "change": change,
        "change_pct": 100.0 * change / b.mean if b.mean else math.nan,
        "sdc": sdc, "sdc_pct": 100.0 * sdc / b.mean if b.mean else math.nan, "sdc_source": source,
        "change_low": change - sdc, "change_high": change + sdc, "real_change": real,
        "direction": ("increase" if change > 0 else "decrease") if real else "no real change",
        "n_voxels_baseline": b.n_voxels, "n_voxels_follow_up": f.n_voxels,
    }


@dataclass(frozen=True, eq=False)
class SessionComparison:
    """Result of :func:`compare_sessions`.

    Attributes
    ----------
    rows : list of dict
        One per ROI: baseline/follow-up mean, ``change`` (mm²/s), ``change_pct``, ``sdc`` (smallest
        real change), its source, the interval ``change ± sdc`` and ``real_change``.
    registration : Registration
    baseline_stats, follow_up_stats : RoiStatsTable
    follow_up_rois : RoiSet
        The ROIs in the follow-up's world space.

    Examples
    --------
    >>> from dwi_toolkit.phantom_sessions import make_session_pair
    >>> from dwi_toolkit.roi.sample import sample_rois
    >>> pair = make_session_pair(shape=(48, 38, 40), voxel_size=(3, 3, 5), rotation_deg=(0, 0, 3), seed=2)
    >>> known = Registration(pair.transform, "rigid")        # skip the registration in this example
    >>> cmp = compare_sessions(pair.baseline.series, pair.follow_up.series, sample_rois(pair.baseline, kind="tube"),
    ...                        registration=known)
    >>> biggest = max(cmp.rows, key=lambda r: abs(r["change"]))
    >>> biggest["level"], biggest["side"], biggest["real_change"], round(biggest["change_pct"])
    ('L4', 'right', True, 15)
    """

    rows: list[dict[str, Any]]
    registration: Registration
    baseline_stats: RoiStatsTable = field(repr=False)
    follow_up_stats: RoiStatsTable = field(repr=False)
    follow_up_rois: RoiSet = field(repr=False)
    _maps: dict[str, Any] = field(default_factory=dict, repr=False)

    def real_changes(self) -> list[dict[str, Any]]:
        """Rows whose change exceeds the smallest real change."""
        return [r for r in self.rows if r["real_change"]]

    def smallest_real_change(self) -> dict[str, float]:
        """Smallest real change (mm²/s) per level: the smallest SDC of its ROIs.

        Examples
        --------
        >>> c = SessionComparison([{"level": "L5", "sdc": 0.1}, {"level": "L5", "sdc": 0.2}], Registration(np.eye(4), "rigid"),
        ...                       RoiStatsTable([]), RoiStatsTable([]), RoiSet([]))
        >>> c.smallest_real_change()
        {'L5': 0.1}
        """
        out: dict[str, float] = {}
        for r in self.rows:
            out[r["level"]] = min(out.get(r["level"], math.inf), r["sdc"])
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (values in the map's unit, mm²/s for ADC)."""
        return {"registration": self.registration.to_dict(), "rows": self.rows,
                "smallest_real_change": self.smallest_real_change(),
                "real_changes": [f"{r['level']} {r['side']} {r['segment']}: {r['change_pct']:+.1f} %"
                                 for r in self.real_changes()]}

    def figure(self):
        """Side-by-side figure: baseline ADC, registered follow-up ADC, difference, and the change
        per root with its smallest-real-change interval (matplotlib ``Figure``, Agg-safe)."""
        from .figures import comparison_figure

        return comparison_figure(self)

    def to_html(self) -> str:
        """Self-contained HTML page: what changed (table) and the figure (embedded PNG)."""
        from .figures import comparison_html

        return comparison_html(self)

    def save(self, out_dir) -> dict[str, Any]:
        """Write ``longitudinal.json``, ``longitudinal.csv``, ``longitudinal.png`` and
        ``longitudinal.html`` atomically into `out_dir` (created); returns the paths."""
        from .figures import save_comparison

        return save_comparison(self, out_dir)

    def __repr__(self) -> str:
        real = ", ".join(f"{r['level']} {r['side']} {r['change_pct']:+.0f}%" for r in self.real_changes()) or "none"
        return f"SessionComparison({len(self.rows)} ROIs, real changes: {real})"

    def _repr_html_(self) -> str:
        body = "".join(
            f"<tr><td>{html.escape(r['level'])} {html.escape(r['side'])}</td><td>{r['change_pct']:+.1f} %</td>"
            f"<td>±{r['sdc_pct']:.1f} %</td><td>{'yes' if r['real_change'] else 'no'}</td></tr>" for r in self.rows)
        return ("<table><tr><th>root</th><th>change</th><th>smallest real change</th><th>real</th></tr>"
                f"{body}</table>")


def compare_sessions(
    baseline: DWISeries,
    follow_up: DWISeries,
    rois: RoiSet,
    *,
    retest: float | Mapping | Any | None = None,
    registration: Registration | None = None,
    mode: str = "rigid",
    csf_threshold: float | None = 2.5e-3,
    position_tolerance_mm: float = 1.0,
    fit_kwargs: Mapping[str, Any] | None = None,
) -> SessionComparison:
    """Compare the ROI ADC of a follow-up scan with the baseline, with the smallest real change.

    Parameters
    ----------
    baseline, follow_up : DWISeries
        Two DWI series of one patient (b in s/mm²; each needs a b=0 volume).
    rois : RoiSet
        Nerve-root ROIs drawn on the baseline (RAS+ mm).
    retest : float, mapping or RepeatabilityTable, optional
        Test–retest repeatability of the protocol: a within-subject CoV (e.g. ``0.05``), a
        mapping ``{(level, side[, segment, parameter]): SDC in mm²/s}``, or the result of
        :func:`~dwi_toolkit.analysis.repeatability.repeatability`. Default: from the data's noise.
    registration : Registration, optional
        A precomputed follow-up → baseline registration (skips :func:`register_sessions`).
    mode : {"rigid", "affine"}, optional
        Registration mode.
    csf_threshold : float, optional
        mm²/s; ROI voxels above are excluded as CSF (as in :func:`roi_stats`).
    position_tolerance_mm : float, optional
        Registration uncertainty (mm) added to the noise-based limit: the SD of the follow-up ROI
        mean over shifts of ±this along each axis enters the standard error (0 to leave it out).
    fit_kwargs : mapping, optional
        Passed to :func:`dwi_toolkit.models.adc.fit_adc` for both sessions.

    Returns
    -------
    SessionComparison

    Examples
    --------
    >>> from dwi_toolkit.phantom_sessions import make_session_pair
    >>> from dwi_toolkit.roi.sample import sample_rois
    >>> pair = make_session_pair(shape=(48, 38, 40), voxel_size=(3, 3, 5), changes={("L3", "left"): -0.2}, seed=3)
    >>> known = Registration(pair.transform, "rigid")        # register_sessions(...) when unknown
    >>> cmp = compare_sessions(pair.baseline.series, pair.follow_up.series, sample_rois(pair.baseline, kind="tube"),
    ...                        registration=known)
    >>> r = next(r for r in cmp.rows if (r["level"], r["side"]) == ("L3", "left"))
    >>> r["real_change"], r["direction"], bool(-25 < r["change_pct"] < -15)
    (True, 'decrease', True)
    """
    from ..models.adc import fit_adc

    if not isinstance(rois, RoiSet):
        rois = RoiSet(list(rois) if not isinstance(rois, RootROI) else [rois])
    if not len(rois):
        raise InputDataError("compare_sessions needs at least one ROI.")
    reg = registration if registration is not None else register_sessions(baseline, follow_up, mode=mode)
    moved = carry_rois(rois, reg.matrix)
    kw = dict(fit_kwargs or {})
    fit_b, fit_f = fit_adc(baseline, **kw), fit_adc(follow_up, **kw)
    sb = roi_stats(fit_b, rois, csf_threshold=csf_threshold)
    sf = roi_stats(fit_f, moved, csf_threshold=csf_threshold)
    rows = [_change_row(b, f, retest, _position_sd(fit_f, roi, position_tolerance_mm, csf_threshold)
                        if retest is None else 0.0) for b, f, roi in zip(sb, sf, moved)]
    maps = {"baseline_adc": (fit_b.adc, baseline.affine), "follow_up_adc": (fit_f.adc, follow_up.affine),
            "baseline_b0": _mean_b0(baseline)}
    return SessionComparison(rows=rows, registration=reg, baseline_stats=sb, follow_up_stats=sf,
                             follow_up_rois=moved, _maps=maps)
