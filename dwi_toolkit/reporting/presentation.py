"""One place for how numbers, units and codes are shown to a person.

Rules (documented in ``docs/report.md``, "Rounding and units"):

==========================  ===============================  =========================
quantity                    shown as                          rounding
==========================  ===============================  =========================
diffusivity (ADC, MD ...)   ×10⁻³ mm²/s                       0.01 (2 decimals)
volume                      mm³                               0.1
percentages, indices        %                                 0.1 (signed for differences)
SNR, ratios                 (dimensionless)                   0.1
b-values                    s/mm²                             1
voxel counts                voxels                            1
FA and other unitless maps  (dimensionless)                   0.001
==========================  ===============================  =========================

Units are typeset once (``s/mm²``, ``×10⁻³ mm²/s``, ``mm³``) whatever the spelling of the source
(``mm^2/s``, ``s/mm^2``); an empty value is shown as ``–`` without a unit. Machine codes
(``no_asymmetry``, ``R-DISC-6W``, ``kovacs2013_risk_factors_present``) get readable labels through
:func:`label`; report.json and the CSV files keep the codes and full precision.

The table helpers (:func:`aligned_table`, :func:`records_to_csv`, :func:`comparison_str`,
:func:`entrapment_str`) give result objects a readable ``str`` and a ``to_csv`` without pandas.

Examples
--------
>>> fmt(0.0012777, "mm^2/s"), fmt(95.99999999999999, "mm^3"), fmt(3.806, "%", signed=True)
('1.28', '96.0', '+3.8')
>>> with_unit(0.0012777, "mm^2/s"), with_unit(None, "s/mm^2")
('1.28 ×10⁻³ mm²/s', '–')
>>> label("no_asymmetry"), label("kovacs2013_risk_factors_present")
('no asymmetry', 'Kovacs 2013 risk factors present')
"""

from __future__ import annotations

import csv
import io
import math
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

__all__ = [
    "EMPTY",
    "DISPLAY_UNITS",
    "LABELS",
    "display_unit",
    "fmt",
    "with_unit",
    "fmt_interval",
    "label",
    "prose",
    "aligned_table",
    "records_to_csv",
    "comparison_records",
    "comparison_str",
    "comparison_to_csv",
    "entrapment_str",
    "clean_number",
]

_NUMBER = re.compile(r"^[+−-]?\d+(\.\d+)?$")

#: What an empty value shows.
EMPTY = "–"

_DIFFUSIVITY = ("mm^2/s", "mm²/s", "mm2/s")

#: Source unit spelling → displayed unit.
DISPLAY_UNITS: dict[str, str] = {
    "mm^2/s": "×10⁻³ mm²/s", "mm²/s": "×10⁻³ mm²/s", "mm2/s": "×10⁻³ mm²/s",
    "s/mm^2": "s/mm²", "s/mm2": "s/mm²", "mm^3": "mm³", "mm3": "mm³", "1": "", "a.u.": "a.u.",
    "%": "%", "voxels": "voxels", "mm": "mm", "s": "s", "T": "T", "deg": "°",
}

#: Readable labels of codes used in results (classes, reasons, flags, fields).
LABELS: dict[str, str] = {
    "no_asymmetry": "no asymmetry",
    "concordant": "asymmetry on the symptomatic side",
    "discordant": "asymmetry against the expected direction",
    "indeterminate": "indeterminate",
    "appropriate": "appropriate",
    "uncertain": "uncertain",
    "inappropriate": "not indicated",
    "below_threshold": "difference and interval within the threshold",
    "ci_spans_zero": "interval includes no difference",
    "ci_straddles_threshold": "interval crosses the threshold",
    "asymmetry_at_suspected_level": "asymmetry at a clinically suspected level",
    "asymmetry_at_unsuspected_level": "asymmetry at a level not suspected clinically",
    "no_asymmetry_at_suspected_level": "no asymmetry at the suspected level",
    "no_symptomatic_side": "symptomatic side not recorded",
    "level_not_measured": "level not measured",
    "no_interval": "no interval (too few voxels)",
    "too_small": "too few voxels",
    "noisy": "noisy (high variation)",
    "missing_side": "a side without usable voxels",
    "rel_diff_pct": "relative difference",
    "asymmetry_index_pct": "asymmetry index",
    "abs_asymmetry_index_pct": "absolute asymmetry index",
    "ratio_pct": "ratio",
    "adc": "ADC", "fa": "FA", "md": "MD", "rd": "RD", "ad": "AD",
    "kovacs2013": "Kovacs 2013 (stenosis: 12 weeks)",
    "acr2021": "ACR 2021 (stenosis: 6 weeks)",
    "present": "present", "absent": "absent", "unknown": "not recorded",
    "higher": "higher", "lower": "lower", "equal": "equal",
    "yes": "yes", "no": "no",
    # run parameters (provenance) and QC facts
    "b_min": "lowest b-value", "b_max": "highest b-value", "b0_threshold": "b=0 threshold",
    "threshold_pct": "asymmetry threshold", "n_boot": "bootstrap resamples", "ci": "interval level",
    "min_voxels": "minimum voxels per side", "max_cv": "largest coefficient of variation",
    "csf_threshold": "CSF threshold (voxels above excluded)", "snr_warn": "SNR limit",
    "mask_voxels": "voxels in the analysis mask", "mask": "analysis mask", "dti": "DTI fitted",
    "seed": "random seed", "method": "fit method", "bvals_used": "b-values used",
    "track": "root tractography", "track_origins": "dural junctions set by hand (file)",
    "analysis_mask": "analysis mask", "excluded_voxels": "excluded voxels (all ROIs)",
    "included_voxels": "included voxels (all ROIs)", "symptomatic_side_source": "symptomatic side from",
    "fit_failed_roi": "fit failures in an ROI", "fit_failed_body": "fit failures in the body",
    "low_snr": "low SNR", "too_few_voxels": "too few voxels", "b_range": "b-value range",
    "motion": "motion between b=0 volumes", "scanner_adc": "scanner ADC disagreement",
    "side_mismatch": "ROI side label against position",
    "gradient_table": "gradient table", "MISSING": "missing data",
    "noise_correlation_unknown": "noise correlation unknown", "no_voxel_values": "no voxel values",
    "no_parameter_significant_after_holm": "no parameter significant after Holm correction", "not_covered": "not covered",
    "roi_outside_mask": "ROI outside the analysis mask", "no_signal": "no signal in the image",
    "no_attenuation": "no diffusion weighting in the image",
    "scanner_adc_source": "scanner ADC map", "midsagittal_x_mm": "mid-sagittal plane x (mm)",
    "auto": "body (automatic)", "wls": "weighted least squares", "ols": "ordinary least squares",
    "nls": "non-linear least squares", "clinical.radicular_side": "clinical input (radicular side)",
}

_WORDS = {"adc": "ADC", "fa": "FA", "md": "MD", "ci": "CI", "csf": "CSF", "snr": "SNR", "roi": "ROI",
          "rois": "ROIs", "mri": "MRI", "acr": "ACR", "kovacs2013": "Kovacs 2013", "acr2021": "ACR 2021",
          "pct": "%", "mm3": "(mm³)", "nice": "NICE", "ces": "cauda equina"}


def display_unit(unit: str | None) -> str:
    """The unit as shown (``"mm^2/s"`` → ``"×10⁻³ mm²/s"``; ``"1"``/None → ``""``).

    Examples
    --------
    >>> display_unit("s/mm^2"), display_unit("1"), display_unit(None)
    ('s/mm²', '', '')
    """
    if not unit:
        return ""
    return DISPLAY_UNITS.get(unit, unit)


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _decimals(unit: str | None) -> tuple[float, int]:
    """(display scale, decimals) for a source unit."""
    if unit in _DIFFUSIVITY:
        return 1e3, 2
    if unit in ("mm^3", "mm³", "mm3", "%", "1", "snr", "mm"):
        return 1.0, 1
    if unit in ("s/mm^2", "s/mm²", "voxels", "bytes"):
        return 1.0, 0
    if unit == "fraction":
        return 1.0, 3
    return 1.0, 3


def fmt(value: Any, unit: str | None = None, *, signed: bool = False) -> str:
    """A number rounded for its quantity (see the module table), without the unit.

    Parameters
    ----------
    value : number or None
        In the source unit (ADC in mm²/s: shown ×10⁻³).
    unit : str, optional
        Source unit (``"mm^2/s"``, ``"mm^3"``, ``"%"``, ``"s/mm^2"``, ``"voxels"``, ``"1"`` ...).
    signed : bool, optional
        Always show the sign (differences).

    Examples
    --------
    >>> fmt(None), fmt(float("nan"), "%"), fmt(12, "voxels"), fmt(800.0, "s/mm^2")
    ('–', '–', '12', '800')
    >>> fmt(-0.13, "%", signed=True), fmt(0.45678, "fraction")
    ('−0.1', '0.457')
    """
    if not _finite(value):
        return EMPTY
    scale, nd = _decimals(unit)
    if isinstance(value, int) and scale == 1.0 and unit not in ("%", "mm^3", "mm³", "mm3", "fraction"):
        nd = 0  # counts and other integers stay integers
    x = round(float(value) * scale, nd)
    if x == 0:
        x = 0.0  # no "-0.0"
    text = f"{x:+.{nd}f}" if signed else f"{x:.{nd}f}"
    return text.replace("-", "−")


def with_unit(value: Any, unit: str | None, *, signed: bool = False) -> str:
    """:func:`fmt` plus the displayed unit; an empty value carries no unit.

    Examples
    --------
    >>> with_unit(96.0, "mm^3"), with_unit(float("nan"), "mm^3"), with_unit(40.01, "1")
    ('96.0 mm³', '–', '40.0')
    """
    text = fmt(value, unit, signed=signed)
    u = display_unit(unit)
    if text == EMPTY or not u:
        return text
    return f"{text} %" if u == "%" else f"{text} {u}"


def fmt_interval(low: Any, high: Any, unit: str | None = None, *, signed: bool = False) -> str:
    """An interval as ``low to high`` (``–`` when either end is missing).

    Examples
    --------
    >>> fmt_interval(-0.131, 7.45, "%", signed=True), fmt_interval(None, 1.0)
    ('−0.1 to +7.5', '–')
    """
    if not (_finite(low) and _finite(high)):
        return EMPTY
    return f"{fmt(low, unit, signed=signed)} to {fmt(high, unit, signed=signed)}"


def _rule_titles() -> dict[str, str]:
    try:
        from ..clinical.indication import load_rule_table
    except ImportError:  # pragma: no cover
        return {}
    return {r["id"]: r.get("title", r["id"]) for r in load_rule_table().get("rules", [])}


def label(code: Any) -> str:
    """A readable label for a clinical, rule, flag or field code (unknown codes are humanised).

    Rule codes (``R-DISC-6W``) take their title from the packaged rule table; other codes come
    from :data:`LABELS` or are humanised (underscores to spaces, known abbreviations upper-cased).

    Examples
    --------
    >>> label("R-CES"), label("ci_spans_zero"), label("prescriber_orthopaedic_neurosurgery_or_primary_care")
    ('Cauda equina signs', 'interval includes no difference', 'Prescriber orthopaedic neurosurgery or primary care')
    >>> label(None), label(True), label("MagneticFieldStrength")
    ('–', 'yes', 'Magnetic field strength')
    """
    if code is None or code == "":
        return EMPTY
    if isinstance(code, bool):
        return "yes" if code else "no"
    text = str(code)
    if text in LABELS:
        return LABELS[text]
    if text.startswith("R-"):
        return _rule_titles().get(text, text)
    if "_" not in text and text.islower() and text not in _WORDS:
        return text
    if "_" not in text and " " not in text and text[:1].isupper() and not text.isupper():
        text = re.sub(r"(?<=[a-z])(?=[A-Z])", "_", text).lower()       # BIDS CamelCase keys
    words = [_WORDS.get(w, w) for w in text.split("_") if w]
    out = " ".join(words)
    return out[:1].upper() + out[1:] if out else text


_CODE = re.compile(r"(?<![\w./-])[a-z][a-z0-9]*(?:_[a-z0-9]+)+(?![\w-]|\.\w)")


def prose(text: Any) -> str:
    """Replace machine code words (``rel_diff_pct``, ``referred_pain``) inside a sentence by labels.

    File names (``side_comparison.csv``) are left alone.

    Examples
    --------
    >>> prose("rel_diff_pct +3.8 %; see side_comparison.csv (referred_pain is false).")
    'relative difference +3.8 %; see side_comparison.csv (Referred pain is false).'
    """
    return _CODE.sub(lambda m: label(m.group(0)), "" if text is None else str(text))


def clean_number(value: Any, ndigits: int = 6) -> Any:
    """Round away binary-float artefacts of exact quantities (95.99999999999999 → 96.0).

    Examples
    --------
    >>> clean_number(95.99999999999999), clean_number(3), clean_number(None)
    (96.0, 3, None)
    """
    if isinstance(value, float) and math.isfinite(value):
        return round(value, ndigits)
    return value


def aligned_table(records: Sequence[Mapping[str, Any]], columns: Sequence[str],
                  headers: Mapping[str, str] | None = None,
                  formatters: Mapping[str, Callable[[Any], str]] | None = None) -> str:
    """A plain-text table with aligned columns (numbers right-aligned).

    Examples
    --------
    >>> aligned_table([{"level": "L5", "n": 12}, {"level": "S1", "n": 3}], ["level", "n"]).splitlines()
    ['level   n', 'L5     12', 'S1      3']
    """
    headers = headers or {}
    formatters = formatters or {}
    cells = [[formatters[c](r.get(c)) if c in formatters else
              (EMPTY if r.get(c) is None or r.get(c) == "" else str(r.get(c))) for c in columns]
             for r in records]
    head = [headers.get(c, c) for c in columns]
    widths = [max([len(head[j])] + [len(row[j]) for row in cells]) for j in range(len(columns))]

    def numeric(j: int) -> bool:
        vals = [row[j] for row in cells if row[j] != EMPTY]
        return bool(vals) and all(_NUMBER.match(v) for v in vals)

    right = [numeric(j) for j in range(len(columns))]

    def line(vals: Sequence[str]) -> str:
        return "  ".join(v.rjust(w) if r else v.ljust(w) for v, w, r in zip(vals, widths, right)).rstrip()

    return "\n".join([line(head)] + [line(row) for row in cells])


def records_to_csv(records: Sequence[Mapping[str, Any]], path: Any = None) -> str:
    """CSV text of records (machine precision, float artefacts cleaned, empty for None/NaN).

    Writes `path` atomically too when given.

    Examples
    --------
    >>> records_to_csv([{"a": 95.99999999999999, "b": None}])
    'a,b\\n96.0,\\n'
    """
    buf = io.StringIO()
    if records:
        cols = list(dict.fromkeys(k for r in records for k in r))
        w = csv.DictWriter(buf, fieldnames=cols, lineterminator="\n")
        w.writeheader()
        for r in records:
            w.writerow({k: ("" if v is None or (isinstance(v, float) and not math.isfinite(v))
                            else clean_number(v, 12)) for k, v in r.items()})
    text = buf.getvalue()
    if path is not None:
        from ..io._atomic import atomic_write_text

        atomic_write_text(path, text)
    return text


def detectable_pct(row: Any) -> float | None:
    """The row's smallest detectable difference in % (``detectable_pct``), None when absent or NaN.

    Examples
    --------
    >>> from types import SimpleNamespace as NS
    >>> detectable_pct(NS(detectable_pct=12.34)), detectable_pct(NS(detectable_pct=float("nan")))
    (12.34, None)
    """
    v = getattr(row, "detectable_pct", None)
    try:
        v = float(v)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def comparison_records(comparison: Any) -> list[dict[str, Any]]:
    """Display rows of a side comparison: one per level/segment/parameter, values as text.

    Columns: ``level``, ``segment``, ``parameter``, ``left``, ``right`` (value with interval, in
    display units), ``difference`` (relative difference in % with interval), ``detectable``
    (smallest detectable difference in %, when the comparison carries it), ``n`` and ``flags``.

    Examples
    --------
    >>> from types import SimpleNamespace as NS
    >>> row = NS(level="L5", segment="ganglion", parameter="adc", unit="mm^2/s", value_left=1.6e-3,
    ...          value_right=1.3e-3, left_ci_low=1.5e-3, left_ci_high=1.7e-3, right_ci_low=1.2e-3,
    ...          right_ci_high=1.4e-3, rel_diff_pct=23.1, rel_diff_pct_ci_low=10.2,
    ...          rel_diff_pct_ci_high=35.0, n_left=12, n_right=11, flags=())
    >>> comparison_records(NS(rows=[row]))[0]["left"]
    '1.60 (1.50 to 1.70)'
    """
    out = []
    for r in getattr(comparison, "rows", ()):
        unit = getattr(r, "unit", None)
        g = lambda k: getattr(r, k, None)  # noqa: E731
        det = detectable_pct(r)
        out.append({
            "level": g("level"), "segment": g("segment"), "parameter": label(g("parameter")),
            "unit": display_unit(unit),
            "left": _value_ci(g("value_left"), g("left_ci_low"), g("left_ci_high"), unit),
            "right": _value_ci(g("value_right"), g("right_ci_low"), g("right_ci_high"), unit),
            "difference": (_value_ci(g("rel_diff_pct"), g("rel_diff_pct_ci_low"), g("rel_diff_pct_ci_high"),
                                     "%", signed=True) if g("rel_diff_pct") is not None
                           else _unsigned(g("abs_asymmetry_index_pct"))),
            "detectable": fmt(det, "%") if det is not None else None,
            "n": f"{g('n_left') or 0}/{g('n_right') or 0}",
            "flags": ", ".join(label(f) for f in _flag_list(g("flags"))) or None,
        })
    return out


def _unsigned(v: Any) -> str:
    """|L − R| / mean in % when the symptomatic side is unknown (marked with |…|)."""
    text = fmt(v, "%")
    return text if text == EMPTY else f"|{text}|"


def _flag_list(flags: Any) -> list[str]:
    if not flags:
        return []
    if isinstance(flags, str):
        return [f for f in flags.replace(";", ",").split(",") if f.strip()]
    return [str(f) for f in flags]


def _value_ci(v: Any, lo: Any, hi: Any, unit: str | None, *, signed: bool = False) -> str:
    text = fmt(v, unit, signed=signed)
    ci = fmt_interval(lo, hi, unit, signed=signed)
    return text if ci == EMPTY or text == EMPTY else f"{text} ({ci})"


def comparison_str(comparison: Any) -> str:
    """Aligned plain-text table of a side comparison in display units (hook for ``__str__``).

    Examples
    --------
    >>> from types import SimpleNamespace as NS
    >>> row = NS(level="L5", segment="ganglion", parameter="adc", unit="mm^2/s", value_left=1.6e-3,
    ...          value_right=1.3e-3, rel_diff_pct=23.1, n_left=12, n_right=11, flags=())
    >>> comparison_str(NS(rows=[row], symptomatic_side="left")).splitlines()  # doctest: +NORMALIZE_WHITESPACE
    ['Side comparison (symptomatic side: left; values ×10⁻³ mm²/s, 95 % intervals)',
     'level  segment   parameter  left  right  difference (%)  n',
     'L5     ganglion  ADC        1.60  1.30   +23.1           12/11']
    """
    recs = comparison_records(comparison)
    cols = ["level", "segment", "parameter", "left", "right", "difference"]
    if any(r["detectable"] is not None for r in recs):
        cols.append("detectable")
    cols.append("n")
    if any(r["flags"] for r in recs):
        cols.append("flags")
    units = sorted({r["unit"] for r in recs if r["unit"]})
    side = getattr(comparison, "symptomatic_side", None) or "unknown"
    head = (f"Side comparison (symptomatic side: {side}; values {', '.join(units) or 'as measured'}, "
            "95 % intervals)")
    return head + "\n" + aligned_table(recs, cols, {"difference": "difference (%)",
                                                    "detectable": "detectable (%)"})


def comparison_to_csv(comparison: Any, path: Any = None) -> str:
    """CSV of a comparison's machine records (``to_records()``), no pandas (hook for ``to_csv``).

    Examples
    --------
    >>> from types import SimpleNamespace as NS
    >>> comparison_to_csv(NS(to_records=lambda: [{"level": "L5", "volume_mm3": 95.99999999999999}]))
    'level,volume_mm3\\nL5,96.0\\n'
    """
    return records_to_csv(comparison.to_records(), path)


def entrapment_str(assessment: Any) -> str:
    """Aligned plain-text table of an entrapment assessment, classes in words (hook for ``__str__``).

    Examples
    --------
    >>> from types import SimpleNamespace as NS
    >>> lv = NS(level="L5", segment="ganglion", classification="concordant", index_value=23.14,
    ...         ci_low=10.2, ci_high=35.0, suspected=True, reasons="asymmetry_at_suspected_level")
    >>> text = entrapment_str(NS(levels=[lv], parameter="adc", threshold_pct=10.0)).splitlines()
    >>> text[0]
    'Entrapment assessment (ADC, threshold ±10.0 %, not a diagnostic cut-off)'
    >>> text[2].split("  ")[0], "asymmetry on the symptomatic side" in text[2]
    ('L5', True)
    """
    recs = [{
        "level": lv.level, "segment": getattr(lv, "segment", None),
        "difference": _value_ci(lv.index_value, lv.ci_low, lv.ci_high, "%", signed=True),
        "suspected": label(bool(getattr(lv, "suspected", False))),
        "class": label(lv.classification),
        "reason": "; ".join(label(x) for x in _flag_list(getattr(lv, "reasons", None))) or None,
    } for lv in getattr(assessment, "levels", ())]
    head = (f"Entrapment assessment ({label(getattr(assessment, 'parameter', 'adc'))}, threshold "
            f"±{fmt(getattr(assessment, 'threshold_pct', None), '%')} %, not a diagnostic cut-off)")
    return head + "\n" + aligned_table(recs, ["level", "segment", "difference", "suspected", "class", "reason"],
                                       {"difference": "difference (%)"})
