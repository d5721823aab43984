"""Self-contained HTML building blocks: one file, inline CSS, figures as base64 PNG, no network.

Every piece of text that goes into a page passes through :func:`esc` (``html.escape`` with
quotes), so ROI labels, notes or clinical strings can never inject markup. The page carries a
Content-Security-Policy that forbids any fetch and every script but one (the print helper
:data:`PRINT_SCRIPT`, allowed by its SHA-256 hash), and allows images only from ``data:`` URIs,
so it renders identically offline and cannot call home.

Printing keeps the folded content: closed ``<details>`` sections are opened for print by the
print CSS (``details::details-content``, supported from Chromium 131) and, for
older browsers, by :data:`PRINT_SCRIPT` on ``beforeprint`` (closed again on ``afterprint``).
"""

from __future__ import annotations

import base64
import hashlib
import html as _html
import io
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

__all__ = [
    "CSP",
    "PRINT_SCRIPT",
    "DEFAULT_CSS",
    "SCOPED_CSS",
    "esc",
    "figure_to_png",
    "png_data_uri",
    "img_tag",
    "table",
    "definition_list",
    "document",
]

#: The page's only script: opens every closed ``<details>`` before printing (so a printout keeps
#: the folded content) and closes them again afterwards. Allowed by its hash in :data:`CSP`.
PRINT_SCRIPT = (
    "addEventListener('beforeprint',function(){document.querySelectorAll('details:not([open])')"
    ".forEach(function(d){d.open=true;d.setAttribute('data-print-open','')})});"
    "addEventListener('afterprint',function(){document.querySelectorAll('details[data-print-open]')"
    ".forEach(function(d){d.open=false;d.removeAttribute('data-print-open')})});"
)
_PRINT_SCRIPT_HASH = base64.b64encode(hashlib.sha256(PRINT_SCRIPT.encode("utf-8")).digest()).decode("ascii")

#: Content-Security-Policy of every report page: no network, images from data: only, no script
#: but :data:`PRINT_SCRIPT` (by hash).
CSP = ("default-src 'none'; img-src data:; style-src 'unsafe-inline'; "
       f"script-src 'sha256-{_PRINT_SCRIPT_HASH}'; base-uri 'none'; form-action 'none'")

DEFAULT_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;margin:0;
color:#1d232a;background:#f6f7f9;line-height:1.45}
main{max-width:1180px;margin:0 auto;padding:1rem 1.5rem 3rem;background:#fff}
header{border-bottom:3px solid #2b5797;margin-bottom:1rem}
h1{font-size:1.5rem;margin:.6rem 0 .2rem}h2{font-size:1.2rem;border-bottom:1px solid #d7dbe0;
margin-top:2rem;padding-bottom:.2rem}h3{font-size:1rem}
.meta{color:#58606b;font-size:.9rem}
.notice{background:#fff4e5;border-left:5px solid #f0a030;padding:.3rem .7rem;margin:.5rem 0;font-size:.8rem}
.callout{background:#eef4fb;border-left:5px solid #2b5797;padding:.6rem .9rem;margin:.8rem 0}
.warn{background:#fdecea;border-left:5px solid #c62828;padding:.6rem .9rem;margin:.8rem 0}
.tbl{max-width:100%}table{border-collapse:collapse;font-size:.82rem;margin:.6rem 0;width:100%}
caption{text-align:left;font-weight:600;padding:.3rem 0}
th,td{border:1px solid #d7dbe0;padding:.25rem .4rem;text-align:left;vertical-align:top;overflow-wrap:break-word}
th{background:#eef1f4}tr:nth-child(even) td{background:#fafbfc}
td.num{text-align:right;font-variant-numeric:tabular-nums}
figure{margin:1rem 0}figure img{max-width:100%;height:auto;border:1px solid #d7dbe0}
figcaption{font-size:.85rem;color:#58606b}
.badge{display:inline-block;padding:.05rem .45rem;border-radius:.6rem;font-size:.8rem;
font-weight:600;color:#fff;background:#6c757d}
.badge.concordant,.badge.appropriate{background:#2e7d32}.badge.discordant,.badge.inappropriate{background:#c62828}
.badge.indeterminate,.badge.uncertain{background:#a85400}.badge.no_asymmetry{background:#546e7a}
table.glance{font-size:.95rem;width:auto;min-width:60%}table.glance td,table.glance th{padding:.3rem .6rem}
table.glance small{color:#58606b}table.glance td.num,table.glance th[scope]{white-space:nowrap}table.glance caption{font-weight:400}
section#summary h2{margin-top:.8rem}td.beyond{font-weight:700}.flagtext{font-size:.8rem;color:#a01c1c}
.warn li.error{color:#8e1010}details{margin:.5rem 0}summary{cursor:pointer;color:#2b5797}
table.guideline-verdicts{font-size:.8rem}
@page{size:A4;margin:12mm}
@media print{body{background:#fff;font-size:10pt}main{max-width:none;padding:0}nav{display:none}
table{font-size:7.5pt;width:100%}table.glance{font-size:9pt}tr,figure{break-inside:avoid}
th{background:#eef1f4 !important;print-color-adjust:exact;-webkit-print-color-adjust:exact}
.badge{print-color-adjust:exact;-webkit-print-color-adjust:exact}h2{break-after:avoid}
figure img{max-height:240mm;object-fit:contain}
details::details-content{content-visibility:visible;display:block}summary{list-style:none;font-weight:600;color:#1d232a}}
nav ol{columns:2;font-size:.9rem}dl{display:grid;grid-template-columns:max-content auto;gap:.2rem 1rem}
dt{font-weight:600}dd{margin:0}code{background:#f1f3f5;padding:0 .2rem}
footer{margin-top:2rem;font-size:.8rem;color:#58606b}
"""


#: Styles for inline display inside Jupyter: every rule is scoped to ``.dwi-report`` so the
#: notebook's own styles are untouched.
SCOPED_CSS = """
.dwi-report .badge{display:inline-block;padding:.05rem .45rem;border-radius:.6rem;font-size:.8rem;
font-weight:600;color:#fff;background:#6c757d}
.dwi-report .badge.concordant,.dwi-report .badge.appropriate{background:#2e7d32}
.dwi-report .badge.discordant,.dwi-report .badge.inappropriate{background:#c62828}
.dwi-report .badge.indeterminate,.dwi-report .badge.uncertain{background:#ef6c00}
.dwi-report .badge.no_asymmetry{background:#546e7a}
.dwi-report .notice{background:#fff4e5;border-left:5px solid #f0a030;padding:.5rem .8rem}
.dwi-report .warn{background:#fdecea;border-left:5px solid #c62828;padding:.5rem .8rem}
.dwi-report .callout{background:#eef4fb;border-left:5px solid #2b5797;padding:.5rem .8rem}
.dwi-report .tbl{max-width:100%}.dwi-report figure img{max-width:100%;height:auto}
.dwi-report table.glance td.num{white-space:nowrap;text-align:right}.dwi-report td.beyond{font-weight:700}
.dwi-report .flagtext{color:#a01c1c}
"""


def esc(value: Any) -> str:
    """HTML-escape any value as text (quotes included).

    Examples
    --------
    >>> esc('<b>"L5"</b>')
    '&lt;b&gt;&quot;L5&quot;&lt;/b&gt;'
    """
    return _html.escape("" if value is None else str(value), quote=True)


def figure_to_png(fig: Any, *, dpi: int = 110) -> bytes:
    """Render a matplotlib Figure to PNG bytes (no pyplot, no file).

    Examples
    --------
    >>> from matplotlib.figure import Figure
    >>> fig = Figure(figsize=(1, 1)); _ = fig.subplots().plot([0, 1])
    >>> figure_to_png(fig, dpi=50)[1:4]
    b'PNG'
    """
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def png_data_uri(png: bytes) -> str:
    """``data:image/png;base64,...`` URI for PNG bytes.

    Examples
    --------
    >>> png_data_uri(b"\\x89PNG")[:30]
    'data:image/png;base64,iVBORw=='
    """
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def img_tag(png: bytes, *, alt: str, caption: str | None = None, fig_id: str | None = None) -> str:
    """A ``<figure>`` with an embedded PNG and an escaped caption.

    Examples
    --------
    >>> img_tag(b"PNG", alt="ADC", caption="ADC <map>")
    '<figure><img alt="ADC" src="data:image/png;base64,UE5H"><figcaption>ADC &lt;map&gt;</figcaption></figure>'
    """
    idattr = f' id="{esc(fig_id)}"' if fig_id else ""
    cap = f"<figcaption>{esc(caption)}</figcaption>" if caption else ""
    return f'<figure{idattr}><img alt="{esc(alt)}" src="{png_data_uri(png)}">{cap}</figure>'


def _fmt_cell(v: Any, digits: int) -> tuple[str, bool]:
    if v is None:
        return "–", False
    if isinstance(v, bool):
        return ("yes" if v else "no"), False
    if isinstance(v, (int,)) and not isinstance(v, bool):
        return str(v), True
    if isinstance(v, float):
        if not math.isfinite(v):
            return "–", True
        return f"{v:.{digits}g}".replace("-", "−"), True
    if isinstance(v, (list, tuple)):
        return ", ".join(str(x) for x in v), False
    return str(v), False


def table(
    records: Sequence[Mapping[str, Any]],
    *,
    columns: Sequence[str] | None = None,
    headers: Mapping[str, str] | None = None,
    caption: str | None = None,
    formatters: Mapping[str, Any] | None = None,
    digits: int = 4,
) -> str:
    """An escaped HTML table from a list of dicts.

    Parameters
    ----------
    records : sequence of mapping
    columns : sequence of str, optional
        Keys to show, in order (default: keys of the first record).
    headers : mapping, optional
        Column key → header text (e.g. with units).
    formatters : mapping, optional
        Column key → callable(value) -> str.
    digits : int, optional
        Significant digits for floats without a formatter.

    Examples
    --------
    >>> table([{"level": "L5", "n": 3}], caption="<x>")
    '<div class="tbl"><table><caption>&lt;x&gt;</caption><thead><tr><th>level</th><th>n</th></tr></thead><tbody><tr><td>L5</td><td class="num">3</td></tr></tbody></table></div>'
    """
    if columns is None:
        columns = list(records[0].keys()) if records else []
    headers = headers or {}
    formatters = formatters or {}
    cap = f"<caption>{esc(caption)}</caption>" if caption else ""
    head = "".join(f"<th>{esc(headers.get(c, c))}</th>" for c in columns)
    body = []
    for rec in records:
        cells = []
        for c in columns:
            v = rec.get(c)
            if c in formatters:
                text, num = formatters[c](v), isinstance(v, (int, float)) and not isinstance(v, bool)
            else:
                text, num = _fmt_cell(v, digits)
            cls = ' class="num"' if num else ""
            cells.append(f"<td{cls}>{esc(text)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return (f'<div class="tbl"><table>{cap}<thead><tr>{head}</tr></thead>'
            f"<tbody>{''.join(body)}</tbody></table></div>")


def definition_list(items: Iterable[tuple[str, Any]]) -> str:
    """An escaped ``<dl>`` from (term, value) pairs; lists are joined with commas.

    Examples
    --------
    >>> definition_list([("b-values (s/mm²)", [0, 800]), ("note", "<b>")])
    '<dl><dt>b-values (s/mm²)</dt><dd>0, 800</dd><dt>note</dt><dd>&lt;b&gt;</dd></dl>'
    """
    parts = []
    for k, v in items:
        text, _ = _fmt_cell(v, 6)
        parts.append(f"<dt>{esc(k)}</dt><dd>{esc(text)}</dd>")
    return "<dl>" + "".join(parts) + "</dl>"


def document(
    title: str,
    sections: Sequence[tuple[str, str, str]],
    *,
    subtitle: str | None = None,
    notice: str | None = None,
    footer: str | None = None,
    css: str = DEFAULT_CSS,
) -> str:
    """A complete, self-contained HTML5 page.

    Parameters
    ----------
    title : str
        Page title (escaped).
    sections : sequence of (id, heading, body_html)
        ``id`` and ``heading`` are escaped; ``body_html`` must already be safe HTML (build it
        with the helpers of this module).
    subtitle, notice, footer : str, optional
        Plain text (escaped); `notice` is shown in a highlighted box under the title.

    Examples
    --------
    >>> page = document("Report <1>", [("s1", "Summary", "<p>ok</p>")])
    >>> page.startswith("<!DOCTYPE html>") and "Report &lt;1&gt;" in page
    True
    """
    nav = "".join(f'<li><a href="#{esc(i)}">{esc(h)}</a></li>' for i, h, _ in sections)
    secs = [f'<section id="{esc(i)}"><h2>{esc(h)}</h2>{b}</section>' for i, h, b in sections]
    # the first section (the answer) comes before the contents, so it is the first screen
    body = (secs[0] if secs else "") + f"<nav><strong>Contents</strong><ol>{nav}</ol></nav>" + "".join(secs[1:])
    sub = f'<p class="meta">{esc(subtitle)}</p>' if subtitle else ""
    note = f'<div class="notice" role="note"><strong>Research use only.</strong> {esc(notice)}</div>' if notice else ""
    foot = f"<footer>{esc(footer)}</footer>" if footer else ""
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f'<meta http-equiv="Content-Security-Policy" content="{esc(CSP)}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title><style>{css}</style><script>{PRINT_SCRIPT}</script></head><body><main>"
        f"<header><h1>{esc(title)}</h1>{sub}</header>{note}"
        f"{body}{foot}</main></body></html>\n"
    )
