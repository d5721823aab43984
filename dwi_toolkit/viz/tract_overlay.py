"""Tracked roots as overlay lines on a slice of the ROI editor (or any voxel-space slice view).

The ROI editor (:class:`dwi_toolkit.viz.roi_editor.RoiEditor`) shows slices in voxel
coordinates (``imshow(slice_image(vol, axis, index), origin="lower")``). :func:`slice_segments`
cuts streamlines (RAS+ mm) into the pieces that lie within half a voxel of the current slice,
in the slice's display coordinates; :func:`draw_tracts` draws them, blue for the left roots and
red for the right ones. Set ``editor.tracts`` to a :class:`~dwi_toolkit.tracts.RootTracts` or to
the mapping of :func:`dwi_toolkit.io.streamlines.load_root_tracts` and the editor draws them on
every redraw. The seeds are the ROIs the editor already places.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = ["slice_segments", "draw_tracts", "SIDE_COLORS"]

#: Line colour per side.
SIDE_COLORS = {"left": "tab:blue", "right": "tab:red"}


def slice_segments(streamlines: Iterable[ArrayLike], affine: ArrayLike, axis: int, index: int, *,
                   half_width: float = 0.5) -> list[NDArray[np.float64]]:
    """The pieces of `streamlines` within `half_width` voxels of slice `index` along voxel `axis`.

    Parameters
    ----------
    streamlines : iterable of (n, 3) arrays
        Points in RAS+ mm.
    affine : (4, 4) array
        Voxel → RAS+ mm of the displayed image.
    axis, index : int
        The slice: voxel axis and index along it.
    half_width : float, optional
        Slab half-thickness in voxels (default 0.5: the slice itself).

    Returns
    -------
    list of (m, 2) arrays
        (horizontal, vertical) voxel coordinates of each piece (the in-plane axes in increasing
        order, as the editor displays them); pieces of one point are dropped.

    Examples
    --------
    >>> line = np.array([[0.0, 0, 0], [1, 0, 2], [2, 0, 2], [3, 0, 2], [4, 0, 5]])
    >>> [s.tolist() for s in slice_segments([line], np.eye(4), axis=2, index=2)]
    [[[1.0, 0.0], [2.0, 0.0], [3.0, 0.0]]]
    """
    inv = np.linalg.inv(np.asarray(affine, float))
    h, v = [k for k in range(3) if k != axis]
    out = []
    for s in streamlines:
        pts = np.asarray(s, float)
        ijk = pts @ inv[:3, :3].T + inv[:3, 3]
        near = np.abs(ijk[:, axis] - index) <= half_width
        if not near.any():
            continue
        # contiguous runs of points in the slab
        edges = np.flatnonzero(np.diff(np.concatenate([[0], near.astype(int), [0]])))
        for a, b in zip(edges[::2], edges[1::2]):
            if b - a >= 2:
                out.append(ijk[a:b][:, [h, v]])
    return out


def _bundles(tracts: Any) -> list[tuple[str, str, list]]:
    if isinstance(tracts, Mapping):
        return [(lev, side, list(sl)) for (lev, side), sl in tracts.items()]
    return [(b.level, b.side, list(b.streamlines)) for b in tracts]


def draw_tracts(ax: Any, tracts: Any, affine: ArrayLike, axis: int, index: int, *, max_streamlines: int = 50,
                lw: float = 0.8, alpha: float = 0.8) -> int:
    """Draw the tracked roots crossing slice `index` on matplotlib axes `ax` (voxel display coordinates).

    Parameters
    ----------
    ax : matplotlib Axes
    tracts : RootTracts or mapping
        ``{(level, side): [streamline, ...]}`` (RAS+ mm), e.g. from
        :func:`~dwi_toolkit.io.streamlines.load_root_tracts`.
    affine : (4, 4) array
        Voxel → RAS+ mm of the displayed image.
    axis, index : int
        The displayed slice.
    max_streamlines : int, optional
        Streamlines drawn per root at most.
    lw, alpha : float, optional
        Line width and opacity.

    Returns
    -------
    int
        Number of line pieces drawn.

    Examples
    --------
    >>> from matplotlib.figure import Figure
    >>> ax = Figure().subplots()
    >>> line = np.array([[1.0, 1, 3], [2, 1, 3], [3, 2, 3]])
    >>> draw_tracts(ax, {("L5", "left"): [line]}, np.eye(4), axis=2, index=3)
    1
    """
    n = 0
    for _lev, side, sl in _bundles(tracts):
        for seg in slice_segments(sl[:max_streamlines], affine, axis, index):
            ax.plot(seg[:, 0], seg[:, 1], color=SIDE_COLORS.get(side, "yellow"), lw=lw, alpha=alpha)
            n += 1
    return n
