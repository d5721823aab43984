"""The report's first screen: one compact row per level and the QC flags that fired.

Each level gets one row — left and right value with their intervals, the symptomatic − contralateral
relative difference with its interval against the threshold, the smallest detectable difference
when the comparison carries it (``detectable_pct``), and the class in words — sized to fit
1280 px and an A4 page. The prose statements go below, in ``<details>``.

Examples
--------
>>> glance_table_html(None, None)
''
>>> "No QC flags" in qc_flags_html([])
True
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from . import html as H
from . import presentation as P

__all__ = ["glance_table_html", "qc_flags_html", "SEVERITY_LABELS"]

#: Heading of each severity in the QC box.
SEVERITY_LABELS = {"error": "Error", "warning": "Warning", "info": "Note"}


def _level_rows(comparison: Any, entrapment: Any) -> tuple[list[Any], dict[tuple[str, str], Any], str]:
    """(comparison rows of the assessed parameter, class per (level, segment), parameter)."""
    param = getattr(entrapment, "parameter", None)
    if not isinstance(param, str) or param == "combined":
        param = None  # several parameters assessed: the glance shows ADC when present (below)
    rows = [r for r in (getattr(comparison, "rows", ()) or ())
            if getattr(r, "reference", "contralateral") == "contralateral"]  # adjacent rows: below
    if param is None:
        present = [r.parameter for r in rows]
        param = "adc" if "adc" in present else (present[0] if present else "adc")
    rows = [r for r in rows if r.parameter == param]
    classes = {(lv.level, lv.segment): lv for lv in getattr(entrapment, "levels", ()) or ()}
    return rows, classes, param


def _difference_cell(r: Any, thr: float | None, known_side: bool) -> str:
    if not known_side:  # symptomatic side unknown: the unsigned asymmetry |L − R| / mean (no interval)
        return f'<td class="num">{H.esc(P.fmt(getattr(r, "abs_asymmetry_index_pct", None), "%"))}</td>'
    v, lo, hi = (getattr(r, k, None) for k in ("rel_diff_pct", "rel_diff_pct_ci_low", "rel_diff_pct_ci_high"))
    text = P._value_ci(v, lo, hi, "%", signed=True)
    beyond = (thr is not None and all(isinstance(x, (int, float)) and math.isfinite(x) for x in (lo, hi))
              and (lo > thr or hi < -thr))
    cls = "num beyond" if beyond else "num"
    return f'<td class="{cls}">{H.esc(text)}</td>'


def glance_table_html(comparison: Any, entrapment: Any) -> str:
    """The per-level result table of the first screen (``""`` without a comparison).

    Parameters
    ----------
    comparison : SideComparison or None
    entrapment : EntrapmentAssessment or None
        Gives the class, the threshold and the parameter assessed (default ADC).

    Returns
    -------
    str
        HTML (a ``<table class="glance">`` and its caption).

    Examples
    --------
    >>> from types import SimpleNamespace as NS
    >>> row = NS(level="L5", segment="ganglion", parameter="adc", unit="mm^2/s", value_left=1.6e-3,
    ...          value_right=1.3e-3, rel_diff_pct=23.1, n_left=12, n_right=11, flags=())
    >>> html = glance_table_html(NS(rows=[row], symptomatic_side="left"), None)
    >>> "1.60" in html and "+23.1" in html and "detectable" not in html
    True
    """
    rows, classes, param = _level_rows(comparison, entrapment)
    if not rows:
        return ""
    side = getattr(comparison, "symptomatic_side", None)
    thr = getattr(entrapment, "threshold_pct", None)
    unit = P.display_unit(rows[0].unit)
    has_det = any(P.detectable_pct(r) is not None for r in rows)
    head = ["Level", f"Left{' (symptomatic)' if side == 'left' else ''}",
            f"Right{' (symptomatic)' if side == 'right' else ''}",
            "Difference, %" if side in ("left", "right") else "Asymmetry |L − R| / mean, %"]
    if has_det:
        head.append("Smallest detectable, %")
    head += ["Voxels L/R", "Result"]
    body = []
    for r in rows:
        lv = classes.get((r.level, r.segment))
        cls = getattr(lv, "classification", None)
        flags = ", ".join(P.label(f) for f in P._flag_list(getattr(r, "flags", None)))
        result = (f'<span class="badge {H.esc(cls)}">{H.esc(P.label(cls))}</span>' if cls else "")
        if flags:
            result += f' <span class="flagtext">{H.esc(flags)}</span>'
        cells = [f'<th scope="row">{H.esc(r.level)} <small>{H.esc(r.segment)}</small></th>']
        for k in ("left", "right"):
            v = getattr(r, f"value_{k}", None)
            ci = P.fmt_interval(getattr(r, f"{k}_ci_low", None), getattr(r, f"{k}_ci_high", None), r.unit)
            cells.append(f'<td class="num">{H.esc(P.fmt(v, r.unit))}'
                         + (f" <small>({H.esc(ci)})</small>" if ci != P.EMPTY else "") + "</td>")
        cells.append(_difference_cell(r, thr, side in ("left", "right")))
        if has_det:
            cells.append(f'<td class="num">{H.esc(P.fmt(P.detectable_pct(r), "%"))}</td>')
        cells.append(f'<td class="num">{getattr(r, "n_left", 0) or 0}/{getattr(r, "n_right", 0) or 0}</td>')
        cells.append(f"<td>{result}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    thr_text = (f"threshold ±{P.fmt(thr, '%')} % (a user setting, not a diagnostic cut-off); a difference "
                "whose whole interval lies beyond it is shown in bold" if thr is not None else "no threshold set")
    sense = ("difference = 100·(symptomatic − other side)/other side" if side in ("left", "right") else
             "symptomatic side unknown: asymmetry = 100·|left − right|/mean of both")
    cap = (f"{P.label(param)} per level in {unit or 'the map unit'}, 95 % intervals in brackets; {sense}; "
           f"{thr_text}.")
    return (f'<table class="glance"><caption>{H.esc(cap)}</caption><thead><tr>'
            + "".join(f"<th>{H.esc(h)}</th>" for h in head) + f"</tr></thead><tbody>{''.join(body)}</tbody></table>")


def qc_flags_html(flags: Sequence[Mapping[str, Any]]) -> str:
    """The QC box: each flag with its message, measured value, limit and advice.

    Examples
    --------
    >>> html = qc_flags_html([{"code": "low_snr", "severity": "warning", "message": "L5 left: SNR 6.0.",
    ...                        "measured": 6.0, "limit": 10.0, "unit": "1", "advice": "Check the coil."}])
    >>> "Warning" in html and "Check the coil." in html and "low_snr" not in html
    True
    """
    if not flags:
        return '<p class="qcok">No QC flags raised (checks and limits: see Quality control).</p>'
    items = []
    for f in flags:
        sev = str(f.get("severity", "info"))
        items.append(f'<li class="{H.esc(sev)}"><strong>{H.esc(SEVERITY_LABELS.get(sev, sev))}:</strong> '
                     f"{H.esc(f.get('message'))} <em>{H.esc(f.get('advice'))}</em></li>")
    worst = "warn" if any(f.get("severity") in ("error", "warning") for f in flags) else "callout"
    return (f'<div class="{worst}"><strong>Quality control: {len(flags)} flag'
            f"{'s' if len(flags) != 1 else ''}</strong><ul>{''.join(items)}</ul></div>")
