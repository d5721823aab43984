"""Per-guideline verdicts on a lumbar MRI request, from a versioned criteria file (rule set v2).

Each guideline — NICE NG59 (and the superseded CG88 where it still differs), ACP 2007/2011,
ACR Appropriateness Criteria 2021 (*Low Back Pain*, and *Back Pain — Child* below 18 years) and
the European COST B13 guidelines 2006 — is an ordered list of criteria in
``data/guidelines_v2.json``: each criterion has conditions (data, not code), a verdict
(``appropriate``, ``uncertain``, ``inappropriate`` or ``not_covered``), a citation and, for ACR, the
variant number. A new guideline edition is a new criteria file; its version is in every output.

This module only interprets the file; :func:`dwi_toolkit.clinical.indication.assess_indication`
evaluates it on every completion of the missing data and reports the verdicts side by side.

Condition keys (all of one criterion must hold; ``any`` holds a list of alternatives):
``age_lt``, ``age_gt`` (years); ``ces``; ``flags_any``, ``flags_none`` (names in ``red_flags``);
``radicular``; ``surgery``; ``prior_lumbar_surgery``; ``postop`` (prior surgery with new or
progressive symptoms); ``ct_ge``, ``ct_lt`` (weeks of conservative treatment, or the name of a
threshold such as ``"disc_weeks"``); ``pain_gt``, ``pain_lt`` (weeks); ``pain_recorded``;
``repeat_no_change_months`` (previous MRI fewer months ago and no clinical change);
``prior_mri_within_months`` (previous MRI fewer months ago, whatever the change);
``ct_gt_pain`` (treatment longer than the pain); ``condition_in``, ``condition_not_in``
(``suspected_condition``; unknown is in no list); ``weak_count_ge`` (distinct non-decisive
features, the age features counting once).

Examples
--------
>>> g = load_guideline_table()
>>> [x["id"] for x in g["guidelines"]]
['nice_ng59', 'nice_cg88', 'acp_2011', 'acr_2021', 'european_2006']
>>> g["rule_set_version"]
'v2'
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

from ..errors import ClinicalDataError
from .vocab import AGE_FEATURES, NON_DECISIVE_FEATURES

__all__ = ["GuidelineVerdict", "VERDICTS", "load_guideline_table", "match_criterion",
           "first_criterion"]

VERDICTS = ("appropriate", "uncertain", "inappropriate", "not_covered")
_RESOURCE = "guidelines_v2.json"


@functools.lru_cache(maxsize=None)
def _text() -> str:
    return resources.files("dwi_toolkit.clinical.data").joinpath(_RESOURCE).read_text("utf-8")


def load_guideline_table() -> dict[str, Any]:
    """The packaged per-guideline criteria (a fresh copy of ``guidelines_v2.json``).

    Examples
    --------
    >>> t = load_guideline_table()
    >>> t["guidelines"][0]["criteria"][0]["id"], t["guidelines"][0]["effective_date"]
    ('NG59-SCOPE', '2016-11-30')
    """
    table = json.loads(_text())
    for g in table["guidelines"]:
        for c in g["criteria"]:
            if c["verdict"] not in VERDICTS:
                raise ClinicalDataError(f"{_RESOURCE}: criterion {c['id']} has unknown verdict "
                                        f"{c['verdict']!r}; allowed: {', '.join(VERDICTS)}")
    return table


def _weak_count(flags: set[str]) -> int:
    """Distinct non-decisive features; the age features count once (§3.10)."""
    return len({("age" if f in AGE_FEATURES else f) for f in flags if f in NON_DECISIVE_FEATURES})


def _threshold(value: Any, params: Mapping[str, float]) -> float:
    return float(params[value]) if isinstance(value, str) else float(value)


def _holds(key: str, want: Any, case: Any, params: Mapping[str, float]) -> bool:
    flags = set(case.red_flags)
    tests = {
        "age_lt": lambda: case.age < want,
        "age_gt": lambda: case.age > want,
        "ces": lambda: bool(case.ces) == want,
        "flags_any": lambda: bool(flags & set(want)),
        "flags_none": lambda: not flags & set(want),
        "radicular": lambda: case.radicular == want,
        "surgery": lambda: case.surgery == want,
        "prior_lumbar_surgery": lambda: case.prior_surgery == want,
        "postop": lambda: (case.prior_surgery and case.new_prog) == want,
        "ct_ge": lambda: case.ct >= _threshold(want, params),
        "ct_lt": lambda: case.ct < _threshold(want, params),
        "pain_gt": lambda: case.pain > want,
        "pain_lt": lambda: case.pain < want,
        "pain_recorded": lambda: case.pain_recorded == want,
        "repeat_no_change_months": lambda: (case.mri_months is not None
                                            and case.mri_months < want and not case.change),
        "prior_mri_within_months": lambda: (case.mri_months is not None
                                            and case.mri_months < want),
        "ct_gt_pain": lambda: (case.ct > case.pain) == want,
        "condition_in": lambda: case.condition in want,
        "condition_not_in": lambda: case.condition not in want,
        "weak_count_ge": lambda: _weak_count(flags) >= want,
        "any": lambda: any(match_criterion(alt, case, params) for alt in want),
    }
    try:
        return bool(tests[key]())
    except KeyError:
        raise ClinicalDataError(f"unknown condition {key!r} in the criteria file; allowed: "
                                + ", ".join(sorted(tests))) from None


def match_criterion(when: Mapping[str, Any], case: Any, params: Mapping[str, float]) -> bool:
    """True when every condition of `when` holds for the complete `case`.

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> case = SimpleNamespace(age=12, red_flags=("night_pain",), ces=(), radicular=False)
    >>> match_criterion({"age_lt": 18, "flags_any": ["night_pain"]}, case, {})
    True
    >>> match_criterion({"any": [{"radicular": True}, {"age_gt": 60}]}, case, {})
    False
    """
    return all(_holds(k, v, case, params) for k, v in when.items())


def first_criterion(criteria: Sequence[Mapping[str, Any]], case: Any,
                    params: Mapping[str, float]) -> Mapping[str, Any]:
    """The first criterion of `criteria` that holds (the last must be unconditional).

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> crit = [{"id": "A", "when": {"age_lt": 18}}, {"id": "B", "when": {}}]
    >>> first_criterion(crit, SimpleNamespace(age=40, red_flags=()), {})["id"]
    'B'
    """
    for c in criteria:
        if match_criterion(c["when"], case, params):
            return c
    raise ClinicalDataError("no criterion holds: the last criterion of each guideline must have "
                            "empty conditions ('when': {})")


@dataclass(frozen=True)
class GuidelineVerdict:
    """The verdict of one guideline on one case.

    Attributes
    ----------
    guideline, name, edition, effective_date : str
        Identifier (e.g. ``"acr_2021"``), display name, edition and effective date (ISO).
    verdict : {"appropriate", "uncertain", "inappropriate", "not_covered"}
        ``uncertain`` also when missing data leave the verdict open (see `possible`).
    criterion : str
        ID of the deciding criterion (``"MISSING"`` when missing data decide).
    text, citation : str
        What the criterion says and where (guideline key and locator).
    variant : int or None
        ACR variant number (topic in `topic`), else ``None``.
    topic : str or None
        ``"Low Back Pain"`` or ``"Back Pain-Child"`` for ACR, else ``None``.
    first_step : str or None
        The first investigation the guideline recommends instead of MRI, if any.
    possible : tuple of str
        Verdicts over the completions of missing data (one when determined).

    Examples
    --------
    >>> from dwi_toolkit.clinical.indication import assess_indication
    >>> a = assess_indication({"age": 12, "pain_duration_weeks": 2, "radicular_pain": False,
    ...     "red_flags": [], "cauda_equina_signs": [], "surgery_considered": False,
    ...     "prior_lumbar_surgery": False, "new_or_progressive_symptoms": False,
    ...     "conservative_treatment_weeks": 1})
    >>> v = a.guideline_verdict("acr_2021")
    >>> v.verdict, v.topic, v.variant
    ('inappropriate', 'Back Pain-Child', 1)
    """

    guideline: str
    name: str
    edition: str
    effective_date: str
    verdict: str
    criterion: str
    text: str
    citation: str
    variant: int | None = None
    topic: str | None = None
    first_step: str | None = None
    possible: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"guideline": self.guideline, "name": self.name, "edition": self.edition,
                "effective_date": self.effective_date, "verdict": self.verdict,
                "criterion": self.criterion, "text": self.text, "citation": self.citation,
                "variant": self.variant, "topic": self.topic, "first_step": self.first_step,
                "possible": list(self.possible)}


def _verdict_from(guideline: Mapping[str, Any], crits: Sequence[Mapping[str, Any]],
                 order: Sequence[str]) -> GuidelineVerdict:
    """Combine the criteria that decided over the completions of the missing data."""
    verdicts = {c["verdict"] for c in crits}
    possible = tuple(v for v in order if v in verdicts)
    g = guideline
    base = dict(guideline=g["id"], name=g["name"], edition=g["edition"],
                effective_date=g["effective_date"], possible=possible)
    ids = {c["id"] for c in crits}
    if len(ids) == 1:
        c = crits[0]
        is_acr = g["id"].startswith("acr")
        topic = c.get("topic", "Low Back Pain") if is_acr else None
        return GuidelineVerdict(verdict=c["verdict"], criterion=c["id"], text=c["text"],
                                citation=c["citation"], variant=c.get("variant"), topic=topic,
                                first_step=c.get("first_step"), **base)
    if len(verdicts) == 1:
        first = crits[0]
        return GuidelineVerdict(
            verdict=first["verdict"], criterion=" / ".join(sorted(ids)),
            text="the same verdict by different criteria depending on unrecorded data",
            citation="; ".join(sorted({c["citation"] for c in crits})), **base)
    return GuidelineVerdict(
        verdict="uncertain", criterion="MISSING",
        text="depends on unrecorded data: " + " or ".join(possible),
        citation="; ".join(sorted({c["citation"] for c in crits})), **base)
