"""Mask helpers on arrays."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ..errors import InputDataError

__all__ = ["signal_mask", "check_mask"]


def signal_mask(b0: ArrayLike, *, fraction: float = 0.1) -> NDArray[np.bool_]:
    """Voxels with signal clearly above the background, from a b=0 image.

    The threshold is ``p2 + fraction · (p98 − p2)`` of the finite b=0 values (a robust-range
    rule like FSL BET's), which separates air/background noise from tissue on typical DWI.

    Parameters
    ----------
    b0 : array_like of shape (X, Y, Z)
        Mean b=0 image.
    fraction : float, optional
        Position of the threshold within the robust range (0–1).

    Returns
    -------
    ndarray of bool, shape (X, Y, Z)

    Examples
    --------
    >>> img = np.zeros((10, 10, 1)); img[3:7, 3:7] = 500.0
    >>> int(signal_mask(img).sum())
    16
    >>> int(signal_mask(np.full((4, 4, 2), 300.0)).sum())   # no background to separate: every voxel
    32
    """
    arr = np.asarray(b0, dtype=float)
    vals = arr[np.isfinite(arr)]
    if vals.size == 0:
        raise InputDataError("cannot build a signal mask: the b=0 image has no finite values.")
    lo, hi = np.percentile(vals, [2, 98])
    if not hi > lo:  # a uniform image (no background in the field of view): every finite voxel
        return np.isfinite(arr)
    return np.isfinite(arr) & (arr > lo + fraction * (hi - lo))


def check_mask(mask: ArrayLike, shape: tuple[int, ...]) -> NDArray[np.bool_]:
    """Validate a mask against a spatial shape and return it as bool.

    Raises
    ------
    InputDataError
        If the shapes differ.

    Examples
    --------
    >>> check_mask(np.ones((2, 3, 4)), (2, 3, 4)).dtype
    dtype('bool')
    """
    m = np.asarray(mask)
    if m.shape != tuple(shape):
        raise InputDataError(f"mask shape {m.shape} does not match the image shape {tuple(shape)}.")
    return m.astype(bool)
