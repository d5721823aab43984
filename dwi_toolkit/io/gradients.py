"""FSL ``.bval`` / ``.bvec`` files.

``.bval``: b-values in s/mm², whitespace-separated, one row (or one column).
``.bvec``: unit gradient directions in the image (voxel-axis) frame, FSL layout (3 rows × N
columns). Files written by other tools in N rows × 3 columns are detected from their shape; a
3 × 3 file is ambiguous and resolved from the vector norms, with a warning when that cannot
decide.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ..errors import GradientError, GradientWarning
from ._atomic import atomic_write_text

__all__ = ["read_bvals", "read_bvecs", "write_bvals", "write_bvecs", "find_gradient_files"]


def _read_numbers(path: Path, what: str) -> NDArray[np.float64]:
    try:
        text = path.read_text()
    except OSError as err:
        raise GradientError(f"cannot read {what} file {path}: {err.strerror or err}") from err
    except UnicodeDecodeError as err:
        raise GradientError(f"{what} file {path} is not text ({err.reason} at byte {err.start}); "
                            "it should hold numbers separated by spaces.") from err
    rows = [line.replace(",", " ").split() for line in text.splitlines() if line.strip()]
    if not rows:
        raise GradientError(f"{what} file {path} is empty.")
    try:
        if len({len(r) for r in rows}) != 1:
            raise ValueError("rows have different lengths")
        arr = np.array([[float(v) for v in r] for r in rows], dtype=float)
        if not np.all(np.isfinite(arr)):
            raise ValueError("NaN or infinite values")
        return arr
    except ValueError as err:
        raise GradientError(f"{what} file {path} is not a table of numbers ({err}).") from err


def read_bvals(path: str | os.PathLike) -> NDArray[np.float64]:
    """Read b-values (s/mm²) from an FSL ``.bval`` file (one row or one column).

    Raises
    ------
    GradientError
        If the file is missing, empty or not a single row/column of numbers.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> p = write_bvals(Path(tempfile.mkdtemp()) / "dwi.bval", [0, 800, 800])
    >>> read_bvals(p).tolist()
    [0.0, 800.0, 800.0]
    """
    p = Path(path)
    arr = _read_numbers(p, "bval")
    if arr.shape[0] != 1 and arr.shape[1] != 1:
        raise GradientError(f"bval file {p} must hold one row or one column, got shape {arr.shape}.")
    return arr.reshape(-1)


def read_bvecs(path: str | os.PathLike, n_volumes: int | None = None) -> NDArray[np.float64]:
    """Read b-vectors from a ``.bvec`` file and return them as (N, 3).

    Parameters
    ----------
    path : path-like
        The ``.bvec`` file, FSL layout (3 × N) or N × 3.
    n_volumes : int, optional
        Expected N (from the ``.bval`` file or the data), used to detect the layout.

    Raises
    ------
    GradientError
        If neither layout fits.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> p = write_bvecs(Path(tempfile.mkdtemp()) / "dwi.bvec", [[0, 0, 0], [1, 0, 0]])
    >>> read_bvecs(p).tolist()                       # (N, 3)
    [[0.0, 0.0, 0.0], [1.0, 0.0, 0.0]]
    """
    p = Path(path)
    arr = _read_numbers(p, "bvec")
    fsl_ok = arr.shape[0] == 3 and (n_volumes is None or arr.shape[1] == n_volumes)
    rows_ok = arr.shape[1] == 3 and (n_volumes is None or arr.shape[0] == n_volumes)
    if fsl_ok and rows_ok:  # 3 x 3: ambiguous layout
        if np.allclose(arr, arr.T):
            return arr.T.copy()
        col_norm = np.linalg.norm(arr, axis=0)
        row_norm = np.linalg.norm(arr, axis=1)
        unit_cols = np.all((np.abs(col_norm - 1) < 1e-2) | (col_norm < 1e-6))
        unit_rows = np.all((np.abs(row_norm - 1) < 1e-2) | (row_norm < 1e-6))
        if unit_rows and not unit_cols:
            return arr.copy()
        if not (unit_cols and not unit_rows):
            warnings.warn(
                f"bvec file {p} is 3x3, so its layout is ambiguous; read it as FSL (3 rows x N "
                "columns). Write it as 3 rows if that is wrong.",
                GradientWarning,
                stacklevel=2,
            )
        return arr.T.copy()
    if fsl_ok:
        return arr.T.copy()
    if rows_ok:
        return arr.copy()
    expected = f" for {n_volumes} volumes" if n_volumes is not None else ""
    raise GradientError(
        f"bvec file {p} has shape {arr.shape}; expected 3 x N (FSL) or N x 3{expected}. "
        "Check that the .bvec file belongs to this series."
    )


def _fmt(values) -> str:
    return " ".join(f"{v:.6g}" if abs(v) >= 1e-6 or v == 0 else f"{v:.6e}" for v in values)


def write_bvals(path: str | os.PathLike, bvals: ArrayLike) -> Path:
    """Write b-values (s/mm²) as one row, atomically.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> write_bvals(Path(tempfile.mkdtemp()) / "dwi.bval", [0, 800]).read_text().split()
    ['0', '800']
    """
    return atomic_write_text(path, _fmt(np.asarray(bvals, dtype=float).reshape(-1)) + "\n")


def write_bvecs(path: str | os.PathLike, bvecs: ArrayLike) -> Path:
    """Write (N, 3) b-vectors in FSL layout (3 rows × N columns), atomically.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> p = write_bvecs(Path(tempfile.mkdtemp()) / "dwi.bvec", [[0, 0, 0], [0, 0.6, 0.8]])
    >>> len(p.read_text().splitlines())           # FSL layout: 3 rows x N columns
    3
    """
    v = np.asarray(bvecs, dtype=float)
    return atomic_write_text(path, "\n".join(_fmt(row) for row in v.T) + "\n")


def find_gradient_files(nifti_path: str | os.PathLike) -> tuple[Path | None, Path | None]:
    """Find ``.bval``/``.bvec`` files beside a NIfTI file.

    Looks for ``stem.bval``/``stem.bvec`` (also ``stem.bvals``/``stem.bvecs``) and, in the same
    folder, the FSL names ``bvals``/``bvecs``.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> d = Path(tempfile.mkdtemp())
    >>> _ = write_bvals(d / "sub-01_dwi.bval", [0, 800]); _ = write_bvecs(d / "sub-01_dwi.bvec", [[0, 0, 0], [1, 0, 0]])
    >>> [p.name for p in find_gradient_files(d / "sub-01_dwi.nii.gz")]
    ['sub-01_dwi.bval', 'sub-01_dwi.bvec']
    """
    p = Path(nifti_path)
    name = p.name
    for ext in (".nii.gz", ".nii"):
        if name.endswith(ext):
            name = name[: -len(ext)]
            break
    found: list[Path | None] = []
    for kind in ("bval", "bvec"):
        hit = None
        for cand in (f"{name}.{kind}", f"{name}.{kind}s", f"{kind}s", f"{kind}s.txt", f"{kind}"):
            c = p.parent / cand
            if c.is_file():
                hit = c
                break
        found.append(hit)
    return found[0], found[1]
