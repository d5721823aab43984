"""Figures of nerve-root ROIs over images (matplotlib object API; no pyplot state).

:func:`roi_montage` draws a grid of slices with each ROI outlined and labelled; the slice
helpers (:func:`view_axis`, :func:`slice_image`, :func:`orientation_labels`) are shared with the
interactive editor in :mod:`dwi_toolkit.viz.roi_editor`.

Slices are shown in voxel order (no resampling): the first in-plane voxel axis runs left → right
on screen, the second bottom → top; letters at the edges say which world direction each edge
faces (R/L, A/P, S/I).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from .._options import with_settings
from ..core import affines as _aff
from ..errors import InputDataError
from ..roi.masks import rasterize
from ..roi.model import RootROI, RoiSet

__all__ = ["VIEWS", "view_axis", "slice_image", "orientation_labels", "roi_colors", "draw_roi_overlay",
           "background_volume", "roi_montage", "MontageStyle"]

logger = logging.getLogger(__name__)

#: View name → world axis (RAS+) of the slice normal.
VIEWS = {"axial": 2, "coronal": 1, "sagittal": 0}
_OPPOSITE = {"R": "L", "L": "R", "A": "P", "P": "A", "S": "I", "I": "S"}


def view_axis(affine: ArrayLike, view: str) -> int:
    """Voxel axis whose direction is closest to the view's slice normal.

    Examples
    --------
    >>> view_axis(np.eye(4), "sagittal")
    0
    """
    if view not in VIEWS:
        raise InputDataError(f"view must be one of {', '.join(VIEWS)}, got {view!r}.")
    a = np.asarray(affine, float)[:3, :3]
    cols = a / np.linalg.norm(a, axis=0)
    return int(np.argmax(np.abs(cols[VIEWS[view]])))


def slice_image(vol: NDArray, axis: int, index: int) -> NDArray:
    """2-D slice for ``imshow(..., origin="lower")``: rows = second in-plane axis.

    Examples
    --------
    >>> vol = np.arange(24.0).reshape(2, 3, 4)
    >>> slice_image(vol, 2, 0).shape               # rows = second axis, columns = first axis
    (3, 2)
    """
    return np.take(vol, index, axis=axis).T


def orientation_labels(affine: ArrayLike, axis: int) -> tuple[str, str, str, str]:
    """Edge letters (left, right, bottom, top) of a slice through voxel `axis`.

    Examples
    --------
    >>> orientation_labels(np.eye(4), 2)            # axial slice of a RAS image: left, right, bottom, top
    ('L', 'R', 'P', 'A')
    """
    import nibabel.orientations as nio

    codes = nio.aff2axcodes(np.asarray(affine, float))
    h, v = [k for k in range(3) if k != axis]
    return _OPPOSITE[codes[h]], codes[h], _OPPOSITE[codes[v]], codes[v]


def roi_colors(n: int) -> list[tuple[float, float, float, float]]:
    """`n` distinct RGBA colours (tab10, then tab20).

    Examples
    --------
    >>> cols = roi_colors(3)
    >>> len(cols), len(cols[0]), float(cols[0][3])
    (3, 4, 1.0)
    """
    import matplotlib

    cmap = matplotlib.colormaps["tab10" if n <= 10 else "tab20"]
    return [cmap(k % cmap.N) for k in range(n)]


def background_volume(background: Any, affine: ArrayLike | None = None) -> tuple[NDArray, NDArray, str]:
    """(volume (X, Y, Z), affine, description) from an array or an image object.

    A DWISeries gives its highest-b trace image; a ParameterMap its data (ADC shown in
    ×10⁻³ mm²/s); a nibabel image its data; a 4-D array its last volume.

    Examples
    --------
    >>> from dwi_toolkit.core.image import DWISeries
    >>> s = DWISeries(np.ones((4, 3, 2, 2)), np.eye(4), [0, 800], [[0, 0, 0], [0, 0, 1]])
    >>> vol, aff, what = background_volume(s)               # a series shows its highest-b trace
    >>> vol.shape, what
    ((4, 3, 2), 'trace b=800 s/mm²')
    """
    if affine is not None:
        vol = np.asarray(background, float)
        desc = ""
    elif hasattr(background, "trace") and hasattr(background, "bvals"):
        bv, tr = background.trace()
        vol, affine, desc = tr[..., -1], background.affine, f"trace b={bv[-1]:g} s/mm²"
    elif hasattr(background, "dataobj") and hasattr(background, "affine"):
        vol, affine, desc = np.asanyarray(background.dataobj), background.affine, ""
    elif hasattr(background, "data") and hasattr(background, "affine"):
        vol, affine = background.data, background.affine
        unit = getattr(background, "unit", "")
        desc = f"{getattr(background, 'name', '')}" + (f" [{unit}]" if unit else "")
    elif isinstance(background, tuple) and len(background) == 2:
        vol, affine, desc = background[0], background[1], ""
    else:
        raise InputDataError(f"cannot display {type(background).__name__} as a background image.")
    vol = np.asarray(vol, float)
    if vol.ndim == 4:
        vol = vol[..., -1]
    if vol.ndim != 3:
        raise InputDataError(f"background must be 3-D (X, Y, Z), got shape {vol.shape}.")
    return vol, _aff.check_affine(affine), desc


def draw_roi_overlay(ax, masks: Sequence[NDArray], names: Sequence[str], colors: Sequence[Any], *,
                     label: bool = True, alpha: float = 0.35, fontsize: float = 7,
                     aspect: float | str = "equal") -> None:
    """Draw 2-D ROI masks (already sliced and transposed like the image) on `ax`.

    `aspect` is the pixel height/width ratio (voxel size along the vertical axis over the
    horizontal one), as for the background image.

    Examples
    --------
    >>> from matplotlib.figure import Figure
    >>> ax = Figure().subplots()
    >>> mask = np.zeros((5, 5), bool); mask[1:3, 1:3] = True
    >>> draw_roi_overlay(ax, [mask], ["L5 left"], roi_colors(1))
    >>> [t.get_text() for t in ax.texts]
    ['L5 left']
    """
    for m, name, col in zip(masks, names, colors):
        if not m.any():
            continue
        rgba = np.zeros(m.shape + (4,))
        rgba[m] = col
        rgba[..., 3] = np.where(m, alpha, 0.0)
        ax.imshow(rgba, origin="lower", interpolation="nearest", aspect=aspect)
        if m.shape[0] > 1 and m.shape[1] > 1:
            ax.contour(m.astype(float), levels=[0.5], colors=[col], linewidths=1.0)
        if label:
            yy, xx = np.nonzero(m)
            ax.text(xx.mean(), yy.max() + 1.5, name.replace("_", " "), color=col, fontsize=fontsize,
                    ha="center", va="bottom", fontweight="bold")


@dataclass(frozen=True)
class MontageStyle:
    """Display settings of :func:`roi_montage`.

    Attributes
    ----------
    ncols : int
        Panels per row (default 4).
    max_panels : int
        Most panels when the slices are chosen automatically (default 12).
    cmap : str
        Matplotlib colour map of the background (default ``"gray"``).
    window : (float, float)
        Display window as percentiles of the background (default 1 to 99.5).
    label : bool
        Write the ROI names next to their outlines (default True).
    panel_size : float
        Width of one panel in inches (default 2.6).
    crop_mm : float or None
        Zoom every panel to the ROIs' in-plane extent plus this margin (mm, default 25); ``None``
        shows the whole slice.

    Examples
    --------
    >>> MontageStyle(crop_mm=None, ncols=2).ncols
    2
    """

    ncols: int = 4
    max_panels: int = 12
    cmap: str = "gray"
    window: tuple[float, float] = (1.0, 99.5)
    label: bool = True
    panel_size: float = 2.6
    crop_mm: float | None = 25.0


def roi_montage(
    background: Any,
    affine: ArrayLike | None = None,
    rois: RoiSet | Iterable[RootROI] | None = None,
    *,
    view: str = "axial",
    slices: Sequence[int] | None = None,
    title: str | None = None,
    style: MontageStyle | None = None,
    **settings: Any,
):
    """A montage of slices with the ROIs outlined and labelled.

    Parameters
    ----------
    background : ndarray (X, Y, Z) with `affine`, or DWISeries / ParameterMap / nibabel image
        Image to draw on (a DWISeries shows its highest-b trace).
    affine : ndarray of shape (4, 4), optional
        Voxel → RAS+ mm, needed for a bare array.
    rois : RoiSet or iterable of RootROI
        Shapes in RAS+ mm, rasterised on the background grid.
    view : {"axial", "coronal", "sagittal"}
        Slice plane (the voxel axis closest to that world plane's normal).
    slices : sequence of int, optional
        Slice indices; default: the slices crossing ROIs (at most ``style.max_panels``, evenly chosen).
    title : str, optional
        Figure title (default: the background's description).
    style : MontageStyle, optional
        Display settings (columns, panel count, colour map, window, labels, panel size, crop).
    **settings
        Any :class:`MontageStyle` field by name (``max_panels=2``, ``crop_mm=12`` ...), applied on
        top of `style`; an unknown name raises :class:`~dwi_toolkit.errors.InputDataError`.

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> from dwi_toolkit.phantom import make_lumbar_phantom
    >>> ph = make_lumbar_phantom(shape=(36, 28, 24), voxel_size=(4.0, 4.0, 8.0))
    >>> from dwi_toolkit.roi.sample import sample_rois
    >>> fig = roi_montage(ph.series, rois=sample_rois(ph), max_panels=2)
    >>> type(fig).__name__
    'Figure'
    """
    from matplotlib.figure import Figure

    st = with_settings(MontageStyle, style, settings, where="roi_montage")
    ncols, max_panels, cmap, window = st.ncols, st.max_panels, st.cmap, st.window
    label, panel_size, crop_mm = st.label, st.panel_size, st.crop_mm
    vol, aff, desc = background_volume(background, affine)
    rois = list(rois or [])
    axis = view_axis(aff, view)
    masks = [rasterize(r, vol.shape, aff) for r in rois]
    for r, m in zip(rois, masks):
        if not m.any():
            logger.warning("ROI %s does not cover any voxel of the background grid", r.name)
    if slices is None:
        hit = sorted({int(i) for m in masks for i in np.unique(np.nonzero(m)[axis])})
        if not hit:
            hit = [vol.shape[axis] // 2]
        if len(hit) > max_panels:
            hit = [hit[int(round(k))] for k in np.linspace(0, len(hit) - 1, max_panels)]
        slices = hit
    slices = [int(s) for s in slices]
    bad = [s for s in slices if not 0 <= s < vol.shape[axis]]
    if bad:
        raise InputDataError(f"slice indices {bad} outside 0..{vol.shape[axis] - 1} for the {view} view.")
    ncols = max(1, min(ncols, len(slices)))
    nrows = int(np.ceil(len(slices) / ncols))
    finite = vol[np.isfinite(vol)]
    vmin, vmax = (np.percentile(finite, window) if finite.size else (0.0, 1.0))
    colors = roi_colors(len(rois))
    names = [r.name for r in rois]
    lt, rt, bt, tp = orientation_labels(aff, axis)
    h_ax, v_ax = [k for k in range(3) if k != axis]
    vs = _aff.voxel_sizes(aff)
    limits = None
    if crop_mm is not None and any(m.any() for m in masks):
        union = np.any(np.stack(masks), axis=0)
        idx = np.argwhere(union)
        mh, mv = crop_mm / vs[h_ax], crop_mm / vs[v_ax]
        limits = ((max(idx[:, h_ax].min() - mh, -0.5), min(idx[:, h_ax].max() + mh, vol.shape[h_ax] - 0.5)),
                  (max(idx[:, v_ax].min() - mv, -0.5), min(idx[:, v_ax].max() + mv, vol.shape[v_ax] - 0.5)))
    if limits is not None:
        aspect = ((limits[1][1] - limits[1][0]) * vs[v_ax]) / ((limits[0][1] - limits[0][0]) * vs[h_ax])
    else:
        aspect = (vol.shape[v_ax] * vs[v_ax]) / (vol.shape[h_ax] * vs[h_ax])
    aspect = float(np.clip(aspect, 0.3, 3.0))
    fig = Figure(figsize=(panel_size * ncols, panel_size * aspect * nrows + 0.3 * nrows + (0.4 if title else 0.1)),
                 layout="constrained")
    axes = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False)).ravel()
    for ax, s in zip(axes, slices):
        ax.imshow(slice_image(vol, axis, s), cmap=cmap, vmin=vmin, vmax=vmax, origin="lower",
                  interpolation="nearest", aspect=vs[v_ax] / vs[h_ax])
        draw_roi_overlay(ax, [slice_image(m, axis, s) for m in masks], names, colors, label=label,
                         aspect=vs[v_ax] / vs[h_ax])
        if limits is not None:
            ax.set_xlim(*limits[0])
            ax.set_ylim(*limits[1])
        ax.set_title(f"{view} slice {s}", fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
        for x, y, t, ha, va in ((0.01, 0.5, lt, "left", "center"), (0.99, 0.5, rt, "right", "center"),
                                (0.5, 0.01, bt, "center", "bottom"), (0.5, 0.99, tp, "center", "top")):
            ax.text(x, y, t, transform=ax.transAxes, color="yellow", fontsize=7, ha=ha, va=va)
    for ax in axes[len(slices):]:
        ax.set_axis_off()
    fig.suptitle(title if title is not None else (desc or "nerve-root ROIs"), fontsize=10)
    return fig
