"""Polylines in RAS+ mm (centre-lines of roots): arc length, projection of points onto them.

Pure functions on (K, 3) arrays; used by root tractography and by the curved-root phantom.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = ["arc_lengths", "points_at", "unit_tangents", "project_to_line", "arc_of_point"]


def arc_lengths(line: NDArray) -> NDArray[np.float64]:
    """Arc length (mm) of every vertex of a (K, 3) polyline from its first one.

    Examples
    --------
    >>> arc_lengths(np.array([[0.0, 0, 0], [3.0, 4, 0], [3.0, 4, 1]])).tolist()
    [0.0, 5.0, 6.0]
    """
    return np.r_[0.0, np.cumsum(np.linalg.norm(np.diff(line, axis=0), axis=1))]


def points_at(line: NDArray, arc_mm: ArrayLike) -> NDArray[np.float64]:
    """Points (…, 3) of a polyline at arc lengths (mm) from its first vertex, clamped to its ends.

    Examples
    --------
    >>> points_at(np.array([[0.0, 0, 0], [4.0, 0, 0]]), [1.0, 9.0]).tolist()
    [[1.0, 0.0, 0.0], [4.0, 0.0, 0.0]]
    """
    a, arc = np.asarray(arc_mm, float), arc_lengths(line)
    return np.stack([np.interp(a, arc, line[:, i]) for i in range(3)], axis=-1)


def unit_tangents(line: NDArray, arc_mm: ArrayLike, half_mm: float) -> NDArray[np.float64]:
    """Unit tangents (…, 3) of a polyline at arc lengths (mm): the chord from `half_mm` before to
    `half_mm` after each point.

    Examples
    --------
    >>> unit_tangents(np.array([[0.0, 0, 0], [0.0, 3, 0], [0.0, 3, 4]]), [1.0], 0.5).tolist()
    [[0.0, 1.0, 0.0]]
    """
    a = np.asarray(arc_mm, float)
    t = points_at(line, a + half_mm) - points_at(line, a - half_mm)
    return t / np.maximum(np.linalg.norm(t, axis=-1, keepdims=True), 1e-9)


def project_to_line(points: NDArray, line: NDArray) -> tuple[NDArray, NDArray]:
    """Arc length (mm) of the foot of each point on a polyline, and the distance (mm) to it.

    Examples
    --------
    >>> s, d = project_to_line(np.array([[1.0, 1.0, 0.0]]), np.array([[0.0, 0, 0], [4.0, 0, 0]]))
    >>> s.tolist(), d.tolist()
    ([1.0], [1.0])
    """
    a, b = line[:-1], line[1:]
    ab = b - a
    ln2 = np.maximum((ab**2).sum(1), 1e-12)
    t = np.clip(((points[:, None, :] - a[None]) * ab[None]).sum(-1) / ln2, 0, 1)
    foot = a[None] + t[..., None] * ab[None]
    dist = np.linalg.norm(points[:, None, :] - foot, axis=-1)
    k = dist.argmin(1)
    arc = arc_lengths(line)
    rows = np.arange(len(points))
    return arc[k] + t[rows, k] * np.sqrt(ln2[k]), dist[rows, k]


def arc_of_point(point: NDArray, line: NDArray, *, lead_mm: float = 3.0) -> float:
    """Arc length (mm) of a point's foot on a polyline; negative when the point lies before the
    line's start, measured along the line extended straight back in the direction of its first
    `lead_mm` (a root's dural junction often lies a little proximal of where its tracked
    streamlines begin).

    Examples
    --------
    >>> line = np.array([[0.0, 0, 0], [4.0, 0, 0]])
    >>> arc_of_point(np.array([2.0, 1, 0]), line), arc_of_point(np.array([-1.5, 0.2, 0]), line)
    (2.0, -1.5)
    """
    p = np.asarray(point, float).reshape(3)
    s = float(project_to_line(p[None], line)[0][0])
    if s > 0:
        return s
    arc = arc_lengths(line)
    k = min(int(np.searchsorted(arc, lead_mm)), len(line) - 1)
    t = (line[k] - line[0]) / max(float(arc[k]), 1e-9)
    return min(0.0, float((p - line[0]) @ t))
