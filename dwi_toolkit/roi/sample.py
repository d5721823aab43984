"""Build nerve-root ROI sets from root centre-lines (synthetic phantom, sample data).

:func:`rois_from_centerlines` places one sphere (or a tube piece) per root and segment at a
given fraction of the root's length along its centre-line (0 = proximal end, 1 = distal end).
:func:`sample_rois` does this for a :class:`~dwi_toolkit.phantom.LumbarPhantom`-like object
(anything with ``centerlines`` and ``root_radius_mm``) — used to make ``sample_data/``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ..errors import RoiError
from .model import LEVELS, SIDES, RootROI, RoiSet, Sphere, Tube, normalize_level, normalize_segment, normalize_side

__all__ = ["point_along", "sub_polyline", "rois_from_centerlines", "sample_rois", "DEFAULT_POSITIONS"]

#: Fraction of the root length at the middle of each segment (matches the segment bounds of
#: dwi_toolkit.phantom: preganglionic 0-0.38, ganglion 0.38-0.62, postganglionic 0.62-1).
DEFAULT_POSITIONS = {"preganglionic": 0.19, "ganglion": 0.5, "postganglionic": 0.81}


def _arc(points: NDArray) -> NDArray:
    return np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(points, axis=0), axis=1))])


def point_along(points: ArrayLike, fraction: float) -> NDArray[np.float64]:
    """The point at `fraction` (0…1) of the arc length of a polyline (K, 3).

    Examples
    --------
    >>> point_along([[0, 0, 0], [10, 0, 0], [10, 10, 0]], 0.75).tolist()
    [10.0, 5.0, 0.0]
    """
    p = np.asarray(points, float)
    s = _arc(p)
    if s[-1] == 0:
        return p[0].copy()
    target = float(np.clip(fraction, 0, 1)) * s[-1]
    return np.array([np.interp(target, s, p[:, k]) for k in range(3)])


def sub_polyline(points: ArrayLike, f0: float, f1: float) -> NDArray[np.float64]:
    """The piece of a polyline between arc-length fractions `f0` < `f1` (vertices kept).

    Examples
    --------
    >>> sub_polyline([[0, 0, 0], [10, 0, 0], [20, 0, 0]], 0.25, 0.75).tolist()
    [[5.0, 0.0, 0.0], [10.0, 0.0, 0.0], [15.0, 0.0, 0.0]]
    """
    p = np.asarray(points, float)
    s = _arc(p)
    a, b = sorted((float(np.clip(f0, 0, 1)), float(np.clip(f1, 0, 1))))
    inner = p[(s > a * s[-1]) & (s < b * s[-1])]
    return np.vstack([point_along(p, a), inner, point_along(p, b)])


def rois_from_centerlines(
    centerlines: Mapping[tuple[str, str], ArrayLike],
    *,
    radius_mm: float,
    kind: str = "sphere",
    positions: Mapping[str, float] | None = None,
    tube_length_fraction: float = 0.3,
) -> RoiSet:
    """One ROI per root and segment, centred on the root's centre-line.

    Parameters
    ----------
    centerlines : mapping
        ``{(level, side): points (K, 3)}`` in RAS+ mm, ordered proximal → distal.
    radius_mm : float
        ROI radius (keep it ≤ the root radius for ROIs entirely inside the root).
    kind : {"sphere", "tube"}
        Sphere at the position, or a tube along the centre-line spanning
        `tube_length_fraction` of the root around the position.
    positions : mapping, optional
        ``{segment: fraction}``; default ``{"ganglion": 0.5}``.

    Returns
    -------
    RoiSet
        Sorted by level, side, segment.

    Examples
    --------
    >>> cl = {("L5", "left"): [[-5, 0, 0], [-25, 5, -10]], ("L5", "right"): [[5, 0, 0], [25, 5, -10]]}
    >>> rois = rois_from_centerlines(cl, radius_mm=2.0)
    >>> rois.names, rois[0].shape.center.tolist()
    (['L5_left_ganglion', 'L5_right_ganglion'], [-15.0, 2.5, -5.0])
    """
    if kind not in ("sphere", "tube"):
        raise RoiError(f"kind must be 'sphere' or 'tube', got {kind!r}.")
    positions = dict(positions) if positions is not None else {"ganglion": 0.5}
    out = []
    for (level, side), pts in centerlines.items():
        p = np.asarray(pts, float)
        for seg, frac in positions.items():
            seg = normalize_segment(seg)
            if kind == "sphere":
                shape: Any = Sphere(point_along(p, frac), radius_mm)
            else:
                h = tube_length_fraction / 2
                shape = Tube(sub_polyline(p, frac - h, frac + h), radius_mm)
            out.append(RootROI(normalize_level(level), normalize_side(side), seg, shape,
                               notes="generated from the root centre-line"))
    return RoiSet(out).sorted()


def sample_rois(phantom: Any, *, kind: str = "sphere", radius_mm: float | None = None,
                positions: Mapping[str, float] | None = None) -> RoiSet:
    """The sample ROI set of a lumbar phantom: an ROI on every root (L1–S1, both sides).

    Parameters
    ----------
    phantom : LumbarPhantom
        Anything with ``centerlines`` ``{(level, side): (K, 3)}`` (RAS+ mm) and
        ``root_radius_mm``.
    kind : {"sphere", "tube"}
    radius_mm : float, optional
        Default: the phantom's root radius (ROIs stay inside the root).
    positions : mapping, optional
        ``{segment: fraction along the root}``; default ganglion at 0.5.

    Examples
    --------
    >>> from dwi_toolkit.phantom import make_lumbar_phantom
    >>> ph = make_lumbar_phantom(shape=(36, 28, 24), voxel_size=(4.0, 4.0, 8.0), noise=False)

    >>> rois = sample_rois(ph)
    >>> len(rois), rois.get("L5", "left").shape.radius_mm == ph.root_radius_mm
    (12, True)
    """
    if radius_mm is None:
        radius_mm = float(np.min(phantom.root_radius_mm))
    cl = {k: v for k, v in phantom.centerlines.items() if k[0] in LEVELS and k[1] in SIDES}
    rois = rois_from_centerlines(cl, radius_mm=radius_mm, kind=kind, positions=positions)
    return rois.with_meta(source="dwi_toolkit.phantom sample ROIs", kind=kind)
