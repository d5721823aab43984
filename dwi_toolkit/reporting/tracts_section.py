"""The tractography section of a subject report: figures of tracked roots and along-root profiles.

:func:`tract_section` turns the results of :func:`dwi_toolkit.tracts.track_roots`,
:func:`~dwi_toolkit.tracts.along_root_profiles`, :func:`~dwi_toolkit.tracts.compare_profiles` and
:func:`~dwi_toolkit.tracts.find_lesions` into a :class:`~dwi_toolkit.reporting.sections.ReportSection`:
the ``tractography`` block of ``report.json`` (per-root counts, profile comparison rows, lesions,
with units), a profile plot (left vs right with 95 % intervals, dural junction at 0 mm) and a
coronal view of the tracked roots over FA. Figures use the matplotlib object API (Agg-safe).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ..units import DIFFUSIVITY_UNIT, DISPLAY_SCALE, DISPLAY_UNIT_PRETTY

__all__ = ["coronal_fa_projection", "tracts_figure", "profiles_figure", "tractography_block", "tract_section",
           "COMPARISON_UNITS"]


def coronal_fa_projection(fa: NDArray, affine: NDArray, *, pixel_mm: float | None = None) -> tuple[NDArray, tuple]:
    """Maximum FA over anterior–posterior in world space (any grid orientation): image (Z, X) and
    its extent (x_min, x_max, z_min, z_max) in RAS+ mm.

    Examples
    --------
    >>> img, ext = coronal_fa_projection(np.full((4, 3, 5), 0.3), np.eye(4))
    >>> img.shape, float(np.nanmax(img)), ext
    ((5, 4), 0.3, (-0.5, 3.5, -0.5, 4.5))
    """
    if pixel_mm is None:  # the finest voxel edge: every pixel gets a voxel on axis-aligned grids
        pixel_mm = float(np.sqrt((np.asarray(affine)[:3, :3] ** 2).sum(0)).min())
    ijk = np.indices(fa.shape).reshape(3, -1).T
    w = ijk @ affine[:3, :3].T + affine[:3, 3]
    v = np.nan_to_num(fa.reshape(-1))
    x0, z0 = w[:, 0].min() - pixel_mm / 2, w[:, 2].min() - pixel_mm / 2
    ix = np.floor((w[:, 0] - x0) / pixel_mm).astype(int)
    iz = np.floor((w[:, 2] - z0) / pixel_mm).astype(int)
    img = np.full((iz.max() + 1, ix.max() + 1), np.nan)
    order = np.argsort(v)  # later (larger) values win
    img[iz[order], ix[order]] = v[order]
    return img, (float(x0), float(x0 + img.shape[1] * pixel_mm), float(z0), float(z0 + img.shape[0] * pixel_mm))


def tracts_figure(tracts: Any, fa: NDArray, *, max_streamlines: int = 30, title: str = "Tracked roots over FA (coronal)"):
    """Figure: coronal FA projection with each root's streamlines (thin) and centre-line (thick).

    Left is on the viewer's right (radiological convention), labelled.

    Examples
    --------
    >>> from dwi_toolkit.phantom_roots import make_root_phantom
    >>> from dwi_toolkit.tracts import track_roots
    >>> ph = make_root_phantom(levels=("L5",), voxel_size=2.5, n_directions=12, snr=30)
    >>> fig = tracts_figure(track_roots(ph.series, ph.seeds, mask=ph.body_mask), ph.fa_true)
    >>> len(fig.axes)
    1
    """
    from matplotlib.figure import Figure

    img, ext = coronal_fa_projection(np.asarray(fa, float), np.asarray(tracts.affine, float))
    fig = Figure(figsize=(6, 7), dpi=110)
    ax = fig.add_subplot(1, 1, 1)
    ax.imshow(img, origin="lower", extent=ext, cmap="gray", vmin=0, vmax=0.8, interpolation="nearest")
    colours = {"left": "tab:blue", "right": "tab:red"}
    for b in tracts:
        for s in b.streamlines[:max_streamlines]:
            ax.plot(s[:, 0], s[:, 2], color=colours[b.side], lw=0.4, alpha=0.5)
        if len(b.centerline) > 1:
            c = b.centerline
            ax.plot(c[:, 0], c[:, 2], color=colours[b.side], lw=2)
            ax.text(c[-1, 0], c[-1, 2], f"{b.level} {b.side[0].upper()}", color="yellow", fontsize=7)
    ax.set_xlim(ext[1], ext[0])  # patient's right on the viewer's left
    ax.set_xlabel("x (mm, RAS+): patient right ←  → patient left")
    ax.set_ylabel("z (mm, superior +)")
    ax.set_title(title)
    return fig


def profiles_figure(profiles: Any, comparisons: Sequence[Any] = (), *, parameters: Sequence[str] = ("fa", "adc")):
    """Figure: left vs right profiles per level (rows) and parameter (columns) with 95 % intervals,
    the dural-junction origin (0 mm) marked and deviating stretches shaded.

    Examples
    --------
    >>> from dwi_toolkit.tracts.profiles import ProfileTable, RootProfile
    >>> d = np.arange(5.0); v = np.full(5, 0.3)
    >>> t = ProfileTable([RootProfile("L5", s, "fa", "", d, v, np.tile(v, (20, 1)), np.full(5, 9)) for s in ("left", "right")])
    >>> len(profiles_figure(t, parameters=["fa"]).axes)
    1
    """
    from matplotlib.figure import Figure

    levels = sorted({p.level for p in profiles}, key=lambda s: ("LS".index(s[0]), s))
    params = [p for p in parameters if any(q.parameter == p for q in profiles)]
    fig = Figure(figsize=(4.2 * max(1, len(params)), 2.4 * max(1, len(levels))), dpi=100)
    axes = fig.subplots(max(1, len(levels)), max(1, len(params)), squeeze=False)
    flagged = {(c.level, c.parameter): c for c in comparisons if c.deviation_found}
    for i, lev in enumerate(levels):
        for j, par in enumerate(params):
            ax = axes[i][j]
            for side, colour in (("left", "tab:blue"), ("right", "tab:red")):
                p = profiles.get(lev, side, par)
                if p is None:
                    continue
                scale = DISPLAY_SCALE if p.unit == DIFFUSIVITY_UNIT else 1.0
                lo, hi = p.ci()
                ax.fill_between(p.distance_mm, lo * scale, hi * scale, color=colour, alpha=0.2, lw=0)
                ax.plot(p.distance_mm, p.value * scale, color=colour, lw=1.5, label=side)
            ax.axvline(0.0, color="k", ls="--", lw=0.8)
            c = flagged.get((lev, par))
            if c is not None:
                ax.axvspan(c.segment_mm[0], c.segment_mm[1], color="orange", alpha=0.3)
            unit = DISPLAY_UNIT_PRETTY if par != "fa" else ""
            ax.set_title(f"{lev} {par.upper()}" + (f" ({unit})" if unit else ""), fontsize=9)
            if i == len(levels) - 1:
                ax.set_xlabel("distance from dural junction (mm)")
            if i == 0 and j == 0:
                ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


#: Units of the profile-comparison columns (``difference`` and the band are in the parameter's unit).
COMPARISON_UNITS = {"peak_distance_mm": "mm", "start_mm": "mm", "end_mm": "mm", "difference": "parameter unit",
                    "band_low": "parameter unit", "band_high": "parameter unit",
                    "relative_difference": "1 (fraction of the mean of both sides)", "critical_t": "1",
                    "max_misalignment_mm": "mm", "smallest_reportable_difference": "1 (fraction of the mean of both sides)"}
_ROOT_UNITS = {"n_seeds": "seeds", "n_tracked": "streamlines", "n_kept": "streamlines",
               "rejected_*": "streamlines", "centerline_length_mm": "mm", "origin_sd_mm": "mm"}
_LESION_UNITS = {"distance_mm": "mm", "start_mm": "mm", "end_mm": "mm", "relative_difference_*": "1"}


def tractography_block(tracts: Any, comparisons: Sequence[Any], lesions: Sequence[dict], *,
                       files: dict[str, str] | None = None) -> dict[str, Any]:
    """The ``tractography`` block of ``report.json``: per-root counts, comparison rows, lesions, units.

    Distances are along the root from the dural junction (mm); diffusivities in mm²/s.

    Examples
    --------
    >>> from dwi_toolkit.phantom_roots import make_root_phantom
    >>> from dwi_toolkit.tracts import track_roots
    >>> ph = make_root_phantom(levels=("L5",), voxel_size=2.5, n_directions=12, snr=30)
    >>> block = tractography_block(track_roots(ph.series, ph.seeds, mask=ph.body_mask), [], [])
    >>> [(r["level"], r["side"]) for r in block["roots"]["rows"]], block["lesions"]["rows"]
    ([('L5', 'left'), ('L5', 'right')], [])
    """
    params = getattr(tracts, "params", None)
    return {
        "settings": dict(params.__dict__) if params is not None else {},
        "settings_units": {"fa_threshold": "1", "max_angle_deg": "degree", "step_mm": "mm", "seed_radius_mm": "mm",
                           "min_length_mm": "mm", "max_length_mm": "mm", "off_bundle_mm": "mm",
                           "tube_radius_mm": "mm"},
        "frame": "RAS+ mm; distance_mm along the root from the dural junction",
        "roots": {"columns": _ROOT_UNITS, "rows": tracts.summary()},
        "profile_comparison": {"columns": COMPARISON_UNITS, "rows": [c.to_record() for c in comparisons]},
        "lesions": {"columns": _LESION_UNITS, "rows": [dict(x) for x in lesions]},
        "files": dict(files or {}),
        "notice": "Research use only: measured values and side differences, not a diagnosis.",
    }


#: Column headers of the HTML tables (the JSON block and CSV tables keep the field names).
_ROOT_HEADERS = {"level": "level", "side": "side", "n_seeds": "seeds", "n_tracked": "tracked", "n_kept": "kept",
                 "rejected_too_short": "rejected: too short", "rejected_crosses_midline": "rejected: crosses midline",
                 "rejected_leaves_body": "rejected: leaves body", "rejected_off_bundle": "rejected: off bundle",
                 "centerline_length_mm": "centre-line length (mm)", "origin": "distance measured from",
                 "origin_sd_mm": "its uncertainty (mm, SD)"}
_COMPARISON_HEADERS = {"level": "level", "parameter": "parameter", "unit": "unit", "deviation_found": "deviation",
                       "side": "abnormal side", "peak_distance_mm": "peak (mm)", "start_mm": "from (mm)",
                       "end_mm": "to (mm)", "difference": "left − right at the peak",
                       "relative_difference": "relative difference", "band_low": "band, low",
                       "band_high": "band, high", "max_misalignment_mm": "origins misaligned up to (mm)",
                       "smallest_reportable_difference": "smallest difference it could report"}


def _one_decimal(v: Any) -> str:
    """A length in mm as shown: one decimal (– when missing)."""
    return f"{v:.1f}" if isinstance(v, (int, float)) and np.isfinite(v) else "–"


def _comparison_display(row: dict[str, Any]) -> dict[str, Any]:
    """One comparison row for the page: diffusivities as ×10⁻³ mm²/s, the relative difference in
    %, parameter names as radiologists write them."""
    out = dict(row)
    if row.get("unit") == DIFFUSIVITY_UNIT:
        out["unit"] = DISPLAY_UNIT_PRETTY
        for k in ("difference", "band_low", "band_high"):
            out[k] = row[k] * DISPLAY_SCALE if isinstance(row.get(k), float) else row.get(k)
    else:
        out["unit"] = "–"
    rel = row.get("relative_difference")
    out["relative_difference"] = f"{100 * rel:+.1f} %".replace("-", "−") if isinstance(rel, float) and np.isfinite(rel) else "–"
    bar = row.get("smallest_reportable_difference")
    out["smallest_reportable_difference"] = f"{100 * bar:.0f} %" if isinstance(bar, float) and np.isfinite(bar) else "–"
    out["parameter"] = str(row.get("parameter", "")).upper()
    return out


def _section_html(block: dict[str, Any], figs: list[Any]) -> str:
    from . import html as H

    roots = block["roots"]["rows"]
    mm = {k: _one_decimal for k in ("centerline_length_mm", "origin_sd_mm", "max_misalignment_mm")}
    out = [H.table(roots, columns=[c for c in _ROOT_HEADERS if roots and c in roots[0]], headers=_ROOT_HEADERS,
                   digits=3, formatters=mm, caption="Tracked roots (streamline counts; lengths in mm)")]
    rows = [_comparison_display(r) for r in block["profile_comparison"]["rows"]]
    if rows:
        out.append(H.table(rows, columns=list(_COMPARISON_HEADERS), headers=_COMPARISON_HEADERS, digits=3, formatters=mm,
                           caption="Left − right at the same distance from the dural junction, with a "
                           "simultaneous 95 % band that allows for the uncertainty of where each junction is. "
                           "A true difference of the smallest reportable size is found about half the time; "
                           "smaller ones go unnoticed"))
    les = block["lesions"]["rows"]
    if les:
        out.append('<div class="warn"><strong>Focal deviation (FA lower and ADC higher on the same side):</strong>'
                   "<ul>" + "".join(f"<li>{H.esc(x['level'])} {H.esc(x['side'])} at {x['distance_mm']:.0f} mm "
                                    f"({x['start_mm']:.0f}–{x['end_mm']:.0f} mm from the dural junction)</li>"
                                    for x in les) + "</ul></div>")
    else:
        out.append("<p>No focal deviation found along the tracked roots.</p>")
    out += [H.img_tag(f.png, alt=f.name, caption=f.caption) for f in figs]
    out.append(f"<p>{H.esc(block['notice'])}</p>")
    return "".join(out)


def tract_section(tracts: Any, profiles: Any, comparisons: Sequence[Any], lesions: Sequence[dict], *,
                  fa: NDArray | None = None, files: dict[str, str] | None = None, figures: bool = True) -> Any:
    """The report section of root tractography (JSON block, tables, profile and coronal figures).

    Parameters
    ----------
    tracts : RootTracts
    profiles : ProfileTable
    comparisons : sequence of ProfileComparison
    lesions : sequence of dict
        From :func:`~dwi_toolkit.tracts.find_lesions`.
    fa : ndarray (X, Y, Z), optional
        FA map on the tracking grid, background of the coronal view (no view without it).
    files : dict, optional
        Name → path (relative to the subject output) of the tractography files, listed in the block.
    figures : bool, optional
        Render the figures (default True).

    Returns
    -------
    ReportSection
        Key ``"tractography"``; tables ``tract_profile_comparison`` and ``tract_roots``.

    Examples
    --------
    >>> from dwi_toolkit.phantom_roots import make_root_phantom
    >>> from dwi_toolkit.tracts import track_roots, along_root_profiles, compare_profiles
    >>> ph = make_root_phantom(levels=("L5",), voxel_size=2.5, n_directions=12, snr=30)
    >>> tr = track_roots(ph.series, ph.seeds, mask=ph.body_mask)
    >>> prof = along_root_profiles(tr, {"fa": (ph.fa_true, ph.series.affine)}, n_boot=20)
    >>> sec = tract_section(tr, prof, compare_profiles(prof), [], fa=ph.fa_true)
    >>> sec.key, [f.name for f in sec.figures]
    ('tractography', ['tract_profiles', 'tracts_coronal'])
    """
    from .html import figure_to_png
    from .report import ReportFigure
    from .sections import ReportSection

    block = tractography_block(tracts, comparisons, lesions, files=files)
    figs = []
    if figures and len(profiles):
        figs.append(ReportFigure("tract_profiles", "Along-root profiles, left (blue) vs right (red) with 95 % "
                                 "intervals; dural junction at 0 mm (dashed); deviating stretches shaded.",
                                 figure_to_png(profiles_figure(profiles, comparisons))))
    if figures and fa is not None:
        figs.append(ReportFigure("tracts_coronal", "Tracked roots (thin: streamlines, thick: centre-lines) over "
                                 "a coronal maximum-FA projection; patient's right on the viewer's left.",
                                 figure_to_png(tracts_figure(tracts, fa))))
    tables = {"tract_roots": block["roots"]["rows"], "tract_profile_comparison": block["profile_comparison"]["rows"]}
    return ReportSection("tractography", "Root tractography and along-root profiles", block,
                         _section_html(block, figs), figs, tables)
