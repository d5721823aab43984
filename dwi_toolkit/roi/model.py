"""Nerve-root ROIs as immutable values in world coordinates (RAS+ mm).

A :class:`RootROI` names a root (``level`` L1…S1, ``side`` left/right — the *patient's* side),
the ``segment`` along it (pre-ganglionic, ganglion/DRG, post-ganglionic; dwi_toolkit References
§2.4 and §2.6 explain why the position must be recorded and never pooled) and a shape:

- :class:`Sphere` — centre (RAS+ mm) and radius (mm);
- :class:`Tube` — a polyline (K, 3) in RAS+ mm with a radius (mm); roots run obliquely through
  several slices, a tube follows them;
- :class:`Polygon` — a closed polygon (K, 3) lying in one slice plane, with an optional slab
  thickness (mm; default: one voxel of the grid it is rasterised on);
- :class:`VoxelMask` — an explicit boolean mask with its own voxel → RAS+ mm affine.

Because shapes live in world space, one ROI set applies to every map of the same scan (b0, ADC,
FA, resampled maps). :mod:`dwi_toolkit.roi.masks` turns them into voxel masks for a given grid.

In RAS+ coordinates +x points to the patient's right: left roots have x below the midline.

Examples
--------
>>> roi = RootROI("l5", "Lt", "DRG", Sphere([-20.0, 5.0, 30.0], 3.0))
>>> roi.name
'L5_left_ganglion'
>>> rois = RoiSet([roi])
>>> rois.get("L5", "left").shape.radius_mm
3.0
"""

from __future__ import annotations

import dataclasses
import html
import math
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ..core import affines as _aff
from ..errors import InputDataError, RoiError

__all__ = [
    "LEVELS",
    "SIDES",
    "SEGMENTS",
    "DEFAULT_SEGMENT",
    "normalize_level",
    "normalize_side",
    "normalize_segment",
    "parse_roi_name",
    "opposite_side",
    "Shape",
    "Sphere",
    "Tube",
    "Polygon",
    "VoxelMask",
    "shape_from_dict",
    "RootROI",
    "RoiSet",
]

#: Spinal levels of the lumbar and first sacral roots, cranial to caudal.
LEVELS: tuple[str, ...] = ("L1", "L2", "L3", "L4", "L5", "S1")
#: The patient's sides.
SIDES: tuple[str, ...] = ("left", "right")
#: Segments along a root, proximal to distal (dwi_toolkit References §2.6).
SEGMENTS: tuple[str, ...] = ("preganglionic", "ganglion", "postganglionic")
#: Segment used when none is given.
DEFAULT_SEGMENT = "ganglion"

_SIDE_ALIASES = {
    "left": "left", "l": "left", "lt": "left", "lft": "left", "sin": "left", "sinister": "left",
    "links": "left", "gauche": "left",
    "right": "right", "r": "right", "rt": "right", "rgt": "right", "dx": "right", "dexter": "right",
    "rechts": "right", "droite": "right",
}
_SEGMENT_ALIASES = {
    "preganglionic": "preganglionic", "pre": "preganglionic", "preganglion": "preganglionic",
    "intraspinal": "preganglionic", "preforaminal": "preganglionic", "proximal": "preganglionic",
    "intradural": "preganglionic", "root": "preganglionic",
    "ganglion": "ganglion", "ganglionic": "ganglion", "drg": "ganglion", "foraminal": "ganglion",
    "dorsalrootganglion": "ganglion", "dorsal root ganglion": "ganglion", "g": "ganglion",
    "postganglionic": "postganglionic", "post": "postganglionic", "postganglion": "postganglionic",
    "extraforaminal": "postganglionic", "distal": "postganglionic", "spinalnerve": "postganglionic",
    "spinal nerve": "postganglionic", "nerve": "postganglionic",
}


def normalize_level(level: Any) -> str:
    """Canonical level name ``"L1"`` … ``"L5"``, ``"S1"``.

    Accepts any case and separators (``"l5"``, ``"L-5"``, ``"L 5"``).

    Raises
    ------
    RoiError
        For anything else (the message lists the valid levels).

    Examples
    --------
    >>> normalize_level("l-5"), normalize_level("S1")
    ('L5', 'S1')
    """
    text = re.sub(r"[\s_\-.]", "", str(level)).upper()
    if text in LEVELS:
        return text
    raise RoiError(
        f"unknown nerve-root level {level!r}; expected one of {', '.join(LEVELS)} "
        "(case and separators are ignored, e.g. 'l5' or 'L-5')."
    )


def normalize_side(side: Any) -> str:
    """Canonical side ``"left"`` or ``"right"`` (the patient's side).

    Accepts common spellings: ``"L"``, ``"lt"``, ``"Left"``, ``"R"``, ``"rt"``, ``"dx"`` …

    Raises
    ------
    RoiError
        For anything else.

    Examples
    --------
    >>> normalize_side("Lt"), normalize_side("R")
    ('left', 'right')
    """
    key = str(side).strip().lower().rstrip(".")
    if key in _SIDE_ALIASES:
        return _SIDE_ALIASES[key]
    raise RoiError(
        f"unknown side {side!r}; expected 'left' or 'right' (the patient's side; 'L', 'lt', "
        "'R', 'rt' are accepted too)."
    )


def normalize_segment(segment: Any) -> str:
    """Canonical segment name: ``"preganglionic"``, ``"ganglion"`` or ``"postganglionic"``.

    ``None`` gives the default ``"ganglion"``. Accepts ``"pre"``, ``"intraspinal"``, ``"DRG"``,
    ``"foraminal"``, ``"post"``, ``"extraforaminal"``, hyphens and spaces.

    Raises
    ------
    RoiError
        For anything else.

    Examples
    --------
    >>> normalize_segment("DRG"), normalize_segment("post-ganglionic")
    ('ganglion', 'postganglionic')
    """
    if segment is None:
        return DEFAULT_SEGMENT
    key = str(segment).strip().lower()
    for candidate in (key, key.replace("-", "").replace("_", ""), re.sub(r"[\s_\-]", "", key)):
        if candidate in _SEGMENT_ALIASES:
            return _SEGMENT_ALIASES[candidate]
    raise RoiError(
        f"unknown root segment {segment!r}; expected one of {', '.join(SEGMENTS)} "
        "(aliases: pre/intraspinal, DRG/foraminal, post/extraforaminal)."
    )


def opposite_side(side: str) -> str:
    """The other side.

    Examples
    --------
    >>> opposite_side("lt")
    'right'
    """
    return "right" if normalize_side(side) == "left" else "left"


def parse_roi_name(text: str) -> tuple[str, str, str]:
    """Parse ``(level, side, segment)`` from a label such as ``"L5_left_ganglion"``.

    Tokens may come in any order, separated by ``_``, ``-``, spaces, ``/`` or ``,``; the segment
    is optional (default ``"ganglion"``). Used for label tables, Slicer control-point labels and
    ITK-SNAP label descriptions.

    Raises
    ------
    RoiError
        If no level or no side can be found, or a token is not understood.

    Examples
    --------
    >>> parse_roi_name("L5_left_ganglion")
    ('L5', 'left', 'ganglion')
    >>> parse_roi_name("left S1 DRG")
    ('S1', 'left', 'ganglion')
    >>> parse_roi_name("L4 rt post")
    ('L4', 'right', 'postganglionic')
    """
    raw = str(text).strip()
    # "dorsal root ganglion" / "spinal nerve" are two-word names of one segment
    lowered = re.sub(r"dorsal\s+root\s+ganglion", "drg", raw, flags=re.I)
    lowered = re.sub(r"spinal\s+nerve", "spinalnerve", lowered, flags=re.I)
    lowered = re.sub(r"\b([LlSs])-(\d)\b", r"\1\2", lowered)
    lowered = re.sub(r"\b(pre|post)-(ganglionic|ganglion)\b", r"\1\2", lowered, flags=re.I)
    tokens = [t for t in re.split(r"[\s_/,;:\-]+", lowered) if t]
    level = side = segment = None
    for tok in tokens:
        for cand in (tok, tok.replace("-", "")):
            if level is None and re.fullmatch(r"[LlSs]-?\d", cand):
                try:
                    level = normalize_level(cand)
                    break
                except RoiError:
                    pass
            if side is None and cand.lower().rstrip(".") in _SIDE_ALIASES:
                side = _SIDE_ALIASES[cand.lower().rstrip(".")]
                break
            if segment is None:
                try:
                    segment = normalize_segment(cand)
                    break
                except RoiError:
                    pass
        else:
            raise RoiError(
                f"cannot understand {tok!r} in ROI name {raw!r}; use names like "
                "'L5_left_ganglion' (level L1-L5/S1, side left/right, segment "
                f"{'/'.join(SEGMENTS)})."
            )
    if level is None or side is None:
        missing = " and ".join(n for n, v in (("a level", level), ("a side", side)) if v is None)
        raise RoiError(
            f"ROI name {raw!r} lacks {missing}; use names like 'L5_left_ganglion'."
        )
    return level, side, segment or DEFAULT_SEGMENT


# ----------------------------------------------------------------------------------- shapes
def _points(x: ArrayLike, name: str, *, min_points: int = 1) -> NDArray[np.float64]:
    try:
        p = np.array(x, dtype=float)
    except (TypeError, ValueError) as err:
        raise RoiError(f"{name} must be numbers (RAS+ mm): {err}") from err
    if p.ndim == 1 and p.size == 3 and min_points == 1:
        p = p.reshape(1, 3)
    if p.ndim != 2 or p.shape[1] != 3:
        raise RoiError(f"{name} must have shape (K, 3) in RAS+ mm, got {p.shape}.")
    if p.shape[0] < min_points:
        raise RoiError(f"{name} needs at least {min_points} points, got {p.shape[0]}.")
    if not np.all(np.isfinite(p)):
        raise RoiError(f"{name} contains NaN or infinite coordinates.")
    p.setflags(write=False)
    return p


def _radius(r: Any, name: str = "radius_mm") -> float:
    try:
        v = float(r)
    except (TypeError, ValueError) as err:
        raise RoiError(f"{name} must be a number of mm, got {r!r}.") from err
    if not math.isfinite(v) or v <= 0:
        raise RoiError(f"{name} must be a finite number of mm > 0, got {r!r}.")
    return v


def _transform_points(matrix: ArrayLike, p: NDArray) -> NDArray[np.float64]:
    return _aff.apply_affine(np.asarray(matrix, float), p)


class Shape:
    """Base class of ROI shapes; all coordinates are RAS+ mm.

    Subclasses implement :meth:`contains` (world points → bool), :meth:`bounds` (axis-aligned
    world bounding box), :meth:`transformed` (apply a 4×4 world → world affine, e.g. a
    reflection), :meth:`centroid` and :meth:`to_dict`.

    Examples
    --------
    >>> isinstance(Sphere([0, 0, 0], 2.0), Shape), Sphere.kind, Tube.kind
    (True, 'sphere', 'tube')
    """

    kind: ClassVar[str] = ""

    def contains(self, points: ArrayLike, *, half_thickness_mm: float | None = None) -> NDArray[np.bool_]:
        """Which world points (N, 3) in RAS+ mm lie inside the shape → bool (N,)."""
        raise NotImplementedError

    def bounds(self) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Axis-aligned bounding box ``(lo, hi)`` in RAS+ mm, each of shape (3,)."""
        raise NotImplementedError

    def transformed(self, matrix: ArrayLike) -> Shape:
        """The shape moved by a rigid 4×4 world → world matrix (rotation, reflection, shift)."""
        raise NotImplementedError

    def translated(self, offset: ArrayLike) -> Shape:
        """The shape shifted by `offset` (3,) mm."""
        m = np.eye(4)
        m[:3, 3] = np.asarray(offset, float).reshape(3)
        return self.transformed(m)

    def centroid(self) -> NDArray[np.float64]:
        """A representative centre (3,) in RAS+ mm (used for labels and mirroring reports)."""
        raise NotImplementedError

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description (the ``shape`` object of the ROI JSON schema)."""
        raise NotImplementedError

    def describe(self) -> str:
        """Short human-readable description."""
        return self.kind

    def __eq__(self, other: object) -> bool:
        """Same shape type with equal fields (arrays compared element-wise)."""
        if not isinstance(other, type(self)):
            return False
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            a, b = getattr(self, f.name), getattr(other, f.name)
            same = np.array_equal(a, b) if isinstance(a, np.ndarray) or isinstance(b, np.ndarray) else a == b
            if not same:
                return False
        return True

    __hash__ = None  # type: ignore[assignment]


@dataclass(frozen=True, eq=False)
class Sphere(Shape):
    """A ball: ``center`` (3,) in RAS+ mm and ``radius_mm``.

    Examples
    --------
    >>> s = Sphere([0, 0, 0], 2.0)
    >>> s.contains([[0, 0, 1.9], [0, 0, 2.1]]).tolist()
    [True, False]
    """

    center: NDArray[np.float64]
    radius_mm: float
    kind: ClassVar[str] = "sphere"

    def __post_init__(self) -> None:
        c = _points(self.center, "sphere center")
        if c.shape[0] != 1:
            raise RoiError(f"sphere center must be one point (3,), got shape {np.shape(self.center)}.")
        c = c.reshape(3).copy()
        c.setflags(write=False)
        object.__setattr__(self, "center", c)
        object.__setattr__(self, "radius_mm", _radius(self.radius_mm))

    def contains(self, points: ArrayLike, *, half_thickness_mm: float | None = None) -> NDArray[np.bool_]:
        p = np.asarray(points, float).reshape(-1, 3)
        return ((p - self.center) ** 2).sum(axis=1) <= self.radius_mm**2

    def bounds(self):
        return self.center - self.radius_mm, self.center + self.radius_mm

    def transformed(self, matrix: ArrayLike) -> Sphere:
        return Sphere(_transform_points(matrix, self.center[None])[0], self.radius_mm)

    def centroid(self):
        return self.center.copy()

    def to_dict(self):
        return {"type": self.kind, "center": self.center.tolist(), "radius_mm": self.radius_mm}

    def describe(self) -> str:
        c = ", ".join(f"{v:.1f}" for v in self.center)
        return f"sphere r={self.radius_mm:g} mm at ({c})"


def _segment_distances(p: NDArray, a: NDArray, b: NDArray) -> NDArray[np.float64]:
    """Distance of points p (N, 3) to segments a→b (S, 3) → (N, S)."""
    ab = b - a  # (S, 3)
    denom = (ab**2).sum(axis=1)
    denom = np.where(denom > 0, denom, 1.0)
    ap = p[:, None, :] - a[None, :, :]  # (N, S, 3)
    t = np.clip((ap * ab[None]).sum(axis=2) / denom[None], 0.0, 1.0)
    closest = a[None] + t[..., None] * ab[None]
    return np.sqrt(((p[:, None, :] - closest) ** 2).sum(axis=2))


@dataclass(frozen=True, eq=False)
class Tube(Shape):
    """A tube of radius ``radius_mm`` around a polyline ``points`` (K, 3) in RAS+ mm.

    A point is inside when its distance to the polyline is at most the radius (rounded ends).
    A single point makes a sphere.

    Examples
    --------
    >>> t = Tube([[0, 0, 0], [0, 0, 10]], 1.0)
    >>> t.contains([[0.5, 0, 5], [0, 0, 11.5]]).tolist()
    [True, False]
    >>> round(t.length_mm, 1)
    10.0
    """

    points: NDArray[np.float64]
    radius_mm: float
    kind: ClassVar[str] = "tube"

    def __post_init__(self) -> None:
        object.__setattr__(self, "points", _points(self.points, "tube points", min_points=1))
        object.__setattr__(self, "radius_mm", _radius(self.radius_mm))

    @property
    def length_mm(self) -> float:
        """Length of the centre-line in mm."""
        return float(np.linalg.norm(np.diff(self.points, axis=0), axis=1).sum())

    def contains(self, points: ArrayLike, *, half_thickness_mm: float | None = None) -> NDArray[np.bool_]:
        p = np.asarray(points, float).reshape(-1, 3)
        if self.points.shape[0] == 1:
            return ((p - self.points[0]) ** 2).sum(axis=1) <= self.radius_mm**2
        out = np.zeros(p.shape[0], dtype=bool)
        a, b = self.points[:-1], self.points[1:]
        chunk = max(1, 2_000_000 // max(1, a.shape[0]))
        for i in range(0, p.shape[0], chunk):
            d = _segment_distances(p[i : i + chunk], a, b)
            out[i : i + chunk] = d.min(axis=1) <= self.radius_mm
        return out

    def bounds(self):
        return self.points.min(axis=0) - self.radius_mm, self.points.max(axis=0) + self.radius_mm

    def transformed(self, matrix: ArrayLike) -> Tube:
        return Tube(_transform_points(matrix, self.points), self.radius_mm)

    def centroid(self):
        """Midpoint along the centre-line (by arc length)."""
        seg = np.linalg.norm(np.diff(self.points, axis=0), axis=1)
        if seg.size == 0 or seg.sum() == 0:
            return self.points[0].copy()
        cum = np.concatenate([[0], np.cumsum(seg)])
        half = cum[-1] / 2
        i = int(np.searchsorted(cum, half, side="right") - 1)
        i = min(i, seg.size - 1)
        t = (half - cum[i]) / seg[i] if seg[i] > 0 else 0.0
        return self.points[i] + t * (self.points[i + 1] - self.points[i])

    def to_dict(self):
        return {"type": self.kind, "points": self.points.tolist(), "radius_mm": self.radius_mm}

    def describe(self) -> str:
        return f"tube r={self.radius_mm:g} mm, {self.points.shape[0]} points, {self.length_mm:.1f} mm long"


def _plane_frame(points: NDArray) -> tuple[NDArray, NDArray, NDArray, float]:
    """Centroid, unit normal, in-plane basis (2, 3) and max out-of-plane residual (mm)."""
    c = points.mean(axis=0)
    _, s, vt = np.linalg.svd(points - c)
    normal = vt[2]
    resid = float(np.abs((points - c) @ normal).max()) if points.shape[0] else 0.0
    return c, normal, vt[:2], resid


@dataclass(frozen=True, eq=False)
class Polygon(Shape):
    """A closed polygon drawn on one slice: vertices ``points`` (K ≥ 3, 3) in RAS+ mm.

    The vertices must lie in one plane (within 0.1 mm, or 1% of the polygon's size). A point is
    inside when it projects inside the polygon and lies within half the slab thickness of the
    plane. ``thickness_mm=None`` means "one voxel": when rasterised, the slab is the voxel extent
    of the target grid along the polygon's normal, so an axial polygon on an axial grid covers
    exactly its slice.

    Examples
    --------
    >>> sq = Polygon([[0, 0, 0], [4, 0, 0], [4, 4, 0], [0, 4, 0]], thickness_mm=2.0)
    >>> sq.contains([[2, 2, 0.5], [2, 2, 1.5], [5, 2, 0]]).tolist()
    [True, False, False]
    """

    points: NDArray[np.float64]
    thickness_mm: float | None = None
    kind: ClassVar[str] = "polygon"

    def __post_init__(self) -> None:
        p = _points(self.points, "polygon points", min_points=3)
        if p.shape[0] > 3 and np.allclose(p[0], p[-1]):
            p = p[:-1].copy()
            p.setflags(write=False)
        c, n, basis, resid = _plane_frame(p)
        size = float(np.ptp(p, axis=0).max())
        if size == 0 or np.linalg.matrix_rank(p - c, tol=1e-6 * max(size, 1e-9)) < 2:
            raise RoiError("polygon vertices are collinear or identical; draw at least 3 distinct corners.")
        if resid > max(0.1, 0.01 * size):
            raise RoiError(
                f"polygon vertices do not lie on one slice plane (up to {resid:.2f} mm off the "
                "best-fit plane); draw polygons on a single slice or use a Tube/VoxelMask."
            )
        if self.thickness_mm is not None:
            object.__setattr__(self, "thickness_mm", _radius(self.thickness_mm, "thickness_mm"))
        object.__setattr__(self, "points", p)

    @property
    def plane(self) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """``(point, unit normal)`` of the polygon's plane, RAS+ mm."""
        c, n, _, _ = _plane_frame(self.points)
        return c, n

    def contains(self, points: ArrayLike, *, half_thickness_mm: float | None = None) -> NDArray[np.bool_]:
        p = np.asarray(points, float).reshape(-1, 3)
        c, n, basis, _ = _plane_frame(self.points)
        if self.thickness_mm is not None:
            half = self.thickness_mm / 2
        elif half_thickness_mm is not None:
            half = half_thickness_mm
        else:
            raise RoiError(
                "a polygon without thickness_mm needs the slab half-thickness of the target grid; "
                "rasterise it with dwi_toolkit.roi.masks.rasterize()."
            )
        d = (p - c) @ n
        # half-open slab so a plane exactly between two slices selects one of them
        in_slab = (d >= -half - 1e-9) & (d < half - 1e-9)
        uv = (p - c) @ basis.T  # (N, 2)
        poly = (self.points - c) @ basis.T  # (K, 2)
        x, y = uv[:, 0:1], uv[:, 1:2]
        x1, y1 = poly[:, 0][None], poly[:, 1][None]
        x2, y2 = np.roll(poly[:, 0], -1)[None], np.roll(poly[:, 1], -1)[None]
        crosses = (y1 > y) != (y2 > y)
        with np.errstate(divide="ignore", invalid="ignore"):
            xint = x1 + (y - y1) * (x2 - x1) / (y2 - y1)
        inside = (crosses & (x < xint)).sum(axis=1) % 2 == 1
        return in_slab & inside

    def bounds(self):
        pad = (self.thickness_mm or 0.0) / 2
        return self.points.min(axis=0) - pad, self.points.max(axis=0) + pad

    def transformed(self, matrix: ArrayLike) -> Polygon:
        return Polygon(_transform_points(matrix, self.points), self.thickness_mm)

    def centroid(self):
        return self.points.mean(axis=0)

    def to_dict(self):
        return {"type": self.kind, "points": self.points.tolist(), "thickness_mm": self.thickness_mm}

    def describe(self) -> str:
        return f"polygon, {self.points.shape[0]} vertices"


@dataclass(frozen=True, eq=False)
class VoxelMask(Shape):
    """An explicit boolean ``mask`` (X, Y, Z) with its voxel → RAS+ mm ``affine``.

    A world point is inside when the voxel that contains it is set. Rasterised back onto its own
    grid it gives exactly ``mask``.

    Examples
    --------
    >>> m = np.zeros((3, 3, 3), bool); m[1, 1, 1] = True
    >>> vm = VoxelMask(m, np.eye(4))
    >>> vm.contains([[1.2, 0.9, 1.0], [2.0, 1.0, 1.0]]).tolist()
    [True, False]
    >>> vm.n_voxels
    1
    """

    mask: NDArray[np.bool_]
    affine: NDArray[np.float64]
    kind: ClassVar[str] = "voxel_mask"

    def __post_init__(self) -> None:
        m = np.asarray(self.mask)
        if m.ndim != 3:
            raise RoiError(f"a voxel mask must be 3-D (X, Y, Z), got shape {m.shape}.")
        m = m.astype(bool, copy=True)
        if not m.any():
            raise RoiError("the voxel mask is empty (no voxel set); an ROI needs at least one voxel.")
        m.setflags(write=False)
        try:
            a = _aff.check_affine(self.affine).copy()
        except InputDataError as err:
            raise RoiError(f"voxel mask affine: {err}") from err
        a.setflags(write=False)
        object.__setattr__(self, "mask", m)
        object.__setattr__(self, "affine", a)

    @property
    def n_voxels(self) -> int:
        """Number of voxels set."""
        return int(self.mask.sum())

    def voxel_indices(self) -> NDArray[np.int64]:
        """Indices (V, 3) of the voxels set."""
        return np.argwhere(self.mask)

    def contains(self, points: ArrayLike, *, half_thickness_mm: float | None = None) -> NDArray[np.bool_]:
        p = np.asarray(points, float).reshape(-1, 3)
        ijk = np.rint(_aff.apply_affine(np.linalg.inv(self.affine), p)).astype(np.int64)
        ok = np.all((ijk >= 0) & (ijk < np.array(self.mask.shape)), axis=1)
        out = np.zeros(p.shape[0], dtype=bool)
        idx = ijk[ok]
        out[ok] = self.mask[idx[:, 0], idx[:, 1], idx[:, 2]]
        return out

    def bounds(self):
        ijk = self.voxel_indices()
        lo_i, hi_i = ijk.min(axis=0) - 0.5, ijk.max(axis=0) + 0.5
        box = np.array([[x, y, z] for x in (lo_i[0], hi_i[0]) for y in (lo_i[1], hi_i[1])
                        for z in (lo_i[2], hi_i[2])])
        w = _aff.apply_affine(self.affine, box)
        return w.min(axis=0), w.max(axis=0)

    def transformed(self, matrix: ArrayLike) -> VoxelMask:
        return VoxelMask(self.mask, np.asarray(matrix, float) @ self.affine)

    def centroid(self):
        return _aff.apply_affine(self.affine, self.voxel_indices().mean(axis=0))

    def to_dict(self):
        return {
            "type": self.kind,
            "grid_shape": list(self.mask.shape),
            "affine": self.affine.tolist(),
            "voxels": self.voxel_indices().tolist(),
        }

    def describe(self) -> str:
        return f"voxel mask, {self.n_voxels} voxels"


_SHAPES: dict[str, type[Shape]] = {c.kind: c for c in (Sphere, Tube, Polygon, VoxelMask)}


def shape_from_dict(d: Mapping[str, Any]) -> Shape:
    """Build a shape from its :meth:`Shape.to_dict` form (the ROI JSON ``shape`` object).

    Raises
    ------
    RoiError
        Unknown ``type`` or missing/invalid fields.

    Examples
    --------
    >>> shape_from_dict({"type": "sphere", "center": [1, 2, 3], "radius_mm": 2})
    Sphere(center=array([1., 2., 3.]), radius_mm=2.0)
    """
    if not isinstance(d, Mapping):
        raise RoiError(f"an ROI shape must be a JSON object, got {type(d).__name__}.")
    kind = str(d.get("type", "")).lower()
    try:
        if kind == "sphere":
            return Sphere(d["center"], d["radius_mm"])
        if kind == "tube":
            return Tube(d["points"], d["radius_mm"])
        if kind == "polygon":
            return Polygon(d["points"], d.get("thickness_mm"))
        if kind == "voxel_mask":
            shape = tuple(int(v) for v in d["grid_shape"])
            mask = np.zeros(shape, dtype=bool)
            vox = np.asarray(d["voxels"], dtype=np.int64).reshape(-1, 3)
            if vox.size and (np.any(vox < 0) or np.any(vox >= np.array(shape))):
                raise RoiError(f"voxel_mask voxels lie outside its grid {shape}.")
            mask[vox[:, 0], vox[:, 1], vox[:, 2]] = True
            return VoxelMask(mask, d["affine"])
    except KeyError as err:
        raise RoiError(f"ROI shape of type {kind!r} lacks the field {err.args[0]!r}.") from err
    raise RoiError(f"unknown ROI shape type {d.get('type')!r}; expected one of {', '.join(_SHAPES)}.")


# ------------------------------------------------------------------------------------ ROIs
@dataclass(frozen=True, eq=False)
class RootROI:
    """One nerve-root ROI: which root, where along it, and its shape in RAS+ mm.

    Parameters
    ----------
    level : str
        ``"L1"`` … ``"L5"`` or ``"S1"`` (any case; ``"l5"`` is accepted).
    side : str
        The patient's side, ``"left"``/``"right"`` (``"L"``, ``"lt"``, ``"Left"`` … accepted).
    segment : str, optional
        ``"preganglionic"``, ``"ganglion"`` (default) or ``"postganglionic"``
        (dwi_toolkit References §2.6; aliases such as ``"DRG"`` are accepted).
    shape : Shape
        :class:`Sphere`, :class:`Tube`, :class:`Polygon` or :class:`VoxelMask` in RAS+ mm.
    notes : str, optional
        Free text.
    distance_mm : float, optional
        Distance along the root from the dural junction in mm, where known
        (dwi_toolkit References §2.4, consequence 2).

    Raises
    ------
    RoiError
        Unknown level, side or segment, or a missing shape.

    Examples
    --------
    >>> RootROI("L5", "R", shape=Sphere([25, 0, 0], 2.5))
    RootROI('L5_right_ganglion', sphere r=2.5 mm at (25.0, 0.0, 0.0))
    """

    level: str
    side: str
    segment: str = DEFAULT_SEGMENT
    shape: Shape | None = None
    notes: str = ""
    distance_mm: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "level", normalize_level(self.level))
        object.__setattr__(self, "side", normalize_side(self.side))
        object.__setattr__(self, "segment", normalize_segment(self.segment))
        if not isinstance(self.shape, Shape):
            raise RoiError(
                f"ROI {self.name} needs a shape (Sphere, Tube, Polygon or VoxelMask), got "
                f"{type(self.shape).__name__}."
            )
        object.__setattr__(self, "notes", "" if self.notes is None else str(self.notes))
        if self.distance_mm is not None:
            d = float(self.distance_mm)
            if not math.isfinite(d):
                raise RoiError(f"distance_mm of {self.name} must be finite, got {self.distance_mm!r}.")
            object.__setattr__(self, "distance_mm", d)

    @property
    def key(self) -> tuple[str, str, str]:
        """``(level, side, segment)``."""
        return (self.level, self.side, self.segment)

    @property
    def name(self) -> str:
        """Label such as ``"L5_left_ganglion"`` (used in label tables and files)."""
        return f"{self.level}_{self.side}_{self.segment}"

    def replace(self, **changes: Any) -> RootROI:
        """A new ROI with some fields replaced (validated again)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (one entry of the ROI JSON ``rois`` list)."""
        d: dict[str, Any] = {
            "name": self.name,
            "level": self.level,
            "side": self.side,
            "segment": self.segment,
            "shape": self.shape.to_dict(),  # type: ignore[union-attr]
            "notes": self.notes,
        }
        if self.distance_mm is not None:
            d["distance_mm"] = self.distance_mm
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> RootROI:
        """Inverse of :meth:`to_dict`; ``level``/``side``/``segment`` may come from ``name``."""
        if not isinstance(d, Mapping):
            raise RoiError(f"an ROI entry must be a JSON object, got {type(d).__name__}.")
        if "level" in d and "side" in d:
            level, side, segment = d["level"], d["side"], d.get("segment")
        elif "name" in d:
            level, side, segment = parse_roi_name(d["name"])
            segment = d.get("segment", segment)
        else:
            raise RoiError(f"ROI entry lacks 'level'/'side' (or 'name'): {dict(d)!r:.200}")
        level, side, segment = normalize_level(level), normalize_side(side), normalize_segment(segment)
        if "shape" not in d:
            raise RoiError(f"ROI entry {level}_{side}_{segment} lacks its 'shape' object.")
        return cls(level, side, segment, shape_from_dict(d["shape"]), d.get("notes", ""),
                   d.get("distance_mm"))

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, RootROI)
            and self.key == other.key
            and self.shape == other.shape
            and self.notes == other.notes
            and self.distance_mm == other.distance_mm
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"RootROI({self.name!r}, {self.shape.describe()})"  # type: ignore[union-attr]

    def _repr_html_(self) -> str:
        from ..core._display import html_table

        rows = [("level", self.level), ("side", f"{self.side} (patient's)"), ("segment", self.segment),
                ("shape (RAS+ mm)", self.shape.describe())]  # type: ignore[union-attr]
        if self.distance_mm is not None:
            rows.append(("distance (mm)", f"{self.distance_mm:g}"))
        if self.notes:
            rows.append(("notes", self.notes))
        return html_table(f"RootROI {self.name}", rows)


def _sort_key(roi: RootROI) -> tuple[int, int, int]:
    return (LEVELS.index(roi.level), SIDES.index(roi.side), SEGMENTS.index(roi.segment))


@dataclass(frozen=True, eq=False, repr=False)
class RoiSet:
    """An ordered set of :class:`RootROI` for one scan, at most one per (level, side, segment).

    Immutable: :meth:`add`, :meth:`remove` and :meth:`replace` return new sets.

    Parameters
    ----------
    rois : iterable of RootROI
    meta : mapping, optional
        Free-form, JSON-ready facts kept with the set (e.g. the mid-sagittal plane used for
        mirroring, the source file). Never patient identifiers.

    Raises
    ------
    RoiError
        If two ROIs share level, side and segment.

    Examples
    --------
    >>> a = RootROI("L5", "left", shape=Sphere([-20, 0, 0], 3))
    >>> b = RootROI("L5", "right", shape=Sphere([20, 0, 0], 3))
    >>> rois = RoiSet([a]).add(b)
    >>> len(rois), [r.name for r in rois]
    (2, ['L5_left_ganglion', 'L5_right_ganglion'])
    >>> rois.remove("L5", "left").names
    ['L5_right_ganglion']
    """

    rois: tuple[RootROI, ...] = ()
    meta: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        items = tuple(self.rois)
        seen: set[tuple[str, str, str]] = set()
        for r in items:
            if not isinstance(r, RootROI):
                raise RoiError(f"a RoiSet holds RootROI objects, got {type(r).__name__}.")
            if r.key in seen:
                raise RoiError(
                    f"two ROIs for {r.name}; a set holds one ROI per level, side and segment "
                    "(use RoiSet.replace() to swap one)."
                )
            seen.add(r.key)
        object.__setattr__(self, "rois", items)
        object.__setattr__(self, "meta", dict(self.meta))

    # -------------------------------------------------------------- collection protocol
    def __iter__(self) -> Iterator[RootROI]:
        return iter(self.rois)

    def __len__(self) -> int:
        return len(self.rois)

    def __bool__(self) -> bool:
        return bool(self.rois)

    def __getitem__(self, item: int | str) -> RootROI:
        if isinstance(item, str):
            level, side, segment = parse_roi_name(item)
            roi = self.get(level, side, segment)
            if roi is None:
                raise KeyError(item)
            return roi
        return self.rois[item]

    def __contains__(self, item: object) -> bool:
        if isinstance(item, RootROI):
            return any(r.key == item.key for r in self.rois)
        if isinstance(item, str):
            try:
                return self.get(*parse_roi_name(item)) is not None
            except RoiError:
                return False
        return False

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RoiSet) and self.rois == other.rois

    __hash__ = None  # type: ignore[assignment]

    @property
    def names(self) -> list[str]:
        """ROI names in order, e.g. ``["L5_left_ganglion", ...]``."""
        return [r.name for r in self.rois]

    def get(self, level: str, side: str, segment: str | None = None) -> RootROI | None:
        """The ROI for (level, side[, segment]), or ``None`` when absent.

        With ``segment=None`` the single ROI of that root is returned.

        Raises
        ------
        RoiError
            Unknown names, or ``segment=None`` while the root has ROIs on several segments.
        """
        level, side = normalize_level(level), normalize_side(side)
        if segment is not None:
            seg = normalize_segment(segment)
            return next((r for r in self.rois if r.key == (level, side, seg)), None)
        found = [r for r in self.rois if r.level == level and r.side == side]
        if len(found) > 1:
            raise RoiError(
                f"{level} {side} has ROIs on several segments ({', '.join(r.segment for r in found)}); "
                "pass segment=... to choose one."
            )
        return found[0] if found else None

    def select(self, *, level: str | None = None, side: str | None = None,
               segment: str | None = None) -> RoiSet:
        """The subset matching the given level/side/segment (``None`` matches all)."""
        lv = normalize_level(level) if level is not None else None
        sd = normalize_side(side) if side is not None else None
        sg = normalize_segment(segment) if segment is not None else None
        keep = [r for r in self.rois if (lv is None or r.level == lv) and (sd is None or r.side == sd)
                and (sg is None or r.segment == sg)]
        return RoiSet(keep, self.meta)

    # -------------------------------------------------------------- new sets
    def add(self, roi: RootROI, *, replace: bool = False) -> RoiSet:
        """A new set with `roi` appended (or swapped in when ``replace=True``)."""
        if replace:
            items = [roi if r.key == roi.key else r for r in self.rois]
            if not any(r.key == roi.key for r in self.rois):
                items.append(roi)
            return RoiSet(items, self.meta)
        return RoiSet((*self.rois, roi), self.meta)

    def replace(self, roi: RootROI) -> RoiSet:
        """A new set where the ROI with the same key is swapped for `roi` (added if absent)."""
        return self.add(roi, replace=True)

    def remove(self, level: str, side: str, segment: str | None = None) -> RoiSet:
        """A new set without the ROI(s) of (level, side[, segment]).

        Raises
        ------
        RoiError
            If nothing matches.
        """
        lv, sd = normalize_level(level), normalize_side(side)
        sg = normalize_segment(segment) if segment is not None else None
        keep = [r for r in self.rois if not (r.level == lv and r.side == sd and (sg is None or r.segment == sg))]
        if len(keep) == len(self.rois):
            raise RoiError(f"no ROI for {lv} {sd}{' ' + sg if sg else ''} in this set ({', '.join(self.names) or 'empty'}).")
        return RoiSet(keep, self.meta)

    def sorted(self) -> RoiSet:
        """A new set ordered by level (cranial first), side (left first) and segment."""
        return RoiSet(sorted(self.rois, key=_sort_key), self.meta)

    def with_meta(self, **meta: Any) -> RoiSet:
        """A new set with `meta` entries added or updated."""
        return RoiSet(self.rois, {**self.meta, **meta})

    # -------------------------------------------------------------- files (io sits above roi)
    def save(self, path: str | os.PathLike, **kwargs: Any):
        """Write the set to `path`, format chosen by extension.

        ``.json`` (dwi_toolkit schema), ``.mrk.json`` (3D Slicer markups), ``.nii``/``.nii.gz``
        (label map + ``.tsv``; needs ``reference=``). See :func:`dwi_toolkit.io.rois.save_rois`.
        """
        from ..core.writers import get_writer  # io sits above roi: its writer is registered, not imported

        return get_writer("rois")(self, path, **kwargs)

    # -------------------------------------------------------------- display
    def __repr__(self) -> str:
        return f"RoiSet({len(self)} ROIs: {', '.join(self.names)})"

    def _repr_html_(self) -> str:
        rows = "".join(
            "<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in (
                r.level, r.side, r.segment, r.shape.describe(),  # type: ignore[union-attr]
                "" if r.distance_mm is None else f"{r.distance_mm:g}", r.notes)) + "</tr>"
            for r in self.rois
        )
        head = "".join(f"<th>{h}</th>" for h in ("level", "side", "segment", "shape (RAS+ mm)",
                                                  "distance (mm)", "notes"))
        return (f"<table><caption>RoiSet: {len(self)} nerve-root ROIs</caption>"
                f"<tr>{head}</tr>{rows}</table>")
