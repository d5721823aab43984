"""Pure functions on DWI signal arrays: b0 averaging and direction (trace) averaging.

The direction-averaged ("trace") image of a shell is the **geometric** mean of its volumes, as
scanners store it (TRACEW); its log-signal is the arithmetic mean of the directional log-signals,
so the trace ADC equals the mean of the directional ADCs (dwi_toolkit References §1.1).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = ["geometric_mean", "mean_b0"]


def _volumes(arr: np.ndarray, idx, axis: int) -> np.ndarray:
    """``np.take(arr, idx, axis)`` (same values, C order) without its copy of the whole input.

    ``np.take`` first makes a C-contiguous copy of a non-contiguous input, e.g. the Fortran-ordered
    series nibabel loads: one extra copy of the whole data to read a few volumes (issue 21).
    Fancy indexing reads only the selected volumes.
    """
    if arr.flags.c_contiguous:
        return np.take(arr, idx, axis=axis)
    key = [slice(None)] * arr.ndim
    key[axis] = np.asarray(idx, dtype=np.intp)
    return np.ascontiguousarray(arr[tuple(key)])


def geometric_mean(data: ArrayLike, indices, *, axis: int = -1) -> NDArray[np.floating]:
    """Geometric mean of the volumes `indices` along `axis`.

    Non-positive samples make the result NaN for that voxel (their logarithm is undefined).

    Parameters
    ----------
    data : array_like of shape (..., N)
        Signal.
    indices : sequence of int
        Volumes to average.
    axis : int, optional
        Volume axis.

    Returns
    -------
    ndarray of shape data.shape without `axis`, float32 for float32/integer input, else float64.

    Examples
    --------
    >>> float(geometric_mean(np.array([[1.0, 4.0]]), [0, 1])[0])
    2.0
    """
    arr = np.asarray(data)
    idx = list(indices)
    dtype = np.float64 if arr.dtype == np.float64 else np.float32
    sub = _volumes(arr, idx, axis).astype(dtype, copy=False)
    if len(idx) == 1:
        return np.squeeze(sub, axis=axis).astype(dtype, copy=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        logs = np.log(np.where(sub > 0, sub, np.nan))
        return np.exp(logs.mean(axis=axis))


def mean_b0(data: ArrayLike, b0: ArrayLike, *, axis: int = -1) -> NDArray[np.floating]:
    """Arithmetic mean of the b=0 volumes.

    Parameters
    ----------
    data : array_like of shape (..., N)
    b0 : array_like of bool, shape (N,)
        Mask of b=0 volumes (see :func:`dwi_toolkit.core.gradients.b0_mask`).

    Examples
    --------
    >>> data = np.array([[10.0, 12.0, 5.0]])          # one voxel, volumes b = 0, 0, 800
    >>> mean_b0(data, np.array([True, True, False])).tolist()
    [11.0]
    """
    arr = np.asarray(data)
    return _volumes(arr, np.flatnonzero(b0), axis).astype(np.float32).mean(axis=axis)
