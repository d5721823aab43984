"""Nerve-root entrapment assessment: is the measured asymmetry where the clinical picture says?

This module does **not** diagnose. Nerve-root DWI is a research technique and no guideline or
meta-analysis endorses an ADC or FA cut-off for entrapment (``dwi_toolkit References §0``, §2.8,
§4). It answers a narrower, checkable question for each measured level: *is there a side-to-side
difference of at least a user-chosen size, whose confidence interval excludes zero, on the
clinically symptomatic side, at a clinically suspected level?*

Classes (per level × segment of one parameter, ADC by default):

``concordant``
    Asymmetry at least ``threshold_pct`` with the interval of the difference excluding zero, at a
    level listed in ``suspected_levels`` (or at any level when no levels were recorded).
``discordant``
    The finding and the clinical picture disagree: asymmetry at a level that is *not* suspected,
    or a suspected level whose whole interval lies inside ±``threshold_pct`` (no asymmetry of that
    size).
``no_asymmetry``
    A level that is not suspected, with the whole interval inside ±``threshold_pct``.
``indeterminate``
    Cannot be judged: no single symptomatic side, level not measured, a side missing or too small,
    no voxel values for an interval, the interval spans zero although the point estimate reaches
    the threshold (``ci_spans_zero``), or the interval reaches the threshold although the point
    estimate does not (``ci_straddles_threshold``).

The direction of change is reported as measured (higher/lower on the symptomatic side) next to
the direction reported in meta-analyses (``dwi_toolkit References §2.2``: compressed roots show
higher ADC/MD and lower FA), which is never used to decide the class: single studies disagree on
ADC (Wu 2016; the 45-patient study, §2.3).
"""

from __future__ import annotations

import dataclasses
import html
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..analysis.power import holm
from ..errors import InputDataError

__all__ = [
    "CLASSES",
    "DEFAULT_THRESHOLD_PCT",
    "LITERATURE_DIRECTION",
    "LevelAssessment",
    "EntrapmentAssessment",
    "assess_entrapment",
]

logger = logging.getLogger(__name__)

CLASSES = ("concordant", "discordant", "no_asymmetry", "indeterminate")

#: Default threshold on the side difference, in % of the chosen index [D]. NOT a diagnostic
#: cut-off: none is endorsed (dwi_toolkit References §2.8, §4). It is set just above the 95 % limits
#: of agreement of ADC measurement bias across scanners (9 %, Moore 2025) and the day-to-day ADC
#: repeatability in phantoms (≤ 4.5 %, Malyarenko 2013), dwi_toolkit References §1.5, so that a
#: difference below it is within plausible measurement variation. Change it to suit the protocol.
DEFAULT_THRESHOLD_PCT = 10.0

#: Direction of change on the compressed side reported by meta-analyses (dwi_toolkit References
#: §2.2) — an expectation to report next to the measurement, never a rule.
LITERATURE_DIRECTION = {
    "adc": "higher", "md": "higher", "ad": "higher", "rd": "higher", "fa": "lower",
}
_LITERATURE_SOURCE = ("meta-analyses Liang 2021 (Eur Spine J 30:818) and Wang (PLoS One e0279499), "
                      "dwi_toolkit References §2.2")

_INDICES = ("rel_diff_pct", "asymmetry_index_pct")
#: Parameters of ``parameter="combined"``, in order (those present in the comparison are used).
COMBINED_PARAMETERS = ("adc", "fa", "md", "rd")

#: Statement added when the MRI was not indicated (dwi_toolkit References §3.5, §3.6, §3.9, §6).
NOT_INDICATED_STATEMENT = (
    "The lumbar MRI was classified as not indicated by guideline criteria (rule set v1, "
    "dwi_toolkit References §3.10). In patients without red flags or a surgical/interventional "
    "indication, imaging findings rarely change management: NICE NG59 advises imaging in specialist "
    "care only if the result is likely to change management (§3.5), ACP 2011 recommends no imaging "
    "in that situation (§3.6), Kovacs 2013 counts such requests as inappropriate (§3.8), repeated "
    "pre-operative MRI added little (Dybvik 2023, §3.9), and "
    "early MRI was linked to longer disability (Webster 2013, §6). Read the findings below with "
    "that in mind."
)
NOT_INDICATED_REFERENCES = ("NICE-NG59-2016/2020", "ACP-Chou2011-AnnInternMed", "Dybvik2023-IJSS",
                            "Kovacs2013-EurJRadiol", "Webster2013-Spine")


@dataclass(frozen=True)
class LevelAssessment:
    """Assessment of one level × segment.

    Attributes
    ----------
    classification : {"concordant", "discordant", "no_asymmetry", "indeterminate"}
    reasons : tuple of str
        Machine-readable reasons (``"asymmetry_at_suspected_level"``, ``"ci_spans_zero"``,
        ``"too_small"``, ``"no_symptomatic_side"``, ``"level_not_measured"`` ...).
    index_value, ci_low, ci_high : float
        The chosen index (``index``) and its confidence interval, in %.
    direction : {"higher", "lower", "equal", None}
        Measured: the symptomatic-side value relative to the contralateral one.
    literature_direction : {"higher", "lower", None}
        Expected on a compressed root per meta-analyses (§2.2); None for parameters without one.
    matches_literature_direction : bool or None
    suspected : bool or None
        Level listed in the clinical ``suspected_levels``; None when those were not recorded.
    statement : str
        Plain-language account of what was measured.

    Examples
    --------
    >>> import numpy as np
    >>> from dwi_toolkit.analysis.compare import compare_sides
    >>> from dwi_toolkit.analysis.roi_stats import roi_stats
    >>> from dwi_toolkit.core.image import ParameterMap
    >>> from dwi_toolkit.roi.model import RootROI, Sphere
    >>> adc = np.full((20, 10, 10), 1.2e-3); adc[:10] = 1.5e-3
    >>> rois = [RootROI("L5", "left", shape=Sphere([5, 5, 5], 2.5)), RootROI("L5", "right", shape=Sphere([14, 5, 5], 2.5))]
    >>> cmp = compare_sides(roi_stats(ParameterMap(adc, np.eye(4), "adc", "mm^2/s"), rois), symptomatic_side="left", n_boot=100)
    >>> lv = assess_entrapment(cmp, {"radicular_side": "left", "suspected_levels": ["L5"]}).get("L5")
    >>> lv.classification, lv.reasons, lv.direction
    ('concordant', ('asymmetry_at_suspected_level',), 'higher')
    """

    level: str
    segment: str
    parameter: str
    unit: str
    classification: str
    reasons: tuple[str, ...]
    index: str
    index_value: float
    ci_low: float
    ci_high: float
    threshold_pct: float
    xs: float
    xc: float
    difference: float
    difference_ci_low: float
    difference_ci_high: float
    n_s: int
    n_c: int
    direction: str | None
    literature_direction: str | None
    matches_literature_direction: bool | None
    suspected: bool | None
    flags: tuple[str, ...]
    statement: str
    p_value: float = math.nan
    p_holm: float = math.nan
    components: tuple[str, ...] = ()

    def to_record(self) -> dict[str, Any]:
        """A flat dict (reasons, flags and components joined by ``;``) for JSON/CSV."""
        rec = dataclasses.asdict(self)
        rec["reasons"] = ";".join(self.reasons)
        rec["flags"] = ";".join(self.flags)
        rec["components"] = ";".join(self.components)
        return rec


#: Units of the fields of LevelAssessment (``"{unit}"`` = the row's unit).
FIELD_UNITS: dict[str, str | None] = {
    "index_value": "%", "ci_low": "%", "ci_high": "%", "threshold_pct": "%",
    "xs": "{unit}", "xc": "{unit}", "difference": "{unit}", "difference_ci_low": "{unit}",
    "difference_ci_high": "{unit}", "n_s": "voxels", "n_c": "voxels", "p_value": "1", "p_holm": "1",
}


@dataclass(frozen=True)
class EntrapmentAssessment:
    """Result of :func:`assess_entrapment`.

    Attributes
    ----------
    levels : tuple of LevelAssessment
    statements : tuple of str
        Plain-language summary statements (first: what was measured and how; then any
        indication-related statement; then per-level statements).
    caveats : tuple of str
    references : tuple of str
        Citation keys (dwi_toolkit References §5) of statements made.

    Examples
    --------
    >>> import numpy as np
    >>> from dwi_toolkit.analysis.compare import compare_sides
    >>> from dwi_toolkit.analysis.roi_stats import roi_stats
    >>> from dwi_toolkit.core.image import ParameterMap
    >>> from dwi_toolkit.roi.model import RootROI, Sphere
    >>> adc = np.full((20, 10, 10), 1.2e-3)                   # symmetric roots
    >>> rois = [RootROI("L4", "left", shape=Sphere([5, 5, 5], 2.5)), RootROI("L4", "right", shape=Sphere([14, 5, 5], 2.5))]
    >>> cmp = compare_sides(roi_stats(ParameterMap(adc, np.eye(4), "adc", "mm^2/s"), rois), symptomatic_side="left", n_boot=100)
    >>> ent = assess_entrapment(cmp, {"radicular_side": "left", "suspected_levels": ["L5"]})
    >>> [(lv.level, lv.classification) for lv in ent.levels], ent.threshold_pct
    ([('L4', 'no_asymmetry'), ('L5', 'indeterminate')], 10.0)
    """

    levels: tuple[LevelAssessment, ...]
    parameter: str
    index: str
    threshold_pct: float
    symptomatic_side: str | None
    suspected_levels: tuple[str, ...] | None
    indication_class: str | None
    statements: tuple[str, ...]
    caveats: tuple[str, ...]
    references: tuple[str, ...] = ()
    settings: dict[str, Any] = field(default_factory=dict)

    def by_class(self, classification: str) -> list[LevelAssessment]:
        """Levels with the given class."""
        return [lv for lv in self.levels if lv.classification == classification]

    def get(self, level: str, *, segment: str | None = None) -> LevelAssessment:
        """The assessment of `level` (and `segment` when several were measured).

        Raises
        ------
        KeyError
            If none or several match.
        """
        hits = [lv for lv in self.levels if lv.level == level and (segment is None or lv.segment == segment)]
        if len(hits) != 1:
            raise KeyError(f"{len(hits)} entrapment entries match level={level!r}, segment={segment!r}")
        return hits[0]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (NaN left as float; the report converts it to null)."""
        return {
            "parameter": self.parameter,
            "index": self.index,
            "threshold_pct": self.threshold_pct,
            "threshold_is_diagnostic": False,
            "symptomatic_side": self.symptomatic_side,
            "suspected_levels": None if self.suspected_levels is None else list(self.suspected_levels),
            "indication_class": self.indication_class,
            "statements": list(self.statements),
            "caveats": list(self.caveats),
            "references": list(self.references),
            "settings": dict(self.settings),
            "levels": [lv.to_record() for lv in self.levels],
        }

    def __repr__(self) -> str:
        counts = {c: len(self.by_class(c)) for c in CLASSES if self.by_class(c)}
        return (f"EntrapmentAssessment(parameter={self.parameter!r}, side={self.symptomatic_side!r}, "
                f"threshold_pct={self.threshold_pct:g}, classes={counts})")

    def _repr_html_(self) -> str:
        rows = "".join(
            "<tr>" + "".join(f"<td>{html.escape(str(x))}</td>" for x in (
                lv.level, lv.segment, lv.classification, ", ".join(lv.reasons), lv.statement)) + "</tr>"
            for lv in self.levels
        )
        st = "".join(f"<li>{html.escape(s)}</li>" for s in self.statements)
        return (f"<div><ul>{st}</ul><table><tr><th>level</th><th>segment</th><th>class</th>"
                f"<th>reasons</th><th>statement</th></tr>{rows}</table></div>")


# --------------------------------------------------------------------------- duck typing
def _get(obj: Any, name: str, default: Any = None) -> Any:
    if obj is None:
        return default
    if isinstance(obj, Mapping):
        return obj.get(name, default)
    return getattr(obj, name, default)


def _indication_class(indication: Any) -> str | None:
    """The class (appropriate/uncertain/inappropriate) from an indication result of any shape."""
    if indication is None:
        return None
    if isinstance(indication, str):
        return indication
    for name in ("classification", "class_", "category", "result", "label", "klass", "cls", "class"):
        v = _get(indication, name)
        if v is not None:
            v = getattr(v, "value", v)  # Enum
            if isinstance(v, str):
                return v
    return None


def _suspected(clinical: Any) -> tuple[str, ...] | None:
    lv = _get(clinical, "suspected_levels")
    if lv is None:
        return None
    if isinstance(lv, str):
        lv = [lv]
    return tuple(str(x).upper() for x in lv)


def _minus(text: str) -> str:
    """The typographic minus sign "−" (U+2212) instead of the hyphen-minus, as in the reports."""
    return text.replace("-", "−")


def _fmt(x: float, unit: str) -> str:
    """A value for the statements: diffusivities as ×10⁻³ mm²/s with 2 decimals, fractions with 2.

    The same display conventions as the report (ADC in ×10⁻³ mm²/s, 2 decimals; the minus sign "−").

    Examples
    --------
    >>> _fmt(1.7949e-3, "mm^2/s"), _fmt(0.4567, "1"), _fmt(float("nan"), "")
    ('1.79 ×10⁻³ mm²/s', '0.46', 'n/a')
    """
    if not math.isfinite(x):
        return "n/a"
    if unit in ("mm^2/s", "mm²/s"):
        return _minus(f"{x * 1e3:.2f} ×10⁻³ mm²/s")
    if unit in ("", "1", "fraction"):
        return _minus(f"{x:.2f}")
    return _minus(f"{x:.3g} {unit}")


def _p(p: float) -> str:
    """A p-value relation with 2 significant digits ("< 0.001" below), for the statements.

    Examples
    --------
    >>> _p(0.04567), _p(2e-7), _p(float("nan"))
    ('= 0.046', '< 0.001', 'n/a')
    """
    if not math.isfinite(p):
        return "n/a"
    return "< 0.001" if p < 0.001 else f"= {p:.2g}"


def _pct(x: float, *, signed: bool = True) -> str:
    """A percentage with 1 decimal (signed by default) and the minus sign "−", without the unit.

    Examples
    --------
    >>> _pct(-0.13), _pct(12.34), _pct(5.0, signed=False)
    ('−0.1', '+12.3', '5.0')
    """
    if not math.isfinite(x):
        return "n/a"
    x = round(float(x), 1) or 0.0  # no "−0.0"
    return _minus(f"{x:+.1f}" if signed else f"{x:.1f}")


# --------------------------------------------------------------------------- main function
def assess_entrapment(
    comparison: Any,
    clinical: Any = None,
    *,
    indication: Any = None,
    threshold_pct: float = DEFAULT_THRESHOLD_PCT,
    parameter: str | Sequence[str] = "adc",
    index: str = "rel_diff_pct",
    symptomatic_side: str | None = None,
) -> EntrapmentAssessment:
    """Judge, level by level, whether the DWI side difference matches the clinical picture.

    Parameters
    ----------
    comparison : SideComparison
        From :func:`dwi_toolkit.analysis.compare.compare_sides` (duck-typed on ``.rows``).
    clinical : object or mapping, optional
        Clinical data with ``radicular_side`` (``"left"``/``"right"``/``"bilateral"``/None) and
        ``suspected_levels`` (e.g. ``["L5"]``; None = not recorded). Either may be missing.
    indication : object, mapping or str, optional
        The indication assessment (:func:`dwi_toolkit.clinical.indication.assess_indication`);
        only its class is used. When it is ``"inappropriate"`` a statement says that imaging
        findings in such patients rarely change management (dwi_toolkit References §3.5–§3.9).
    threshold_pct : float, optional
        Minimum size of the side difference, in % of `index`, counted as an asymmetry. Default
        10 % [D] — a measurement-variation floor (dwi_toolkit References §1.5), **not** a
        diagnostic cut-off; no cut-off is endorsed (§2.8, §4). Set it for your protocol.
    parameter : str or sequence of str, optional
        The parameter assessed (default ``"adc"``: single-parameter mode). Several (e.g.
        ``["adc", "fa"]``), or ``"combined"`` (those of ADC, FA, MD, RD present), give one
        combined assessment per level with a Holm multiplicity correction (see Notes).
    index : {"rel_diff_pct", "asymmetry_index_pct"}, optional
        Signed §2.8 index the threshold applies to (default ``"rel_diff_pct"``).
    symptomatic_side : {"left", "right"}, optional
        Overrides ``clinical.radicular_side``; by default the comparison's side is used, which must
        agree with the clinical one when both are given.

    Returns
    -------
    EntrapmentAssessment

    Raises
    ------
    InputDataError
        Invalid threshold, index or parameters, or a symptomatic side that disagrees with the
        comparison.

    Notes
    -----
    Combined rule (several parameters, family-wise level α = 1 − the comparison's ``ci``): per
    level each parameter's p-value of "no side difference" (``p_value`` of the comparison row)
    is Holm-adjusted over the parameters measured at that level (Holm 1979). The level shows an
    asymmetry when at least one parameter has Holm-adjusted p ≤ α **and** ``|index| ≥
    threshold_pct``; it shows none when every parameter's interval lies within
    ±``threshold_pct``; otherwise it is indeterminate. FA is expected to fall and ADC/MD/RD to rise
    on compressed roots (dwi_toolkit References §2.2); the directions are reported, not used to
    decide.

    Examples
    --------
    >>> from types import SimpleNamespace as R
    >>> import numpy as np
    >>> from dwi_toolkit.analysis.compare import compare_sides
    >>> rng = np.random.default_rng(1)
    >>> def roi(side, m):
    ...     v = rng.normal(m, 0.05e-3, 40)
    ...     return R(level="L5", side=side, segment="ganglion", parameter="adc", unit="mm^2/s",
    ...              n_voxels=40, mean=v.mean(), values=v)
    >>> cmp = compare_sides(R(rows=[roi("left", 1.6e-3), roi("right", 1.2e-3)]),
    ...                     symptomatic_side="left", n_boot=500)
    >>> ent = assess_entrapment(cmp, {"radicular_side": "left", "suspected_levels": ["L5"]})
    >>> ent.get("L5").classification, ent.get("L5").direction
    ('concordant', 'higher')
    """
    thr = float(threshold_pct)
    if not math.isfinite(thr) or thr <= 0:
        raise InputDataError(f"threshold_pct must be a positive percentage, got {threshold_pct!r}.")
    if index not in _INDICES:
        raise InputDataError(f"index must be one of {_INDICES}, got {index!r}.")
    if not hasattr(comparison, "rows"):
        raise InputDataError("assess_entrapment needs a SideComparison (from compare_sides()).")
    params = _parameters(comparison, parameter)
    side, caveats = _resolve_side(comparison, clinical, symptomatic_side, thr)
    suspected = _suspected(clinical)
    ind_class = _indication_class(indication)
    alpha = 1.0 - float(getattr(comparison, "settings", {}).get("ci", 0.95) or 0.95)
    name = "+".join(params)

    rows = [r for r in comparison.rows if r.parameter in params
            and getattr(r, "reference", "contralateral") == "contralateral"]
    if not rows:
        logger.warning("no contralateral comparison rows for parameter(s) %s", params)
    if len(params) == 1:
        lit = LITERATURE_DIRECTION.get(params[0].lower())
        levels = [_assess_row(r, side, suspected, thr, index, lit) for r in rows]
    else:
        levels = _combined_levels(rows, params, side, suspected, thr, index, alpha)
    measured = {r.level for r in rows}
    for lv in suspected or ():
        if lv not in measured:
            levels.append(_not_measured(lv, name, index, thr, side, LITERATURE_DIRECTION.get(name)))
    statements, refs = _statements(comparison, levels, params, side, suspected, ind_class, thr, index,
                                   len(measured), alpha)
    return EntrapmentAssessment(
        levels=tuple(levels), parameter=name, index=index, threshold_pct=thr,
        symptomatic_side=side, suspected_levels=suspected, indication_class=ind_class,
        statements=tuple(statements), caveats=tuple(caveats), references=tuple(refs),
        settings={"threshold_pct": thr, "index": index, "parameter": name,
                  "parameters": list(params), "ci": getattr(comparison, "settings", {}).get("ci"),
                  "decision": "single parameter" if len(params) == 1 else
                  f"Holm over {len(params)} parameters at family-wise alpha {alpha:g}"},
    )


def _parameters(comparison: Any, parameter: str | Sequence[str]) -> tuple[str, ...]:
    if isinstance(parameter, str) and parameter != "combined":
        return (parameter,)
    present = {r.parameter for r in comparison.rows}
    if parameter == "combined":
        params = tuple(p for p in COMBINED_PARAMETERS if p in present)
        if not params:
            raise InputDataError(f"parameter='combined' needs rows for one of {COMBINED_PARAMETERS}; "
                                 f"the comparison has {sorted(present)}.")
        return params
    params = tuple(str(p) for p in parameter)
    if not params or len(set(params)) != len(params):
        raise InputDataError(f"parameter must name one or more distinct parameters, got {parameter!r}.")
    return params


def _resolve_side(comparison: Any, clinical: Any, symptomatic_side: str | None,
                  thr: float) -> tuple[str | None, list[str]]:
    cmp_side = getattr(comparison, "symptomatic_side", None)
    clin_side = _get(clinical, "radicular_side")
    clin_side = clin_side.lower() if isinstance(clin_side, str) else None
    if symptomatic_side is not None and cmp_side is not None and symptomatic_side != cmp_side:
        raise InputDataError(
            f"symptomatic_side={symptomatic_side!r} but the comparison was computed for "
            f"{cmp_side!r}; recompute compare_sides(..., symptomatic_side={symptomatic_side!r})."
        )
    caveats: list[str] = [
        f"threshold_pct = {thr:g} % is a user-settable measurement threshold, not a diagnostic "
        "cut-off: no guideline or meta-analysis endorses an ADC or FA cut-off for nerve-root "
        "entrapment (dwi_toolkit References §2.8, §4).",
        "Intervals describe noise within one scan (widened for spatially correlated noise unless "
        "the independent-voxel bootstrap was chosen); they do not include scan–rescan or "
        "ROI-placement variability, for which no lumbar-root data exist (dwi_toolkit References §2.7).",
        "Partial volume with CSF raises root ADC and lowers FA; check ROI placement and voxel counts "
        "(dwi_toolkit References §1.6).",
    ]
    if clin_side in ("left", "right") and cmp_side is not None and clin_side != cmp_side:
        caveats.append(
            f"The comparison uses symptomatic side {cmp_side!r} while the clinical record says "
            f"{clin_side!r}; the comparison's side was used."
        )
    if cmp_side is None and clin_side in ("left", "right"):
        caveats.append(
            f"The clinical record gives symptomatic side {clin_side!r} but the comparison was "
            "computed without one; recompute compare_sides with symptomatic_side to get signed "
            "indices."
        )
    return symptomatic_side or cmp_side, caveats


def _statements(comparison, levels, params, side, suspected, ind_class, thr, index, n_measured,
                alpha) -> tuple[list[str], list[str]]:
    name = " + ".join(p.upper() for p in params)
    rule = (f"|{index}| ≥ {thr:g} % and the {_ci_text(comparison)} interval of the difference "
            "excludes zero" if len(params) == 1 else
            f"for at least one parameter |{index}| ≥ {thr:g} % and its p-value of no side difference, "
            f"Holm-adjusted over the {len(params)} parameters, is ≤ {alpha:g}")
    statements = [
        f"Measured {name} in nerve-root ROIs on both sides at {n_measured} level(s); symptomatic "
        f"side: {side or 'unknown'}; clinically suspected level(s): "
        f"{', '.join(suspected) if suspected else 'not recorded'}. An asymmetry is counted when "
        f"{rule}."
    ]
    refs: list[str] = []
    if side is None:
        statements.append(
            "No single symptomatic side is known, so no level can be judged concordant; absolute "
            "asymmetry is reported for every level."
        )
    if ind_class == "inappropriate":
        statements.append(NOT_INDICATED_STATEMENT)
        refs.extend(NOT_INDICATED_REFERENCES)
    for p in params:
        lit = LITERATURE_DIRECTION.get(p.lower())
        if lit:
            statements.append(
                f"For reference, {_LITERATURE_SOURCE} report {lit} {p.upper()} on compressed "
                "roots than on the contralateral side; single studies disagree for ADC, so the "
                "direction measured here is reported, not used to decide."
            )
    statements.extend(f"{lv.level} {lv.segment}: {lv.statement}" for lv in levels)
    return statements, refs


def _combined_levels(rows, params, side, suspected, thr, index, alpha) -> list[LevelAssessment]:
    """One combined LevelAssessment per level × segment (Holm over the parameters)."""
    groups: dict[tuple[str, str], list[Any]] = {}
    for r in rows:
        groups.setdefault((r.level, r.segment), []).append(r)
    out = []
    for (level, segment), rs in groups.items():
        rs = sorted(rs, key=lambda r: params.index(r.parameter))
        parts = [_assess_row(r, side, suspected, thr, index, LITERATURE_DIRECTION.get(r.parameter.lower()))
                 for r in rs]
        p_adj = holm([lv.p_value if lv.reasons and lv.reasons[0] not in _UNUSABLE else math.nan
                      for lv in parts])
        out.append(_merge(parts, p_adj, alpha, thr, "+".join(params)))
    return out


_UNUSABLE = ("no_symptomatic_side", "missing_side", "too_small", "no_interval")


def _merge(parts: list[LevelAssessment], p_adj: list[float], alpha: float, thr: float,
           name: str) -> LevelAssessment:
    usable = [(lv, p) for lv, p in zip(parts, p_adj) if math.isfinite(p)]
    asym = [(lv, p) for lv, p in usable if p <= alpha and abs(lv.index_value) >= thr]
    susp = parts[0].suspected
    lead = min(asym or usable or [(parts[0], math.nan)], key=lambda t: (t[1] if math.isfinite(t[1]) else 2.0))
    if not usable:
        cls, reasons = "indeterminate", list(parts[0].reasons)
    elif asym:
        cls = "discordant" if susp is False else "concordant"
        reasons = ["asymmetry_at_unsuspected_level"] if susp is False else \
            ["asymmetry_at_suspected_level" if susp else "asymmetry_on_symptomatic_side"]
    elif len(usable) == len(parts) and all(-thr < lv.ci_low and lv.ci_high < thr for lv, _ in usable):
        cls, reasons = ("discordant", ["no_asymmetry_at_suspected_level"]) if susp else \
            ("no_asymmetry", ["below_threshold"])
    else:
        cls, reasons = "indeterminate", ["no_parameter_significant_after_holm"]
    comp = tuple(f"{lv.parameter}: {lv.index} {_pct(lv.index_value)} % (CI {_pct(lv.ci_low)} to "
                 f"{_pct(lv.ci_high)} %), p {_p(lv.p_value)}, Holm p {_p(p)}, {lv.direction}"
                 for lv, p in zip(parts, p_adj))
    lv0 = lead[0]
    statement = (f"{cls}: " + "; ".join(comp) + f". Rule: Holm-adjusted p ≤ {alpha:g} and "
                 f"|{lv0.index}| ≥ {thr:g} % for at least one parameter.")
    return dataclasses.replace(
        lv0, parameter=name, classification=cls, reasons=tuple(reasons), p_holm=lead[1],
        components=comp, statement=statement,
        flags=tuple(sorted({f for lv in parts for f in lv.flags})))


def _ci_text(comparison: Any) -> str:
    ci = getattr(comparison, "settings", {}).get("ci")
    return f"{ci:.0%}" if isinstance(ci, float) else "bootstrap"


def _not_measured(level: str, parameter: str, index: str, thr: float, side: str | None,
                  lit: str | None) -> LevelAssessment:
    nan = math.nan
    return LevelAssessment(
        level=level, segment="", parameter=parameter, unit="", classification="indeterminate",
        reasons=("level_not_measured",), index=index, index_value=nan, ci_low=nan, ci_high=nan,
        threshold_pct=thr, xs=nan, xc=nan, difference=nan, difference_ci_low=nan,
        difference_ci_high=nan, n_s=0, n_c=0, direction=None, literature_direction=lit,
        matches_literature_direction=None, suspected=True, flags=(),
        statement=(f"clinically suspected level {level} was not measured (no ROI on either side); "
                   "nothing can be said about it."),
    )


def _assess_row(r: Any, side: str | None, suspected: tuple[str, ...] | None, thr: float,
                index: str, lit: str | None) -> LevelAssessment:
    is_susp = None if suspected is None else (r.level.upper() in suspected)
    flags = tuple(getattr(r, "flags", ()))
    val = float(getattr(r, index)) if side else math.nan
    lo = float(getattr(r, f"{index}_ci_low")) if side else math.nan
    hi = float(getattr(r, f"{index}_ci_high")) if side else math.nan
    d, dlo, dhi = float(r.difference), float(r.difference_ci_low), float(r.difference_ci_high)
    direction: str | None = None
    if side and math.isfinite(d):
        direction = "higher" if d > 0 else "lower" if d < 0 else "equal"
    matches = None if (direction is None or lit is None) else (direction == lit)

    reasons: list[str] = []
    cls = "indeterminate"
    if side is None:
        reasons.append("no_symptomatic_side")
    elif "missing_side" in flags:
        reasons.append("missing_side")
    elif "too_small" in flags:
        reasons.append("too_small")
    elif not (math.isfinite(lo) and math.isfinite(hi) and math.isfinite(dlo) and math.isfinite(dhi)):
        reasons.append("no_interval")
    else:
        excludes_zero = dlo > 0 or dhi < 0
        if abs(val) >= thr and excludes_zero:
            if is_susp is False:
                cls, reasons = "discordant", ["asymmetry_at_unsuspected_level"]
            else:
                cls = "concordant"
                reasons = ["asymmetry_at_suspected_level" if is_susp else "asymmetry_on_symptomatic_side"]
        elif -thr < lo and hi < thr:
            if is_susp:
                cls, reasons = "discordant", ["no_asymmetry_at_suspected_level"]
            else:
                cls, reasons = "no_asymmetry", ["below_threshold"]
        elif not excludes_zero:
            reasons.append("ci_spans_zero")
        else:
            reasons.append("ci_straddles_threshold")
    if "noisy" in flags:
        reasons.append("noisy")

    statement = _statement(r, side, cls, reasons, val, lo, hi, index, thr, direction, lit, is_susp)
    return LevelAssessment(
        level=r.level, segment=r.segment, parameter=r.parameter, unit=r.unit, classification=cls,
        reasons=tuple(reasons), index=index, index_value=val, ci_low=lo, ci_high=hi,
        threshold_pct=thr, xs=float(r.xs), xc=float(r.xc), difference=d, difference_ci_low=dlo,
        difference_ci_high=dhi, n_s=int(r.n_s), n_c=int(r.n_c), direction=direction,
        literature_direction=lit, matches_literature_direction=matches, suspected=is_susp,
        flags=flags, statement=statement, p_value=float(getattr(r, "p_value", math.nan)),
    )


_REASON_TEXT = {
    "no_symptomatic_side": "no single symptomatic side is known",
    "missing_side": "one side has no usable ROI value",
    "too_small": "an ROI has too few voxels to compare",
    "no_interval": "no voxel values were available for a confidence interval",
    "ci_spans_zero": "the confidence interval of the difference includes zero",
    "ci_straddles_threshold": "the confidence interval reaches the threshold although the estimate does not",
}


def _statement(r, side, cls, reasons, val, lo, hi, index, thr, direction, lit, is_susp) -> str:
    p = r.parameter.upper()
    if side is None:
        return (f"{p} left {_fmt(r.value_left, r.unit)} vs right {_fmt(r.value_right, r.unit)}; "
                f"absolute asymmetry {_pct(r.abs_asymmetry_index_pct, signed=False)} % "
                f"({'; '.join(_REASON_TEXT.get(x, x) for x in reasons)}).") \
            if math.isfinite(r.abs_asymmetry_index_pct) else \
            f"{p} could not be compared ({'; '.join(_REASON_TEXT.get(x, x) for x in reasons)})."
    other = "right" if side == "left" else "left"
    if not math.isfinite(val):
        return f"{p} could not be compared: {'; '.join(_REASON_TEXT.get(x, x) for x in reasons)}."
    meas = (f"{p} on the symptomatic ({side}) side {_fmt(r.xs, r.unit)} vs {_fmt(r.xc, r.unit)} on "
            f"the {other} side (n = {r.n_s}/{r.n_c} voxels): {direction} on the symptomatic side, "
            f"{index} {_pct(val)} % (CI {_pct(lo)} to {_pct(hi)} %).")
    susp = "" if is_susp is None else (" This level is clinically suspected." if is_susp
                                       else " This level is not clinically suspected.")
    if cls == "concordant":
        verdict = f" The difference reaches the {thr:g} % threshold and its interval excludes zero."
    elif cls == "discordant" and "asymmetry_at_unsuspected_level" in reasons:
        verdict = (f" The difference reaches the {thr:g} % threshold at a level that was not "
                   "suspected clinically.")
    elif cls in ("discordant", "no_asymmetry"):
        verdict = f" No asymmetry of {thr:g} % or more: the whole interval lies within ±{thr:g} %."
    else:
        verdict = " Indeterminate: " + "; ".join(_REASON_TEXT.get(x, x) for x in reasons if x != "noisy") + "."
    lit_txt = ""
    if lit and direction in ("higher", "lower") and cls == "concordant":
        lit_txt = (" The direction matches" if direction == lit else " The direction is opposite to") + \
            f" the meta-analytic finding ({lit} {p} on compressed roots, §2.2)."
    noisy = " One ROI is noisy (high coefficient of variation)." if "noisy" in reasons else ""
    return meas + susp + verdict + lit_txt + noisy + _detectable_text(r, cls, thr)


def _detectable_text(r: Any, cls: str, thr: float) -> str:
    """What this level could have detected (smallest detectable difference at 80 % power), said
    where a reader might take "no asymmetry" for "symmetric"."""
    det = float(getattr(r, "detectable_pct", math.nan))
    if cls == "concordant" or not math.isfinite(det):
        return ""
    if det > thr:
        return (f" With this noise and these ROI sizes only a difference of {det:.1f} % or more would have "
                f"been detected reliably (80 % power), so a {thr:g} % asymmetry could have been missed: "
                "this result does not show that the roots are alike.")
    return f" A difference of {det:.1f} % or more would have been detected reliably (80 % power)."
