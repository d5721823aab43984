"""The scanner's own ADC map for the QC comparison: found beside the DWI or given, on the DWI grid.

Scanners store an ADC map as its own DICOM series next to the diffusion series (ImageType
containing ``ADC``, e.g. Siemens ``DERIVED\\PRIMARY\\DIFFUSION\\ADC``; a derived series whose
description names the ADC, as GE and Philips write it; see
:func:`dwi_toolkit.io.dicom.discovery.find_dwi_series`), as integers in 10⁻⁶ mm²/s. The report
compares our ADC with it inside the ROIs (:func:`dwi_toolkit.qc.flags.scanner_adc_flags`).

:func:`scanner_adc_on_grid` returns the map in mm²/s on the DWI grid (resampled with trilinear
interpolation when the grids differ) and a record of where it came from for the report.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from ..core.image import ParameterMap
from ..errors import DicomError, InputDataError
from ._sniff import is_nifti

__all__ = ["scanner_adc_on_grid", "SCANNER_ADC_SOURCES"]

logger = logging.getLogger(__name__)

#: Values of the ``scanner_adc`` option besides a path: look beside a DICOM DWI, or do not compare.
SCANNER_ADC_SOURCES = ("auto", "none")


def scanner_adc_on_grid(
    source: str | os.PathLike | None,
    dwi_path: str | os.PathLike,
    shape: tuple[int, ...],
    affine: np.ndarray,
) -> tuple[ParameterMap | None, dict[str, Any]]:
    """The scanner's ADC map (mm²/s) on the DWI grid, and where it came from.

    Parameters
    ----------
    source : {"auto", "none"} or path-like or None
        ``"auto"`` (and None): a DICOM series with role ``adc`` in the DWI's DICOM folder or, when
        that has none, in its sibling folders (nothing for a NIfTI DWI). ``"none"``: no comparison. A path: a DICOM folder/file holding the ADC
        series, or a NIfTI map in mm²/s, 10⁻³ mm²/s or 10⁻⁶ mm²/s (unit inferred from the values,
        :func:`dwi_toolkit.io.dicom.scanner_adc_factor`).
    dwi_path : path-like
        The DWI input (a DICOM folder or file, or a NIfTI).
    shape : (X, Y, Z)
        DWI grid.
    affine : ndarray (4, 4)
        Voxel → RAS+ mm of the DWI grid.

    Returns
    -------
    (ParameterMap or None, dict)
        The map (``name="scanner_adc"``, mm²/s) or None, and ``{"source", "found", "description",
        "resampled", "note"}`` (``description``: the ADC series' description, when DICOM).

    Raises
    ------
    InputDataError
        A given path that does not exist or holds no ADC map (a DicomError for DICOM).

    Examples
    --------
    >>> import tempfile
    >>> from dwi_toolkit.io.dicom._synthetic import write_series
    >>> tmp = Path(tempfile.mkdtemp())
    >>> _ = write_series(tmp / "dwi")
    >>> _ = write_series(tmp / "adc", description="ADC", bvals=(0,), bvecs_lps=((0, 0, 0),),
    ...                  image_type=("DERIVED", "PRIMARY", "DIFFUSION", "ADC"))
    >>> from dwi_toolkit.io.loading import load_dwi
    >>> s = load_dwi(tmp / "dwi")
    >>> m, info = scanner_adc_on_grid("auto", tmp / "dwi", s.spatial_shape, s.affine)
    >>> m.shape == s.spatial_shape, m.unit, info["found"], info["resampled"]
    (True, 'mm^2/s', True, False)
    >>> scanner_adc_on_grid("none", tmp / "dwi", s.spatial_shape, s.affine)[0] is None
    True
    """
    src = "auto" if source is None else source
    if isinstance(src, str) and src.lower() in SCANNER_ADC_SOURCES:
        if src.lower() == "none":
            return None, {"source": "none", "found": False, "note": "not compared (scanner_adc='none')"}
        found = _find_beside(Path(dwi_path))
        if found is None:
            note = ("not looked up for a NIfTI DWI (give the scanner's map with the scanner ADC option, "
                    "--scanner-adc PATH)" if is_nifti(Path(dwi_path)) else
                    "no scanner ADC series (DICOM ImageType ADC) beside the DWI series")
            return None, {"source": "auto", "found": False, "note": note}
        from .dicom import load_scanner_adc_series

        series, desc = found
        adc, label = load_scanner_adc_series(series), "auto"
    else:
        path, label, desc = Path(src), "path", None
        if not path.exists():
            raise InputDataError(f"scanner ADC map {path} does not exist; give a DICOM folder of the ADC "
                                 "series or a NIfTI map, or 'auto'/'none'.")
        adc = _load(path)
    same = adc.shape[:3] == tuple(shape[:3]) and np.allclose(adc.affine, affine, atol=1e-3)
    data = np.asarray(adc.data, float) if same else _resample(adc, tuple(shape[:3]), np.asarray(affine, float))
    info = {"source": label, "found": True, "description": desc, "resampled": not same,
            "note": "on the DWI grid" if same else "resampled (trilinear) to the DWI grid"}
    logger.info("scanner ADC map found (%s, %s)", label, info["note"])
    return ParameterMap(data.astype(np.float32), np.asarray(affine, float), "scanner_adc", "mm^2/s"), info


def _find_beside(dwi_path: Path, max_siblings: int = 20) -> tuple[Any, str] | None:
    """(DicomSeriesInfo, "#number description") of an ADC series beside the DICOM DWI, or None.

    Looks in the DWI's folder, then, when that holds none, in each sibling folder when the parent
    is a small scan folder (at most `max_siblings` entries: one folder per series, as scanners
    export them), never further up. Only headers are read.
    """
    if is_nifti(dwi_path) or not dwi_path.exists():
        return None
    folder = dwi_path if dwi_path.is_dir() else dwi_path.parent
    places = [folder]
    parent = folder.parent
    if parent != folder:
        entries = list(parent.iterdir())
        if len(entries) <= max_siblings:
            places += sorted(e for e in entries if e.is_dir() and e != folder)
    for place in places:
        found = _adc_series_in(place)
        if found is not None:
            return found
    return None


def _adc_series_in(place: Path) -> tuple[Any, str] | None:
    """The first ADC series under `place` (warning when there are several), or None."""
    from .dicom import find_dwi_series

    try:
        adcs = [s for s in find_dwi_series(place) if s.role == "adc"]
    except DicomError as err:
        logger.info("no scanner ADC looked up in %s: %s", place, err)
        return None
    if len(adcs) > 1:
        logger.warning("%d scanner ADC series beside the DWI; comparing with #%s '%s' (give another "
                       "with the scanner ADC option)", len(adcs), adcs[0].series_number, adcs[0].description)
    return (adcs[0], f"#{adcs[0].series_number} {adcs[0].description}".strip()) if adcs else None


def _load(path: Path) -> ParameterMap:
    """The ADC map at a given `path` (DICOM series or NIfTI) in mm²/s."""
    from .dicom import load_scanner_adc, scanner_adc_factor

    if not is_nifti(path):
        return load_scanner_adc(path)
    from .nifti import load_map

    m = load_map(path)  # one 3-D map (a singleton 4th axis dropped), with the reader's guards
    data = np.asarray(m.data, dtype=np.float64)
    return ParameterMap(data * scanner_adc_factor(data), m.affine, "scanner_adc", "mm^2/s")


def _resample(adc: ParameterMap, shape: tuple[int, int, int], affine: np.ndarray) -> np.ndarray:
    """`adc` sampled at the voxel centres of the target grid (trilinear; NaN outside its field of view)."""
    from scipy.ndimage import map_coordinates

    ijk = np.indices(shape).reshape(3, -1)
    world = affine @ np.vstack([ijk, np.ones(ijk.shape[1])])
    src = (np.linalg.inv(np.asarray(adc.affine, float)) @ world)[:3]
    vals = map_coordinates(np.asarray(adc.data, float), src, order=1, mode="constant", cval=np.nan)
    return vals.reshape(shape)
