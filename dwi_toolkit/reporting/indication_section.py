"""The per-guideline part of the report's indication section (rule set v2).

Rendered from the JSON-ready dict of
:meth:`dwi_toolkit.clinical.indication.IndicationAssessment.to_dict`, so a report re-loaded from
JSON renders the same table.

Examples
--------
>>> from dwi_toolkit.clinical.indication import assess_indication
>>> from dwi_toolkit.sample_data import SAMPLE_CLINICAL
>>> html = guideline_table_html(assess_indication(SAMPLE_CLINICAL).to_dict())
>>> "ACR 2021" in html and "<table" in html
True
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from typing import Any

from . import presentation as P

__all__ = ["guideline_table_html", "SECTION_KEYS"]

#: Keys of the indication dict this module renders (the report lists the others generically).
SECTION_KEYS = ("guideline_verdicts", "what_would_change")


def guideline_table_html(ind: Mapping[str, Any]) -> str:
    """HTML table of every guideline's verdict, deciding criterion and citation.

    Parameters
    ----------
    ind : mapping
        ``IndicationAssessment.to_dict()`` (older dicts without verdicts give ``""``).

    Returns
    -------
    str
        An HTML fragment: the verdict table, whether the case is policy-sensitive and, for
        missing data, the class each unknown value would give.

    Examples
    --------
    >>> guideline_table_html({})
    ''
    """
    rows = ind.get("guideline_verdicts") or []
    if not rows:
        return ""
    e = html.escape
    body = []
    for v in rows:
        acr = (f"{v.get('topic')} V{v['variant']}" if v.get("variant") is not None else "")
        body.append(
            "<tr>" + "".join(f"<td>{e(str(x))}</td>" for x in (
                v.get("name", ""), P.label(v.get("verdict") or ""), P.label(v.get("criterion") or ""), acr,
                P.prose(v.get("first_step") or ""), P.prose(v.get("text", "")), v.get("citation", ""),
                v.get("effective_date", ""))) + "</tr>")
    head = "".join(f"<th>{h}</th>" for h in ("Guideline", "Verdict", "Criterion", "ACR variant",
                                              "First step", "What it says", "Citation",
                                              "Effective"))
    sens = ("yes: the guidelines disagree on this case" if ind.get("policy_sensitive")
            else "no: the guidelines that cover the case agree")
    out = (f"<p><strong>Verdict per guideline</strong> (rule set "
           f"{e(str(ind.get('rule_set_version', '')))}, criteria file "
           f"{e(str(ind.get('guidelines_file_version', '')))}). Policy-sensitive: {e(sens)}.</p>"
           f"<table class='guideline-verdicts'><tr>{head}</tr>{''.join(body)}</table>")
    change = ind.get("what_would_change") or []
    if change:
        out += ("<p><strong>Unrecorded data that would decide the class:</strong></p><ul>"
                + "".join(f"<li>{e(P.prose(c))}</li>" for c in change) + "</ul>")
    return out
