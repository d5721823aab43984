"""Pure functions on diffusion gradient schemes.

Conventions
-----------
- ``bvals``: ndarray of shape (N,), s/mm², finite and ≥ 0.
- ``bvecs``: ndarray of shape (N, 3), unit vectors in the **image (voxel-axis) frame** as in FSL
  ``.bvec`` files; zero vectors for b=0 volumes.
- ``b0_threshold``: s/mm²; volumes with ``b <= b0_threshold`` count as b=0 (default 50 s/mm²,
  because vendors write b=0 volumes as small non-zero values, e.g. Philips 0.001–0.004).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ..errors import GradientError, GradientWarning

__all__ = [
    "DEFAULT_B0_THRESHOLD",
    "BVEC_NORM_TOLERANCE",
    "Shell",
    "b0_mask",
    "find_shells",
    "check_gradients",
    "normalize_bvecs",
    "bvec_frame_to_world",
]

#: Default b=0 threshold in s/mm².
DEFAULT_B0_THRESHOLD = 50.0
#: Non-zero b-vectors whose norm differs from 1 by at most this are renormalised with a warning;
#: beyond it they are rejected.
BVEC_NORM_TOLERANCE = 0.1
#: Default absolute tolerance (s/mm²) for grouping b-values into shells.
DEFAULT_SHELL_TOLERANCE = 5.0
#: Default relative tolerance for grouping b-values into shells (scanner jitter, e.g. 990-1010).
DEFAULT_SHELL_REL_TOLERANCE = 0.05


@dataclass(frozen=True)
class Shell:
    """One b-value shell.

    Attributes
    ----------
    bval : float
        Representative b-value of the shell (mean of its members), s/mm².
    indices : tuple of int
        Volume indices (last data axis) belonging to the shell.

    Examples
    --------
    >>> find_shells([0, 800, 5, 800])[1]
    Shell(bval=800.0, indices=(1, 3))
    """

    bval: float
    indices: tuple[int, ...]

    @property
    def n_volumes(self) -> int:
        """Number of volumes in the shell."""
        return len(self.indices)


def b0_mask(bvals: ArrayLike, *, b0_threshold: float = DEFAULT_B0_THRESHOLD) -> NDArray[np.bool_]:
    """Boolean mask of the b=0 volumes.

    Parameters
    ----------
    bvals : array_like of shape (N,)
        b-values in s/mm².
    b0_threshold : float, optional
        Volumes with ``b <= b0_threshold`` (s/mm²) count as b=0.

    Returns
    -------
    ndarray of bool, shape (N,)

    Examples
    --------
    >>> b0_mask([0, 0.004, 400, 800]).tolist()
    [True, True, False, False]
    """
    return np.asarray(bvals, dtype=float) <= b0_threshold


def find_shells(
    bvals: ArrayLike,
    *,
    b0_threshold: float | None = DEFAULT_B0_THRESHOLD,
    tolerance: float = DEFAULT_SHELL_TOLERANCE,
    rel_tolerance: float = DEFAULT_SHELL_REL_TOLERANCE,
) -> list[Shell]:
    """Group b-values into shells.

    All volumes with ``b <= b0_threshold`` form the b=0 shell (reported with b-value 0). The other
    b-values are sorted and split where consecutive values differ by more than
    ``max(tolerance, rel_tolerance · b)``, so scanner jitter (e.g. 990, 1000, 1003 s/mm²) falls
    into one shell while low b-values of IVIM protocols (0, 10, 20, 30 ...) stay apart.
    NaN b-values are ignored.

    Parameters
    ----------
    bvals : array_like of shape (N,)
        b-values in s/mm².
    b0_threshold : float or None, optional
        b=0 threshold in s/mm²; ``None`` clusters every b-value by the tolerances alone (the
        b=0 shell then has the mean of its members, e.g. 0.002 for Philips' 0–0.004).
    tolerance : float, optional
        Absolute gap (s/mm²) allowed between sorted b-values within one shell.
    rel_tolerance : float, optional
        Relative gap allowed (fraction of the lower b-value).

    Returns
    -------
    list of Shell
        Sorted by b-value; the b=0 shell first when present.

    Examples
    --------
    >>> [(s.bval, s.n_volumes) for s in find_shells([0, 1000, 5, 998, 500, 1003])]
    [(0.0, 2), (500.0, 1), (1000.333..., 3)]
    """
    b = np.asarray(bvals, dtype=float)
    shells: list[Shell] = []
    finite = np.isfinite(b)
    is_b0 = finite & (b <= b0_threshold) if b0_threshold is not None else np.zeros(b.shape, bool)
    if is_b0.any():
        shells.append(Shell(0.0, tuple(int(i) for i in np.flatnonzero(is_b0))))
    rest = np.flatnonzero(finite & ~is_b0)
    if rest.size:
        order = rest[np.argsort(b[rest], kind="stable")]
        groups: list[list[int]] = [[int(order[0])]]
        for prev, cur in zip(order[:-1], order[1:]):
            if b[cur] - b[prev] > max(tolerance, rel_tolerance * b[prev]):
                groups.append([])
            groups[-1].append(int(cur))
        for g in groups:
            idx = tuple(sorted(g))
            shells.append(Shell(float(b[list(idx)].mean()), idx))
    return shells


def normalize_bvecs(
    bvecs: ArrayLike,
    bvals: ArrayLike,
    *,
    b0_threshold: float = DEFAULT_B0_THRESHOLD,
    tolerance: float = BVEC_NORM_TOLERANCE,
) -> NDArray[np.float64]:
    """Return b-vectors with unit norm for diffusion-weighted volumes.

    Zero vectors are kept for b=0 volumes (and forced to zero there, except that a unit direction
    recorded for a low-b volume, 0 < b <= `b0_threshold`, is kept). Non-zero vectors whose norm
    is within `tolerance` of 1 are renormalised, with a :class:`~dwi_toolkit.errors.GradientWarning`
    when any needed more than rounding (1e-3).

    Parameters
    ----------
    bvecs : array_like of shape (N, 3)
        Gradient directions in the image frame.
    bvals : array_like of shape (N,)
        b-values in s/mm².
    b0_threshold : float, optional
        b=0 threshold in s/mm².
    tolerance : float, optional
        Accepted deviation of a norm from 1.

    Returns
    -------
    ndarray of shape (N, 3)

    Raises
    ------
    GradientError
        If a diffusion-weighted volume has a zero vector or a norm too far from 1.

    Examples
    --------
    >>> import warnings
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("ignore")  # GradientWarning: 1 b-vector renormalised
    ...     v = normalize_bvecs([[0, 0, 0], [0, 0, 1.05]], [0, 800])
    >>> v.tolist()
    [[0.0, 0.0, 0.0], [0.0, 0.0, 1.0]]
    """
    v = np.array(bvecs, dtype=float, copy=True)
    b = np.asarray(bvals, dtype=float)
    is_b0 = b <= b0_threshold
    # Low-b volumes (0 < b <= threshold, e.g. IVIM b=50) keep the direction the scanner recorded:
    # the threshold groups volumes for analysis, it does not erase stored gradients.
    lown = np.linalg.norm(np.nan_to_num(v), axis=1)
    keep_low = is_b0 & (b > 0) & np.all(np.isfinite(v), axis=1) & (np.abs(lown - 1.0) <= tolerance)
    v[is_b0 & ~keep_low] = 0.0
    v[keep_low] = v[keep_low] / lown[keep_low, None]
    norms = np.linalg.norm(v, axis=1)
    dw = ~is_b0
    # b=0 volumes carry no direction: FSL convention is a zero vector (set above).
    zero = dw & (norms < 1e-6)
    if zero.any():
        # A diffusion-weighted volume without direction is the scanner's trace/isotropic image.
        # Keep it (direction-free volumes are valid for trace ADC) but mark it as zero.
        v[zero] = 0.0
    nz = dw & ~zero
    bad = nz & (np.abs(norms - 1.0) > tolerance)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise GradientError(
            f"b-vector of volume {i} has norm {norms[i]:.3f} (b={b[i]:g} s/mm^2); "
            f"{int(bad.sum())} diffusion-weighted vectors are more than {tolerance} from unit "
            "length. Check that the .bvec file belongs to this series and holds directions, "
            "not b-value-scaled vectors."
        )
    needs = nz & (np.abs(norms - 1.0) > 1e-3)
    if needs.any():
        warnings.warn(
            f"{int(needs.sum())} b-vectors were renormalised to unit length "
            f"(largest deviation {np.max(np.abs(norms[needs] - 1)):.3g}).",
            GradientWarning,
            stacklevel=3,
        )
    v[nz] = v[nz] / norms[nz, None]
    return v


def check_gradients(
    bvals: ArrayLike,
    bvecs: ArrayLike,
    n_volumes: int | None = None,
    *,
    b0_threshold: float = DEFAULT_B0_THRESHOLD,
) -> None:
    """Validate b-values and b-vectors.

    Parameters
    ----------
    bvals : array_like of shape (N,)
        b-values in s/mm².
    bvecs : array_like of shape (N, 3)
        Directions.
    n_volumes : int, optional
        Number of volumes in the data (last axis) the gradients must match.
    b0_threshold : float, optional
        s/mm²; b=0 volumes may carry NaN vectors (some tools write them so).

    Raises
    ------
    GradientError
        If shapes disagree or b-values are not finite and non-negative.

    Examples
    --------
    >>> check_gradients([0, 800], [[0, 0, 0], [1, 0, 0]])  # valid: returns None
    >>> check_gradients([0, 800], [[0, 0, 0]])
    Traceback (most recent call last):
    ...
    dwi_toolkit.errors.GradientError: ...
    """
    b = np.asarray(bvals)
    v = np.asarray(bvecs)
    if b.ndim != 1:
        raise GradientError(f"bvals must be 1-D (N,), got shape {b.shape}.")
    if v.shape != (b.shape[0], 3):
        raise GradientError(
            f"bvecs must have shape (N, 3) = ({b.shape[0]}, 3) to match {b.shape[0]} b-values, "
            f"got {v.shape}. Check that the .bvec file belongs to the same series as the .bval."
        )
    if not np.all(np.isfinite(b)):
        raise GradientError("bvals contain NaN or infinite values; fix the .bval file.")
    if np.any(b < 0):
        raise GradientError(f"bvals must be >= 0 s/mm^2, found {float(b.min()):g}.")
    bad = ~np.all(np.isfinite(v), axis=1) & (b > b0_threshold)
    if bad.any():
        raise GradientError(
            f"bvecs of diffusion-weighted volumes {np.flatnonzero(bad).tolist()} contain NaN or "
            "infinite values; fix the .bvec file."
        )
    if n_volumes is not None and b.shape[0] != n_volumes:
        raise GradientError(
            f"bvals has {b.shape[0]} entries but the data has {n_volumes} volumes (last axis); "
            "check that the .bval/.bvec files belong to this series."
        )


def bvec_frame_to_world(affine: ArrayLike) -> NDArray[np.float64]:
    """3×3 matrix taking b-vectors of the image frame (FSL convention) to RAS+ world directions.

    FSL's ``.bvec`` frame is the voxel-axis frame with the first axis flipped when the affine
    has a positive determinant; the matrix is ``M @ F`` with ``M`` the affine's column-normalised
    3×3 part and ``F`` that flip. Its inverse takes world directions back to b-vectors.

    Parameters
    ----------
    affine : array_like of shape (4, 4) or (3, 3)
        Voxel → RAS+ mm affine (only its 3×3 part is used).

    Returns
    -------
    ndarray of shape (3, 3)
        ``g_world = bvec_frame_to_world(affine) @ g_bvec``.

    Examples
    --------
    >>> las = np.diag([-2.0, 2.0, 4.0, 1.0])   # det < 0: FSL x is the voxel x, which points left
    >>> (bvec_frame_to_world(las) @ [1.0, 0, 0]).tolist()
    [-1.0, 0.0, 0.0]
    >>> ras = np.diag([2.0, 2.0, 4.0, 1.0])    # det > 0: FSL flips x
    >>> (bvec_frame_to_world(ras) @ [1.0, 0, 0]).tolist()
    [-1.0, 0.0, 0.0]
    """
    a = np.asarray(affine, dtype=float)[:3, :3]
    m = a / np.linalg.norm(a, axis=0)
    if np.linalg.det(a) > 0:
        m = m @ np.diag([-1.0, 1.0, 1.0])
    return m
