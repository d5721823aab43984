"""One entry point for loading a DWI series from any supported input."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..core.gradients import DEFAULT_B0_THRESHOLD
from ..core.image import DWISeries
from ..errors import InputDataError
from ._sniff import is_nifti, looks_like_dicom
from .nifti import load_nifti_dwi

__all__ = ["load_dwi", "load_analysis_mask", "is_nifti", "looks_like_dicom", "nifti_dwi_candidates"]


def nifti_dwi_candidates(folder: str | os.PathLike) -> list[Path]:
    """NIfTI files under `folder` (any depth) that have a ``.bval`` file beside them.

    Examples
    --------
    >>> import tempfile
    >>> nifti_dwi_candidates(tempfile.mkdtemp())
    []
    """
    from .gradients import find_gradient_files

    found = []
    for f in sorted(Path(folder).rglob("*.nii*")):
        if f.is_file() and is_nifti(f) and find_gradient_files(f)[0] is not None:
            found.append(f)
    return found


def load_dwi(
    path: str | os.PathLike,
    *,
    bvals: str | os.PathLike | np.ndarray | None = None,
    bvecs: str | os.PathLike | np.ndarray | None = None,
    sidecar: str | os.PathLike | None = None,
    series_uid: str | None = None,
    b0_threshold: float = DEFAULT_B0_THRESHOLD,
    keep_phi: bool = False,
    backend: str = "native",
    verify: str | None = None,
    scrub_text: bool | None = None,
) -> DWISeries:
    """Load a DWI series from NIfTI (+ ``.bval``/``.bvec``, BIDS sidecar) or DICOM.

    Parameters
    ----------
    path : path-like
        A ``.nii``/``.nii.gz`` file, a DICOM file, or a folder. A folder that holds exactly one
        NIfTI with a ``.bval`` beside it (any depth) loads that file; otherwise its DICOM files
        (any depth) are read.
    bvals, bvecs : path-like or array, optional
        NIfTI only: gradient files or arrays when they are not beside the image.
    sidecar : path-like, optional
        NIfTI only: BIDS JSON sidecar when it is not ``<stem>.json``.
    series_uid : str, optional
        DICOM only: which series to load when a folder holds several raw DWI series.
    b0_threshold : float, optional
        s/mm²; volumes at or below count as b=0 (default 50).
    keep_phi : bool, optional
        DICOM only: keep patient identifiers in ``meta`` (off by default).
    backend : {"native", "dcm2niix"}, optional
        DICOM only: ``"dcm2niix"`` converts with the dcm2niix program and loads its output.
    verify : {None, "dcm2niix"}, optional
        DICOM only: cross-check our reader against dcm2niix (see
        :func:`dwi_toolkit.io.dicom.load_dicom_dwi`).
    scrub_text : bool, optional
        Mask identifiers typed into free-text fields (SeriesDescription, ProtocolName, ...) of the
        metadata (docs/robustness.md). Default: on, off with ``keep_phi=True``.

    Returns
    -------
    DWISeries
        ``data`` (X, Y, Z, N), ``affine`` voxel → RAS+ mm, ``bvals`` s/mm², ``bvecs`` (N, 3) in
        the image frame (FSL convention), de-identified ``meta``.

    Raises
    ------
    InputDataError
        The path does not exist or is not a supported format.
    GradientError
        Gradients missing or inconsistent with the data.
    DicomError
        A DICOM series cannot be assembled.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> import numpy as np
    >>> from dwi_toolkit.core.image import DWISeries
    >>> tmp = Path(tempfile.mkdtemp())
    >>> b = np.array([0.0, 800.0])
    >>> s = DWISeries(np.full((4, 3, 2, 2), 100.0) * np.exp(-b * 1e-3), np.diag([2.0, 2.0, 4.0, 1.0]), b,
    ...               [[0, 0, 0], [0, 0, 1]])
    >>> _ = s.save(tmp / "sub-01_dwi.nii.gz")             # NIfTI + .bval/.bvec/.json
    >>> load_dwi(tmp / "sub-01_dwi.nii.gz")
    DWISeries(shape=(4, 3, 2, 2), voxel_mm=(2, 2, 4), orientation='RAS', shells=[0 x1, 800 x1])
    """
    from ._guard import reading
    from ._scrub import resolve_scrub

    p = Path(path)
    if not p.exists():
        raise InputDataError(f"no such file or folder: {p}")
    with reading(p, "a DWI series"):
        return _load_dwi(p, bvals=bvals, bvecs=bvecs, sidecar=sidecar, series_uid=series_uid,
                         b0_threshold=b0_threshold, keep_phi=keep_phi, backend=backend, verify=verify,
                         scrub_text=resolve_scrub(scrub_text, keep_phi))


def _load_dwi(p: Path, *, bvals, bvecs, sidecar, series_uid, b0_threshold, keep_phi, backend,
              verify, scrub_text) -> DWISeries:
    """Body of :func:`load_dwi` (dispatch on the kind of input)."""
    if p.is_file() and is_nifti(p):
        return load_nifti_dwi(p, bvals=bvals, bvecs=bvecs, sidecar=sidecar, b0_threshold=b0_threshold,
                              scrub_text=scrub_text)
    if p.is_dir() and series_uid is None:
        candidates = nifti_dwi_candidates(p)
        if len(candidates) == 1:
            return load_nifti_dwi(candidates[0], bvals=bvals, bvecs=bvecs, sidecar=sidecar,
                                  b0_threshold=b0_threshold, scrub_text=scrub_text)
        if len(candidates) > 1:
            listing = ", ".join(str(c.relative_to(p)) for c in candidates[:10])
            raise InputDataError(
                f"{p} holds {len(candidates)} NIfTI DWI series with .bval/.bvec ({listing}); "
                "pass the file you want to load."
            )
    if p.is_dir() or looks_like_dicom(p):
        from .dicom import load_dicom_dwi  # pydicom is imported only when DICOM is read

        return load_dicom_dwi(p, series_uid=series_uid, b0_threshold=b0_threshold, keep_phi=keep_phi,
                              backend=backend, verify=verify, scrub_text=scrub_text)
    raise InputDataError(
        f"{p} is neither NIfTI (.nii/.nii.gz) nor DICOM; dwi_toolkit reads NIfTI with .bval/.bvec "
        "files, DICOM files and folders of DICOM files."
    )


def load_analysis_mask(spec: str | os.PathLike | None, series: DWISeries):
    """The analysis mask named by `spec`: ``"auto"``, ``"none"``, ``"otsu"`` or a NIfTI mask path.

    One policy for every command (``adc``, ``ivim``, ``dti``, ``analyze``, the pipeline):

    - ``"auto"`` (the default everywhere): voxels clearly above the background on the mean b=0
      image (:func:`dwi_toolkit.core.masks.signal_mask`); every voxel when the series has no b=0.
    - ``"none"`` or None: every voxel (returns None).
    - ``"otsu"``: dipy's ``median_otsu`` on the mean b=0 image (radius 2, one pass).
    - a path: a NIfTI mask on the DWI grid (non-zero = analysed).

    Returns
    -------
    ndarray of bool, shape (X, Y, Z), or None (every voxel)

    Raises
    ------
    InputDataError
        The mask file's grid differs from the series'.

    Examples
    --------
    >>> import numpy as np
    >>> from dwi_toolkit.core.image import DWISeries
    >>> data = np.zeros((6, 6, 2, 2)); data[1:5, 1:5, :, 0] = 100; data[1:5, 1:5, :, 1] = 40
    >>> s = DWISeries(data, np.eye(4), [0, 800], [[0, 0, 0], [1, 0, 0]])
    >>> int(load_analysis_mask("auto", s).sum()), load_analysis_mask("none", s)
    (32, None)
    """
    from ..core.masks import check_mask, signal_mask

    if spec is None or (isinstance(spec, str) and spec.lower() == "none"):
        return None
    if isinstance(spec, str) and spec.lower() == "auto":
        return signal_mask(series.mean_b0()) if series.b0_mask.any() else None
    if isinstance(spec, str) and spec.lower() == "otsu":
        from dipy.segment.mask import median_otsu

        return median_otsu(series.mean_b0(), median_radius=2, numpass=1)[1]
    from .nifti import load_map

    m = load_map(spec)
    if tuple(m.shape) != tuple(series.spatial_shape):
        raise InputDataError(f"mask {spec} has shape {tuple(m.shape)} but the DWI grid is "
                             f"{tuple(series.spatial_shape)}; resample the mask onto the DWI first.")
    return check_mask(np.asarray(m.data) > 0, series.spatial_shape)
