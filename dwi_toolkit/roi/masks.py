"""Rasterise ROI shapes (RAS+ mm) onto image grids.

A grid is a 3-D shape ``(X, Y, Z)`` and a 4×4 voxel → RAS+ mm affine. A voxel belongs to an ROI
when its *centre* lies inside the shape (boolean masks), or, with ``partial_volume=True``, the
fraction of ``supersample³`` regularly spaced sub-voxel points inside the shape (0…1). All
computations are vectorised over the voxels of the shape's bounding box only.

Examples
--------
>>> from dwi_toolkit.roi.model import Sphere
>>> m = rasterize(Sphere([2, 2, 2], 1.0), (5, 5, 5), np.eye(4))
>>> int(m.sum())  # the centre voxel and its 6 face neighbours
7
>>> f = rasterize(Sphere([2, 2, 2], 1.0), (5, 5, 5), np.eye(4), partial_volume=True)
>>> 3.5 < float(f.sum()) < 4.9  # ≈ 4/3 π r³ voxels
True
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ..core import affines as _aff
from ..errors import InputDataError, RoiError
from .model import Polygon, RootROI, RoiSet, Shape, VoxelMask

__all__ = ["grid_of", "rasterize", "roi_mask", "label_map", "voxel_extent_along", "sample_points"]

logger = logging.getLogger(__name__)

_CHUNK = 1_000_000


def grid_of(image: Any) -> tuple[tuple[int, int, int], NDArray[np.float64]]:
    """The grid ``((X, Y, Z), affine)`` of an image-like object.

    Accepts a ``(shape, affine)`` tuple, a :class:`~dwi_toolkit.core.image.DWISeries`, a
    :class:`~dwi_toolkit.core.image.ParameterMap`, a nibabel image, or anything with ``.affine``
    and ``.shape`` (the first three axes are used).

    Examples
    --------
    >>> grid_of(((4, 4, 2, 7), np.eye(4)))[0]
    (4, 4, 2)
    """
    if isinstance(image, tuple) and len(image) == 2:
        shape, affine = image
    else:
        affine = getattr(image, "affine", None)
        shape = getattr(image, "spatial_shape", None) or getattr(image, "shape", None)
        if affine is None or shape is None:
            raise InputDataError(
                f"cannot get an image grid from {type(image).__name__}; pass (shape, affine), a "
                "DWISeries, a ParameterMap or a nibabel image."
            )
    shape = tuple(int(s) for s in tuple(shape)[:3])
    if len(shape) != 3 or min(shape) < 1:
        raise InputDataError(f"an image grid needs a 3-D shape, got {shape}.")
    return shape, _aff.check_affine(affine)  # type: ignore[return-value]


def voxel_extent_along(affine: ArrayLike, direction: ArrayLike) -> float:
    """Extent (mm) of one voxel of `affine` measured along a world `direction` (3,).

    Examples
    --------
    >>> voxel_extent_along(np.diag([1.5, 1.5, 4.0, 1.0]), [0, 0, 1])
    4.0
    """
    a = np.asarray(affine, float)[:3, :3]
    n = np.asarray(direction, float)
    n = n / np.linalg.norm(n)
    return float(np.abs(n @ a).sum())


def _index_box(shape_obj: Shape, grid_shape: Sequence[int], affine: NDArray) -> tuple[NDArray, NDArray] | None:
    lo, hi = shape_obj.bounds()
    corners = np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])])
    ijk = _aff.apply_affine(np.linalg.inv(affine), corners)
    i0 = np.maximum(np.floor(ijk.min(axis=0)).astype(int) - 1, 0)
    i1 = np.minimum(np.ceil(ijk.max(axis=0)).astype(int) + 2, np.asarray(grid_shape))
    if np.any(i1 <= i0):
        return None
    return i0, i1


def _as_shape(roi: RootROI | Shape) -> Shape:
    if isinstance(roi, RootROI):
        return roi.shape  # type: ignore[return-value]
    if isinstance(roi, Shape):
        return roi
    raise RoiError(f"expected a RootROI or a shape, got {type(roi).__name__}.")


def _half_thickness(shape_obj: Shape, affine: NDArray) -> float | None:
    if isinstance(shape_obj, Polygon) and shape_obj.thickness_mm is None:
        return 0.5 * voxel_extent_along(affine, shape_obj.plane[1])
    return None


def rasterize(
    roi: RootROI | Shape,
    shape: Sequence[int],
    affine: ArrayLike,
    *,
    partial_volume: bool = False,
    supersample: int = 4,
) -> NDArray:
    """Voxel mask of an ROI (or bare shape) on the grid ``(shape, affine)``.

    Parameters
    ----------
    roi : RootROI or Shape
        Geometry in RAS+ mm.
    shape : sequence of 3 ints
        Grid shape (X, Y, Z); extra trailing axes are ignored.
    affine : ndarray of shape (4, 4)
        Grid voxel → RAS+ mm.
    partial_volume : bool, optional
        Return the fraction (float32, 0…1) of each voxel inside the shape, estimated with
        ``supersample³`` regularly spaced sub-voxel points, instead of a boolean mask of voxel
        centres.
    supersample : int, optional
        Sub-samples per voxel axis for ``partial_volume`` (default 4 → 64 points per voxel).

    Returns
    -------
    ndarray of shape (X, Y, Z)
        bool, or float32 fractions with ``partial_volume=True``. All false/zero when the shape
        misses the grid (use :func:`roi_mask` for a checked mask).

    Examples
    --------
    >>> from dwi_toolkit.roi.model import Sphere
    >>> m = rasterize(Sphere([5.0, 5.0, 5.0], 2.0), (10, 10, 10), np.eye(4))   # 1 mm voxels
    >>> m.dtype, int(m.sum())
    (dtype('bool'), 33)
    """
    grid_shape, aff = grid_of((tuple(shape), affine))
    s = _as_shape(roi)
    n = int(supersample) if partial_volume else 1
    if n < 1:
        raise InputDataError(f"supersample must be >= 1, got {supersample}.")
    out = np.zeros(grid_shape, dtype=np.float32 if partial_volume else bool)
    if isinstance(s, VoxelMask) and s.mask.shape == grid_shape and np.allclose(s.affine, aff, atol=1e-6):
        return s.mask.astype(out.dtype)
    box = _index_box(s, grid_shape, aff)
    if box is None:
        return out
    i0, i1 = box
    axes = [np.arange(a, b) for a, b in zip(i0, i1)]
    centres = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3).astype(float)
    half = _half_thickness(s, aff)
    if n == 1:
        offsets = np.zeros((1, 3))
    else:
        o = (np.arange(n) + 0.5) / n - 0.5
        offsets = np.stack(np.meshgrid(o, o, o, indexing="ij"), axis=-1).reshape(-1, 3)
    counts = np.zeros(centres.shape[0], dtype=np.int32)
    per = max(1, _CHUNK // offsets.shape[0])
    for start in range(0, centres.shape[0], per):
        c = centres[start : start + per]
        pts = (c[:, None, :] + offsets[None, :, :]).reshape(-1, 3)
        inside = s.contains(_aff.apply_affine(aff, pts), half_thickness_mm=half)
        counts[start : start + per] = inside.reshape(c.shape[0], offsets.shape[0]).sum(axis=1)
    block = counts.reshape(tuple(i1 - i0))
    sl = tuple(slice(a, b) for a, b in zip(i0, i1))
    if partial_volume:
        out[sl] = block / offsets.shape[0]
    else:
        out[sl] = block > 0
    return out


def roi_mask(
    roi: RootROI | Shape,
    shape: Sequence[int],
    affine: ArrayLike,
    *,
    partial_volume: bool = False,
    supersample: int = 4,
    name: str | None = None,
) -> NDArray:
    """Like :func:`rasterize`, but an ROI outside the image or without voxels is an error.

    Raises
    ------
    RoiError
        If the ROI lies outside the grid, or covers no voxel centre (too small for the grid).
        An ROI partly outside the grid is logged as a warning.

    Examples
    --------
    >>> from dwi_toolkit.roi.model import RootROI, Sphere
    >>> roi = RootROI("L5", "left", shape=Sphere([50.0, 5.0, 5.0], 2.0))      # far outside the grid
    >>> roi_mask(roi, (10, 10, 10), np.eye(4))
    Traceback (most recent call last):
    ...
    dwi_toolkit.errors.RoiError: ROI L5_left_ganglion (centre 50.0, 5.0, 5.0 RAS+ mm) lies outside the image grid (10, 10, 10); ...
    """
    grid_shape, aff = grid_of((tuple(shape), affine))
    s = _as_shape(roi)
    label = name or (roi.name if isinstance(roi, RootROI) else s.kind)
    m = rasterize(s, grid_shape, aff, partial_volume=partial_volume, supersample=supersample)
    if not np.any(m):
        lo, hi = s.bounds()
        corners = np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])])
        ijk = _aff.apply_affine(np.linalg.inv(aff), corners)
        if np.any(ijk.max(axis=0) < -0.5) or np.any(ijk.min(axis=0) > np.asarray(grid_shape) - 0.5):
            c = ", ".join(f"{v:.1f}" for v in s.centroid())
            raise RoiError(
                f"ROI {label} (centre {c} RAS+ mm) lies outside the image grid {grid_shape}; "
                "check that the ROI file belongs to this scan (same coordinate frame)."
            )
        raise RoiError(
            f"ROI {label} covers no voxel centre of the image grid {grid_shape} (voxel size "
            f"{', '.join(f'{v:.2g}' for v in _aff.voxel_sizes(aff))} mm); enlarge it or use "
            "partial_volume=True."
        )
    if not isinstance(s, VoxelMask):
        lo, hi = s.bounds()
        corners = np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])])
        ijk = _aff.apply_affine(np.linalg.inv(aff), corners)
        if np.any(ijk.min(axis=0) < -0.5) or np.any(ijk.max(axis=0) > np.asarray(grid_shape) - 0.5):
            logger.warning("ROI %s extends beyond the image grid %s; only the part inside is used",
                           label, grid_shape)
    return m


def label_map(
    rois: Iterable[RootROI] | RoiSet,
    shape: Sequence[int],
    affine: ArrayLike,
    *,
    overlap: str = "error",
) -> tuple[NDArray[np.int16], dict[int, str]]:
    """Integer label image of an ROI set: label k+1 for the k-th ROI, 0 for background.

    Parameters
    ----------
    rois : RoiSet or iterable of RootROI
    shape, affine : grid (X, Y, Z) and voxel → RAS+ mm
    overlap : {"error", "first", "last"}, optional
        What to do with voxels claimed by two ROIs: raise (default), keep the first ROI's label,
        or the last one's.

    Returns
    -------
    labels : ndarray of shape (X, Y, Z), int16
    table : dict
        label → ROI name (``"L5_left_ganglion"``).

    Raises
    ------
    RoiError
        Overlapping ROIs with ``overlap="error"``, or an ROI outside the grid / without voxels.

    Examples
    --------
    >>> from dwi_toolkit.roi.model import RootROI, Sphere
    >>> rois = [RootROI("L5", "left", shape=Sphere([3, 5, 5], 1.5)), RootROI("L5", "right", shape=Sphere([7, 5, 5], 1.5))]
    >>> labels, table = label_map(rois, (10, 10, 10), np.eye(4))
    >>> table, np.unique(labels).tolist()
    ({1: 'L5_left_ganglion', 2: 'L5_right_ganglion'}, [0, 1, 2])
    """
    if overlap not in ("error", "first", "last"):
        raise InputDataError(f"overlap must be 'error', 'first' or 'last', got {overlap!r}.")
    grid_shape, aff = grid_of((tuple(shape), affine))
    labels = np.zeros(grid_shape, dtype=np.int16)
    table: dict[int, str] = {}
    for k, roi in enumerate(rois, start=1):
        m = roi_mask(roi, grid_shape, aff)
        clash = m & (labels > 0)
        if clash.any():
            other = sorted({table[int(v)] for v in np.unique(labels[clash])})
            if overlap == "error":
                raise RoiError(
                    f"ROI {roi.name} overlaps {', '.join(other)} in {int(clash.sum())} voxels; a label "
                    "map holds one label per voxel (shrink the ROIs or pass overlap='first'/'last')."
                )
            logger.warning("ROI %s overlaps %s in %d voxels (overlap=%r)", roi.name, other,
                           int(clash.sum()), overlap)
            if overlap == "first":
                m = m & ~clash
        labels[m] = k
        table[k] = roi.name
    return labels, table


def sample_points(roi: RootROI | Shape, *, spacing_mm: float = 0.5, max_points: int = 20000) -> NDArray[np.float64]:
    """Regularly spaced world points (P, 3) inside a shape (for snapping and mirroring checks).

    The spacing grows automatically so that at most `max_points` are returned.

    Examples
    --------
    >>> from dwi_toolkit.roi.model import Sphere
    >>> p = sample_points(Sphere([0, 0, 0], 1.0), spacing_mm=0.5)
    >>> bool(np.all(np.linalg.norm(p, axis=1) <= 1.0)), len(p) > 20
    (True, True)
    """
    s = _as_shape(roi)
    lo, hi = s.bounds()
    step = float(spacing_mm)
    while True:
        n = np.floor((hi - lo) / step).astype(int) + 1
        if int(np.prod(n)) <= 8 * max_points:
            break
        step *= 1.5
    axes = [lo[i] + ((hi[i] - lo[i]) - (n[i] - 1) * step) / 2 + np.arange(n[i]) * step for i in range(3)]
    pts = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)
    half = None
    if isinstance(s, Polygon) and s.thickness_mm is None:
        half = step / 2
        c, nrm = s.plane
        pts = pts - np.outer((pts - c) @ nrm, nrm)  # project onto the plane
        pts = np.unique(np.round(pts, 6), axis=0)
    inside = pts[s.contains(pts, half_thickness_mm=half)]
    if inside.shape[0] == 0:
        inside = s.centroid()[None]
    if inside.shape[0] > max_points:
        idx = np.linspace(0, inside.shape[0] - 1, max_points).astype(int)
        inside = inside[idx]
    return inside
