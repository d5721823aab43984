"""DICOM loading for every vendor: discovery, geometry, vendor diffusion conventions, assembly.

Public entry points:

- :func:`find_dwi_series` — what series are in a folder (header-only).
- :func:`load_dicom_dwi` — one raw DWI series as a :class:`~dwi_toolkit.core.image.DWISeries`
  (called by :func:`dwi_toolkit.io.loading.load_dwi`).
- :func:`load_scanner_adc` — the scanner's own ADC map as a ParameterMap in mm²/s.

Output geometry and b-vectors follow dcm2niix (see docs/dicom.md): voxel axes x = DICOM column
index, y = rows bottom-up, z = ascending along ``row × col``; affine voxel → RAS+ mm; b-vectors
unit vectors in that voxel frame (FSL ``.bvec`` convention), b-values in s/mm².
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from ...core.gradients import DEFAULT_B0_THRESHOLD
from ...core.image import DWISeries, ParameterMap
from ...errors import DicomError
from .discovery import DicomSeriesInfo, find_dwi_series, scan_files
from .selection import _listing, _series_infos, select_series

__all__ = ["load_dicom_dwi", "load_dicom_series", "load_scanner_adc", "load_scanner_adc_series", "find_dwi_series",
           "DicomSeriesInfo", "select_series", "scanner_adc_factor"]

logger = logging.getLogger(__name__)
_HINT = "a file of the series is damaged or non-conformant; re-export it from the scanner/PACS"


def _frames_of(info: DicomSeriesInfo):
    from .series import expand_file

    frames = []
    for f in info._headers:
        frames.extend(expand_file(f))
    return frames


def load_dicom_dwi(
    path: str | os.PathLike,
    *,
    series_uid: str | None = None,
    b0_threshold: float = DEFAULT_B0_THRESHOLD,
    keep_phi: bool = False,
    backend: str = "native",
    verify: str | None = None,
    scrub_text: bool | None = None,
) -> DWISeries:
    """Load one raw DWI series from a DICOM folder (any depth) or file.

    Parameters
    ----------
    path : path-like
        Folder of DICOM files, or one file (its series is loaded from the file's folder).
    series_uid : str, optional
        SeriesInstanceUID of the series to load when several raw DWI series are present.
    b0_threshold : float
        s/mm²; stored on the series (volumes at or below count as b=0).
    keep_phi : bool
        Keep patient/visit identifiers in ``meta`` (off by default).
    backend : {"native", "dcm2niix"}
        ``"dcm2niix"`` converts the series with the dcm2niix program into a temporary folder and
        loads its NIfTI (needs ``pip install dcm2niix``).
    verify : {None, "dcm2niix"}
        Also convert with dcm2niix and compare b-values, b-vectors (world frame, sign-free),
        affine and voxels; a difference is reported as a :class:`~dwi_toolkit.errors.DicomWarning`
        holding the comparison table. ``meta["Dcm2niixAgreement"]`` is True/False.
    scrub_text : bool, optional
        Mask identifiers typed into free-text fields (docs/robustness.md); default on, off with
        `keep_phi`.

    Returns
    -------
    DWISeries
        ``data`` (X, Y, Z, N) (stored integers, or float32 after rescale slope/intercept or
        Philips precise scaling), ``affine`` voxel → RAS+ mm, ``bvals`` s/mm², ``bvecs`` unit
        vectors in the image frame (FSL convention, as dcm2niix writes them), ``meta``
        BIDS-sidecar fields.

    Raises
    ------
    DicomError
        No raw DWI series, several of them without `series_uid`, or a series that cannot be
        assembled (the message names the missing tag or slice).

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> import numpy as np
    >>> from dwi_toolkit.core.image import DWISeries
    >>> from dwi_toolkit.io.dicom_write import write_dicom_series
    >>> tmp = Path(tempfile.mkdtemp())
    >>> b = np.array([0.0, 800.0])
    >>> s = DWISeries(np.full((4, 3, 2, 2), 100.0) * np.exp(-b * 1e-3), np.diag([2.0, 2.0, 4.0, 1.0]), b,
    ...               [[0, 0, 0], [0, 0, 1]])
    >>> files = write_dicom_series(s, tmp / "dicom")
    >>> series = load_dicom_dwi(tmp / "dicom")
    >>> series.shape, series.bvals.tolist()
    ((4, 3, 2, 2), [0.0, 800.0])
    """
    p = Path(path)
    if backend not in ("native", "dcm2niix") or verify not in (None, "dcm2niix"):
        raise DicomError(f"backend must be 'native' or 'dcm2niix' (got {backend!r}) and verify None or "
                         f"'dcm2niix' (got {verify!r}).")
    if backend == "dcm2niix":
        from .dcm2niix import load_with_dcm2niix

        return load_with_dcm2niix(p, series_uid=series_uid, b0_threshold=b0_threshold)
    from .._guard import reading

    try:
        with reading(p, "a DICOM series", error=DicomError, hint=_HINT):
            infos, _uid = _series_infos(p, b0_threshold=b0_threshold)
            info = select_series(infos, series_uid=series_uid, role="dwi", path=p)
            series = load_dicom_series(info, b0_threshold=b0_threshold, keep_phi=keep_phi, scrub_text=scrub_text)
    except DicomError as err:
        if "several" in str(err) or "series_uid=" in str(err):
            raise
        raise DicomError(f"{err}\nIf dcm2niix converts this series, load it with backend='dcm2niix' "
                         "(command line: --backend dcm2niix; pipeline: backend = \"dcm2niix\" in the load step).") from err
    if verify == "dcm2niix":
        series = _verified(series, p, series_uid, b0_threshold)
    return series


def _verified(series: DWISeries, p: Path, series_uid, b0_threshold) -> DWISeries:
    import warnings

    from ...errors import DicomWarning
    from .dcm2niix import verify_with_dcm2niix

    report = verify_with_dcm2niix(series, p, series_uid=series_uid, b0_threshold=b0_threshold)
    if not report.ok:
        warnings.warn(f"{p}: our DICOM reader and dcm2niix differ:\n{report.table()}", DicomWarning, stacklevel=3)
    meta = dict(series.meta, Dcm2niixAgreement=report.ok)
    return DWISeries(series.data, series.affine, series.bvals, series.bvecs, meta=meta,
                     b0_threshold=series.b0_threshold)


def load_dicom_series(
    info: DicomSeriesInfo, *, b0_threshold: float = DEFAULT_B0_THRESHOLD, keep_phi: bool = False,
    scrub_text: bool | None = None,
) -> DWISeries:
    """Load a raw DWI series described by :func:`find_dwi_series` (no second folder scan).

    Examples
    --------
    >>> import tempfile
    >>> from dwi_toolkit.io.dicom._synthetic import write_series
    >>> folder = tempfile.mkdtemp()
    >>> _ = write_series(folder)
    >>> [load_dicom_series(i).shape for i in find_dwi_series(folder) if i.role == "dwi"]
    [(10, 8, 5, 4)]
    """
    from .series import assemble
    from .vendors import acquisition_meta, vendor_of

    if info.role != "dwi":
        raise DicomError(f"series {info.series_uid} ('{info.description}') is '{info.role}', not raw DWI.")
    from .._guard import reading
    from .sidecar import dcm2niix_keys

    with reading(info.files[0].parent if info.files else "?", "a DICOM series", error=DicomError, hint=_HINT):
        res = assemble(_frames_of(info), diffusion=True)
        ds = res.first.ds
        vendor = vendor_of(ds)
        meta = acquisition_meta(ds, vendor, res.first.csa, keep_phi=keep_phi)
        dcm2niix_keys(meta, ds, vendor, res.first.csa, res.data.shape)
    from .._scrub import resolve_scrub, scrub_meta

    if resolve_scrub(scrub_text, keep_phi):  # identifiers typed into SeriesDescription/ProtocolName/...
        meta = scrub_meta(meta, ds)
    meta["ConversionSoftware"] = "dwi_toolkit"
    if res.n_dropped_isotropic:
        meta["DroppedIsotropicFrames"] = res.n_dropped_isotropic
    logger.info("loaded DICOM series '%s' (%d volumes)", info.description, res.data.shape[3])
    return DWISeries(res.data, res.affine, res.bvals, res.bvecs, meta=_strip(meta, keep_phi),
                     b0_threshold=b0_threshold)


def load_scanner_adc(path: str | os.PathLike, *, series_uid: str | None = None) -> ParameterMap:
    """Load the scanner's own ADC map as a ParameterMap in mm²/s.

    Vendors store ADC as integers scaled to 10⁻⁶ mm²/s (Siemens, GE, Canon, UIH; Philips after
    its rescale slope). The unit is inferred from the magnitude of the values
    (:func:`scanner_adc_factor`).

    Parameters
    ----------
    path : path-like
        Folder holding the ADC series (or one file of it).
    series_uid : str, optional
        When several ADC series are present.

    Returns
    -------
    ParameterMap
        ``name="scanner_adc"``, ``unit="mm^2/s"``, same voxel order/affine convention as
        :func:`load_dicom_dwi` so it overlays the DWI of the same acquisition.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> from dwi_toolkit.io.dicom._synthetic import write_series
    >>> tmp = Path(tempfile.mkdtemp())
    >>> _ = write_series(tmp / "adc", description="ADC", bvals=(0,), bvecs_lps=((0, 0, 0),),
    ...                  image_type=("DERIVED", "PRIMARY", "DIFFUSION", "ADC"))
    >>> adc = load_scanner_adc(tmp)          # stored integers of 1e-6 mm²/s -> mm²/s
    >>> adc.name, adc.unit, adc.shape
    ('scanner_adc', 'mm^2/s', (10, 8, 5))
    """
    from .._guard import reading

    p = Path(path)
    with reading(p, "a DICOM ADC series", error=DicomError, hint=_HINT):
        infos, _uid = _series_infos(p, b0_threshold=DEFAULT_B0_THRESHOLD)
        info = select_series(infos, series_uid=series_uid, role="adc", path=p)
    return load_scanner_adc_series(info)


def load_scanner_adc_series(info: DicomSeriesInfo) -> ParameterMap:
    """:func:`load_scanner_adc` for a series described by :func:`find_dwi_series` (no second
    folder scan).

    Examples
    --------
    >>> import tempfile
    >>> from dwi_toolkit.io.dicom._synthetic import write_series
    >>> tmp = tempfile.mkdtemp()
    >>> _ = write_series(tmp, description="ADC", bvals=(0,), bvecs_lps=((0, 0, 0),),
    ...                  image_type=("DERIVED", "PRIMARY", "DIFFUSION", "ADC"))
    >>> [load_scanner_adc_series(i).unit for i in find_dwi_series(tmp) if i.role == "adc"]
    ['mm^2/s']
    """
    from .._guard import reading
    from .series import assemble

    if info.role != "adc":
        raise DicomError(f"series {info.series_uid} ('{info.description}') is '{info.role}', not a scanner ADC map.")
    with reading(info.files[0].parent if info.files else "?", "a DICOM ADC series", error=DicomError, hint=_HINT):
        res = assemble(_frames_of(info), diffusion=False)
    data = np.asarray(res.data, dtype=np.float64)
    if data.shape[3] != 1:
        raise DicomError(f"ADC series '{info.description}' has {data.shape[3]} images per slice; expected 1.")
    data = data[..., 0]
    factor = scanner_adc_factor(data)
    logger.info("scanner ADC '%s': factor %g from stored units to mm^2/s", info.description, factor)
    return ParameterMap((data * factor).astype(np.float32), res.affine, "scanner_adc", "mm^2/s")


def scanner_adc_factor(data: np.ndarray) -> float:
    """Factor from a scanner ADC map's stored values to mm²/s, inferred from their magnitude.

    Tissue ADC is about 0.3–3.0 × 10⁻³ mm²/s (free water at 37 °C ≈ 3.0), so the median positive
    value tells the unit: above 5 (more than free water in 10⁻³ mm²/s) it is 10⁻⁶ mm²/s (integers
    such as 850; Siemens, GE, Canon, UIH), above 0.05 it is 10⁻³ mm²/s (values such as 0.85),
    else mm²/s.

    Examples
    --------
    >>> [scanner_adc_factor(np.array([v])) for v in (850.0, 0.85, 0.85e-3)]
    [1e-06, 0.001, 1.0]
    """
    pos = data[np.isfinite(data) & (data > 0)]
    med = float(np.median(pos)) if pos.size else 0.0
    return 1e-6 if med > 5 else 1e-3 if med > 0.05 else 1.0


def _strip(meta, keep_phi):
    from .._phi import strip_phi

    return dict(meta) if keep_phi else strip_phi(meta)
