"""Cohort-level outputs: the side-difference figure and the self-contained HTML index.

Data gathering and file writing live in :mod:`dwi_toolkit.pipeline.cohort`; this module only
renders (matplotlib object API, HTML with inline CSS, figures as base64 PNG, no scripts, no
network: a Content-Security-Policy forbids every fetch).
"""

from __future__ import annotations

import base64
import html
import io
import math
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["CSP", "side_difference_figure", "figure_png", "cohort_index_html", "INDICATION_CLASSES"]

#: No scripts, no network; images only from data: URIs.
CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'"
INDICATION_CLASSES = ("appropriate", "uncertain", "inappropriate")
_LEVELS = ("L1", "L2", "L3", "L4", "L5", "S1")


def _esc(x: Any) -> str:
    return html.escape("" if x is None else str(x), quote=True)


def side_difference_figure(values: Mapping[str, Sequence[float]], *, ylabel: str, title: str = ""):
    """Box plot with the individual points of a side difference per level.

    Parameters
    ----------
    values : mapping
        Level (``"L1"`` … ``"S1"``) → side-difference values (%), one per subject (and segment).
    ylabel : str
        What the values are (e.g. ``rel_diff_pct, symptomatic vs contralateral (%)``).

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> fig = side_difference_figure({"L4": [1.0, -2.0], "L5": [25.0, 3.0]}, ylabel="%")
    >>> [t.get_text() for t in fig.axes[0].get_xticklabels()]
    ['L4', 'L5']
    """
    import numpy as np
    from matplotlib.figure import Figure

    levels = [lv for lv in _LEVELS if values.get(lv)] + sorted(k for k in values if k not in _LEVELS and values[k])
    fig = Figure(figsize=(max(4.0, 1.1 * len(levels) + 2), 3.6), layout="constrained")
    ax = fig.add_subplot()
    data = [[float(v) for v in values[lv] if v is not None and math.isfinite(float(v))] for lv in levels]
    if any(data):
        ax.boxplot(data, positions=range(1, len(levels) + 1), widths=0.5, showfliers=False)
        rng = np.random.default_rng(0)
        for i, d in enumerate(data, start=1):
            ax.scatter(i + rng.uniform(-0.12, 0.12, len(d)), d, s=16, alpha=0.75, color="#2b5797", zorder=3)
    ax.axhline(0.0, color="0.5", lw=0.8)
    ax.set_xticks(range(1, len(levels) + 1), levels)
    ax.set_xlabel("level")
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    return fig


def figure_png(fig: Any, *, dpi: int = 110) -> bytes:
    """Render a Figure to PNG bytes (Agg, no pyplot).

    Examples
    --------
    >>> from matplotlib.figure import Figure
    >>> fig = Figure(figsize=(1, 1)); _ = fig.subplots().plot([0, 1])
    >>> figure_png(fig, dpi=50)[1:4] == b"PNG"
    True
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def _table(rows: Sequence[Sequence[Any]], header: Sequence[str], *, raw_cols: Sequence[int] = ()) -> str:
    head = "".join(f"<th>{_esc(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{c if j in raw_cols else _esc(c)}</td>" for j, c in enumerate(r)) + "</tr>"
        for r in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


_CSS = """body{font-family:system-ui,sans-serif;margin:0;color:#1d232a;background:#f6f7f9;line-height:1.45}
main{max-width:1100px;margin:0 auto;padding:1rem 1.5rem 3rem;background:#fff}
h1{font-size:1.5rem}h2{font-size:1.2rem;border-bottom:1px solid #d7dbe0;margin-top:2rem}
.notice{background:#fff4e5;border-left:5px solid #f0a030;padding:.6rem .9rem}
table{border-collapse:collapse;font-size:.85rem;margin:.6rem 0;width:100%}
th,td{border:1px solid #d7dbe0;padding:.25rem .4rem;text-align:left;vertical-align:top}th{background:#eef1f4}
.badge{display:inline-block;padding:.05rem .45rem;border-radius:.6rem;font-size:.8rem;font-weight:600;color:#fff;background:#6c757d}
.done,.appropriate,.concordant{background:#2e7d32}.failed,.inappropriate,.discordant{background:#c62828}
.uncertain,.indeterminate{background:#ef6c00}.skipped{background:#546e7a}
img{max-width:100%;border:1px solid #d7dbe0}.meta{color:#58606b;font-size:.9rem}"""


def _badge(text: str | None) -> str:
    if not text:
        return "–"
    return f'<span class="badge {_esc(text)}">{_esc(text)}</span>'


def cohort_index_html(
    *,
    title: str,
    subjects: Sequence[Mapping[str, Any]],
    indication_summary: Mapping[str, Any],
    figure_png_bytes: bytes | None,
    figure_caption: str,
    meta: Mapping[str, Any],
    files: Sequence[tuple[str, str]] = (),
) -> str:
    """The cohort's index page (one self-contained HTML string).

    Parameters
    ----------
    subjects : sequence of mapping
        Each with ``key``, ``status``, ``reason``, ``indication``, ``entrapment`` (short text),
        ``report`` (relative link or None), ``duration_s`` (None: not run this time), optionally
        ``this_run`` (the latest run's status, e.g. ``skipped``; shown instead of ``status``).
        Rows are shown in the given order (the caller's subject order).
    indication_summary : mapping
        ``counts`` and ``shares_pct`` per class, ``n_assessed``, ``n_not_assessed``.
    figure_png_bytes : bytes, optional
        The side-difference figure.
    meta : mapping
        Facts printed under the title (software version, pipeline, hash, date).
    files : sequence of (label, relative link)
        The cohort tables.

    Examples
    --------
    >>> page = cohort_index_html(title="t", subjects=[{"key": "sub-01", "status": "done",
    ...     "report": "sub-01/report/report.html"}], indication_summary={"counts": {}, "shares_pct": {}},
    ...     figure_png_bytes=None, figure_caption="", meta={})
    >>> 'href="sub-01/report/report.html"' in page and "<script" not in page
    True
    """
    parts = [f"<h1>{_esc(title)}</h1>",
             '<p class="notice">Research use only. Nerve-root DWI is a research technique; no ADC or FA '
             "cut-off is endorsed for diagnosis (dwi_toolkit References §0, §2.8, §4).</p>",
             '<p class="meta">' + " · ".join(f"{_esc(k)}: {_esc(v)}" for k, v in meta.items()) + "</p>"]
    counts: dict[str, int] = {}
    for s in subjects:  # the latest run's status (this_run) when known
        st = s.get("this_run") or s.get("status", "?")
        counts[st] = counts.get(st, 0) + 1
    parts.append("<p>" + " ".join(f"{_badge(k)} {v}" for k, v in sorted(counts.items())) + "</p>")

    parts.append("<h2>Indication classes across subjects</h2>")
    ic, sh = indication_summary.get("counts", {}), indication_summary.get("shares_pct", {})
    rows = [[c, ic.get(c, 0), "–" if sh.get(c) is None else f"{sh[c]:.1f} %"] for c in INDICATION_CLASSES]
    rows.append(["not assessed (no clinical.json)", indication_summary.get("n_not_assessed", 0), ""])
    parts.append(_table(rows, ["class", "subjects", "share of assessed"]))
    parts.append('<p class="meta">Rule set v1 (dwi_toolkit References §3.10); shares as in Kovacs 2013 '
                 "(§3.8: appropriate 88 %, uncertain 1.3 %, inappropriate 10.6 % of 602 scans).</p>")

    parts.append("<h2>Side differences per level</h2>")
    if figure_png_bytes:
        uri = "data:image/png;base64," + base64.b64encode(figure_png_bytes).decode("ascii")
        parts.append(f'<figure><img alt="side differences per level" src="{uri}">'
                     f"<figcaption>{_esc(figure_caption)}</figcaption></figure>")
    else:
        parts.append("<p>No side comparison available (no ROI statistics).</p>")

    parts.append("<h2>Subjects</h2>")
    srows = []
    for s in subjects:
        link = s.get("report")
        rep = f'<a href="{_esc(link)}">{_esc(s.get("report_label", "report"))}</a>' if link else "–"
        dur = s.get("duration_s")
        srows.append([_esc(s.get("key")), _badge(s.get("this_run") or s.get("status")), _badge(s.get("indication")),
                      _esc(s.get("entrapment") or "–"), rep,
                      "" if dur is None else f"{float(dur):.1f}", _esc(s.get("reason") or "")])
    parts.append(_table(srows, ["subject", "status", "indication", "entrapment (levels other than no_asymmetry)", "report",
                                "time (s)", "reason"], raw_cols=range(7)))
    if files:
        parts.append("<h2>Cohort tables</h2><ul>" + "".join(
            f'<li><a href="{_esc(href)}">{_esc(label)}</a></li>' for label, href in files) + "</ul>")
    body = "\n".join(parts)
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{_esc(title)}</title><style>{_CSS}</style></head>"
            f"<body><main>\n{body}\n</main></body></html>\n")
