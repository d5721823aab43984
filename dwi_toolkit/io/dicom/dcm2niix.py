"""dcm2niix as an optional backend and as a built-in cross-check of the DICOM reader.

- :func:`load_with_dcm2niix` converts one series with the ``dcm2niix`` program (Li et al. 2016,
  doi:10.1016/j.jneumeth.2016.03.001) into a temporary folder and loads the NIfTI it writes.
- :func:`verify_with_dcm2niix` converts the same files and compares b-values, b-vectors (world
  frame, sign-free), affine and voxels with what our reader loaded, in one table.

The program is found on ``PATH`` or next to the running Python (``pip install dcm2niix``).
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from ...core.gradients import DEFAULT_B0_THRESHOLD
from ...core.image import DWISeries
from ...errors import DicomError

logger = logging.getLogger(__name__)

__all__ = ["find_dcm2niix", "load_with_dcm2niix", "verify_with_dcm2niix", "verify_files", "VerifyReport",
           "compare_series"]

#: b-values (s/mm²) above which b-vectors are compared (below, scanners store no direction).
BVEC_MIN_B = 5.0
#: Affine tolerance, mm.
AFFINE_TOL = 1e-3


def find_dcm2niix() -> str | None:
    """Path of the dcm2niix program (``PATH`` first, then beside the Python executable), or None.

    Examples
    --------
    >>> exe = find_dcm2niix()
    >>> exe is None or Path(exe).name.startswith("dcm2niix")
    True
    """
    exe = shutil.which("dcm2niix")
    if exe:
        return exe
    cand = Path(sys.executable).with_name("dcm2niix")
    return str(cand) if cand.exists() else None


def _require_dcm2niix() -> str:
    exe = find_dcm2niix()
    if exe is None:
        raise DicomError(
            "dcm2niix is not installed: install it with 'pip install dcm2niix' (or your package "
            "manager) to use backend='dcm2niix' or verify='dcm2niix'."
        )
    return exe


def _convert(files, workdir: Path) -> Path:
    """Copy (gunzip) `files` into workdir/in, run dcm2niix, return the DWI NIfTI it wrote."""
    import gzip

    src = workdir / "in"
    out = workdir / "out"
    src.mkdir()
    out.mkdir()
    for i, f in enumerate(files):
        target = src / f"{i:06d}.dcm"
        with open(f, "rb") as fh:
            raw = fh.read()
        target.write_bytes(gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw)
    proc = subprocess.run([_require_dcm2niix(), "-z", "n", "-b", "y", "-f", "%s_%d", "-o", str(out), str(src)],
                          capture_output=True, text=True, check=False)
    niis = sorted(out.glob("*.nii"))
    with_bval = [p for p in niis if p.with_suffix(".bval").exists()]
    pick = with_bval or niis
    if not pick:
        raise DicomError(f"dcm2niix wrote no NIfTI (exit code {proc.returncode}):\n{proc.stdout[-2000:]}")
    if len(pick) > 1:  # e.g. a derived image split off: keep the largest 4-D output
        pick.sort(key=lambda p: p.stat().st_size, reverse=True)
    return pick[0]


def _select(path, series_uid, b0_threshold):
    from .selection import _series_infos, select_series

    p = Path(path)
    infos, _ = _series_infos(p, b0_threshold=b0_threshold)
    return select_series(infos, series_uid=series_uid, role="dwi", path=p)


def _load_nifti(nii: Path, b0_threshold: float) -> DWISeries:
    from ..nifti import load_nifti_dwi

    if not nii.with_suffix(".bval").exists():  # a single b=0 image: dcm2niix writes no gradients
        raise DicomError(f"dcm2niix wrote {nii.name} without .bval: it did not see a diffusion series.")
    s = load_nifti_dwi(nii, b0_threshold=b0_threshold)
    data = np.asarray(s.data)  # detach from the temporary file
    return DWISeries(data.copy(), s.affine, s.bvals, s.bvecs, meta=dict(s.meta), b0_threshold=b0_threshold)


def load_with_dcm2niix(
    path: str | os.PathLike, *, series_uid: str | None = None, b0_threshold: float = DEFAULT_B0_THRESHOLD
) -> DWISeries:
    """Convert one raw DWI series with the dcm2niix program and load the result.

    Parameters
    ----------
    path : path-like
        DICOM folder or file (as for :func:`dwi_toolkit.io.dicom.load_dicom_dwi`).
    series_uid : str, optional
        Which raw DWI series, when there are several.
    b0_threshold : float
        s/mm², stored on the series.

    Returns
    -------
    DWISeries
        As dcm2niix wrote it (NIfTI voxel order, FSL b-vectors); ``meta`` is its JSON sidecar.

    Raises
    ------
    DicomError
        dcm2niix is not installed, or it wrote no DWI.

    Examples
    --------
    >>> import tempfile
    >>> from dwi_toolkit.io.dicom._synthetic import write_series
    >>> folder = tempfile.mkdtemp()
    >>> _ = write_series(folder)
    >>> find_dcm2niix() is None or load_with_dcm2niix(folder).shape == (10, 8, 5, 4)
    True
    """
    info = _select(path, series_uid, b0_threshold)
    with tempfile.TemporaryDirectory(prefix="dwi_toolkit_dcm2niix_") as tmp:
        return _load_nifti(_convert(info.files, Path(tmp)), b0_threshold)


@dataclass(frozen=True)
class VerifyReport:
    """Outcome of a comparison with dcm2niix: one row per quantity.

    ``rows`` holds ``(quantity, ours, dcm2niix, max difference, tolerance, agrees)``.

    Examples
    --------
    >>> r = VerifyReport((("b-values", "2", "2", 0.0, 0.01, True),))
    >>> r.ok, r.table().splitlines()[0].split()[0]
    (True, 'quantity')
    """

    rows: tuple
    notes: tuple = ()

    @property
    def ok(self) -> bool:
        """True when every quantity agrees."""
        return all(r[5] for r in self.rows)

    def table(self) -> str:
        """Plain-text table of the comparison."""
        head = f"{'quantity':<12} {'ours':<22} {'dcm2niix':<22} {'max diff':>10} {'tolerance':>10}  result"
        lines = [head]
        for q, a, b, d, tol, ok in self.rows:
            lines.append(f"{q:<12} {a:<22} {b:<22} {d:>10.3g} {tol:>10.3g}  {'agree' if ok else 'DIFFER'}")
        return "\n".join(lines)


def _world(affine, bvecs):
    """FSL image-frame b-vectors -> world (RAS) unit directions."""
    r = np.asarray(affine, float)[:3, :3]
    r = r / np.linalg.norm(r, axis=0)
    v = np.asarray(bvecs, float).copy()
    if np.linalg.det(r) > 0:  # FSL convention: x flipped for a positive determinant
        v[:, 0] = -v[:, 0]
    return v @ r.T


def compare_series(ours, ref) -> VerifyReport:
    """Compare two loads of one series (b-values, world-frame b-vectors, affine, voxels).

    `ours` and `ref` are DWISeries or any objects with ``data``, ``affine``, ``bvals`` (s/mm²)
    and FSL image-frame ``bvecs``.

    Both images are put in closest-canonical (RAS) voxel order first, so a different but
    equivalent on-disk voxel order is not a difference; volume order is.

    Examples
    --------
    >>> import numpy as np
    >>> s = DWISeries(np.ones((2, 2, 2, 2)), np.eye(4), [0, 800], [[0, 0, 0], [1, 0, 0]])
    >>> compare_series(s, s).ok
    True
    """
    import nibabel as nib

    rows = []
    b1, b2 = np.asarray(ours.bvals, float), np.asarray(ref.bvals, float)
    same_n = b1.shape == b2.shape
    db = float(np.max(np.abs(b1 - b2))) if same_n and b1.size else float("inf")
    tol_b = 0.01 + 1e-5 * float(max(b1.max(initial=0), b2.max(initial=0)))
    rows.append(("b-values", f"{b1.size} vols, max {b1.max(initial=0):g}", f"{b2.size} vols, max {b2.max(initial=0):g}",
                 db, tol_b, db <= tol_b))
    notes = []
    if same_n and db > tol_b and np.allclose(np.sort(b1), np.sort(b2), atol=tol_b):
        notes.append("volume order")
    if same_n:
        dw = (b1 > BVEC_MIN_B) & (b2 > BVEC_MIN_B)
        w1, w2 = _world(ours.affine, ours.bvecs[dw]), _world(ref.affine, ref.bvecs[dw])
        n2 = np.linalg.norm(w2, axis=1, keepdims=True)
        w2 = np.divide(w2, n2, out=np.zeros_like(w2), where=n2 > 0)
        dv = np.minimum(np.abs(w1 - w2).max(axis=1), np.abs(w1 + w2).max(axis=1)) if dw.any() else np.zeros(1)
        rows.append(("b-vectors", f"{int(dw.sum())} with b>{BVEC_MIN_B:g}", "world, sign-free", float(dv.max()),
                     1e-3, float(dv.max()) <= 1e-3))
    a = nib.as_closest_canonical(nib.Nifti1Image(np.asarray(ours.data), ours.affine))
    r = nib.as_closest_canonical(nib.Nifti1Image(np.asarray(ref.data), ref.affine))
    da = float(np.max(np.abs(a.affine - r.affine)))
    rows.append(("affine", "4x4 RAS mm", "4x4 RAS mm", da, AFFINE_TOL, da <= AFFINE_TOL))
    if a.shape == r.shape:
        x = np.asanyarray(a.dataobj).astype(np.float64)
        y = np.asanyarray(r.dataobj).astype(np.float64)
        dd = float(np.max(np.abs(x - y))) if x.size else 0.0
        tol = 1e-4 * max(1.0, float(np.abs(y).max()) * 1e-3) + 1e-5 * float(np.abs(y).max())
        rows.append(("voxels", "x".join(map(str, a.shape)), "x".join(map(str, r.shape)), dd, tol, dd <= tol))
    else:
        rows.append(("voxels", "x".join(map(str, a.shape)), "x".join(map(str, r.shape)), float("inf"), 0.0, False))
    return VerifyReport(tuple(rows), tuple(notes))


def verify_with_dcm2niix(
    series: DWISeries, path: str | os.PathLike, *, series_uid: str | None = None,
    b0_threshold: float = DEFAULT_B0_THRESHOLD,
) -> VerifyReport:
    """Convert the files of `series` with dcm2niix and compare with what our reader loaded.

    Parameters
    ----------
    series : DWISeries
        What :func:`~dwi_toolkit.io.dicom.load_dicom_dwi` loaded from `path`.
    path : path-like
        The DICOM folder or file it was loaded from.
    series_uid : str, optional
        As passed to the loader.
    b0_threshold : float
        s/mm².

    Returns
    -------
    VerifyReport
        ``ok`` and a printable ``table()``.

    Raises
    ------
    DicomError
        dcm2niix is not installed (the message says how to install it).

    Examples
    --------
    >>> import tempfile
    >>> from dwi_toolkit.io.dicom import load_dicom_dwi
    >>> from dwi_toolkit.io.dicom._synthetic import write_series
    >>> folder = tempfile.mkdtemp()
    >>> _ = write_series(folder)
    >>> find_dcm2niix() is None or verify_with_dcm2niix(load_dicom_dwi(folder), folder).ok
    True
    """
    info = _select(path, series_uid, b0_threshold)
    report = verify_files(series, info.files)
    logger.info("dcm2niix cross-check of '%s': %s\n%s", info.description,
                "agree" if report.ok else "DIFFER", report.table())
    return report


def verify_files(series: DWISeries, files) -> VerifyReport:
    """Convert exactly `files` with dcm2niix and compare with `series` (no folder scan).

    Parameters
    ----------
    series : DWISeries
        What our reader loaded from `files`.
    files : sequence of path-like
        The DICOM files of the series (e.g. ``DicomSeriesInfo.files``).

    Returns
    -------
    VerifyReport

    Examples
    --------
    >>> import tempfile
    >>> from dwi_toolkit.io.dicom import find_dwi_series, load_dicom_series
    >>> from dwi_toolkit.io.dicom._synthetic import write_series
    >>> folder = tempfile.mkdtemp()
    >>> _ = write_series(folder)
    >>> (info,) = [i for i in find_dwi_series(folder) if i.role == "dwi"]
    >>> find_dcm2niix() is None or verify_files(load_dicom_series(info), info.files).ok
    True
    """
    import nibabel as nib

    with tempfile.TemporaryDirectory(prefix="dwi_toolkit_verify_") as tmp:
        nii = _convert(files, Path(tmp))
        img = nib.load(str(nii))
        data = np.asanyarray(img.dataobj)
        data = data[..., None] if data.ndim == 3 else data
        bval_f = nii.with_suffix(".bval")
        bvals = np.loadtxt(bval_f, ndmin=1) if bval_f.exists() else np.zeros(data.shape[3])
        bvecs = np.loadtxt(nii.with_suffix(".bvec"), ndmin=2).T if bval_f.exists() else np.zeros((data.shape[3], 3))
        # raw files, not a DWISeries: what dcm2niix wrote, without our normalisation
        ref = SimpleNamespace(data=data.copy(), affine=img.affine, bvals=bvals, bvecs=bvecs.reshape(-1, 3))
    return compare_series(series, ref)
