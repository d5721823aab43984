"""Slice geometry: orientation checks, slice order along the normal, voxel → RAS+ affine.

Output voxel order (the one dcm2niix writes): x along the DICOM row direction (column index),
y *opposite* the DICOM column direction (rows stored bottom-up), z along the slice normal
``n = row × col`` with slices sorted by their position ``IPP · n``. World coordinates are RAS+ mm
(DICOM patient coordinates are LPS: x and y are negated).
"""

from __future__ import annotations

import numpy as np

from ...errors import DicomError

__all__ = ["normal_of", "check_orientation", "group_positions", "slice_spacing", "dicom_affine",
           "orientation_label", "LPS_TO_RAS"]

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])

#: Components of ImageOrientationPatient may differ by this much between slices (DS rounding).
IOP_TOLERANCE = 1e-3


def normal_of(iop) -> np.ndarray:
    """Unit slice normal ``row × col`` (LPS) from ImageOrientationPatient.

    Examples
    --------
    >>> normal_of([1, 0, 0, 0, 1, 0]).tolist()
    [0.0, 0.0, 1.0]
    """
    iop = np.asarray(iop, dtype=float)
    n = np.cross(iop[:3], iop[3:])
    norm = np.linalg.norm(n)
    if norm < 1e-6:
        raise DicomError(f"ImageOrientationPatient {iop.tolist()} has parallel row and column directions.")
    return n / norm


def check_orientation(iops: np.ndarray, names) -> np.ndarray:
    """Return the common orientation of all frames or raise naming one that differs.

    Parameters
    ----------
    iops : ndarray of shape (F, 6)
    names : sequence of str
        Frame descriptions for the error message.

    Examples
    --------
    >>> iops = np.array([[1, 0, 0, 0, 1, 0], [1, 0, 0, 0, 1, 0]], dtype=float)
    >>> check_orientation(iops, ["frame 1", "frame 2"]).tolist()
    [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    """
    ref = iops[0]
    bad = np.flatnonzero(np.abs(iops - ref).max(axis=1) > IOP_TOLERANCE)
    if bad.size:
        k = int(bad[0])
        raise DicomError(
            f"inconsistent ImageOrientationPatient within the series: {names[0]} has "
            f"{np.round(ref, 4).tolist()} but {names[k]} has {np.round(iops[k], 4).tolist()} "
            f"({bad.size} frame(s) differ). The folder mixes differently angled stacks; pass the "
            "series you want (series_uid) or separate the stacks."
        )
    return iops.mean(axis=0)


def group_positions(dist: np.ndarray, *, tol: float = 0.01) -> tuple[np.ndarray, np.ndarray]:
    """Cluster slice positions along the normal.

    Parameters
    ----------
    dist : ndarray of shape (F,)
        ``IPP · n`` per frame, mm.
    tol : float
        Frames closer than this (mm) are the same slice.

    Returns
    -------
    labels : ndarray of shape (F,)
        Slice index per frame (0 = lowest position along the normal).
    centers : ndarray of shape (Z,)
        Mean position of each slice, ascending.

    Examples
    --------
    >>> lab, cen = group_positions(np.array([4.0, 0.0, 2.0, 4.001, 0.0]))
    >>> lab.tolist(), cen.round(3).tolist()
    ([2, 0, 1, 2, 0], [0.0, 2.0, 4.0])
    """
    order = np.argsort(dist, kind="stable")
    sd = dist[order]
    new = np.concatenate([[True], np.diff(sd) > tol])
    lab_sorted = np.cumsum(new) - 1
    labels = np.empty_like(lab_sorted)
    labels[order] = lab_sorted
    centers = np.bincount(lab_sorted, weights=sd) / np.bincount(lab_sorted)
    return labels, centers


def slice_spacing(centers: np.ndarray, *, default: float | None = None) -> float:
    """Uniform slice spacing (mm) of ascending slice positions, or raise.

    Raises
    ------
    DicomError
        When slices are missing (a gap of about twice the spacing) or spacing is non-uniform.

    Examples
    --------
    >>> slice_spacing(np.array([0.0, 3.0, 6.0]))
    3.0
    """
    if centers.size < 2:
        if default is None or not default > 0:
            return 1.0
        return float(default)
    diffs = np.diff(centers)
    step = float(np.median(diffs))
    if step <= 0:
        raise DicomError("slices share positions; cannot determine the slice spacing.")
    dev = np.abs(diffs - step)
    tol = max(0.01 * step, 0.01)
    if np.any(dev > tol):
        k = int(np.argmax(dev))
        ratio = diffs[k] / step
        if abs(ratio - round(ratio)) < 0.05 and round(ratio) >= 2:
            raise DicomError(
                f"{int(round(ratio)) - 1} slice(s) missing between positions {centers[k]:.2f} mm and "
                f"{centers[k + 1]:.2f} mm along the slice normal (spacing elsewhere {step:g} mm). "
                "Copy the complete series (a file is missing)."
            )
        raise DicomError(
            f"non-uniform slice spacing: {diffs[k]:.3f} mm between positions {centers[k]:.2f} and "
            f"{centers[k + 1]:.2f} mm, {step:.3f} mm elsewhere. The series cannot be stored as one "
            "regular volume (mixed stacks or a partial acquisition?)."
        )
    return float((centers[-1] - centers[0]) / (centers.size - 1))


def dicom_affine(iop, pixel_spacing, first_ipp, spacing: float, rows: int) -> np.ndarray:
    """Voxel → RAS+ mm affine for the output voxel order (x = column, y = flipped row, z = slice).

    Parameters
    ----------
    iop : array_like of shape (6,)
        ImageOrientationPatient (LPS direction cosines of rows then columns).
    pixel_spacing : array_like of shape (2,)
        PixelSpacing: (between rows, between columns) mm.
    first_ipp : array_like of shape (3,)
        ImagePositionPatient of the first (lowest along the normal) slice, LPS mm.
    spacing : float
        Slice spacing, mm.
    rows : int
        Number of rows (needed for the bottom-up flip).

    Examples
    --------
    >>> dicom_affine([1, 0, 0, 0, 1, 0], [2, 2], [0, 0, 0], 3.0, 10).round(3).tolist()[:3]
    [[-2.0, 0.0, 0.0, -0.0], [0.0, 2.0, 0.0, -18.0], [0.0, 0.0, 3.0, 0.0]]
    """
    iop = np.asarray(iop, dtype=float)
    row = iop[:3] / np.linalg.norm(iop[:3])
    col = iop[3:] / np.linalg.norm(iop[3:])
    n = normal_of(iop)
    dr, dc = float(pixel_spacing[0]), float(pixel_spacing[1])
    lps = np.eye(4)
    lps[:3, 0] = row * dc
    lps[:3, 1] = -col * dr
    lps[:3, 2] = n * spacing
    lps[:3, 3] = np.asarray(first_ipp, dtype=float) + col * dr * (rows - 1)
    return LPS_TO_RAS @ lps


def orientation_label(iop, *, oblique_deg: float = 10.0) -> str:
    """``axial``, ``sagittal``, ``coronal`` or ``oblique`` from the slice normal.

    Examples
    --------
    >>> orientation_label([0, 1, 0, 0, 0, -1])
    'sagittal'
    """
    n = normal_of(iop)
    k = int(np.argmax(np.abs(n)))
    if np.degrees(np.arccos(min(1.0, abs(n[k])))) > oblique_deg:
        return "oblique"
    return ("sagittal", "coronal", "axial")[k]
