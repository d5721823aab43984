"""Cohort page "what changed": the session comparisons of every subject scanned twice.

Each subject's :class:`~dwi_toolkit.longitudinal.SessionComparison` keeps its own page
(``longitudinal.html``, made by :mod:`dwi_toolkit.longitudinal`); this page lists, per subject,
the sessions compared, the registration and every root whose ADC change exceeds its smallest real
change (95 %), with links to the subject pages.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["what_changed_rows", "what_changed_html"]


def what_changed_rows(items: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per subject × ROI: change (%), smallest real change (%), real or not.

    `items`: ``{"subject", "baseline", "follow_up", "comparison": SessionComparison.to_dict()}``.

    Examples
    --------
    >>> item = {"subject": "sub-01", "baseline": "ses-1", "follow_up": "ses-2", "comparison": {"rows": [
    ...     {"level": "L4", "side": "right", "segment": "ganglion", "change_pct": 15.2, "sdc_pct": 3.1,
    ...      "real_change": True, "direction": "increase"}]}}
    >>> what_changed_rows([item])[0]["change_pct"]
    15.2
    """
    out = []
    for it in items:
        for r in it["comparison"].get("rows", []):
            out.append({"subject": it["subject"], "baseline": it["baseline"], "follow_up": it["follow_up"],
                        "level": r["level"], "side": r["side"], "segment": r.get("segment", ""),
                        "change_pct": r["change_pct"], "sdc_pct": r["sdc_pct"], "real_change": r["real_change"],
                        "direction": r.get("direction", "")})
    return out


def what_changed_html(items: Sequence[dict[str, Any]]) -> str:
    """Self-contained HTML page of the cohort's session comparisons (real changes first).

    Examples
    --------
    >>> what_changed_html([]).count("No subject")
    1
    """
    from . import html as H

    secs = []
    if not items:
        secs.append(("none", "What changed", "<p>No subject with two sessions and baseline ROIs.</p>"))
    for it in items:
        cmp = it["comparison"]
        real = cmp.get("real_changes") or []
        body = (f"<p>{H.esc(it['baseline'])} → {H.esc(it['follow_up'])}. "
                + ("Real changes: " + H.esc("; ".join(real)) if real else "No change beyond the smallest real change.")
                + "</p>")
        rows = [{k: v for k, v in r.items() if k not in ("subject", "baseline", "follow_up")}
                for r in what_changed_rows([it])]
        body += H.table(rows, digits=3, caption="ADC change per ROI (%), smallest real change (95 %)")
        if it.get("page"):
            body += f'<p><a href="{H.esc(it["page"])}">subject page with figures</a></p>'
        secs.append((f"subj-{it['subject']}", f"{it['subject']}: what changed", body))
    return H.document("What changed between sessions", secs, subtitle="ADC in the ROIs, follow-up vs baseline",
                      notice="Research use only. A change is real when it exceeds the smallest real change.",
                      footer="dwi_toolkit")
