"""Report figures, built with the matplotlib object API (``matplotlib.figure.Figure``).

No pyplot state is used, so the functions are safe in scripts, servers and notebooks and with the
Agg backend; in Jupyter the returned figures display as images without ``%matplotlib`` magic
(``import dwi_toolkit`` registers IPython's PNG printer for figures, see ``reporting._display``).

Units: diffusivities are stored in mm²/s and drawn in ×10⁻³ mm²/s (``dwi_toolkit.units``);
b-values in s/mm²; signal in the scanner's arbitrary units. Images are drawn in the voxel grid
with the patient's left/right marked from the affine (voxel → RAS+ mm), so the reader never has
to guess the display convention.

ROIs are passed as ``(label, mask)`` pairs, where ``mask`` is a boolean array on the image grid,
so this module does not depend on how ROIs are stored.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import InputDataError
from ..units import DISPLAY_SCALE

__all__ = [
    "DecayCurve",
    "adc_montage",
    "side_comparison_figure",
    "roi_decay_curves",
    "signal_decay_figure",
]

logger = logging.getLogger(__name__)

#: Okabe–Ito colour-blind-safe palette (Okabe & Ito 2008), brightest first so outlines and labels
#: stand out on a grey-scale map.
_COLORS = ("#E69F00", "#56B4E9", "#F0E442", "#009E73", "#CC79A7", "#D55E00", "#0072B2", "#FFFFFF")
#: Font size (pt) of ROI labels and panel titles in the montage: at the report's print width
#: (about 180 mm for a 3-panel row) they print at ≥ 9 pt.
MONTAGE_FONTSIZE = 11
#: Offsets (points) tried for an ROI label, in order: above, below, left, right, then further out.
_LABEL_OFFSETS = ((0, 6, "center", "bottom"), (0, -6, "center", "top"), (-8, 0, "right", "center"),
                  (8, 0, "left", "center"), (-10, 18, "right", "bottom"), (10, 18, "left", "bottom"),
                  (-10, -18, "right", "top"), (10, -18, "left", "top"), (0, 30, "center", "bottom"),
                  (0, -30, "center", "top"))


def _montage_figure(nrows: int, ncols: int, aspect: float, title: bool):
    """Figure, (nrows, ncols) panel axes and colour-bar axes of the montage, at fixed margins.

    The margins (inches) are those constrained layout chose for this figure (room for the
    panel titles, the suptitle and the colour bar's ticks and label) without its cost.
    """
    from matplotlib.figure import Figure

    width, height = 2.4 * ncols + 0.9, 2.4 * nrows * aspect + (0.6 if title else 0.3)
    left, right, bottom, top, wgap, hgap = 0.04, 1.07, 0.06, 0.47 if title else 0.27, 0.08, 0.27
    panel_w = (width - left - right - wgap * (ncols - 1)) / ncols
    panel_h = (height - bottom - top - hgap * (nrows - 1)) / nrows
    fig = Figure(figsize=(width, height))
    axes = fig.subplots(nrows, ncols, squeeze=False, gridspec_kw={
        "left": left / width, "right": 1 - right / width, "bottom": bottom / height, "top": 1 - top / height,
        "wspace": wgap / panel_w, "hspace": hgap / panel_h})
    bar_h = 0.8 * (height - bottom - top)
    bar_y = bottom + (height - bottom - top - bar_h) / 2
    cax = fig.add_axes((1 - 0.72 / width, bar_y / height, 0.15 / width, bar_h / height))
    return fig, axes, cax


def _fixed_figure(width: float, height: float, margins: tuple[float, float, float, float],
                  ncols: int = 1, gap: float = 0.0):
    """A Figure with `ncols` axes in one row at fixed margins (inches: left, bottom, right, top)
    and `gap` inches between them.

    Fixed margins, chosen to hold the tick labels, axis labels and titles the report's plots
    carry, replace matplotlib's constrained layout, which measured every text twice and took
    about 60 % of the time of saving a plot.
    """
    from matplotlib.figure import Figure

    left, bottom, right, top = margins
    fig = Figure(figsize=(width, height))
    axis_width = (width - left - right - gap * (ncols - 1)) / ncols
    fig.subplots_adjust(left=left / width, right=1 - right / width, bottom=bottom / height,
                        top=1 - top / height, wspace=gap / axis_width)
    return fig, fig.subplots(1, ncols, squeeze=False)[0]


def _map_array(adc: Any) -> tuple[np.ndarray, np.ndarray | None]:
    """(X, Y, Z) array and affine from an ADCFit, a ParameterMap, (array, affine) or an array."""
    if isinstance(adc, tuple) and len(adc) == 2:
        return np.asarray(adc[0], dtype=float), np.asarray(adc[1], dtype=float)
    if hasattr(adc, "adc") and hasattr(adc, "affine"):
        return np.asarray(adc.adc, dtype=float), np.asarray(adc.affine, dtype=float)
    if hasattr(adc, "data") and hasattr(adc, "affine"):
        return np.asarray(adc.data, dtype=float), np.asarray(adc.affine, dtype=float)
    return np.asarray(adc, dtype=float), None


#: Patient direction letters at the low and high end of each RAS+ world axis.
_AXIS_LETTERS = (("L", "R"), ("P", "A"), ("I", "S"))


def _edge_labels(affine: np.ndarray | None, axis: int) -> tuple[str, str] | None:
    """Patient-direction letters at the (low-index, high-index) ends of a voxel axis.

    Uses the dominant RAS+ component of the voxel axis; returns None for strongly oblique axes
    (no component above 80 % of the axis length, i.e. tilted more than about 37°), so the display never guesses.
    """
    if affine is None:
        return None
    col = np.asarray(affine, dtype=float)[:3, axis]
    norm = float(np.linalg.norm(col))
    if norm == 0:
        return None
    k = int(np.argmax(np.abs(col)))
    if abs(col[k]) / norm < 0.8:
        return None
    lo, hi = _AXIS_LETTERS[k]
    return (lo, hi) if col[k] > 0 else (hi, lo)


def _pick_slices(shape_z: int, masks: Sequence[np.ndarray], max_slices: int) -> list[int]:
    with_roi = sorted({int(k) for m in masks for k in np.nonzero(m.any(axis=(0, 1)))[0]})
    cand = with_roi or list(range(shape_z))
    if len(cand) > max_slices:
        pick = np.linspace(0, len(cand) - 1, max_slices).round().astype(int)
        cand = [cand[i] for i in pick]
    return cand


def adc_montage(
    adc: Any,
    *,
    rois: Sequence[tuple[str, np.ndarray]] = (),
    affine: np.ndarray | None = None,
    slices: Sequence[int] | None = None,
    max_slices: int = 12,
    ncols: int = 3,
    vmax: float = 3.0e-3,
    title: str | None = "ADC map with ROIs",
):
    """Montage of axial slices of an ADC map with ROI outlines and labels.

    Parameters
    ----------
    adc : ParameterMap, ADCFit, (ndarray, affine) or ndarray of shape (X, Y, Z)
        ADC in mm²/s (drawn as ×10⁻³ mm²/s, grey scale 0 to `vmax`). NaN is drawn black.
    rois : sequence of (str, ndarray of bool, shape (X, Y, Z))
        Labels and masks on the same grid; each is outlined in its own colour on every slice it
        touches and labelled once, on the shown slice where it is largest.
    affine : ndarray of shape (4, 4), optional
        Voxel → RAS+ mm; taken from `adc` when it carries one. Used to mark the patient
        directions (L/R, P/A, I/S) on the image edges; nothing is marked for oblique axes.
    slices : sequence of int, optional
        Slice indices (third axis); default the slices that contain ROI voxels (at most
        `max_slices`, evenly chosen), or evenly spaced slices when there are no ROIs.
    ncols : int, optional
        Panels per row.
    vmax : float, optional
        Upper end of the grey scale in mm²/s (default 3.0 × 10⁻³, free water at 37 °C,
        dwi_toolkit References §1.4).

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    InputDataError
        If the map is not 3-D or a mask has another shape.

    Examples
    --------
    >>> import numpy as np
    >>> adc = np.full((8, 8, 3), 1.1e-3)
    >>> m = np.zeros((8, 8, 3), bool); m[2:4, 2:4, 1] = True
    >>> fig = adc_montage(adc, rois=[("L5 left", m)], affine=np.eye(4))
    >>> len(fig.axes)  # one panel and the colour bar
    2
    """
    data, aff = _map_array(adc)
    if affine is not None:
        aff = np.asarray(affine, dtype=float)
    if data.ndim != 3:
        raise InputDataError(f"adc_montage needs a 3-D map (X, Y, Z), got shape {data.shape}.")
    masks = []
    for label, mask in rois:
        m = np.asarray(mask, dtype=bool)
        if m.shape != data.shape:
            raise InputDataError(
                f"ROI {label!r} mask has shape {m.shape} but the map has {data.shape}; "
                "rasterise ROIs on the map's grid."
            )
        masks.append(m)
    zs = list(slices) if slices is not None else _pick_slices(data.shape[2], masks, max_slices)
    n = max(1, len(zs))
    ncols = max(1, min(ncols, n))
    nrows = math.ceil(n / ncols)
    aspect = data.shape[1] / max(data.shape[0], 1)
    fig, axes, cax = _montage_figure(nrows, ncols, aspect, bool(title))
    horiz = _edge_labels(aff, 0)
    vert = _edge_labels(aff, 1)
    disp = data * DISPLAY_SCALE
    import matplotlib

    cmap = matplotlib.colormaps["gray"].with_extremes(bad="black")
    im = None
    # label each ROI once, on the shown slice where its cross-section is largest
    label_slice: dict[int, int] = {}
    pending: dict[int, list[tuple[float, float, str, str]]] = {}
    for j, m in enumerate(masks):
        areas = [int(m[:, :, z].sum()) for z in zs]
        if areas and max(areas) > 0:
            label_slice[j] = zs[int(np.argmax(areas))]
    for k, ax in enumerate(axes.ravel()):
        ax.set_axis_off()
        if k >= len(zs):
            continue
        z = zs[k]
        sl = np.ma.masked_invalid(disp[:, :, z].T)
        im = ax.imshow(sl, origin="lower", cmap=cmap, vmin=0.0, vmax=vmax * DISPLAY_SCALE,
                       interpolation="nearest")
        # y given: the title sits where matplotlib would put it over a panel without axes, and its
        # automatic placement (which measures the hidden tick labels at every draw) is skipped
        ax.set_title(f"slice {z}", fontsize=MONTAGE_FONTSIZE - 1, y=1.0)
        for j, ((label, _), m) in enumerate(zip(rois, masks)):
            ms = m[:, :, z]
            if not ms.any():
                continue
            color = _COLORS[j % len(_COLORS)]
            ax.contour(ms.T.astype(float), levels=[0.5], colors=[color], linewidths=1.2)
            if label_slice.get(j) == z:
                ii, jj = np.nonzero(ms)
                pending.setdefault(k, []).append((float(ii.mean()), float(jj.max()), str(label), color))
        for pos, (x, y, ha, va) in zip(
            ((horiz, 0), (horiz, 1), (vert, 0), (vert, 1)),
            ((0.01, 0.5, "left", "center"), (0.99, 0.5, "right", "center"),
             (0.5, 0.01, "center", "bottom"), (0.5, 0.99, "center", "top")),
        ):
            letters, end = pos
            if letters:
                ax.text(x, y, letters[end], transform=ax.transAxes, color="#F0E442",
                        fontsize=MONTAGE_FONTSIZE - 1, ha=ha, va=va, fontweight="bold")
    if im is None:
        cax.remove()
    else:
        cb = fig.colorbar(im, cax=cax)
        cb.set_label("ADC (×10⁻³ mm²/s)", fontsize=MONTAGE_FONTSIZE - 1)
        cb.ax.tick_params(labelsize=MONTAGE_FONTSIZE - 2)
    if title:
        fig.suptitle(title, fontsize=MONTAGE_FONTSIZE + 1)
    _place_roi_labels(fig, axes.ravel(), pending)
    return fig


def _ink(color: str) -> str:
    """Black or white text, whichever contrasts more with `color` (WCAG relative luminance)."""
    from matplotlib.colors import to_rgb

    lin = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in to_rgb(color)]
    lum = 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]
    return "black" if (lum + 0.05) / 0.05 >= 1.05 / (lum + 0.05) else "white"


def _place_roi_labels(fig: Any, axes: Sequence[Any], pending: Mapping[int, list]) -> None:
    """Label ROIs without overlap: each label takes the first offset (with a leader line) whose
    box overlaps no label placed before it and stays inside its panel (:func:`_place_one_label`).

    The layout is fixed first (a layout engine, if any, runs once and is switched off; the image
    panels take their aspect-locked boxes) so that the measured text extents are those of the
    saved figure.
    """
    if not pending:
        return
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = fig.canvas if isinstance(fig.canvas, FigureCanvasAgg) else FigureCanvasAgg(fig)
    renderer = canvas.get_renderer()
    engine = fig.get_layout_engine()
    if engine is not None:  # run the layout alone (no pixels drawn), then keep it fixed
        engine.execute(fig)
    fig.set_layout_engine("none")
    for ax in fig.axes:  # the aspect-locked image panels take their final boxes
        ax.apply_aspect()
    # labels also keep clear of the edge letters (patient directions) already drawn
    placed = [t.get_window_extent(renderer).padded(2) for ax in axes for t in ax.texts]
    for k, items in pending.items():
        ax = axes[k]
        for x, ytop, label, color in sorted(items):
            placed.append(_place_one_label(ax, renderer, (x, ytop), label, color, placed, fig.bbox))


def _place_one_label(ax: Any, renderer: Any, xy: tuple[float, float], label: str, color: str,
                     placed: Sequence[Any], fig_box: Any) -> Any:
    """Annotate one ROI at the first offset whose box overlaps no placed box and lies inside its own
    panel (a label running into the next panel would be hidden under that panel's image); failing
    that, the first one inside the figure; failing that, the last offset. Returns the label's box.

    One annotation is moved through the offsets (measuring a moved text is cheaper than creating one).
    """
    from matplotlib.text import Text

    def within(box: Any, frame: Any) -> bool:
        return box.x0 >= frame.x0 and box.x1 <= frame.x1 and box.y0 >= frame.y0 and box.y1 <= frame.y1

    t = ax.annotate(label, xy=xy, xytext=_LABEL_OFFSETS[0][:2], textcoords="offset points",
                    ha=_LABEL_OFFSETS[0][2], va=_LABEL_OFFSETS[0][3], fontsize=MONTAGE_FONTSIZE,
                    color=_ink(color), fontweight="bold", annotation_clip=False, gid="roi-label",
                    bbox={"facecolor": color, "alpha": 0.9, "pad": 1.5, "lw": 0},
                    arrowprops={"arrowstyle": "-", "color": color, "lw": 1.0, "shrinkA": 0, "shrinkB": 0})

    def move(dx: float, dy: float, ha: str, va: str) -> Any:
        t.xyann = (dx, dy)
        t.set_horizontalalignment(ha)
        t.set_verticalalignment(va)
        t.update_positions(renderer)
        return Text.get_window_extent(t, renderer).padded(2.5)

    fallback = None
    frame = ax.bbox
    for dx, dy, ha, va in _LABEL_OFFSETS:
        box = move(dx, dy, ha, va)
        # a box sticking out of the panel at the side slides back in (the leader line follows)
        slide = frame.x0 - box.x0 if box.x0 < frame.x0 else frame.x1 - box.x1 if box.x1 > frame.x1 else 0.0
        if slide and box.width <= frame.width:
            dx += slide * 72.0 / ax.figure.dpi
            box = move(dx, dy, ha, va)
        free = not any(box.overlaps(p) for p in placed)
        if free and within(box, frame):
            return box
        if fallback is None and free and within(box, fig_box):
            fallback = (dx, dy, ha, va)
    return move(*(fallback or _LABEL_OFFSETS[-1]))


def side_comparison_figure(comparison: Any, *, parameter: str = "adc", threshold_pct: float | None = None):
    """Per-level plot of symptomatic vs contralateral ROI means with confidence intervals.

    Left panel: ROI mean per side with the interval of each mean (the comparison's method). Right panel: the signed
    relative difference ``rel_diff_pct`` with its interval (or ``abs_asymmetry_index_pct`` when the
    symptomatic side is unknown), a zero line and, if given, ±`threshold_pct` lines.

    Parameters
    ----------
    comparison : SideComparison
        From :func:`dwi_toolkit.analysis.compare.compare_sides`.
    parameter : str, optional
        Parameter to plot (default ``"adc"``; diffusivities drawn in ×10⁻³ mm²/s).
    threshold_pct : float, optional
        Threshold used by the entrapment assessment, drawn as dashed lines (not a diagnostic
        cut-off, dwi_toolkit References §2.8).

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> from types import SimpleNamespace as R
    >>> from dwi_toolkit.analysis.compare import compare_sides
    >>> rows = [R(level="L5", side=s, segment="ganglion", parameter="adc", unit="mm^2/s",
    ...           n_voxels=3, mean=m, values=np.array([m, m, m])) for s, m in
    ...         [("left", 1.6e-3), ("right", 1.2e-3)]]
    >>> fig = side_comparison_figure(compare_sides(R(rows=rows), symptomatic_side="left", n_boot=100))
    >>> len(fig.axes)
    2
    """
    rows = [r for r in comparison.rows if r.parameter == parameter]
    side = getattr(comparison, "symptomatic_side", None)
    two_line = len({r.segment for r in rows}) > 1  # tick labels "L5\ngang"
    fig, (ax1, ax2) = _fixed_figure(9.0, 3.6, (0.62, 0.48 if two_line else 0.3, 0.1,
                                                0.45 if side and threshold_pct else 0.3), ncols=2, gap=0.8)
    if not rows:
        ax1.text(0.5, 0.5, f"no {parameter} comparisons", ha="center", transform=ax1.transAxes)
        ax2.set_axis_off()
        return fig
    unit = rows[0].unit
    scale = DISPLAY_SCALE if unit in ("mm^2/s", "mm²/s") else 1.0
    unit_txt = "×10⁻³ mm²/s" if scale != 1.0 else unit
    x = np.arange(len(rows))
    labels = [f"{r.level}\n{r.segment[:4]}" if two_line else r.level for r in rows]
    if side:
        other = "right" if side == "left" else "left"
        series = [(f"symptomatic ({side})", side, "#D55E00", -0.12), (f"contralateral ({other})", other, "#0072B2", 0.12)]
    else:
        series = [("left", "left", "#CC79A7", -0.12), ("right", "right", "#009E73", 0.12)]
    for name, s, color, dx in series:
        v = np.array([getattr(r, f"value_{s}") for r in rows]) * scale
        lo = np.array([getattr(r, f"{s}_ci_low") for r in rows]) * scale
        hi = np.array([getattr(r, f"{s}_ci_high") for r in rows]) * scale
        err = np.vstack([np.where(np.isfinite(lo), v - lo, 0), np.where(np.isfinite(hi), hi - v, 0)])
        ax1.errorbar(x + dx, v, yerr=np.clip(err, 0, None), fmt="o", color=color, capsize=3, label=name)
    ax1.set_xticks(x, labels)
    ax1.set_ylabel(f"{parameter.upper()} ROI mean ({unit_txt})" if unit_txt else f"{parameter.upper()} ROI mean")
    ax1.set_title("ROI means with " + ("bootstrap CI" if (getattr(comparison, "settings", {}) or {}).get(
        "interval") == "iid-bootstrap" else "95 % interval"), fontsize=9)
    ax1.legend(fontsize=7, loc="best")
    ax1.grid(alpha=0.3)
    if side:
        v = np.array([r.rel_diff_pct for r in rows])
        lo = np.array([r.rel_diff_pct_ci_low for r in rows])
        hi = np.array([r.rel_diff_pct_ci_high for r in rows])
        err = np.vstack([np.where(np.isfinite(lo), v - lo, 0), np.where(np.isfinite(hi), hi - v, 0)])
        colors = ["#7f7f7f" if ("too_small" in r.flags or "missing_side" in r.flags) else "#D55E00" for r in rows]
        for xi, vi, e0, e1, c in zip(x, v, err[0], err[1], colors):
            ax2.errorbar([xi], [vi], yerr=[[max(e0, 0)], [max(e1, 0)]], fmt="s", color=c, capsize=3)
        ax2.set_ylabel("relative difference 100·(Xs−Xc)/Xc (%)")
        note = f"\ndashed: ±{threshold_pct:g} % threshold (not diagnostic)" if threshold_pct else ""
        ax2.set_title("Side difference (symptomatic − contralateral)" + note, fontsize=9)
        if threshold_pct:
            for t in (threshold_pct, -threshold_pct):
                ax2.axhline(t, color="#E69F00", ls="--", lw=1.2)
    else:
        v = np.array([r.abs_asymmetry_index_pct for r in rows])
        ax2.bar(x, np.nan_to_num(v), color="#56B4E9")
        ax2.set_ylabel("absolute asymmetry index (%)")
        ax2.set_title("Absolute asymmetry (symptomatic side unknown)", fontsize=9)
        if threshold_pct:
            ax2.axhline(threshold_pct, color="#E69F00", ls="--", lw=1.2)
    ax2.axhline(0, color="black", lw=0.8)
    ax2.set_xticks(x, labels)
    ax2.grid(alpha=0.3)
    return fig


@dataclass(frozen=True)
class DecayCurve:
    """Mean signal per b-value in one ROI and its mono-exponential fit.

    Attributes
    ----------
    label : str
    bvals : ndarray of shape (M,)
        Shell b-values, s/mm².
    signal, sd : ndarray of shape (M,)
        Mean and standard deviation over the ROI voxels of the trace signal (arbitrary units).
    n_voxels : int
    s0 : float
        Fitted signal at b = 0 (arbitrary units).
    adc : float
        Fitted ADC of the ROI-mean signal, mm²/s (NaN when it cannot be fitted).
    b_fit : ndarray
        The b-values (s/mm²) used in the fit.

    Examples
    --------
    >>> from dwi_toolkit.phantom import make_lumbar_phantom
    >>> ph = make_lumbar_phantom(shape=(36, 28, 24), voxel_size=(4.0, 4.0, 8.0))
    >>> curve = roi_decay_curves(ph.series, [("L5 left", ph.root_labels == 9)])[0]
    >>> curve.bvals.tolist(), curve.n_voxels, round(curve.adc * 1e3, 1)          # ×10⁻³ mm²/s
    ([0.0, 100.0, 400.0, 800.0], 11, 1.7)
    """

    label: str
    bvals: np.ndarray
    signal: np.ndarray
    sd: np.ndarray
    n_voxels: int
    s0: float
    adc: float
    b_fit: np.ndarray


def roi_decay_curves(
    series: Any,
    rois: Sequence[tuple[str, np.ndarray]],
    *,
    b_range: tuple[float | None, float | None] | None = None,
) -> list[DecayCurve]:
    """Mean trace signal per b-value in each ROI and a log-linear mono-exponential fit.

    The signal is the direction-averaged (trace) image per shell (:meth:`DWISeries.trace`); the
    fit is ordinary least squares of ``ln S = ln S0 − b·ADC`` on the ROI-mean signal of the shells
    inside `b_range` (dwi_toolkit References §1.1). It is drawn to show the data behind the voxel
    fits; the reported ROI values come from the voxel-wise fit, not from this curve.

    Parameters
    ----------
    series : DWISeries
    rois : sequence of (str, ndarray of bool, shape (X, Y, Z))
    b_range : (float or None, float or None), optional
        Inclusive b-value range in s/mm² used for the fit (default all shells).

    Returns
    -------
    list of DecayCurve

    Examples
    --------
    >>> import numpy as np
    >>> from dwi_toolkit.core.image import DWISeries
    >>> b = np.array([0., 500., 1000.])
    >>> data = np.broadcast_to(1000 * np.exp(-b * 1.1e-3), (4, 4, 2, 3)).copy()
    >>> s = DWISeries(data, np.eye(4), b, np.r_[[[0, 0, 0]], np.eye(3)[:2]])
    >>> m = np.zeros((4, 4, 2), bool); m[1:3, 1:3, 0] = True
    >>> c = roi_decay_curves(s, [("root", m)])[0]
    >>> round(c.adc * 1e3, 4), round(c.s0, 1)
    (1.1, 1000.0)
    """
    bv, tr, union = _roi_trace(series, [np.asarray(m, dtype=bool) for _, m in rois])
    lo, hi = (b_range or (None, None))
    sel = np.ones(bv.shape, bool)
    if lo is not None:
        sel &= bv >= float(lo) - 1e-6
    if hi is not None:
        sel &= bv <= float(hi) + 1e-6
    out = []
    for label, mask in rois:
        m = np.asarray(mask, dtype=bool)
        if m.shape != union.shape:
            raise InputDataError(f"ROI {label!r} mask shape {m.shape} does not match the series grid {union.shape}.")
        vox = tr[m[union]].astype(float)  # (V, M), voxels in C order as tr_image[m] would give
        if vox.size == 0:
            sig = np.full(bv.shape, np.nan)
            sd = sig.copy()
        else:
            sig = vox.mean(axis=0)
            sd = vox.std(axis=0, ddof=1) if vox.shape[0] > 1 else np.zeros_like(sig)
        use = sel & np.isfinite(sig) & (sig > 0)
        s0 = adc = math.nan
        if np.unique(bv[use]).size >= 2:
            slope, icpt = np.polyfit(bv[use], np.log(sig[use]), 1)
            s0, adc = float(np.exp(icpt)), float(-slope)
        out.append(DecayCurve(str(label), bv.copy(), sig, sd, int(m.sum()), s0, adc, bv[use].copy()))
    return out


def _roi_trace(series: Any, masks: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The trace signal (:meth:`DWISeries.trace`) at the voxels of any ROI only (issue 21: memory).

    Returns the shell b-values (s/mm²), the trace rows ``(V, M)`` of the voxels in the union of
    `masks` (in C order of the grid, as indexing a trace image with that union would give) and the
    union. The per-voxel arithmetic is that of :meth:`DWISeries.trace`, so the values are the same.
    """
    from ..core import signal as _sig

    shape = tuple(series.data.shape[:3])
    union = np.zeros(shape, dtype=bool)
    for m in masks:
        if m.shape == shape:
            union |= m
    rows = np.asarray(series.data[union])  # (V, N): only the ROI voxels are read and converted
    shells = series.shells
    dtype = np.float64 if rows.dtype == np.float64 else np.float32
    tr = np.empty((rows.shape[0], len(shells)), dtype=dtype)
    for k, sh in enumerate(shells):
        if sh.bval == 0.0:
            tr[:, k] = _sig.mean_b0(rows, np.isin(np.arange(rows.shape[1]), sh.indices))
        else:
            tr[:, k] = _sig.geometric_mean(rows, sh.indices)
    return np.array([s.bval for s in shells]), tr, union


def signal_decay_figure(curves: Sequence[DecayCurve], *, log: bool = True, max_curves: int = 12):
    """Signal decay per ROI (mean ± SD over voxels) with the fitted mono-exponential curve.

    Parameters
    ----------
    curves : sequence of DecayCurve
        From :func:`roi_decay_curves`.
    log : bool, optional
        Logarithmic signal axis (a mono-exponential decay is then a straight line).
    max_curves : int, optional
        At most this many curves are drawn (in the given order).

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> c = DecayCurve("root", np.array([0., 1000.]), np.array([1000., 332.9]), np.zeros(2), 4,
    ...                1000.0, 1.1e-3, np.array([0., 1000.]))
    >>> len(signal_decay_figure([c]).axes)
    1
    """
    fig, (ax,) = _fixed_figure(6.5, 4.2, (0.85, 0.5, 0.1, 0.3))
    if not curves:
        ax.text(0.5, 0.5, "no ROI curves", ha="center", transform=ax.transAxes)
        return fig
    bmax = max(float(np.nanmax(c.bvals)) for c in curves)
    bb = np.linspace(0.0, bmax, 100)
    # one colour per level (first word of the label); left solid/circles, right dashed/squares
    groups: dict[str, int] = {}
    for j, c in enumerate(curves[:max_curves]):
        words = c.label.split()
        key = words[0] if words else c.label
        color = _COLORS[groups.setdefault(key, len(groups)) % len(_COLORS)]
        right = len(words) > 1 and words[1].lower() == "right"
        marker, ls = ("s", "--") if right else ("o", "-")
        ax.errorbar(c.bvals, c.signal, yerr=c.sd, fmt=marker, ms=4, color=color, capsize=2,
                    mfc="white" if right else color)
        if math.isfinite(c.adc) and math.isfinite(c.s0):
            lab = f"{c.label}: ADC {c.adc * DISPLAY_SCALE:.2f} ×10⁻³ mm²/s (n={c.n_voxels})"
            ax.plot(bb, c.s0 * np.exp(-bb * c.adc), ls, color=color, lw=1, label=lab)
        else:
            ax.plot([], [], marker, color=color, label=f"{c.label}: not fitted")
    if log and any(np.any(np.asarray(c.signal, float) > 0) for c in curves):  # no signal: a log axis is empty
        ax.set_yscale("log")
    ax.set_xlabel("b (s/mm²)")
    ax.set_ylabel("mean trace signal (a.u.)")
    ax.set_title("Signal decay in the compared ROIs: S(b) = S0·exp(−b·ADC)", fontsize=9)
    ax.legend(fontsize=6, loc="best")
    ax.grid(alpha=0.3, which="both")
    return fig
