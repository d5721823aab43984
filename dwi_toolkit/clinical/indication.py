"""Was the lumbar spine MRI indicated? Rule set v2: every guideline's verdict side by side, and
the combined class of Kovacs 2013.

Two layers, both package data versioned with the rule set (``RULE_SET_VERSION`` is in every
output):

- **Per-guideline verdicts** (``data/guidelines_v2.json``, interpreted by
  :mod:`dwi_toolkit.clinical.guidelines`): NICE NG59 (and CG88 where it still differs), ACP
  2007/2011, ACR Appropriateness Criteria 2021 (with the variant; *Back Pain — Child* below 18)
  and the European guidelines 2006, each with the deciding criterion, its citation and effective
  date. ``policy_sensitive`` is true exactly when the verdicts the recorded data determine differ.
- **Combined class** (``data/rules_v2.json``), the ordered rule list of dwi_toolkit References
  §3.10 as Kovacs 2013 combined the guidelines (the first rule that fires decides)::

     1   R-CES          any cauda equina sign → appropriate (before the age scope)
     2   R-RF           any decisive red flag (§3.2) → appropriate
     3   R-POSTOP       prior lumbar surgery and new/progressive symptoms → appropriate
     4   R-SCOPE        age < 16 → the paediatric criteria decide (ACR Back Pain — Child:
                        a clinical red flag → uncertain, none → inappropriate)
     5   R-INCONSISTENT conservative treatment longer than the pain → uncertain
     6   R-REPEAT       previous lumbar MRI < 12 months ago, no clinical change → inappropriate
     7   R-WEAK /       non-radicular: ≥ 2 distinct non-decisive features → uncertain,
         R-NONSPEC      otherwise → inappropriate
     8   R-DISC-6W      radicular, disc herniation: surgery considered and ≥ 6 weeks → appropriate
     9   R-STEN-12W     radicular, stenosis: surgery considered and ≥ 12 weeks (policy) → appropriate
     10  R-RAD-UNK      radicular, other/unknown cause: < 6 weeks or no surgery → inappropriate,
                        ≥ stenosis threshold with surgery → appropriate, between → uncertain
     +   R-WEAK         radicular cases that rules 8–10 call inappropriate become uncertain with
                        ≥ 2 weak features (v2: weak features count with and without sciatica)

Missing data (``R-MISSING``, §3.10): when an input the rules need is ``None``, the rules are
evaluated for every possible value of the missing items (booleans true/false; lists empty or
containing one item; conservative-treatment weeks anywhere from 0 up to the pain duration when
that is known). If every completion gives the same class, that class is returned; otherwise the
class is *uncertain* with rule ``R-MISSING`` and the missing fields that mattered.

Numbers enter the rules only through thresholds (6 and 12 weeks, 16 years), so each numeric
range is represented exactly by one value per threshold interval. Completions are always
*consistent*: an unknown pain duration is at least the treatment duration, and an unknown age
agrees with any age feature listed in ``red_flags``.

``setting`` and ``prescriber_specialty`` never change the class; they are reported as Kovacs 2013
risk factors for an inappropriate request (§3.8).

The thresholds, rule texts, per-rule and per-red-flag citations, the ACR 2021 variants and the
Kovacs 2013 odds ratios are package data (``data/rules_v2.json``), versioned with the rule set.
When an unknown field changes the class, :attr:`IndicationAssessment.what_would_change` lists the
class each of its values would give (e.g. "appropriate if 6 weeks ≤ conservative_treatment_weeks").

This is decision support for research, not a clinical decision.

Examples
--------
>>> from dwi_toolkit.clinical.vocab import ClinicalInput
>>> case = ClinicalInput(age=45, pain_duration_weeks=10, conservative_treatment_weeks=8,
...                      radicular_pain=True, suspected_condition="disc_herniation",
...                      red_flags=[], cauda_equina_signs=[], surgery_considered=True,
...                      prior_lumbar_surgery=False, new_or_progressive_symptoms=False)
>>> a = assess_indication(case)
>>> a.classification, a.decisive_rules, a.acr_2021_variant
('appropriate', ('R-DISC-6W',), 3)
>>> assess_indication(case.replace(surgery_considered=None)).decisive_rules
('R-MISSING',)
"""

from __future__ import annotations

import functools
import html
import itertools
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, Literal

from ..errors import ClinicalDataError
from .guidelines import VERDICTS, GuidelineVerdict, _verdict_from, first_criterion, load_guideline_table
from .vocab import (
    AGE_FEATURES,
    DECISIVE_RED_FLAGS,
    NON_DECISIVE_FEATURES,
    RULE_INPUT_FIELDS,
    ClinicalInput,
)

__all__ = [
    "RULE_SET_VERSION",
    "STENOSIS_POLICIES",
    "DEFAULT_STENOSIS_POLICY",
    "CLASSES",
    "RiskFactor",
    "IndicationAssessment",
    "assess_indication",
    "load_rule_table",
    "RESEARCH_USE_NOTICE",
]

logger = logging.getLogger(__name__)

RULE_SET_VERSION = "v2"
CLASSES = ("appropriate", "uncertain", "inappropriate")
StenosisPolicy = Literal["kovacs2013", "acr2021"]
STENOSIS_POLICIES: tuple[str, ...] = ("kovacs2013", "acr2021")
#: Default of the rule set: Kovacs 2013, 12 weeks for stenosis (§3.10).
DEFAULT_STENOSIS_POLICY: StenosisPolicy = "kovacs2013"
#: Rules whose decision uses the stenosis policy's threshold (the statement names the policy and
#: cites its sources).
_STENOSIS_POLICY_RULES = ("R-STEN-12W", "R-RAD-UNK")

RESEARCH_USE_NOTICE = (
    "Research use only: a deterministic encoding of guideline criteria (dwi_toolkit rule set v2, "
    "dwi_toolkit References §3.10) for studying imaging appropriateness. It does not replace "
    "clinical judgement and must not be used to decide on imaging for an individual patient."
)

_RULES_RESOURCE = "rules_v2.json"


@functools.lru_cache(maxsize=None)
def _rule_table_json() -> str:
    return resources.files("dwi_toolkit.clinical.data").joinpath(_RULES_RESOURCE).read_text(
        encoding="utf-8"
    )


def load_rule_table() -> dict[str, Any]:
    """The packaged rule table of the combined class (a fresh copy; thresholds, rules, citations).

    Examples
    --------
    >>> t = load_rule_table()
    >>> t["rule_set_version"], t["stenosis_policies"]["kovacs2013"]["threshold_weeks"]
    ('v2', 12)
    >>> [r["id"] for r in t["rules"]][:3]
    ['R-CES', 'R-RF', 'R-POSTOP']
    """
    return json.loads(_rule_table_json())


@functools.lru_cache(maxsize=None)
def _table() -> _RuleTable:
    return _RuleTable.from_json(load_rule_table())


@dataclass(frozen=True)
class _RuleTable:
    version: str
    file_version: str
    adult_age: float
    disc_weeks: float
    repeat_months: float
    weak_min: int
    policies: Mapping[str, Mapping[str, Any]]
    rules: Mapping[str, Mapping[str, Any]]
    order: Mapping[str, int]
    red_flags: Mapping[str, Mapping[str, Any]]
    acr_variants: Mapping[int, str]
    risk_factors: tuple[Mapping[str, Any], ...]
    references: Mapping[str, str]
    combined: tuple[Mapping[str, Any], ...]

    @classmethod
    def from_json(cls, t: Mapping[str, Any]) -> _RuleTable:
        th = t["thresholds"]
        unknown = set(t["red_flags"]) ^ set(DECISIVE_RED_FLAGS)
        if unknown:  # the data file and vocab.py must describe the same flags
            raise ClinicalDataError(f"{_RULES_RESOURCE} red flags differ from the vocabulary: {unknown}")
        return cls(
            version=t["rule_set_version"],
            file_version=t["file_version"],
            adult_age=float(th["adult_age_years"]),
            disc_weeks=float(th["disc_conservative_weeks"]),
            repeat_months=float(th["repeat_mri_months"]),
            weak_min=int(th["weak_features_min"]),
            policies=t["stenosis_policies"],
            rules={r["id"]: r for r in t["rules"]},
            order={r["id"]: int(r["order"]) for r in t["rules"]},
            red_flags=t["red_flags"],
            acr_variants={int(k): v for k, v in t["acr_2021_variants"].items()},
            risk_factors=tuple(t["kovacs2013_risk_factors"]),
            references=t["references"],
            combined=tuple(t["combined_criteria"]),
        )


# ---------------------------------------------------------------------------------------------
# The rules on complete data
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Case:
    """Values the rules read, all known (a completion of a ClinicalInput)."""

    age: float
    pain: float
    pain_recorded: bool
    ct: float
    radicular: bool
    condition: str | None  # None = cause unknown (R-RAD-UNK), never "missing"
    red_flags: tuple[str, ...]
    ces: tuple[str, ...]
    surgery: bool
    prior_surgery: bool
    new_prog: bool
    mri_months: float | None  # None = no previous lumbar MRI
    change: bool


def _decide(c: _Case, t: _RuleTable, sten_weeks: float) -> tuple[str, str]:
    """Ordered rules of §3.10 (``combined_criteria`` of the rules file) on complete data ->
    (class, rule id)."""
    params = {"disc_weeks": t.disc_weeks, "stenosis_weeks": sten_weeks,
              "max_weeks": max(t.disc_weeks, sten_weeks)}
    crit = first_criterion(t.combined, c, params)
    if "verdict_from" in crit:  # R-SCOPE: the paediatric criteria decide
        return _guideline_criterion(crit["verdict_from"], c, sten_weeks)["verdict"], crit["rule"]
    return crit["verdict"], crit["rule"]


@functools.lru_cache(maxsize=None)
def _guidelines() -> tuple[dict[str, Any], ...]:
    return tuple(load_guideline_table()["guidelines"])


def _guideline_criterion(gid: str, c: _Case, sten_weeks: float) -> Mapping[str, Any]:
    g = next(g for g in _guidelines() if g["id"] == gid)
    params = {"disc_weeks": _table().disc_weeks, "stenosis_weeks": sten_weeks}
    return first_criterion(g["criteria"], c, params)


def _guideline_thresholds(key: str) -> tuple[float, ...]:
    """Numeric thresholds of condition `key` in the criteria file (for the missing-data domains)."""
    out: set[float] = set()

    def walk(when: Mapping[str, Any]) -> None:
        for k, v in when.items():
            if k == "any":
                for alt in v:
                    walk(alt)
            elif k == key and not isinstance(v, str):
                out.add(float(v))

    for g in _guidelines():
        for crit in g["criteria"]:
            walk(crit["when"])
    return tuple(sorted(out))


def _acr_variant(c: _Case, t: _RuleTable, sten_weeks: float) -> int | None:
    """ACR 2021 *Low Back Pain* variant (§3.7) of the complete case; informational.

    Read from the ACR criteria of ``guidelines_v2.json`` (the same criterion as the ACR
    verdict). ``None`` when no variant fits exactly: the paediatric topic, a decisive red flag
    outside variants 6/7, a previous MRI within 12 months (the variants describe initial
    imaging), contradictory durations, or care that is neither none nor enough.
    """
    if c.ct > c.pain:
        return None
    crit = _guideline_criterion("acr_2021", c, sten_weeks)
    if crit.get("topic", "Low Back Pain") != "Low Back Pain":
        return None
    return crit.get("variant")


# ---------------------------------------------------------------------------------------------
# Completions of missing data (R-MISSING)
# ---------------------------------------------------------------------------------------------
_REP_DECISIVE = DECISIVE_RED_FLAGS[0]
_REP_WEAK = "night_pain"  # a non-age feature: consistent with any age
_REP_CES = "saddle_anaesthesia"


def _age_domain(clinical: ClinicalInput, t: _RuleTable) -> tuple[tuple[float, ...], str | None]:
    """One representative age per interval between the age thresholds (16, and those of the
    guideline criteria: 18, 55), consistent with the age features in ``red_flags``."""
    lo, hi = 0.0, 130.0
    flags = clinical.red_flags or ()
    if "age_over_50" in flags:
        lo = max(lo, 50.0)
    if "age_over_70" in flags:
        lo = max(lo, 70.0)
    if "age_under_20" in flags:
        hi = min(hi, 20.0)
    if lo >= hi:
        return (t.adult_age - 1.0, t.adult_age), "the age features in red_flags contradict each other"
    cuts = sorted({t.adult_age, *_guideline_thresholds("age_lt"), *_guideline_thresholds("age_gt")})
    edges = [lo, *[x for x in cuts if lo < x < hi], hi]
    return tuple((a + b) / 2.0 for a, b in zip(edges[:-1], edges[1:])), None


def _ct_domain(pain: float | None, thresholds: Sequence[float]) -> tuple[float, ...]:
    """Conservative-treatment weeks: one value per threshold interval within [0, pain]."""
    vals = {0.0}
    for th in thresholds:
        if pain is None or th <= pain:
            vals.add(float(th))
    return tuple(sorted(vals))


@dataclass(frozen=True)
class _Completion:
    assignment: tuple[tuple[str, Any], ...]  # the values given to missing fields
    case: _Case
    klass: str
    rule: str
    variant: int | None


def _completions(
    clinical: ClinicalInput, t: _RuleTable, sten_weeks: float
) -> tuple[list[_Completion], list[str], list[str]]:
    """All completions of the missing rule inputs -> (completions, missing fields, notes)."""
    notes: list[str] = []
    domains: dict[str, tuple[Any, ...]] = {}
    for name in ("radicular_pain", "surgery_considered", "prior_lumbar_surgery",
                 "new_or_progressive_symptoms"):
        if getattr(clinical, name) is None:
            domains[name] = (True, False)
    if clinical.clinical_change_since_prior_mri is None and (
        clinical.prior_lumbar_mri_months_ago is not None
    ):
        domains["clinical_change_since_prior_mri"] = (True, False)
    if clinical.red_flags is None:
        domains["red_flags"] = ((), (_REP_DECISIVE,), (_REP_WEAK,))
    if clinical.cauda_equina_signs is None:
        domains["cauda_equina_signs"] = ((), (_REP_CES,))
    if clinical.age is None:
        ages, note = _age_domain(clinical, t)
        if note:
            notes.append(note)
        domains["age"] = ages
    if clinical.conservative_treatment_weeks is None:
        thresholds = (t.disc_weeks, sten_weeks, *_guideline_thresholds("ct_ge"),
                      *_guideline_thresholds("ct_lt"))
        domains["conservative_treatment_weeks"] = _ct_domain(clinical.pain_duration_weeks,
                                                             thresholds)
    if clinical.pain_duration_weeks is None:
        # an unknown pain duration is at least the treatment duration (pain = max(ct, value));
        # one value on each side of the pain thresholds of the criteria (child: > 4 weeks)
        domains["pain_duration_weeks"] = (0.0, *(th + 1e-6 for th in
                                                 _guideline_thresholds("pain_gt")))
    missing = [f for f in RULE_INPUT_FIELDS if f in domains]
    names = list(domains)
    out: list[_Completion] = []
    for values in itertools.product(*(domains[n] for n in names)):
        a = dict(zip(names, values))

        def get(name: str, a: dict[str, Any] = a) -> Any:
            return a[name] if name in a else getattr(clinical, name)

        ct = float(get("conservative_treatment_weeks"))
        pain_recorded = clinical.pain_duration_weeks is not None
        # an unknown pain duration is consistent: at least as long as the treatment
        pain = (float(clinical.pain_duration_weeks) if pain_recorded
                else max(ct, float(get("pain_duration_weeks"))))
        case = _Case(
            age=float(get("age")),
            pain=pain,
            pain_recorded=pain_recorded,
            ct=ct,
            radicular=bool(get("radicular_pain")),
            condition=clinical.suspected_condition,
            red_flags=tuple(get("red_flags")),
            ces=tuple(get("cauda_equina_signs")),
            surgery=bool(get("surgery_considered")),
            prior_surgery=bool(get("prior_lumbar_surgery")),
            new_prog=bool(get("new_or_progressive_symptoms")),
            mri_months=clinical.prior_lumbar_mri_months_ago,
            change=bool(get("clinical_change_since_prior_mri")),
        )
        klass, rule = _decide(case, t, sten_weeks)
        out.append(_Completion(tuple(sorted(a.items())), case, klass, rule,
                               _acr_variant(case, t, sten_weeks)))
    return out, missing, notes


def _fields_that_mattered(comps: Sequence[_Completion], missing: Sequence[str]) -> list[str]:
    """Missing fields f such that two completions differing only in f differ in class."""
    out = []
    for f in missing:
        groups: dict[tuple, set[str]] = {}
        for c in comps:
            key = tuple(kv for kv in c.assignment if kv[0] != f)
            groups.setdefault(key, set()).add(c.klass)
        if any(len(v) > 1 for v in groups.values()):
            out.append(f)
    return out


# ---------------------------------------------------------------------------------------------
# Result
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RiskFactor:
    """A Kovacs 2013 risk factor for an inappropriate request (§3.8); reported, never deciding.

    Attributes
    ----------
    name : str
    status : {"present", "absent", "unknown"}
    odds_ratio : float
        Odds ratio of an inappropriate request in Kovacs 2013 (n = 602).
    ci95 : tuple of float
        95 % confidence interval of the odds ratio.
    description : str

    Examples
    --------
    >>> from dwi_toolkit.sample_data import SAMPLE_CLINICAL
    >>> a = assess_indication(SAMPLE_CLINICAL)
    >>> r = a.kovacs_risk_factors[0]
    >>> r.name, r.status, r.odds_ratio, r.ci95
    ('no_referred_pain', 'absent', 13.75, (6.72, 28.16))
    """

    name: str
    status: str
    odds_ratio: float
    ci95: tuple[float, float]
    description: str

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "status": self.status, "odds_ratio": self.odds_ratio,
                "ci95": list(self.ci95), "description": self.description}


@dataclass(frozen=True)
class IndicationAssessment:
    """Outcome of the indication rule set (dwi_toolkit References §3.10, v2) for one subject.

    Attributes
    ----------
    classification : {"appropriate", "uncertain", "inappropriate"}
        Whether the lumbar MRI was indicated by guideline criteria.
    decisive_rules : tuple of str
        Rule IDs that decided (``("R-MISSING",)`` when missing data leave the class open).
        When data are missing but every completion gives the same class, the rules that decide
        with no further finding added to the unassessed lists.
    citations : tuple of str
        Guideline keys of dwi_toolkit References §5 with a locator (e.g.
        ``"ACR-AC-LowBackPain-2021 V3"``); full texts in :attr:`references`.
    missing_fields : tuple of str
        The missing (``None``) inputs whose possible values change the class (the reason for
        ``R-MISSING``), plus ``suspected_condition`` when an unknown cause made it uncertain.
    unrecorded_fields : tuple of str
        Every clinical field that was not recorded (whether or not it mattered).
    possible_classes : tuple of str
        Classes reached over the completions of the missing data (one class when determined).
    stenosis_policy : str
        ``"kovacs2013"`` (12 weeks) or ``"acr2021"`` (6 weeks).
    stenosis_threshold_weeks : float
    policy_sensitive : bool
        True where another guideline would classify differently (§3.10 "policy-sensitive").
    acr_2021_variant : int or None
        ACR 2021 variant (1–7) the case maps to; informational. ``None`` when none fits exactly.
    kovacs_risk_factors : tuple of RiskFactor
        Kovacs 2013 risk factors for an inappropriate request with their status; never deciding.
    rule_trace : tuple of (str, str)
        For each rule in order: ``"yes"`` (decides in every completion), ``"no"`` or
        ``"unknown"`` (decides in some completions only).
    notes : tuple of str
        Data-consistency remarks (do not change the class).
    explanation : str
        Plain-language account of the result.
    rule_set_version, rules_file_version : str
    references : dict
        Citation key → full reference for the keys in :attr:`citations`.

    Examples
    --------
    >>> from dwi_toolkit.sample_data import SAMPLE_CLINICAL   # left L5 radicular pain, 10 weeks
    >>> a = assess_indication(SAMPLE_CLINICAL)
    >>> a.classification, a.decisive_rules
    ('appropriate', ('R-DISC-6W',))
    """

    classification: str
    decisive_rules: tuple[str, ...]
    citations: tuple[str, ...]
    missing_fields: tuple[str, ...]
    unrecorded_fields: tuple[str, ...]
    possible_classes: tuple[str, ...]
    stenosis_policy: str
    stenosis_threshold_weeks: float
    policy_sensitive: bool
    acr_2021_variant: int | None
    kovacs_risk_factors: tuple[RiskFactor, ...]
    rule_trace: tuple[tuple[str, str], ...]
    notes: tuple[str, ...]
    explanation: str
    rule_set_version: str = RULE_SET_VERSION
    rules_file_version: str = ""
    references: Mapping[str, str] = field(default_factory=dict)
    guideline_verdicts: tuple[GuidelineVerdict, ...] = ()
    what_would_change: tuple[str, ...] = ()
    guidelines_file_version: str = ""

    def guideline_verdict(self, guideline: str) -> GuidelineVerdict | None:
        """The verdict of one guideline (e.g. ``"acr_2021"``), or ``None`` when not listed.

        Examples
        --------
        >>> from dwi_toolkit.sample_data import SAMPLE_CLINICAL
        >>> assess_indication(SAMPLE_CLINICAL).guideline_verdict("nice_ng59").verdict
        'appropriate'
        """
        return next((v for v in self.guideline_verdicts if v.guideline == guideline), None)

    @property
    def kovacs_risk_factors_present(self) -> tuple[str, ...]:
        """Names of the Kovacs 2013 risk factors that are present."""
        return tuple(r.name for r in self.kovacs_risk_factors if r.status == "present")

    @property
    def acr_2021_variant_text(self) -> str | None:
        """Paraphrased text of the mapped ACR 2021 variant (§3.7), or ``None``."""
        if self.acr_2021_variant is None:
            return None
        return _table().acr_variants[self.acr_2021_variant]

    @property
    def determined(self) -> bool:
        """True when the class does not depend on missing data."""
        return len(self.possible_classes) == 1

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (all keys always present; lists, not tuples).

        Examples
        --------
        >>> from dwi_toolkit.clinical.vocab import ClinicalInput
        >>> case = ClinicalInput(age=40, cauda_equina_signs=["saddle_anaesthesia"])
        >>> d = assess_indication(case).to_dict()
        >>> d["classification"], d["decisive_rules"], d["acr_2021_variant"]
        ('appropriate', ['R-CES'], 4)
        """
        return {
            "rule_set_version": self.rule_set_version,
            "rules_file_version": self.rules_file_version,
            "classification": self.classification,
            "decisive_rules": list(self.decisive_rules),
            "citations": list(self.citations),
            "missing_fields": list(self.missing_fields),
            "unrecorded_fields": list(self.unrecorded_fields),
            "possible_classes": list(self.possible_classes),
            "determined": self.determined,
            "stenosis_policy": {"name": self.stenosis_policy,
                                "threshold_weeks": self.stenosis_threshold_weeks},
            "policy_sensitive": self.policy_sensitive,
            "acr_2021_variant": self.acr_2021_variant,
            "acr_2021_variant_text": self.acr_2021_variant_text,
            "kovacs2013_risk_factors": [r.to_dict() for r in self.kovacs_risk_factors],
            "kovacs2013_risk_factors_present": list(self.kovacs_risk_factors_present),
            "rule_trace": [{"rule": r, "decides": s} for r, s in self.rule_trace],
            "notes": list(self.notes),
            "explanation": self.explanation,
            "references": dict(self.references),
            "guidelines_file_version": self.guidelines_file_version,
            "guideline_verdicts": [v.to_dict() for v in self.guideline_verdicts],
            "what_would_change": list(self.what_would_change),
            "research_use_notice": RESEARCH_USE_NOTICE,
        }

    def __repr__(self) -> str:
        return (
            f"IndicationAssessment(classification={self.classification!r}, "
            f"decisive_rules={self.decisive_rules!r}, missing_fields={self.missing_fields!r}, "
            f"acr_2021_variant={self.acr_2021_variant!r}, "
            f"stenosis_policy={self.stenosis_policy!r})"
        )

    def _repr_html_(self) -> str:
        e = html.escape
        colour = {"appropriate": "#1b7837", "uncertain": "#b35806",
                  "inappropriate": "#b2182b"}[self.classification]
        rows = [
            ("Decisive rules", ", ".join(self.decisive_rules)),
            ("Missing fields that mattered", ", ".join(self.missing_fields) or "none"),
            ("Stenosis policy", f"{self.stenosis_policy} ({self.stenosis_threshold_weeks:g} weeks)"),
            ("Policy-sensitive", "yes" if self.policy_sensitive else "no"),
            ("Verdict per guideline", "; ".join(
                f"{v.name}: {v.verdict} ({v.criterion}; {v.citation})"
                for v in self.guideline_verdicts)),
            ("Would change with unrecorded data", "; ".join(self.what_would_change) or "none"),
            ("ACR 2021 variant", "none fits exactly" if self.acr_2021_variant is None
             else f"{self.acr_2021_variant}: {self.acr_2021_variant_text}"),
            ("Kovacs 2013 risk factors present (not used)",
             ", ".join(self.kovacs_risk_factors_present) or "none"),
            ("Citations", "; ".join(self.citations)),
        ]
        body = "".join(
            f"<tr><th style='text-align:left;padding-right:1em'>{e(k)}</th><td>{e(v)}</td></tr>"
            for k, v in rows
        )
        return (
            "<div class='dwi-indication'>"
            f"<p><b>Indication (rule set {e(self.rule_set_version)}):</b> "
            f"<span style='color:{colour};font-weight:bold'>{e(self.classification)}</span></p>"
            f"<table>{body}</table><p>{e(self.explanation)}</p>"
            f"<p><small>{e(RESEARCH_USE_NOTICE)}</small></p></div>"
        )


# ---------------------------------------------------------------------------------------------
# Explanation
# ---------------------------------------------------------------------------------------------
def _fmt(x: float | None) -> str:
    return "not recorded" if x is None else f"{x:g}"


def _rule_sentence(rule: str, clinical: ClinicalInput, t: _RuleTable, sten: float) -> str:
    c = clinical
    ct = _fmt(c.conservative_treatment_weeks)
    if rule == "R-CES":
        signs = ", ".join(c.cauda_equina_signs or ()) or "a cauda equina sign"
        return (f"R-CES: cauda equina signs ({signs}) call for emergency MRI whatever the "
                "duration (NICE CKS 2018; ACR 2021 variant 4).")
    if rule == "R-RF":
        flags = ", ".join(f for f in (c.red_flags or ()) if f in DECISIVE_RED_FLAGS)
        return (f"R-RF: decisive red flag(s) present ({flags or 'a decisive red flag'}); any red "
                "flag of serious pathology makes MRI appropriate (Kovacs 2013; §3.2).")
    if rule == "R-POSTOP":
        return ("R-POSTOP: previous lumbar surgery with new or progressive symptoms "
                "(ACR 2021 variant 5).")
    if rule == "R-SCOPE":
        return (f"R-SCOPE: age {_fmt(c.age)} years is below {t.adult_age:g}; the adult "
                "guidelines (NICE NG59 covers 16 and over) do not apply.")
    if rule == "R-INCONSISTENT":
        return (f"R-INCONSISTENT: {ct} weeks of conservative treatment exceed the "
                f"{_fmt(c.pain_duration_weeks)} weeks of pain; the data must be queried.")
    if rule == "R-REPEAT":
        return (f"R-REPEAT: a lumbar MRI was done {_fmt(c.prior_lumbar_mri_months_ago)} months "
                f"ago (< {t.repeat_months:g}) and the clinical picture has not changed "
                "(ACP 2011 'no imaging'; Dybvik 2023).")
    if rule == "R-WEAK":
        return ("R-WEAK: no radicular pain, but two or more weak features "
                f"({', '.join(f for f in (c.red_flags or ()) if f in NON_DECISIVE_FEATURES)}); "
                "guidelines diverge on imaging.")
    if rule == "R-NONSPEC":
        return ("R-NONSPEC: no radicular pain and nothing suggesting serious pathology; "
                "guidelines advise against imaging.")
    surgery = {True: "surgery or an intervention is being considered",
               False: "surgery or an intervention is not being considered",
               None: "whether surgery is considered is not recorded"}[c.surgery_considered]
    if rule == "R-DISC-6W":
        return (f"R-DISC-6W: radicular pain from a suspected disc herniation; {surgery}; "
                f"{ct} weeks of failed conservative treatment (threshold "
                f"{t.disc_weeks:g} weeks, Kovacs 2013).")
    if rule == "R-STEN-12W":
        return (f"R-STEN-12W: radicular/claudication symptoms from suspected spinal stenosis; "
                f"{surgery}; {ct} weeks of failed conservative treatment (threshold {sten:g} "
                "weeks under the chosen stenosis policy).")
    if rule == "R-RAD-UNK":
        return (f"R-RAD-UNK: radicular pain of other or unknown cause; {surgery}; {ct} weeks of "
                f"failed conservative treatment (disc threshold {t.disc_weeks:g}, stenosis "
                f"threshold {sten:g} weeks; in between the thresholds disagree).")
    return rule


def _explain(a_class: str, rules: Sequence[str], clinical: ClinicalInput, t: _RuleTable,
             sten: float, missing: Sequence[str], possible: Sequence[str],
             present_rf: Sequence[str], variant: int | None, policy: str) -> str:
    head = {"appropriate": "The lumbar MRI was indicated (appropriate)",
            "uncertain": "Whether the lumbar MRI was indicated is uncertain",
            "inappropriate": "The lumbar MRI was not indicated (inappropriate)"}[a_class]
    # the stenosis policy is named only when a rule that uses its threshold decided (issue #13)
    if any(r in _STENOSIS_POLICY_RULES for r in rules):
        parts = [f"{head} by rule set {t.version} (stenosis policy {policy}, {sten:g} weeks)."]
    else:
        parts = [f"{head} by rule set {t.version}."]
    if rules == ("R-MISSING",):
        parts.append(
            "R-MISSING: the outcome depends on data that were not recorded ("
            + ", ".join(missing) + "); depending on their values it would be "
            + " or ".join(possible) + ". Record them to get a definite class."
        )
    else:
        parts.extend(_rule_sentence(r, clinical, t, sten) for r in rules)
        unrecorded = [f for f in clinical.unrecorded_fields if f in RULE_INPUT_FIELDS]
        if unrecorded and len(possible) == 1:
            parts.append("Not recorded but unable to change the outcome: "
                         + ", ".join(unrecorded) + ".")
    if a_class == "inappropriate":
        parts.append("Imaging findings in such patients rarely change management (§3).")
    if variant is not None:
        parts.append(f"Maps to ACR 2021 variant {variant}.")
    if present_rf:
        parts.append("Kovacs 2013 risk factors for an inappropriate request present (reported "
                     "only, never used to classify): " + ", ".join(present_rf) + ".")
    return " ".join(parts)


# ---------------------------------------------------------------------------------------------
# Public entry point
# ---------------------------------------------------------------------------------------------
def _risk_factors(clinical: ClinicalInput, t: _RuleTable) -> tuple[RiskFactor, ...]:
    out = []
    for rf in t.risk_factors:
        name = rf["name"]
        if name == "no_referred_pain":
            v = clinical.referred_pain
            status = "unknown" if v is None else ("present" if v is False else "absent")
        elif name == "private_practice":
            v = clinical.setting
            status = "unknown" if v is None else ("present" if v == "private" else "absent")
        else:
            v = clinical.prescriber_specialty
            status = ("unknown" if v is None
                      else "present" if v in rf.get("specialties", ()) else "absent")
        out.append(RiskFactor(name, status, float(rf["odds_ratio"]),
                              (float(rf["ci95"][0]), float(rf["ci95"][1])), rf["description"]))
    return tuple(out)


def _consistency_notes(c: ClinicalInput) -> list[str]:
    notes = []
    flags = c.red_flags or ()
    if c.age is not None:
        if "age_over_50" in flags and not c.age > 50:
            notes.append(f"red_flags lists age_over_50 but age is {c.age:g}")
        if "age_over_70" in flags and not c.age > 70:
            notes.append(f"red_flags lists age_over_70 but age is {c.age:g}")
        if "age_under_20" in flags and not c.age < 20:
            notes.append(f"red_flags lists age_under_20 but age is {c.age:g}")
    if c.radicular_pain is False and c.radicular_side is not None:
        notes.append("radicular_side is given although radicular_pain is false")
    if c.prior_lumbar_mri_months_ago is None and c.clinical_change_since_prior_mri is not None:
        notes.append("clinical_change_since_prior_mri is given but no previous lumbar MRI is "
                     "recorded (prior_lumbar_mri_months_ago is null); it is ignored")
    if c.radicular_side == "bilateral" and not c.cauda_equina_signs:
        notes.append("radicular_side is bilateral: not a cauda equina sign by itself (bilateral "
                     "claudication in stenosis is common); bilateral sciatica must be listed as "
                     "bilateral_sciatica in cauda_equina_signs to count (§3.10)")
    return notes


def _dedupe(items: Sequence[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))


def _combined_class(comps: Sequence[_Completion], missing: Sequence[str],
                    clinical: ClinicalInput, t: _RuleTable
                    ) -> tuple[str, tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    """Combined (Kovacs 2013) class over the completions -> (class, rules, mattered, possible)."""
    classes = {c.klass for c in comps}
    possible = tuple(k for k in CLASSES if k in classes)
    if len(classes) > 1:
        klass = "uncertain"
        rules: tuple[str, ...] = ("R-MISSING",)
        mattered = _fields_that_mattered(comps, missing)
    else:
        klass = possible[0]
        list_fields = {"red_flags", "cauda_equina_signs"}
        baseline = [c for c in comps
                    if all(v == () for k, v in c.assignment if k in list_fields)]
        rules = tuple(sorted({c.rule for c in baseline}, key=t.order.__getitem__))
        mattered = []
    if clinical.suspected_condition is None and any(
        c.rule == "R-RAD-UNK" and c.klass == "uncertain" for c in comps
    ):
        mattered.append("suspected_condition")
    return klass, rules, tuple(f for f in RULE_INPUT_FIELDS if f in mattered), possible


def _citations(rules: Sequence[str], clinical: ClinicalInput, t: _RuleTable,
               policy: str) -> tuple[tuple[str, ...], dict[str, str]]:
    """Citations per decisive rule, per present decisive red flag and the stenosis policy."""
    cites: list[str] = []
    for r in rules:
        cites.extend(t.rules[r]["citations"])
        if r == "R-RF":
            for f in clinical.red_flags or ():
                if f in t.red_flags:
                    cites.extend(t.red_flags[f]["citations"])
        if r in _STENOSIS_POLICY_RULES:
            cites.extend(t.policies[policy]["citations"])
    citations = _dedupe(cites)
    refs = {k: v for k, v in t.references.items() if any(c.split(" ")[0] == k for c in citations)}
    return citations, refs


def _trace(comps: Sequence[_Completion], rules: Sequence[str],
           order: Mapping[str, int]) -> tuple[tuple[str, str], ...]:
    trace = []
    for rid in sorted(order, key=order.__getitem__):
        if rid == "R-MISSING":
            status = "yes" if tuple(rules) == ("R-MISSING",) else "no"
        else:
            fired = {c.rule == rid for c in comps}
            status = "unknown" if len(fired) > 1 else ("yes" if fired.pop() else "no")
        trace.append((rid, status))
    return tuple(trace)


def _guideline_verdicts(comps: Sequence[_Completion], sten: float
                        ) -> tuple[GuidelineVerdict, ...]:
    """Each guideline's verdict over the completions (CG88 only where it differs from NG59)."""
    out: list[GuidelineVerdict] = []
    for g in _guidelines():
        crits = [_guideline_criterion(g["id"], c.case, sten) for c in comps]
        out.append(_verdict_from(g, crits, VERDICTS))
    by_id = {v.guideline: v for v in out}
    cg88, ng59 = by_id.get("nice_cg88"), by_id.get("nice_ng59")
    if cg88 is not None and ng59 is not None and (
        cg88.verdict in ("not_covered", ng59.verdict)
    ):
        out.remove(cg88)
    return tuple(out)


def _policy_sensitive(klass: str, rules: Sequence[str],
                      verdicts: Sequence[GuidelineVerdict]) -> bool:
    """True exactly when the verdicts the recorded data determine differ.

    Compared: every guideline covering the case whose verdict does not depend on missing data,
    and the combined (Kovacs 2013) class unless missing or contradictory data decided it.
    """
    seen = {v.verdict for v in verdicts if v.verdict != "not_covered" and len(v.possible) == 1}
    if not set(rules) & {"R-MISSING", "R-INCONSISTENT"}:
        seen.add(klass)
    return len(seen) > 1


def _value_labels(field_name: str, values: Sequence[Any], t: _RuleTable) -> list[str]:
    """Human labels of the representative values of one missing field (same order)."""
    if field_name in ("age", "conservative_treatment_weeks"):
        # values are one representative per band (merged runs); a band starts at the largest
        # threshold not above its representative and ends where the next band starts
        unit = "years" if field_name == "age" else "weeks"
        cuts = [0.0, t.adult_age, *_guideline_thresholds("age_lt"),
                *_guideline_thresholds("age_gt")] if field_name == "age" else list(values)
        starts = [max(c for c in cuts if c <= v) for v in values]
        out = []
        for i, lo_v in enumerate(starts):
            lo = f"{lo_v:g} {unit} \u2264 " if lo_v > 0 else ""
            hi = f" < {starts[i + 1]:g} {unit}" if i + 1 < len(starts) else ""
            out.append(f"{lo}{field_name}{hi}")
        return out
    if field_name == "pain_duration_weeks":
        ths = _guideline_thresholds("pain_gt")
        return [f"pain_duration_weeks \u2264 {ths[0]:g} weeks" if v == 0 and ths
                else f"pain_duration_weeks > {v:g} weeks" for v in values]
    if field_name == "red_flags":
        return [{(): "red_flags = [] (none present)", (_REP_DECISIVE,): "a decisive red flag is "
                 "present", (_REP_WEAK,): "a weak feature (e.g. night_pain) is present"}[tuple(v)]
                for v in values]
    if field_name == "cauda_equina_signs":
        return ["no cauda equina sign" if not v else "a cauda equina sign is present"
                for v in values]
    return [f"{field_name} = {str(v).lower()}" for v in values]


def _what_would_change(comps: Sequence[_Completion], mattered: Sequence[str],
                       t: _RuleTable) -> tuple[str, ...]:
    """For each missing field that mattered: the class each of its values would give."""
    out: list[str] = []
    for f in mattered:
        groups: dict[Any, set[str]] = {}
        for c in comps:
            a = dict(c.assignment)
            if f in a:
                groups.setdefault(a[f], set()).add(c.klass)
        if not groups:
            continue
        values = sorted(groups, key=lambda v: (str(type(v)), v))
        if f in ("age", "conservative_treatment_weeks"):  # merge runs with the same classes
            values = [v for i, v in enumerate(values)
                      if i == 0 or groups[v] != groups[values[i - 1]]]
            groups = {v: groups[v] for v in values}
        for v, label in zip(values, _value_labels(f, values, t)):
            klasses = " or ".join(k for k in CLASSES if k in groups[v])
            out.append(f"{klasses} if {label}")
    return tuple(out)


def assess_indication(
    clinical: ClinicalInput | Mapping[str, Any],
    *,
    stenosis_policy: StenosisPolicy = DEFAULT_STENOSIS_POLICY,
) -> IndicationAssessment:
    """Classify whether a lumbar spine MRI was indicated: combined class and every guideline's verdict.

    Parameters
    ----------
    clinical : ClinicalInput or mapping
        The subject's clinical data (a mapping is validated with
        :meth:`ClinicalInput.from_dict`).
    stenosis_policy : {"kovacs2013", "acr2021"}, optional
        Threshold of failed conservative treatment for suspected spinal stenosis:
        ``"kovacs2013"`` = 12 weeks (default), ``"acr2021"`` = 6 weeks (ACR 2021
        uses one 6-week threshold). The same threshold bounds the "uncertain" band of R-RAD-UNK.
        The policy used is reported.

    Returns
    -------
    IndicationAssessment
        Class, decisive rule IDs, citations, the missing fields that mattered, Kovacs 2013 risk
        factors (reported only), the mapped ACR 2021 variant and a plain-language explanation.

    Raises
    ------
    ClinicalDataError
        For an unknown `stenosis_policy` or invalid clinical data.

    Notes
    -----
    ``setting``, ``prescriber_specialty``, ``sex``, ``referred_pain``, ``radicular_side`` and
    ``suspected_levels`` never change the class.

    Examples
    --------
    >>> a = assess_indication({"age": 71, "pain_duration_weeks": 10,
    ...     "conservative_treatment_weeks": 8, "radicular_pain": True,
    ...     "suspected_condition": "spinal_stenosis", "red_flags": [], "cauda_equina_signs": [],
    ...     "surgery_considered": True, "prior_lumbar_surgery": False,
    ...     "new_or_progressive_symptoms": False})
    >>> a.classification, a.policy_sensitive
    ('inappropriate', True)
    >>> assess_indication({"age": 71}, stenosis_policy="acr")
    Traceback (most recent call last):
    ...
    dwi_toolkit.errors.ClinicalDataError: unknown stenosis_policy 'acr'; allowed: 'kovacs2013', 'acr2021'
    """
    if stenosis_policy not in STENOSIS_POLICIES:
        raise ClinicalDataError(
            f"unknown stenosis_policy {stenosis_policy!r}; allowed: "
            + ", ".join(repr(p) for p in STENOSIS_POLICIES)
        )
    if not isinstance(clinical, ClinicalInput):
        clinical = ClinicalInput.from_dict(clinical)
    t = _table()
    sten = float(t.policies[stenosis_policy]["threshold_weeks"])

    comps, missing, notes = _completions(clinical, t, sten)
    notes = _consistency_notes(clinical) + notes
    klass, rules, mattered, possible = _combined_class(comps, missing, clinical, t)
    variants = {c.variant for c in comps}
    variant = variants.pop() if len(variants) == 1 else None
    citations, refs = _citations(rules, clinical, t, stenosis_policy)
    verdicts = _guideline_verdicts(comps, sten)
    risk = _risk_factors(clinical, t)
    present_rf = [r.name for r in risk if r.status == "present"]
    explanation = _explain(klass, rules, clinical, t, sten, mattered, possible, present_rf,
                           variant, stenosis_policy) + " Per guideline: " + "; ".join(
        f"{v.name} {v.verdict} ({v.criterion})" for v in verdicts) + "."
    result = IndicationAssessment(
        classification=klass,
        decisive_rules=rules,
        citations=citations,
        missing_fields=mattered,
        unrecorded_fields=clinical.unrecorded_fields,
        possible_classes=possible,
        stenosis_policy=stenosis_policy,
        stenosis_threshold_weeks=sten,
        policy_sensitive=_policy_sensitive(klass, rules, verdicts),
        acr_2021_variant=variant,
        kovacs_risk_factors=risk,
        rule_trace=_trace(comps, rules, t.order),
        notes=tuple(notes),
        explanation=explanation,
        rule_set_version=t.version,
        rules_file_version=t.file_version,
        references=refs,
        guideline_verdicts=verdicts,
        what_would_change=_what_would_change(comps, mattered, t),
        guidelines_file_version=load_guideline_table()["file_version"],
    )
    logger.debug("indication: %r", result)
    return result
