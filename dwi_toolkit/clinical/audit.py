"""Referral audit: how appropriate are a department's lumbar MRI requests, and what drives the
inappropriate ones? The study design of Kovacs et al. 2013 (Eur J Radiol 82:1008–1014, n = 602)
applied to the department's own data.

Every referral is classified with :func:`~dwi_toolkit.clinical.indication.assess_indication`
(combined class and the verdict of every guideline). The audit reports

- the rates of appropriate / uncertain / inappropriate requests with Wilson score 95 % intervals
  (Wilson EB, J Am Stat Assoc 1927;22:209–212);
- odds ratios of an inappropriate request by factor (no referred pain, private practice,
  prescriber specialty, male sex) from a multivariable logistic regression, as in Kovacs 2013
  (``statsmodels``, optional extra ``audit``), with Wald 95 % intervals;
- Cohen's κ (Cohen J, Educ Psychol Meas 1960;20:37–46) between the radiologists' own assessment
  and the criteria (Kovacs 2013: κ = 0.62), with its asymptotic 95 % interval;
- how many requests are policy-sensitive (the guidelines disagree).

:func:`write_audit_summary` writes a self-contained HTML page (forest plot as a data-URI PNG),
a CSV summary and a CSV of the classified referrals, atomically. No identifiers are written:
the ``id`` column, if any, is replaced by the row number.

Examples
--------
>>> rows = [{"age": 40, "pain_duration_weeks": 2, "conservative_treatment_weeks": 0,
...          "radicular_pain": False, "red_flags": [], "cauda_equina_signs": [],
...          "surgery_considered": False, "prior_lumbar_surgery": False,
...          "new_or_progressive_symptoms": False, "radiologist_assessment": "inappropriate"}] * 3
>>> a = audit_referrals(rows, regression=False)
>>> a.n, a.counts["inappropriate"], a.rates["inappropriate"].estimate
(3, 3, 1.0)
"""

from __future__ import annotations

import base64
import csv
import html
import io as _stdio
import logging
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .vocab import _BOOL_FIELDS, _LIST_FIELDS, _NUMBER_FIELDS, INPUT_FIELDS, RULE_INPUT_FIELDS
from ..errors import ClinicalDataError, DwiToolkitError
from ..io._atomic import atomic_write_bytes, atomic_write_text
from .indication import CLASSES, RESEARCH_USE_NOTICE, assess_indication, load_rule_table

__all__ = ["AuditDependencyError", "Proportion", "OddsRatio", "Kappa", "ReferralAudit",
           "audit_referrals", "wilson_interval", "cohen_kappa", "forest_plot_png",
           "write_audit_summary"]

logger = logging.getLogger(__name__)

#: Extra columns of a referral table besides the clinical fields.
AUDIT_COLUMNS = ("radiologist_assessment",)
_IGNORED_COLUMNS = ("id", "referral_id", "subject_id")
#: Kovacs 2013: orthopaedic surgeons, neurosurgeons and primary-care physicians (OR 2.50).
KOVACS_SPECIALTIES = ("orthopaedic_surgery", "neurosurgery", "primary_care")
_Z95 = 1.959963984540054


class AuditDependencyError(DwiToolkitError, ImportError):
    """An optional dependency of the referral audit is not installed.

    Examples
    --------
    >>> issubclass(AuditDependencyError, ImportError)
    True
    """


# ---------------------------------------------------------------------------------------------
# Statistics
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Proportion:
    """A proportion with its Wilson score 95 % interval.

    Examples
    --------
    >>> Proportion(53, 602, *wilson_interval(53, 602)).estimate
    0.08803986710963455
    """

    count: int
    n: int
    low: float
    high: float

    @property
    def estimate(self) -> float:
        return self.count / self.n if self.n else math.nan


def wilson_interval(count: int, n: int, z: float = _Z95) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion (Wilson 1927), 95 % by default.

    Examples
    --------
    >>> lo, hi = wilson_interval(64, 602)
    >>> round(lo, 4), round(hi, 4)
    (0.0841, 0.1335)
    >>> wilson_interval(0, 0)
    (nan, nan)
    """
    if n <= 0:
        return math.nan, math.nan
    p = count / n
    den = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass(frozen=True)
class Kappa:
    """Cohen's κ with its asymptotic 95 % interval (SE of Cohen 1960) and the number of pairs.

    Examples
    --------
    >>> k = cohen_kappa(["a", "a", "b", "b"], ["a", "b", "b", "b"])
    >>> round(k.kappa, 3), k.n
    (0.5, 4)
    """

    kappa: float
    low: float
    high: float
    n: int
    observed_agreement: float


def cohen_kappa(rater_a: Sequence[str], rater_b: Sequence[str],
                categories: Sequence[str] | None = None) -> Kappa:
    """Unweighted Cohen's κ between two raters over the same items.

    κ = (p_o − p_e) / (1 − p_e); SE = √(p_o (1 − p_o) / (n (1 − p_e)²)) (Cohen 1960).

    Examples
    --------
    >>> k = cohen_kappa(["x", "y", "x"], ["x", "y", "x"])
    >>> k.kappa, k.observed_agreement
    (1.0, 1.0)
    """
    if len(rater_a) != len(rater_b):
        raise ClinicalDataError(f"cohen_kappa needs paired ratings; got {len(rater_a)} and "
                                f"{len(rater_b)}")
    n = len(rater_a)
    cats = list(categories) if categories else sorted(set(rater_a) | set(rater_b))
    if n == 0:
        return Kappa(math.nan, math.nan, math.nan, 0, math.nan)
    po = sum(a == b for a, b in zip(rater_a, rater_b)) / n
    pe = sum((list(rater_a).count(c) / n) * (list(rater_b).count(c) / n) for c in cats)
    if pe >= 1.0:
        return Kappa(math.nan, math.nan, math.nan, n, po)
    k = (po - pe) / (1.0 - pe)
    se = math.sqrt(po * (1.0 - po) / (n * (1.0 - pe) ** 2))
    return Kappa(k, k - _Z95 * se, k + _Z95 * se, n, po)


@dataclass(frozen=True)
class OddsRatio:
    """Adjusted odds ratio of an inappropriate request for one factor (logistic regression).

    Examples
    --------
    >>> OddsRatio("private_practice", 2.25, 1.20, 4.22, 0.01, 120).odds_ratio
    2.25
    """

    factor: str
    odds_ratio: float
    low: float
    high: float
    p_value: float
    n_exposed: int


#: Factor name -> (description, function of a row returning 0/1 or None when unknown).
_FACTORS = {
    "no_referred_pain": ("no pain referred into the leg (Kovacs 2013 OR 13.75)",
                         lambda r: None if r.get("referred_pain") is None
                         else int(r["referred_pain"] is False)),
    "private_practice": ("request from private practice (Kovacs 2013 OR 2.25)",
                         lambda r: None if r.get("setting") is None
                         else int(r["setting"] == "private")),
    "specialty_ortho_neuro_primary": (
        "prescribed by orthopaedic surgery, neurosurgery or primary care (Kovacs 2013 OR 2.50)",
        lambda r: None if r.get("prescriber_specialty") is None
        else int(r["prescriber_specialty"] in KOVACS_SPECIALTIES)),
    "male_sex": ("male sex (adjustment, as in Kovacs 2013)",
                 lambda r: None if r.get("sex") not in ("F", "M") else int(r["sex"] == "M")),
}


def _design(rows: Sequence[Mapping[str, Any]], outcome: Sequence[int]
            ) -> tuple[list[str], list[list[float]], list[int], int]:
    """Complete-case design matrix over the factors that are recorded and vary."""
    names = []
    for name, (_, fn) in _FACTORS.items():
        vals = [fn(r) for r in rows]
        known = [v for v in vals if v is not None]
        if len(known) >= 0.5 * len(rows) and len(set(known)) == 2:
            names.append(name)
    x, y, dropped = [], [], 0
    for r, yi in zip(rows, outcome):
        vals = [_FACTORS[n][1](r) for n in names]
        if any(v is None for v in vals):
            dropped += 1
            continue
        x.append([1.0, *map(float, vals)])
        y.append(yi)
    return names, x, y, dropped


def _logistic(names: list[str], x: list[list[float]], y: list[int]) -> tuple[OddsRatio, ...]:
    try:
        import numpy as np
        import statsmodels.api as sm
    except ImportError as err:
        raise AuditDependencyError(
            "the referral audit's logistic regression needs statsmodels: install it with "
            "`pip install dwi_toolkit[audit]` (or pass regression=False / --no-regression)"
        ) from err
    xa, ya = np.asarray(x), np.asarray(y)
    fit = sm.Logit(ya, xa).fit(disp=0, maxiter=200)
    ci = np.asarray(fit.conf_int(alpha=0.05))
    out = []
    for j, name in enumerate(names, start=1):
        out.append(OddsRatio(name, float(np.exp(fit.params[j])), float(np.exp(ci[j, 0])),
                             float(np.exp(ci[j, 1])), float(fit.pvalues[j]),
                             int(xa[:, j].sum())))
    return tuple(out)


# ---------------------------------------------------------------------------------------------
# Rows
# ---------------------------------------------------------------------------------------------
_TRUE = {"true", "yes", "y", "1", "t"}
_FALSE = {"false", "no", "n", "0", "f"}


def _coerce(name: str, value: Any, where: str) -> Any:
    """Text cell -> typed value of the clinical vocabulary (non-text values pass through)."""
    if not isinstance(value, str):
        return value
    v = value.strip()
    if name in _BOOL_FIELDS:
        if v.lower() in _TRUE | _FALSE:
            return v.lower() in _TRUE
        raise ClinicalDataError(f"{where}: {name} must be true/false (or yes/no, 1/0), got {v!r}")
    if name in _NUMBER_FIELDS:
        try:
            return float(v)
        except ValueError:
            raise ClinicalDataError(f"{where}: {name} must be a number, got {v!r}") from None
    if name in _LIST_FIELDS:
        if v.lower() in ("", "[]", "none"):
            return []
        return [p.strip() for p in v.replace("|", ";").split(";") if p.strip()]
    return v


def _parse_row(raw: Mapping[str, Any], i: int) -> tuple[dict[str, Any], str | None]:
    where = f"referral row {i}"
    unknown = set(raw) - set(INPUT_FIELDS) - set(AUDIT_COLUMNS) - set(_IGNORED_COLUMNS)
    if unknown:
        raise ClinicalDataError(
            f"{where}: unknown column(s) {', '.join(sorted(unknown))}; allowed: the clinical "
            f"fields of docs/clinical.md, {', '.join(AUDIT_COLUMNS + _IGNORED_COLUMNS)}")
    clinical = {k: _coerce(k, v, where) for k, v in raw.items()
                if k in INPUT_FIELDS and v is not None and v != ""}  # empty = not recorded
    rad = raw.get("radiologist_assessment")
    if rad is not None and rad not in CLASSES:
        raise ClinicalDataError(f"{where}: radiologist_assessment must be one of "
                                f"{', '.join(CLASSES)}, got {rad!r}")
    return clinical, rad


def _rows(table: Any) -> list[Mapping[str, Any]]:
    if isinstance(table, (str, os.PathLike)):
        from ..io.clinical import read_referral_table

        return list(read_referral_table(table))
    if hasattr(table, "to_dict") and hasattr(table, "columns"):  # pandas DataFrame
        recs = table.to_dict("records")
        return [{k: (None if isinstance(v, float) and math.isnan(v) else v)
                 for k, v in r.items()} for r in recs]
    if isinstance(table, Iterable):
        return list(table)
    raise ClinicalDataError(f"audit_referrals expects a CSV/TSV path, a pandas DataFrame or a "
                            f"list of mappings, got {type(table).__name__}")


# ---------------------------------------------------------------------------------------------
# Result
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ReferralAudit:
    """Result of :func:`audit_referrals`.

    Attributes
    ----------
    n : int
        Referrals classified.
    counts : dict
        Class -> number of referrals.
    rates : dict
        Class -> :class:`Proportion` (Wilson 95 % interval).
    odds_ratios : tuple of OddsRatio
        Adjusted ORs of an inappropriate request (empty without regression).
    n_regression : int
        Referrals with every regression factor recorded.
    kappa : Kappa or None
        Radiologists' assessment vs the criteria (None without that column).
    policy_sensitive : Proportion
        Requests on which the guidelines disagree.
    guideline_rates : dict
        Guideline -> verdict -> count.
    referrals : tuple of dict
        Per referral (row number, never an identifier): class, rules, policy_sensitive,
        radiologist assessment, one verdict per guideline.
    rule_set_version : str

    Examples
    --------
    >>> rows = [{"age": 40, "cauda_equina_signs": ["saddle_anaesthesia"]}]
    >>> audit_referrals(rows, regression=False).counts
    {'appropriate': 1, 'uncertain': 0, 'inappropriate': 0}
    """

    n: int
    counts: Mapping[str, int]
    rates: Mapping[str, Proportion]
    odds_ratios: tuple[OddsRatio, ...]
    n_regression: int
    kappa: Kappa | None
    policy_sensitive: Proportion
    guideline_rates: Mapping[str, Mapping[str, int]]
    referrals: tuple[Mapping[str, Any], ...]
    rule_set_version: str
    notes: tuple[str, ...] = field(default=())

    def summary_rows(self) -> list[dict[str, Any]]:
        """Flat rows (measure, estimate, low, high, n) for the CSV summary.

        Examples
        --------
        >>> rows = [{"age": 40, "cauda_equina_signs": ["saddle_anaesthesia"]}]
        >>> audit_referrals(rows, regression=False).summary_rows()[0]["measure"]
        'rate_appropriate'
        """
        out = [{"measure": f"rate_{k}", "estimate": p.estimate, "low": p.low, "high": p.high,
                "n": p.n} for k, p in self.rates.items()]
        out.append({"measure": "rate_policy_sensitive", "estimate": self.policy_sensitive.estimate,
                    "low": self.policy_sensitive.low, "high": self.policy_sensitive.high,
                    "n": self.policy_sensitive.n})
        out += [{"measure": f"odds_ratio_{o.factor}", "estimate": o.odds_ratio, "low": o.low,
                 "high": o.high, "n": self.n_regression} for o in self.odds_ratios]
        if self.kappa is not None:
            out.append({"measure": "cohen_kappa_radiologist_vs_criteria",
                        "estimate": self.kappa.kappa, "low": self.kappa.low,
                        "high": self.kappa.high, "n": self.kappa.n})
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (without the per-referral table).

        Examples
        --------
        >>> rows = [{"age": 40, "cauda_equina_signs": ["saddle_anaesthesia"]}]
        >>> audit_referrals(rows, regression=False).to_dict()["n"]
        1
        """
        return {"rule_set_version": self.rule_set_version, "n": self.n,
                "counts": dict(self.counts), "summary": self.summary_rows(),
                "guideline_verdict_counts": {g: dict(v) for g, v in self.guideline_rates.items()},
                "notes": list(self.notes), "research_use_notice": RESEARCH_USE_NOTICE}


def _classify_all(rows: Sequence[Mapping[str, Any]], stenosis_policy: str
                  ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Parse and classify every row (cached on the fields the rules read)."""
    cache: dict[tuple, Any] = {}
    parsed, out = [], []
    for i, raw in enumerate(rows, start=1):
        clinical, rad = _parse_row(raw, i)
        key = tuple((k, repr(clinical.get(k))) for k in RULE_INPUT_FIELDS)
        if key not in cache:
            try:
                cache[key] = assess_indication(clinical, stenosis_policy=stenosis_policy)
            except ClinicalDataError as err:
                raise ClinicalDataError(f"referral row {i}: {err}") from err
        a = cache[key]
        parsed.append(clinical)
        rec = {"row": i, "classification": a.classification,
               "decisive_rules": ";".join(a.decisive_rules),
               "policy_sensitive": a.policy_sensitive, "radiologist_assessment": rad}
        rec.update({v.guideline: v.verdict for v in a.guideline_verdicts})
        out.append(rec)
    return parsed, out


def audit_referrals(table: Any, *, stenosis_policy: str = "kovacs2013",
                    regression: bool = True) -> ReferralAudit:
    """Audit a list of lumbar MRI referrals as in Kovacs 2013.

    Parameters
    ----------
    table : path, pandas.DataFrame or sequence of mappings
        One referral per row with the clinical fields of ``docs/clinical.md`` (lists separated by
        ``;``), optionally ``setting``, ``prescriber_specialty``, ``referred_pain``, ``sex`` and
        ``radiologist_assessment`` (appropriate / uncertain / inappropriate). A path is read with
        :func:`dwi_toolkit.io.clinical.read_referral_table` (CSV or TSV).
    stenosis_policy : {"kovacs2013", "acr2021"}
        Passed to :func:`~dwi_toolkit.clinical.indication.assess_indication`.
    regression : bool
        Fit the logistic regression (needs ``statsmodels``, extra ``audit``).

    Returns
    -------
    ReferralAudit

    Raises
    ------
    ClinicalDataError
        For invalid rows (the message names the row and the field).
    AuditDependencyError
        When `regression` is requested and statsmodels is missing.

    Examples
    --------
    >>> rows = [{"age": 30, "pain_duration_weeks": 1, "radicular_pain": False,
    ...          "red_flags": "none", "cauda_equina_signs": "none", "surgery_considered": "no",
    ...          "prior_lumbar_surgery": "no", "new_or_progressive_symptoms": "no",
    ...          "conservative_treatment_weeks": "0", "radiologist_assessment": "appropriate"}]
    >>> a = audit_referrals(rows, regression=False)
    >>> a.counts["inappropriate"], a.kappa.n
    (1, 1)
    """
    rows = _rows(table)
    if not rows:
        raise ClinicalDataError("the referral table has no rows")
    parsed, recs = _classify_all(rows, stenosis_policy)
    n = len(recs)
    counts = {k: sum(r["classification"] == k for r in recs) for k in CLASSES}
    rates = {k: Proportion(c, n, *wilson_interval(c, n)) for k, c in counts.items()}
    n_sens = sum(bool(r["policy_sensitive"]) for r in recs)
    notes: list[str] = []
    ors: tuple[OddsRatio, ...] = ()
    n_reg = 0
    if regression:
        y = [int(r["classification"] == "inappropriate") for r in recs]
        names, x, yy, dropped = _design(parsed, y)
        n_reg = len(yy)
        if dropped:
            notes.append(f"{dropped} referrals lack a regression factor and were left out of it")
        if names and 0 < sum(yy) < len(yy):
            ors = _logistic(names, x, yy)
        else:
            notes.append("no logistic regression: no recorded factor varies or the outcome is "
                         "constant")
    pairs = [(r["radiologist_assessment"], r["classification"]) for r in recs
             if r["radiologist_assessment"] is not None]
    kappa = (cohen_kappa([p[0] for p in pairs], [p[1] for p in pairs], CLASSES)
             if pairs else None)
    guideline_rates: dict[str, dict[str, int]] = {}
    for r in recs:
        for g in ("nice_ng59", "nice_cg88", "acp_2011", "acr_2021", "european_2006"):
            if g in r:
                guideline_rates.setdefault(g, {}).setdefault(r[g], 0)
                guideline_rates[g][r[g]] += 1
    return ReferralAudit(n=n, counts=counts, rates=rates, odds_ratios=ors, n_regression=n_reg,
                         kappa=kappa, policy_sensitive=Proportion(n_sens, n,
                                                                  *wilson_interval(n_sens, n)),
                         guideline_rates=guideline_rates, referrals=tuple(recs),
                         rule_set_version=load_rule_table()["rule_set_version"],
                         notes=tuple(notes))


# ---------------------------------------------------------------------------------------------
# Output
# ---------------------------------------------------------------------------------------------
def forest_plot_png(odds_ratios: Sequence[OddsRatio], dpi: int = 100) -> bytes:
    """PNG of a forest plot of the odds ratios (log axis), drawn with the Agg canvas.

    Examples
    --------
    >>> png = forest_plot_png([OddsRatio("private_practice", 2.25, 1.2, 4.22, 0.01, 100)])
    >>> png[:8] == b"\\x89PNG\\r\\n\\x1a\\n"
    True
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.0, 0.6 * max(len(odds_ratios), 1) + 1.2))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    ys = list(range(len(odds_ratios)))[::-1]
    for y, o in zip(ys, odds_ratios):
        ax.plot([o.low, o.high], [y, y], color="0.2", lw=1.5)
        ax.plot([o.odds_ratio], [y], "s", color="#b2182b", ms=7)
    ax.axvline(1.0, color="0.5", ls="--", lw=1)
    ax.set_xscale("log")
    ax.set_yticks(ys)
    ax.set_yticklabels([o.factor for o in odds_ratios])
    ax.set_xlabel("odds ratio of an inappropriate request (95 % CI, log scale)")
    fig.tight_layout()
    buf = _stdio.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def _csv_text(rows: Sequence[Mapping[str, Any]]) -> str:
    buf = _stdio.StringIO()
    cols = list(dict.fromkeys(k for r in rows for k in r))
    w = csv.DictWriter(buf, fieldnames=cols, lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


def _html(audit: ReferralAudit, png: bytes | None) -> str:
    e = html.escape

    def fmt(v: float) -> str:
        return "–" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.3g}"

    rows = "".join(
        f"<tr><td>{e(r['measure'])}</td><td>{fmt(r['estimate'])}</td><td>{fmt(r['low'])}–"
        f"{fmt(r['high'])}</td><td>{r['n']}</td></tr>" for r in audit.summary_rows())
    gl = "".join(f"<tr><td>{e(g)}</td><td>{e(', '.join(f'{k}: {c}' for k, c in v.items()))}"
                 f"</td></tr>" for g, v in audit.guideline_rates.items())
    img = ("" if png is None else "<h2>Odds ratios of an inappropriate request</h2><img alt="
           "'forest plot' src='data:image/png;base64,"
           + base64.b64encode(png).decode("ascii") + "'/>")
    notes = "".join(f"<li>{e(n)}</li>" for n in audit.notes)
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>Lumbar MRI referral audit"
        "</title></head><body><h1>Lumbar MRI referral audit</h1>"
        f"<p>{audit.n} referrals; rule set {e(audit.rule_set_version)}; design of Kovacs et al. "
        "2013 (Eur J Radiol 82:1008–1014). Intervals: Wilson 95 % (rates), Wald 95 % "
        "(odds ratios, logistic regression), asymptotic 95 % (Cohen's κ).</p>"
        "<table border='1' cellpadding='3'><tr><th>measure</th><th>estimate</th>"
        f"<th>95 % interval</th><th>n</th></tr>{rows}</table>{img}"
        f"<h2>Verdicts per guideline</h2><table border='1' cellpadding='3'>{gl}</table>"
        f"<ul>{notes}</ul><p><small>{e(RESEARCH_USE_NOTICE)}</small></p></body></html>\n")


def write_audit_summary(audit: ReferralAudit, out_dir: str | os.PathLike) -> dict[str, Path]:
    """Write ``audit_summary.html`` (with the forest plot), ``audit_summary.csv`` and
    ``audit_referrals.csv`` (row numbers, never identifiers) atomically into `out_dir`.

    Examples
    --------
    >>> import tempfile
    >>> rows = [{"age": 40, "cauda_equina_signs": ["saddle_anaesthesia"]}]
    >>> paths = write_audit_summary(audit_referrals(rows, regression=False), tempfile.mkdtemp())
    >>> sorted(paths)
    ['html', 'referrals_csv', 'summary_csv']
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    png = forest_plot_png(audit.odds_ratios) if audit.odds_ratios else None
    paths = {
        "html": atomic_write_text(out / "audit_summary.html", _html(audit, png)),
        "summary_csv": atomic_write_text(out / "audit_summary.csv",
                                         _csv_text(audit.summary_rows())),
        "referrals_csv": atomic_write_text(out / "audit_referrals.csv",
                                           _csv_text(list(audit.referrals))),
    }
    if png is not None:
        paths["forest_png"] = atomic_write_bytes(out / "audit_forest_plot.png", png)
    logger.info("wrote referral audit to %s", out)
    return paths
