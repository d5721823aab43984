"""Pure functions on 4×4 voxel → RAS+ mm affines."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ..errors import InputDataError

__all__ = [
    "check_affine", "voxel_sizes", "orientation_codes", "slice_orientation", "apply_affine",
    "rotation_matrix",
]


def check_affine(affine: ArrayLike) -> NDArray[np.float64]:
    """Validate a 4×4 voxel → RAS+ mm affine and return it as float64.

    Raises
    ------
    InputDataError
        If the affine is not 4×4, not finite, or singular.

    Examples
    --------
    >>> check_affine(np.diag([2.0, 2.0, 4.0, 1.0])).shape
    (4, 4)
    """
    a = np.asarray(affine, dtype=float)
    if a.shape != (4, 4):
        raise InputDataError(f"affine must be a 4x4 matrix (voxel -> RAS+ mm), got shape {a.shape}.")
    if not np.all(np.isfinite(a)):
        raise InputDataError("affine contains NaN or infinite values.")
    if abs(np.linalg.det(a[:3, :3])) < 1e-12:
        raise InputDataError("affine is singular (zero voxel size or collinear axes).")
    return a


def voxel_sizes(affine: ArrayLike) -> NDArray[np.float64]:
    """Voxel edge lengths in mm.

    Examples
    --------
    >>> voxel_sizes(np.diag([2.0, 2.0, 4.0, 1.0])).tolist()
    [2.0, 2.0, 4.0]
    """
    a = np.asarray(affine, dtype=float)
    return np.sqrt((a[:3, :3] ** 2).sum(axis=0))


def orientation_codes(affine: ArrayLike) -> str:
    """Axis codes such as ``"RAS"`` or ``"LPI"``: where each voxel axis points in world space.

    Examples
    --------
    >>> orientation_codes(np.diag([-1.0, 1.0, 1.0, 1.0]))
    'LAS'
    """
    import nibabel.orientations as nio

    return "".join(nio.aff2axcodes(np.asarray(affine, dtype=float)))


def slice_orientation(affine: ArrayLike, *, oblique_deg: float = 10.0) -> str:
    """Plane of the slices (third voxel axis is the slice normal).

    Returns ``"axial"``, ``"sagittal"`` or ``"coronal"`` when the slice normal is within
    `oblique_deg` degrees of a world axis, else ``"oblique"``.

    Examples
    --------
    >>> slice_orientation(np.eye(4))
    'axial'
    >>> slice_orientation(np.array([[0, 0, 1, 0], [1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 0, 1.]]))
    'sagittal'
    """
    a = np.asarray(affine, dtype=float)
    n = a[:3, 2] / np.linalg.norm(a[:3, 2])
    k = int(np.argmax(np.abs(n)))
    angle = np.degrees(np.arccos(min(1.0, abs(n[k]))))
    if angle > oblique_deg:
        return "oblique"
    return ("sagittal", "coronal", "axial")[k]


def apply_affine(affine: ArrayLike, points: ArrayLike) -> NDArray[np.float64]:
    """Apply a 4×4 affine to points of shape (..., 3).

    Examples
    --------
    >>> apply_affine(np.diag([2.0, 2.0, 2.0, 1.0]), [1, 2, 3]).tolist()
    [2.0, 4.0, 6.0]
    """
    a = np.asarray(affine, dtype=float)
    p = np.asarray(points, dtype=float)
    return p @ a[:3, :3].T + a[:3, 3]


def rotation_matrix(angles_deg: ArrayLike) -> NDArray[np.float64]:
    """Rotation about x, then y, then z (degrees), as a 3×3 matrix ``Rz @ Ry @ Rx``.

    Examples
    --------
    >>> np.round(rotation_matrix([0, 0, 90]) @ [1, 0, 0], 6).tolist()
    [0.0, 1.0, 0.0]
    """
    ax, ay, az = np.radians(np.asarray(angles_deg, dtype=float))
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    return rz @ ry @ rx
