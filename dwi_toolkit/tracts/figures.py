"""Figures of tracked roots and along-root profiles (matplotlib object API, Agg-safe).

Kept here for phase 1; they are meant to move to :mod:`dwi_toolkit.reporting` with the report
section.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ..units import DIFFUSIVITY_UNIT, DISPLAY_SCALE, DISPLAY_UNIT

__all__ = ["coronal_fa_projection", "tracts_figure", "profiles_figure"]


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
            unit = DISPLAY_UNIT if par != "fa" else ""
            ax.set_title(f"{lev} {par.upper()}" + (f" ({unit})" if unit else ""), fontsize=9)
            if i == len(levels) - 1:
                ax.set_xlabel("distance from dural junction (mm)")
            if i == 0 and j == 0:
                ax.legend(fontsize=7)
    fig.tight_layout()
    return fig
