"""QC flags that speak: each check returns records with the measured value, the limit and advice.

Every function here is pure (arrays and numbers in, :class:`QCFlag` records out) and returns an
empty list when the check passes, so a caller can concatenate the results of every check. The
thresholds are module constants, documented in ``docs/report.md`` ("QC flags"); they are design
choices [D] unless a source is cited.

========================  ========  ======================================================  ==========
code                      severity  fires when                                              limit
========================  ========  ======================================================  ==========
``no_signal``             error     the b=0 image holds no signal (every voxel 0/missing)   > 0
``no_attenuation``        error     median apparent ADC in the body < limit (b>0 images     0.05×10⁻³
                                    as bright as b=0: no diffusion weighting applied)       mm²/s
``fit_failed_roi``        warning   failed fits / fitted voxels in an ROI > limit           5 %
``roi_outside_mask``      warning   ROI voxels outside the analysis mask / ROI voxels       5 %
``fit_failed_body``       warning   failed fits / fitted voxels in the body mask > limit    5 %
``low_snr``               warning   b=0 SNR in an ROI < limit                               10
``too_few_voxels``        warning   included voxels in an ROI < limit                       5
``b_range``               info      highest b used outside the range of reference values    600–1200
``motion``                warning   lowest b=0 volume-to-volume correlation < limit         0.90
``scanner_adc``           warning   abs. median rel. difference from scanner ADC > limit    10 %
``side_mismatch``         error     ROI labelled left/right lies on the other side          0 mm
``gradient_table``        error     another b-vector flip/permutation fits better (warning  10 %
                                    when it was corrected before fitting)
========================  ========  ======================================================  ==========

World coordinates are RAS+ (mm): +x points to the patient's right, so a left ROI lies at x below
the mid-sagittal plane (NIfTI convention; ``dwi_toolkit.roi.model``).

Examples
--------
>>> import numpy as np
>>> status = np.zeros((4, 4, 4), int); status[0, 0, :2] = 3          # two failed fits
>>> roi = np.zeros((4, 4, 4), bool); roi[0, 0, :] = True
>>> [f.code for f in fit_failure_flags(status, [("L5 left", roi)])]
['fit_failed_roi']
>>> fit_failure_flags(status, [("L5 left", roi)])[0].message
'L5 left: fit failed in 2 of 4 fitted voxels (50.0 %, limit 5.0 %).'
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

__all__ = [
    "QCFlag",
    "SEVERITIES",
    "MAX_FAILED_FRACTION",
    "MIN_SNR",
    "MIN_VOXELS",
    "REFERENCE_B_MAX",
    "MIN_B0_CORRELATION",
    "MAX_SCANNER_ADC_DIFF",
    "MIN_BODY_ADC",
    "fit_failure_flags",
    "snr_flags",
    "voxel_count_flags",
    "b_range_flags",
    "motion_flags",
    "scanner_adc_flags",
    "scanner_adc_agreement",
    "no_signal_flags",
    "no_attenuation_flags",
    "side_label_flags",
    "gradient_table_flags",
    "roi_side",
]

#: Severities, most serious first.
SEVERITIES: tuple[str, ...] = ("error", "warning", "info")
#: Largest tolerated fraction of failed fits (ROI or body) [D].
MAX_FAILED_FRACTION = 0.05
#: Lowest tolerated b=0 SNR in an ROI [D] (the report's rough estimate, see ``estimate_snr``).
MIN_SNR = 10.0
#: Fewest included voxels per ROI [D] (the side comparison's ``min_voxels`` default).
MIN_VOXELS = 5
#: Range (s/mm²) of the highest b-value of the nerve-root studies the reference values come from:
#: b = 800 s/mm² typical, 1000 s/mm² usual in brain work (references §2.5) [D for the margins].
REFERENCE_B_MAX = (600.0, 1200.0)
#: Lowest tolerated Pearson correlation between b=0 volumes inside the body [D].
MIN_B0_CORRELATION = 0.90
#: Largest tolerated relative median difference between our ADC and the scanner's [D]
#: (multi-centre phantom ADC agrees within a few per cent, references §1.5).
MAX_SCANNER_ADC_DIFF = 0.10


@dataclass(frozen=True)
class QCFlag:
    """One QC finding: what was measured, against which limit, and what to do.

    Attributes
    ----------
    code : str
        Stable machine code (``fit_failed_roi``, ``low_snr`` ...); kept in report.json.
    severity : str
        ``"error"``, ``"warning"`` or ``"info"``.
    message : str
        One plain-language sentence with the measured value and the limit.
    measured, limit : float or None
        In `unit`.
    unit : str
        Unit of `measured` and `limit` (``"%"``, ``"voxels"``, ``"s/mm²"``, ``"mm"``, ``"1"``).
    advice : str
        What to check or do.
    subject : str
        What the flag is about (an ROI label, ``"body"``, ``"series"``).

    Examples
    --------
    >>> f = QCFlag("low_snr", "warning", "L5 left: b=0 SNR 6.0 (limit 10).", 6.0, 10.0, "1",
    ...            "Check coil.", "L5 left")
    >>> f.to_dict()["measured"], f.severity
    (6.0, 'warning')
    """

    code: str
    severity: str
    message: str
    measured: float | None
    limit: float | None
    unit: str
    advice: str
    subject: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict of the record."""
        return asdict(self)


def _round(x: float | None, nd: int = 4) -> float | None:
    return None if x is None or not math.isfinite(float(x)) else round(float(x), nd)


def _pct(fraction: float) -> float:
    return round(100.0 * fraction, 1)


def fit_failure_flags(
    status: ArrayLike,
    roi_masks: Sequence[tuple[str, ArrayLike]],
    *,
    body_mask: ArrayLike | None = None,
    max_fraction: float = MAX_FAILED_FRACTION,
) -> list[QCFlag]:
    """Flag ROIs, and the body, where more than `max_fraction` of the voxel fits failed.

    Parameters
    ----------
    status : array_like of int, shape (X, Y, Z)
        Fit status codes: 0 fitted, 1 outside the analysis mask, anything else a failure
        (:data:`dwi_toolkit.models.adc.STATUS_CODES`).
    roi_masks : sequence of (label, bool array (X, Y, Z))
    body_mask : bool array, optional
        The analysis (body) mask; default: every voxel with status ≠ 1.
    max_fraction : float, optional
        Largest tolerated failed fraction (default 0.05).

    Returns
    -------
    list of QCFlag

    Examples
    --------
    >>> st = np.zeros((10, 10, 10), int); st[:2] = 4                       # 20 % failed
    >>> [(f.code, f.measured) for f in fit_failure_flags(st, [])]
    [('fit_failed_body', 20.0)]
    """
    st = np.asarray(status).astype(int)
    failed = (st != 0) & (st != 1)
    out: list[QCFlag] = []
    for label, m in roi_masks:
        m = np.asarray(m, bool)
        if m.shape != st.shape or not m.any():
            continue
        out += _roi_fit_flags(str(label), st[m], max_fraction)
    body = (st != 1) if body_mask is None else np.asarray(body_mask, bool)
    n = int(body.sum())
    if n:
        k = int(failed[body].sum())
        if k / n > max_fraction:
            out.append(QCFlag("fit_failed_body", "warning",
                              f"Body: fit failed in {k} of {n} voxels ({_pct(k / n)} %, limit "
                              f"{_pct(max_fraction)} %).", _pct(k / n), _pct(max_fraction), "%",
                              "Check the b-values, the analysis mask and the image for artefacts.",
                              "body"))
    return out


def _roi_fit_flags(label: str, st: np.ndarray, max_fraction: float) -> list[QCFlag]:
    """Fit failures among the fitted voxels of one ROI, and ROI voxels left outside the analysis mask."""
    out = []
    n, outside = int(st.size), int(np.sum(st == 1))
    attempted, k = n - outside, int(np.sum((st != 0) & (st != 1)))
    if attempted and k / attempted > max_fraction:
        out.append(QCFlag("fit_failed_roi", "warning",
                          f"{label}: fit failed in {k} of {attempted} fitted voxels ({_pct(k / attempted)} %, "
                          f"limit {_pct(max_fraction)} %).", _pct(k / attempted), _pct(max_fraction), "%",
                          "Check the b-values used, the signal in these voxels (CSF, vessels, artefacts) "
                          "and the ROI placement; failed voxels are excluded from the ROI values.", label))
    if outside / n > max_fraction:
        out.append(QCFlag("roi_outside_mask", "warning",
                          f"{label}: {outside} of {n} voxels lie outside the analysis mask ({_pct(outside / n)} %, "
                          f"limit {_pct(max_fraction)} %) and were not fitted.", _pct(outside / n),
                          _pct(max_fraction), "%",
                          "Check the ROI placement (is it on the image's signal?); when the root is there "
                          "but the mask misses it, analyse with the mask 'none' or a mask file (--mask).",
                          label))
    return out


def no_signal_flags(b0_mean: ArrayLike) -> list[QCFlag]:
    """Flag an image without signal: every voxel of the mean b=0 image is 0, negative or missing.

    Such a series (pixel data stripped or zeroed by an export or anonymiser) cannot be measured:
    every fit fails, and the report says why at the top instead of only listing failed ROIs.

    Parameters
    ----------
    b0_mean : array_like (X, Y, Z)
        The mean b=0 image (scanner units).

    Examples
    --------
    >>> no_signal_flags(np.zeros((4, 4, 2)))[0].code
    'no_signal'
    >>> no_signal_flags(np.ones((4, 4, 2)))
    []
    """
    v = np.asarray(b0_mean, float)
    finite = v[np.isfinite(v)]
    peak = float(finite.max()) if finite.size else 0.0
    if peak > 0:
        return []
    return [QCFlag("no_signal", "error",
                   "The b=0 image holds no signal (every voxel is 0 or missing): the pixel data are empty, "
                   "so no ADC can be fitted and no value in this report is a measurement.",
                   _round(peak), 0.0, "a.u.",
                   "Check that the files hold image data (some exports and anonymisers strip or zero the "
                   "pixels); re-export the series from the scanner or PACS.", "series")]


#: Lowest plausible median apparent ADC over the body mask, mm²/s [D]: far below the ADC of the
#: tissues of a fat-suppressed spine DWI (tenths of 10⁻³ mm²/s and up), so a median below it means the
#: b > 0 images are as bright as the b=0 image.
MIN_BODY_ADC = 0.05e-3


def no_attenuation_flags(b0_mean: ArrayLike, high_mean: ArrayLike, b_high: float,
                         mask: ArrayLike | None = None) -> list[QCFlag]:
    """Flag a series whose diffusion-weighted images do not attenuate (no diffusion weighting).

    The median apparent ADC ``ln(S0 / S_b) / b`` over the mask (voxels with both signals > 0)
    below :data:`MIN_BODY_ADC` means the b > 0 images are as bright as the b=0 image: the
    gradients were not applied, or an export repeated one image for every volume (as in some
    minimised test exports). No ADC from such a series is a measurement.

    Parameters
    ----------
    b0_mean, high_mean : array_like (X, Y, Z)
        Mean b=0 image and mean image at the highest b-value (scanner units).
    b_high : float
        That b-value, s/mm².
    mask : array_like of bool (X, Y, Z), optional
        Where to judge (the body/analysis mask); default every voxel with signal.

    Examples
    --------
    >>> s0 = np.full((4, 4, 2), 1000.0)
    >>> [f.code for f in no_attenuation_flags(s0, s0, 800.0)]
    ['no_attenuation']
    >>> no_attenuation_flags(s0, s0 * np.exp(-800 * 1.5e-3), 800.0)
    []
    """
    s0, sb = np.asarray(b0_mean, float), np.asarray(high_mean, float)
    ok = np.isfinite(s0) & np.isfinite(sb) & (s0 > 0) & (sb > 0)
    if mask is not None:
        ok &= np.asarray(mask, bool)
    if not b_high > 0 or not ok.any():
        return []
    median = float(np.median(np.log(s0[ok] / sb[ok]))) / float(b_high)
    if median >= MIN_BODY_ADC:
        return []
    return [QCFlag("no_attenuation", "error",
                   f"The b = {b_high:g} s/mm² images are as bright as the b=0 image (median apparent ADC "
                   f"{median * 1e3:.3f}×10⁻³ mm²/s over {int(ok.sum())} voxels, limit "
                   f"{MIN_BODY_ADC * 1e3:.2f}×10⁻³): no diffusion weighting, so no ADC in this report is a "
                   "measurement.", _round(median), MIN_BODY_ADC, "mm^2/s",
                   "Check that the series is the diffusion-weighted one and that its volumes differ (some "
                   "exports repeat one image for every volume); re-export it from the scanner or PACS.",
                   "series")]


def snr_flags(snr: Mapping[str, float | None], *, limit: float = MIN_SNR) -> list[QCFlag]:
    """Flag ROIs whose b=0 SNR is below `limit`.

    Parameters
    ----------
    snr : mapping
        ROI label → b=0 SNR (dimensionless; None or NaN = not measured, not flagged).
    limit : float, optional

    Examples
    --------
    >>> [f.message for f in snr_flags({"L5 left": 6.04, "L5 right": 40.0})]
    ['L5 left: b=0 SNR 6.0, below the limit of 10.']
    """
    out = []
    for label, v in snr.items():
        if v is None or not math.isfinite(float(v)) or v >= limit:
            continue
        out.append(QCFlag("low_snr", "warning", f"{label}: b=0 SNR {v:.1f}, below the limit of {limit:g}.",
                          _round(v, 1), float(limit), "1",
                          "Values in this ROI are noisy: check coil position and ROI placement; "
                          "consider more averages.", str(label)))
    return out


def voxel_count_flags(counts: Mapping[str, int], *, limit: int = MIN_VOXELS) -> list[QCFlag]:
    """Flag ROIs with fewer than `limit` included voxels.

    Examples
    --------
    >>> voxel_count_flags({"L2 left ganglion": 3})[0].message
    'L2 left ganglion: 3 voxels included, fewer than the minimum of 5.'
    """
    out = []
    for label, n in counts.items():
        if n is None or int(n) >= limit:
            continue
        out.append(QCFlag("too_few_voxels", "warning",
                          f"{label}: {int(n)} voxels included, fewer than the minimum of {limit}.",
                          float(int(n)), float(limit), "voxels",
                          "Enlarge or re-place the ROI; its mean and interval are unreliable.",
                          str(label)))
    return out


def gradient_table_flags(check: Mapping[str, Any], *, min_margin: float = 0.1) -> list[QCFlag]:
    """Flag a gradient table that another axis permutation/flip explains better.

    `check` is the record of :func:`dwi_toolkit.qc.gradient_check.check_gradients`
    (``GradientCheckResult.to_dict()``, plus ``applied`` when the correction was applied).
    The measured value is the best candidate's relative score gain over the given table (%).

    Examples
    --------
    >>> rec = {"status": "wrong", "best": "-xyz", "margin": 0.8, "message": "x looks flipped.",
    ...        "applied": True}
    >>> f = gradient_table_flags(rec)[0]
    >>> f.code, f.measured, f.message
    ('gradient_table', 80.0, 'Gradient table: x looks flipped. It was corrected before fitting.')
    >>> gradient_table_flags({"status": "ok", "margin": 0.0})
    []
    """
    if check.get("status") != "wrong":
        return []
    applied = bool(check.get("applied"))
    note = (" It was corrected before fitting." if applied else
            " FA colour maps and tractography are unreliable.")
    return [QCFlag("gradient_table", "warning" if applied else "error",
                   f"Gradient table: {check.get('message', '').strip()}{note}",
                   _round(100.0 * float(check.get("margin", 0.0)), 1), 100.0 * min_margin, "%",
                   "Check the b-vector export; the corrected table is recorded in the provenance."
                   if applied else "Rerun with --fix-gradients, or fix the b-vectors at conversion.",
                   "series")]


def b_range_flags(bvals_used: Iterable[float], *, reference: tuple[float, float] = REFERENCE_B_MAX) -> list[QCFlag]:
    """Flag a fit whose highest b-value lies outside the range the reference values assume.

    Parameters
    ----------
    bvals_used : iterable of float
        b-values (s/mm²) used by the fit.
    reference : (float, float), optional
        Accepted range of the highest b-value (s/mm², default 600–1200).

    Examples
    --------
    >>> b_range_flags([0, 400, 800])
    []
    >>> b_range_flags([0, 1500])[0].message
    'Highest b-value used 1500 s/mm², outside 600–1200 s/mm² assumed by the reference values.'
    """
    b = np.asarray(list(bvals_used), float)
    if b.size == 0:
        return []
    bmax = float(b.max())
    lo, hi = reference
    if lo <= bmax <= hi:
        return []
    return [QCFlag("b_range", "info",
                   f"Highest b-value used {bmax:g} s/mm², outside {lo:g}–{hi:g} s/mm² assumed by the "
                   "reference values.", bmax, float(hi if bmax > hi else lo), "s/mm²",
                   "ADC depends on the b-values: compare with literature values measured at similar b.",
                   "series")]


def motion_flags(b0_volumes: ArrayLike, mask: ArrayLike | None = None, *,
                 limit: float = MIN_B0_CORRELATION) -> list[QCFlag]:
    """Flag motion between b=0 volumes: lowest Pearson correlation with the first b=0 volume.

    Parameters
    ----------
    b0_volumes : array_like, shape (X, Y, Z, N)
        The b=0 volumes (N ≥ 2; fewer: no check).
    mask : bool array (X, Y, Z), optional
        Voxels compared (the body); default every voxel.
    limit : float, optional

    Examples
    --------
    >>> rng = np.random.default_rng(0); a = rng.random((8, 8, 4)) * 100
    >>> motion_flags(np.stack([a, a + rng.normal(0, 1, a.shape)], -1))
    []
    >>> motion_flags(np.stack([a, np.roll(a, 3, 0)], -1))[0].code
    'motion'
    """
    v = np.asarray(b0_volumes, float)
    if v.ndim != 4 or v.shape[-1] < 2:
        return []
    m = np.ones(v.shape[:3], bool) if mask is None else np.asarray(mask, bool)
    ref = v[..., 0][m]
    corrs = [float(np.corrcoef(ref, v[..., k][m])[0, 1]) for k in range(1, v.shape[-1])]
    worst = min(corrs)
    if not math.isfinite(worst) or worst >= limit:
        return []
    return [QCFlag("motion", "warning",
                   f"b=0 volumes correlate down to r = {worst:.3f} (limit {limit:.2f}): possible motion.",
                   _round(worst, 3), float(limit), "1",
                   "Look at the b=0 volumes for movement; consider motion correction before fitting.",
                   "series")]


def _adc_agreement(adc: ArrayLike, scanner_adc: ArrayLike, mask: ArrayLike | None) -> tuple[int, float, float, float]:
    """(voxels compared, median ours, median scanner's, median relative difference) in the mask, mm²/s."""
    a, s = np.asarray(adc, float), np.asarray(scanner_adc, float)
    m = np.isfinite(a) & np.isfinite(s) & (s > 0)
    if mask is not None:
        m &= np.asarray(mask, bool)
    if not m.any():
        return 0, math.nan, math.nan, math.nan
    return (int(m.sum()), float(np.median(a[m])), float(np.median(s[m])),
            float(np.median((a[m] - s[m]) / s[m])))


def scanner_adc_agreement(adc: ArrayLike, scanner_adc: ArrayLike,
                          regions: Sequence[tuple[str, ArrayLike]]) -> list[dict[str, Any]]:
    """Our ADC against the scanner's ADC map, region by region (both mm²/s, same grid).

    Per region: the voxels compared (both values finite, scanner value > 0), the median of each
    map in mm²/s and the median voxel-wise relative difference ``(ours − scanner) / scanner``
    in %. A region without comparable voxels gets ``n_voxels = 0`` and empty values.

    Parameters
    ----------
    adc, scanner_adc : array_like (X, Y, Z)
        mm²/s.
    regions : sequence of (label, bool array (X, Y, Z))

    Examples
    --------
    >>> ours = np.full((4, 4, 4), 1.0e-3); roi = np.zeros((4, 4, 4), bool); roi[1, 1, :] = True
    >>> scanner_adc_agreement(ours, ours / 1.05, [("L5 left", roi)])[0]["median_rel_diff_pct"]
    5.0
    """
    out = []
    for label, m in regions:
        n, ma, ms, rel = _adc_agreement(adc, scanner_adc, m)
        out.append({"region": str(label), "n_voxels": n, "median_adc": _round(ma, 9),
                    "median_scanner_adc": _round(ms, 9), "unit": "mm^2/s",
                    "median_rel_diff_pct": _round(100.0 * rel, 2)})
    return out


def scanner_adc_flags(adc: ArrayLike, scanner_adc: ArrayLike, mask: ArrayLike | None = None, *,
                      limit: float = MAX_SCANNER_ADC_DIFF, subject: str = "body") -> list[QCFlag]:
    """Flag disagreement between our ADC and the scanner's ADC map (both mm²/s, same grid).

    The measure is ``|median((ours − scanner) / scanner)|`` over the mask voxels where both are
    finite and the scanner ADC is positive.

    Parameters
    ----------
    adc, scanner_adc : array_like (X, Y, Z)
        mm²/s (a scanner map stored in ×10⁻⁶ mm²/s must be scaled first).
    mask : bool array (X, Y, Z), optional
        Voxels compared (the ROIs, or the body); default every voxel.
    limit : float, optional
        Largest tolerated absolute median relative difference (default 0.10).
    subject : str, optional
        What the mask is (``"ROIs"``, ``"body"``), for the message.

    Examples
    --------
    >>> ours = np.full((4, 4, 4), 1.0e-3)
    >>> scanner_adc_flags(ours, ours * 1.02)
    []
    >>> scanner_adc_flags(ours, ours * 1.25)[0].measured
    20.0
    """
    n, ma, ms, rel = _adc_agreement(adc, scanner_adc, mask)
    if not n or abs(rel) <= limit:
        return []
    return [QCFlag("scanner_adc", "warning",
                   f"{subject}: our ADC differs from the scanner's ADC map by {_pct(abs(rel))} % (median "
                   f"{ma * 1e3:.2f} vs {ms * 1e3:.2f} ×10⁻³ mm²/s over {n} voxels; limit {_pct(limit)} %).",
                   _pct(abs(rel)), _pct(limit), "%",
                   "Check that both maps use the same b-values (the scanner fits every b it acquired; "
                   "see the b-value range of the fit), the scanner map's scaling (often ×10⁻⁶ mm²/s) "
                   "and that it belongs to this DWI series.", subject)]


def roi_side(label: str) -> str | None:
    """The side named in an ROI label (``"L5 left ganglion"`` → ``"left"``), else None.

    Examples
    --------
    >>> roi_side("L5 right ganglion"), roi_side("L5 ganglion")
    ('right', None)
    """
    words = str(label).lower().replace("_", " ").split()
    for side in ("left", "right"):
        if side in words:
            return side
    return None


def side_label_flags(
    roi_masks: Sequence[tuple[str, ArrayLike]],
    affine: ArrayLike,
    *,
    midline_x: float | None = None,
    body_mask: ArrayLike | None = None,
) -> list[QCFlag]:
    """Flag ROIs whose side label disagrees with their position relative to the midline.

    In RAS+ world coordinates (mm) +x points to the patient's right: a left ROI has its centre at
    ``x < midline``. The midline is
    `midline_x` (the ROI set's mid-sagittal plane) when given, else the x centre of the body
    mask's bounding box, else the image centre.

    Parameters
    ----------
    roi_masks : sequence of (label, bool array (X, Y, Z))
        Labels naming ``left`` or ``right``; others are not checked.
    affine : array_like (4, 4)
        Voxel → RAS+ mm.
    midline_x : float, optional
        World x (mm) of the mid-sagittal plane.
    body_mask : bool array, optional

    Examples
    --------
    >>> m = np.zeros((10, 4, 4), bool); m[1:3, 1, 1] = True     # x = 1.5 mm: the patient's left
    >>> side_label_flags([("L5 left", m)], np.eye(4))                   # midline: image centre x = 4.5
    []
    >>> [f.message for f in side_label_flags([("L5 right", m)], np.eye(4))]
    ['L5 right: labelled right but its centre lies 3.0 mm to the left of the midline (x = 4.5 mm).']
    """
    A = np.asarray(affine, float)
    shape = None
    out = []
    for label, m in roi_masks:
        m = np.asarray(m, bool)
        side = roi_side(label)
        if side is None or not m.any():
            continue
        shape = m.shape
        if midline_x is None:
            midline_x = _midline(A, shape, body_mask)
        ijk = np.argwhere(m).mean(axis=0)
        x = float((A @ np.r_[ijk, 1.0])[0])
        offset = x - midline_x                        # > 0: patient's right (RAS+)
        actual = "right" if offset > 0 else "left"
        if offset != 0 and actual != side:
            out.append(QCFlag("side_mismatch", "error",
                              f"{label}: labelled {side} but its centre lies {abs(offset):.1f} mm to the "
                              f"{actual} of the midline (x = {midline_x:.1f} mm).",
                              round(offset, 1), 0.0, "mm",
                              "Check the ROI's side label and the image orientation (RAS+: +x = right); "
                              "a swapped side inverts the comparison.", str(label)))
    return out


def _midline(affine: np.ndarray, shape: tuple[int, ...], body_mask: ArrayLike | None) -> float:
    """World x (mm) of the body's (or the image's) centre."""
    if body_mask is not None and np.asarray(body_mask, bool).any():
        idx = np.argwhere(np.asarray(body_mask, bool))
        centre = (idx.min(axis=0) + idx.max(axis=0)) / 2.0
    else:
        centre = (np.asarray(shape[:3], float) - 1.0) / 2.0
    return float((affine @ np.r_[centre, 1.0])[0])
