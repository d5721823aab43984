"""Slice montages of parameter maps (matplotlib object API, headless-safe)."""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike

from ..units import DISPLAY_SCALE

__all__ = ["map_montage", "adc_montage", "choose_slices"]


def choose_slices(n_slices: int, max_slices: int = 12, *, valid: ArrayLike | None = None) -> list[int]:
    """Evenly spaced slice indices (only slices with valid voxels when `valid` is given).

    Examples
    --------
    >>> choose_slices(10, 4)
    [2, 4, 5, 7]
    """
    idx = np.arange(n_slices)
    if valid is not None:
        v = np.asarray(valid, dtype=bool)
        if v.any():
            idx = idx[v]
    if idx.size <= max_slices:
        return idx.tolist()
    pick = np.linspace(0, idx.size - 1, max_slices + 2)[1:-1]
    return sorted({int(idx[int(round(p))]) for p in pick})


def map_montage(
    data: ArrayLike,
    *,
    title: str = "",
    unit: str = "",
    scale: float = 1.0,
    vmin: float | None = None,
    vmax: float | None = None,
    cmap: str = "gray",
    max_slices: int = 12,
    slices: list[int] | None = None,
    ncols: int | None = None,
):
    """Montage of axial-index slices (third voxel axis) of a 3-D map with a colour bar.

    Parameters
    ----------
    data : array_like of shape (X, Y, Z)
        Map; NaNs are shown transparent.
    title : str, optional
    unit : str, optional
        Colour-bar label.
    scale : float, optional
        Multiply values before display (e.g. 1e3 for ×10⁻³ mm²/s).
    vmin, vmax : float, optional
        Display range after scaling (default: 1st–99th percentile).
    cmap : str, optional
    max_slices : int, optional
    slices : list of int, optional
        Explicit slice indices.
    ncols : int, optional

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> fig = map_montage(np.random.default_rng(0).random((8, 8, 4)), title="FA", max_slices=4)
    >>> type(fig).__name__, len(fig.axes) >= 4
    ('Figure', True)
    """
    from matplotlib.figure import Figure

    arr = np.asarray(data, dtype=float) * scale
    finite = np.isfinite(arr)
    if slices is None:
        slices = choose_slices(arr.shape[2], max_slices, valid=finite.any(axis=(0, 1)))
    vals = arr[finite]
    if vmin is None:
        vmin = float(np.percentile(vals, 1)) if vals.size else 0.0
    if vmax is None:
        vmax = float(np.percentile(vals, 99)) if vals.size else 1.0
    n = max(1, len(slices))
    ncols = ncols or min(n, 6)
    nrows = math.ceil(n / ncols)
    fig = Figure(figsize=(2.2 * ncols + 1.0, 2.3 * nrows + 0.6), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False)
    im = None
    for ax in axes.flat:
        ax.set_axis_off()
    for ax, k in zip(axes.flat, slices):
        im = ax.imshow(np.ma.masked_invalid(arr[:, :, k].T), origin="lower", cmap=cmap,
                       vmin=vmin, vmax=vmax, interpolation="nearest")
        ax.set_title(f"slice {k}", fontsize=8)
    if im is not None:
        cb = fig.colorbar(im, ax=axes.ravel().tolist(), shrink=0.8)
        cb.set_label(unit)
    if title:
        fig.suptitle(title)
    return fig


def adc_montage(
    adc,
    *,
    title: str = "ADC",
    vmax: float = 3.2,
    max_slices: int = 12,
    slices: list[int] | None = None,
    ncols: int | None = None,
):
    """Montage of an ADC map (mm²/s) displayed in ×10⁻³ mm²/s (grey scale 0–`vmax`).

    The same display as the report (:func:`dwi_toolkit.reporting.figures.adc_montage`, which
    also outlines ROIs): patient-direction letters on the edges when `adc` carries an affine
    (an :class:`~dwi_toolkit.models.adc.ADCFit` or :class:`~dwi_toolkit.core.image.ParameterMap`).

    Parameters
    ----------
    adc : ADCFit, ParameterMap, (ndarray, affine) or ndarray of shape (X, Y, Z)
        ADC in mm²/s.
    title : str, optional
    vmax : float, optional
        Upper end of the display range in ×10⁻³ mm²/s.
    max_slices, slices, ncols : optional
        Slices shown (evenly spaced by default) and panels per row.

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> fig = adc_montage(np.full((8, 8, 3), 1.2e-3))            # mm²/s, shown as ×10⁻³ mm²/s
    >>> type(fig).__name__
    'Figure'
    """
    from .figures import adc_montage as _adc_montage

    return _adc_montage(adc, title=title, vmax=vmax / DISPLAY_SCALE, max_slices=max_slices,
                        slices=slices, ncols=ncols or 6)
