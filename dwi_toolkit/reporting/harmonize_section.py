"""Cohort page of a harmonisation across sites: site effect before/after and box plots.

:func:`harmonization_html` renders a :class:`~dwi_toolkit.analysis.harmonize.HarmonizationResult`
(ComBat; Johnson et al., Biostatistics 2007; Fortin et al., NeuroImage 2018) as one
self-contained page; :func:`site_boxplot_figure` draws the values per site before and after for a
few features (matplotlib object API, Agg-safe). Diffusivities are shown ×10⁻³ mm²/s.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["site_effect_rows", "site_boxplot_figure", "harmonization_html"]


def site_effect_rows(result: Any) -> list[dict[str, Any]]:
    """One row per feature: site-effect p-values (one-way ANOVA, Kruskal–Wallis) before and after.

    Examples
    --------
    >>> from dwi_toolkit.analysis.harmonize import harmonize
    >>> from dwi_toolkit.phantom_sessions import simulate_site_table
    >>> rows = site_effect_rows(harmonize(simulate_site_table(sites={"A": 6, "B": 6}), covariates=["group"]))
    >>> sorted(rows[0])[:3], rows[0]["anova_p_after"] > 0.05
    (['anova_p_after', 'anova_p_before', 'feature'], True)
    """
    out = []
    for f in result.features:
        b, a = result.before[f], result.after[f]
        out.append({"feature": f, "anova_p_before": b.get("anova_p"), "anova_p_after": a.get("anova_p"),
                    "kruskal_p_before": b.get("kruskal_p"), "kruskal_p_after": a.get("kruskal_p")})
    return out


def _pick(result: Any, n: int) -> list[str]:
    """The `n` features with the strongest site effect before harmonisation."""
    return sorted(result.features, key=lambda f: result.before[f].get("anova_p") or 1.0)[:n]


def site_boxplot_figure(result: Any, features: Sequence[str] | None = None, *, n: int = 4):
    """Box plots of the values per site, before (left) and after (right) ComBat, for a few features.

    `features` default: the `n` features with the strongest site effect before.

    Examples
    --------
    >>> from dwi_toolkit.analysis.harmonize import harmonize
    >>> from dwi_toolkit.phantom_sessions import simulate_site_table
    >>> res = harmonize(simulate_site_table(sites={"A": 6, "B": 6}), covariates=["group"])
    >>> len(site_boxplot_figure(res, n=2).axes)
    4
    """
    from matplotlib.figure import Figure

    from ..units import DISPLAY_SCALE, DISPLAY_UNIT

    feats = list(features) if features is not None else _pick(result, n)
    fig = Figure(figsize=(8, 2.4 * max(1, len(feats))), dpi=100)
    axes = fig.subplots(max(1, len(feats)), 2, squeeze=False)
    for i, feat in enumerate(feats):
        data = result.boxplot_data(feat)
        scale = 1.0 if feat.endswith("_fa") else DISPLAY_SCALE
        for j, when in enumerate(("before", "after")):
            ax = axes[i][j]
            sites = sorted(data[when])
            ax.boxplot([[v * scale for v in data[when][s]] for s in sites])
            ax.set_xticks(range(1, len(sites) + 1), sites)
            p = (result.before if when == "before" else result.after)[feat].get("anova_p")
            ax.set_title(f"{feat} {when} (site p = {p:.2g})", fontsize=8)
            ax.set_ylabel("" if feat.endswith("_fa") else DISPLAY_UNIT, fontsize=7)
    fig.tight_layout()
    return fig


def harmonization_html(result: Any, *, png: bytes | None = None, column: str = "site") -> str:
    """Self-contained HTML page: method, sites, site effect before/after per feature, box plots.

    Examples
    --------
    >>> from dwi_toolkit.analysis.harmonize import harmonize
    >>> from dwi_toolkit.phantom_sessions import simulate_site_table
    >>> res = harmonize(simulate_site_table(sites={"A": 6, "B": 6}), covariates=["group"])
    >>> "Site effect before and after" in harmonization_html(res, png=b"")
    True
    """
    from . import html as H

    s = result.summary()
    body = (f"<p>{H.esc(s['method'])} by <code>{H.esc(column)}</code> over sites "
            f"{H.esc(', '.join(s['sites']))}; {len(result.features)} feature(s) harmonised"
            + (f", {len(result.skipped)} skipped (missing in some subjects)" if result.skipped else "") + ".</p>")
    body += H.table(site_effect_rows(result), digits=3,
                    caption="Site effect (p of one-way ANOVA and Kruskal–Wallis across sites)")
    if png:
        body += H.img_tag(png, alt="values per site before and after",
                          caption="Values per site before (left) and after (right) harmonisation")
    return H.document("Harmonisation across sites", [("site-effect", "Site effect before and after", body)],
                      subtitle="cohort ROI statistics", notice="Research use only.", footer="dwi_toolkit")
