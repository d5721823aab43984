"""Figure, HTML page and files of a :class:`~dwi_toolkit.longitudinal.compare.SessionComparison`.

Kept inside ``longitudinal`` for now (matplotlib object API, Agg-safe, no pyplot state); the
report's figure helpers will take it over when the reporting refactor lands.
"""

from __future__ import annotations

import base64
import html
import io as _io
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["comparison_figure", "comparison_html", "save_comparison"]


def _follow_up_on_baseline(cmp) -> np.ndarray:
    """Follow-up ADC resampled onto the baseline grid (display only; statistics never use it)."""
    from dipy.align.imaffine import AffineMap

    base, base_aff = cmp._maps["baseline_adc"]
    fol, fol_aff = cmp._maps["follow_up_adc"]
    amap = AffineMap(cmp.registration.matrix, domain_grid_shape=base.shape, domain_grid2world=base_aff,
                     codomain_grid_shape=fol.shape, codomain_grid2world=fol_aff)
    return amap.transform(np.nan_to_num(fol), interpolation="linear")


def _slice_of_interest(cmp, shape) -> int:
    """The baseline slice nearest to the ROI with the largest |change| (or the middle)."""
    rows = cmp.rows
    if not rows:
        return shape[2] // 2
    i = int(np.argmax([abs(r["change"]) if np.isfinite(r["change"]) else -1 for r in rows]))
    roi = list(cmp.baseline_stats)[i]
    base_aff = cmp._maps["baseline_adc"][1]
    name = (roi.level, roi.side, roi.segment)
    centre = next((np.asarray(r.shape.centroid(), float) for r in cmp.follow_up_rois
                   if (r.level, r.side, r.segment) == name), None)
    if centre is None:
        return shape[2] // 2
    back = np.linalg.inv(cmp.registration.matrix) @ np.r_[centre, 1.0]
    k = (np.linalg.inv(base_aff) @ back)[2]
    return int(np.clip(round(k), 0, shape[2] - 1))


def comparison_figure(cmp, *, vmax: float = 3.0e-3):
    """Baseline ADC, registered follow-up ADC and their difference (one slice), and a bar chart of
    the change per ROI with its smallest-real-change interval.

    Parameters
    ----------
    cmp : SessionComparison
    vmax : float, optional
        Upper ADC display limit (mm²/s).

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> from dwi_toolkit.longitudinal import Registration, compare_sessions
    >>> from dwi_toolkit.phantom_sessions import make_session_pair
    >>> from dwi_toolkit.roi.sample import sample_rois
    >>> pair = make_session_pair(shape=(48, 38, 40), voxel_size=(3, 3, 5), rotation_deg=(0, 0, 2), seed=4)
    >>> cmp = compare_sessions(pair.baseline.series, pair.follow_up.series, sample_rois(pair.baseline, kind="tube"),
    ...                        registration=Registration(pair.transform, "rigid"))
    >>> fig = comparison_figure(cmp)
    >>> len(fig.axes) >= 4
    True
    """
    from matplotlib.figure import Figure

    base = np.nan_to_num(cmp._maps["baseline_adc"][0])
    fol = _follow_up_on_baseline(cmp)
    k = _slice_of_interest(cmp, base.shape)
    fig = Figure(figsize=(13, 7.5), layout="constrained")
    grid = fig.add_gridspec(2, 3, height_ratios=[1.1, 1.0])
    panels = [("baseline ADC (x10^-3 mm^2/s)", base, "gray", 0, vmax),
              ("follow-up ADC, registered", fol, "gray", 0, vmax),
              ("follow-up - baseline", fol - base, "RdBu_r", -0.5e-3, 0.5e-3)]
    for j, (title, img, cmap, lo, hi) in enumerate(panels):
        ax = fig.add_subplot(grid[0, j])
        im = ax.imshow(np.rot90(img[:, :, k]) * 1e3, cmap=cmap, vmin=lo * 1e3, vmax=hi * 1e3)
        ax.set_title(f"{title}, slice {k}", fontsize=9)
        ax.set_axis_off()
        fig.colorbar(im, ax=ax, shrink=0.8)
    ax = fig.add_subplot(grid[1, :])
    _bars(ax, cmp.rows)
    fig.suptitle("What changed between the sessions (bars: change; whiskers: smallest real change)")
    return fig


def _bars(ax, rows) -> None:
    labels = [f"{r['level']} {r['side'][0].upper()}" for r in rows]
    pct = np.array([r["change_pct"] for r in rows], float)
    sdc = np.array([r["sdc_pct"] for r in rows], float)
    colors = ["#c0392b" if r["real_change"] else "#95a5a6" for r in rows]
    x = np.arange(len(rows))
    ax.bar(x, pct, color=colors)
    ax.errorbar(x, np.zeros_like(pct), yerr=sdc, fmt="none", ecolor="black", capsize=4, lw=1)
    ax.axhline(0, color="black", lw=0.5)
    ax.set_xticks(x, labels, rotation=0, fontsize=8)
    ax.set_ylabel("ADC change (%)")
    ax.set_title("red: change larger than the smallest real change (interval around 0)", fontsize=9)


def _png(fig) -> bytes:
    buf = _io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    return buf.getvalue()


def comparison_html(cmp, *, png: bytes | None = None) -> str:
    """Self-contained HTML: the registration, a table of changes and the embedded figure.

    Examples
    --------
    >>> from dwi_toolkit.longitudinal.compare import Registration, SessionComparison
    >>> from dwi_toolkit.analysis.roi_stats import RoiStatsTable
    >>> from dwi_toolkit.roi.model import RoiSet
    >>> c = SessionComparison([], Registration(np.eye(4), "rigid"), RoiStatsTable([]), RoiStatsTable([]), RoiSet([]))
    >>> comparison_html(c, png=b"").startswith("<!DOCTYPE html>")
    True
    """
    if png is None:
        png = _png(comparison_figure(cmp))
    reg = cmp.registration
    body = "".join(
        f"<tr class='{'real' if r['real_change'] else ''}'><td>{html.escape(r['level'])}</td>"
        f"<td>{html.escape(r['side'])}</td><td>{html.escape(r['segment'])}</td>"
        f"<td>{r['baseline_mean'] * 1e3:.3f}</td><td>{r['follow_up_mean'] * 1e3:.3f}</td>"
        f"<td>{r['change_pct']:+.1f} %</td><td>±{r['sdc_pct']:.1f} % ({html.escape(r['sdc_source'])})</td>"
        f"<td>{html.escape(r['direction'])}</td></tr>" for r in cmp.rows)
    img = f"<img alt='session comparison' src='data:image/png;base64,{base64.b64encode(png).decode()}'>" if png else ""
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>Session comparison</title>"
        "<style>body{font-family:sans-serif;margin:1.5em}td,th{padding:2px 8px;border-bottom:1px solid #ddd}"
        "tr.real{background:#fde2e0}img{max-width:100%}</style></head><body>"
        "<h1>What changed between the two sessions</h1>"
        f"<p>Registration ({html.escape(reg.mode)}): rotation {reg.rotation_deg:.1f}°, translation "
        f"{np.round(reg.translation_mm, 1).tolist()} mm. ADC in ×10⁻³ mm²/s. A change is real when it "
        "exceeds the smallest real change (95 %).</p>"
        "<table><tr><th>level</th><th>side</th><th>segment</th><th>baseline</th><th>follow-up</th>"
        f"<th>change</th><th>smallest real change</th><th>verdict</th></tr>{body}</table>{img}</body></html>")


def save_comparison(cmp, out_dir: str | os.PathLike) -> dict[str, Any]:
    """Write ``longitudinal.json``, ``.csv``, ``.png`` and ``.html`` atomically into `out_dir`.

    Examples
    --------
    >>> import tempfile
    >>> from dwi_toolkit.longitudinal.compare import Registration, SessionComparison
    >>> from dwi_toolkit.analysis.roi_stats import RoiStatsTable
    >>> from dwi_toolkit.roi.model import RoiSet
    >>> c = SessionComparison([], Registration(np.eye(4), "rigid"), RoiStatsTable([]), RoiStatsTable([]), RoiSet([]))
    >>> c._maps.update(baseline_adc=(np.zeros((4, 4, 2)), np.eye(4)), follow_up_adc=(np.zeros((4, 4, 2)), np.eye(4)))
    >>> sorted(save_comparison(c, tempfile.mkdtemp()))
    ['csv', 'html', 'json', 'png']
    """
    from ..io._atomic import atomic_write_bytes, atomic_write_text
    from ..io.tables import format_csv

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    png = _png(comparison_figure(cmp))
    paths = {"json": out / "longitudinal.json", "csv": out / "longitudinal.csv",
             "png": out / "longitudinal.png", "html": out / "longitudinal.html"}
    atomic_write_text(paths["json"], json.dumps(cmp.to_dict(), indent=2, default=float))
    atomic_write_text(paths["csv"], format_csv(cmp.rows))
    atomic_write_bytes(paths["png"], png)
    atomic_write_text(paths["html"], comparison_html(cmp, png=png))
    return paths
