"""Write a :class:`~dwi_toolkit.core.image.DWISeries` as a classic DICOM series (one file per slice
and volume) — for sample cohorts, tests and demos, never for clinical use.

Files are MR Image Storage (1.2.840.10008.5.1.4.1.1.4), explicit VR little endian, with the
standard diffusion attributes (0018,9087) *Diffusion b-value* (s/mm²), (0018,9089) *Diffusion
Gradient Orientation* and (0018,9075) *Diffusion Directionality*, and the usual geometry.

Frame conversion (what the readers, e.g. dcm2niix, invert):

- World coordinates: dwi_toolkit uses RAS+ mm, DICOM the patient frame LPS mm; a point or a
  direction converts with ``diag(-1, -1, 1)``. With ``A`` the voxel → RAS+ affine, the voxel →
  LPS affine is ``A_lps = diag(-1, -1, 1, 1) @ A``.
- Pixels: voxel ``(i, j, k)`` is DICOM column ``i``, row ``j`` of slice ``k``, so a slice's
  pixel array is ``data[:, :, k, v].T`` (Rows = Y, Columns = X).
- ImageOrientationPatient = unit columns 0 and 1 of ``A_lps`` (the row direction, i.e. towards
  increasing column index, then the column direction); PixelSpacing = ``[|A[:, 1]|, |A[:, 0]|]``
  (row spacing first); ImagePositionPatient of slice ``k`` = ``A_lps @ (0, 0, k, 1)``;
  SliceThickness = SpacingBetweenSlices = ``|A[:, 2]|``.
- Gradients: the b-vectors of a DWISeries are unit vectors in the image frame with FSL's
  convention (x flipped when ``det(A) > 0``). The voxel-frame direction ``d`` (FSL x un-flipped)
  becomes the world direction ``R @ d`` with ``R`` the column-normalised rotation of ``A``, then
  LPS as above. (0018,9089) is written for every diffusion-weighted volume.
- Intensities: stored as unsigned 16-bit with (0028,1053) RescaleSlope / (0028,1052)
  RescaleIntercept chosen so that ``stored · slope + intercept`` reproduces the data to within
  half a step (slope 1, intercept 0 for integer data in range).

Patient identifiers are the placeholders you pass (default ``Anonymous``).

Examples
--------
>>> import tempfile, numpy as np
>>> from dwi_toolkit.core.image import DWISeries
>>> s = DWISeries(np.ones((4, 3, 2, 2)) * 100, np.diag([-2.0, 2.0, 4.0, 1.0]), np.array([0.0, 800.0]),
...               np.array([[0, 0, 0], [1.0, 0, 0]]))
>>> files = write_dicom_series(s, tempfile.mkdtemp())
>>> len(files)
4
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..core.image import DWISeries
from ..errors import InputDataError

__all__ = ["write_dicom_series", "DicomStyle", "LPS_FROM_RAS", "bvecs_to_lps"]

#: RAS+ ↔ LPS for points and directions (its own inverse).
LPS_FROM_RAS = np.diag([-1.0, -1.0, 1.0])
_MR_STORAGE = "1.2.840.10008.5.1.4.1.1.4"
_UID_ROOT = "1.2.826.0.1.3680043.8.498."  # pydicom's example root


def _uid(*parts: Any) -> str:
    """A deterministic UID under pydicom's root from the given parts."""
    digest = int(hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()[:30], 16)
    return (_UID_ROOT + str(digest))[:64]


def bvecs_to_lps(bvecs: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """FSL-convention image-frame b-vectors (N, 3) → unit directions in the LPS patient frame.

    Examples
    --------
    >>> las = np.diag([-2.0, 2.0, 4.0, 1.0])   # det < 0: FSL x is the voxel x
    >>> bvecs_to_lps(np.array([[1.0, 0, 0]]), las).tolist()   # voxel +x = world -x (L) = LPS +x
    [[1.0, 0.0, 0.0]]
    """
    from ..core.gradients import bvec_frame_to_world

    world = np.asarray(bvecs, float) @ bvec_frame_to_world(affine).T
    n = np.linalg.norm(world, axis=1, keepdims=True)
    world = np.divide(world, n, out=np.zeros_like(world), where=n > 0)
    return world @ LPS_FROM_RAS.T


@dataclass(frozen=True)
class DicomStyle:
    """Vendor conventions of the written files (defaults: standard attributes, HFS).

    Attributes
    ----------
    encoding : {"standard", "ge", "philips"}
        Where the diffusion encoding goes: standard (0018,9087)/(0018,9089)/(0018,9075); GE
        private (0043,1039) and (0019,10BB/BC/BD); Philips private (2001,1003) and
        (2005,10B0/B1/B2).
    vectors : sequence of 3-vectors, optional
        Directions written verbatim, one per volume (patient LPS frame for standard/Philips, GE
        logical frame for GE). Default: the series' b-vectors converted to LPS.
    patient_position : str
        (0018,5100), e.g. ``HFS``, ``FFS``.
    phase : {"COL", "ROW"}
        (0018,1312) InPlanePhaseEncodingDirection.
    image_type : tuple of str
        (0008,0008).
    descending : bool
        Number instances from the highest slice position down (acquisition order).
    series_uid : str, optional
        SeriesInstanceUID (default: derived from the study seed and series number).
    philips_scaling : (rescale slope, rescale intercept, scale slope), optional
        Philips RescaleSlope/Intercept and private ScaleSlope (2005,100E) written as given.

    Examples
    --------
    >>> DicomStyle(encoding="ge", phase="ROW").encoding
    'ge'
    """

    encoding: str = "standard"
    vectors: tuple | None = None
    patient_position: str = "HFS"
    phase: str = "COL"
    image_type: tuple = ("ORIGINAL", "PRIMARY", "DIFFUSION", "NONE")
    descending: bool = False
    series_uid: str | None = None
    philips_scaling: tuple | None = None


def _stored_pixels(data: np.ndarray) -> tuple[float, np.ndarray]:
    """(rescale slope, uint16 stored values) reproducing `data` within half a step."""
    vmax = float(data.max()) if data.size else 0.0
    integer = np.issubdtype(data.dtype, np.integer) or bool(np.all(data == np.round(data)))
    if integer and vmax <= 65535:
        return 1.0, np.rint(data).astype(np.uint16)
    slope = vmax / 65000.0 if vmax > 0 else 1.0
    return slope, np.clip(np.rint(data / slope), 0, 65535).astype(np.uint16)


def _slice_geometry(affine: np.ndarray):
    """(voxel -> LPS affine, voxel sizes, row direction, column direction); refuses sheared grids."""
    aff = np.asarray(affine, float)
    a_lps = np.diag([-1.0, -1.0, 1.0, 1.0]) @ aff
    sizes = np.linalg.norm(aff[:3, :3], axis=0)
    row_dir, col_dir = a_lps[:3, 0] / sizes[0], a_lps[:3, 1] / sizes[1]
    normal = np.cross(row_dir, col_dir)
    if abs(abs(float(normal @ (a_lps[:3, 2] / sizes[2]))) - 1.0) > 1e-4:
        raise InputDataError("the affine's slice axis is not perpendicular to the slice plane (sheared grid).")
    return a_lps, sizes, row_dir, col_dir


def _new_dataset(path: Path, sop_class: str, sop_uid: str):
    """An empty Part-10 dataset (explicit VR little endian) for `path`; write it with :func:`_save`."""
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian

    fmeta = FileMetaDataset()
    fmeta.MediaStorageSOPClassUID = sop_class
    fmeta.MediaStorageSOPInstanceUID = sop_uid
    fmeta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=fmeta, preamble=b"\0" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID = sop_class, sop_uid
    ds.Modality = "MR"
    return ds


def _put_pixel_module(ds, rows: int, cols: int) -> None:
    """Rows/Columns and the unsigned 16-bit monochrome pixel description."""
    ds.Rows, ds.Columns = int(rows), int(cols)
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0


def _put_diffusion(ds, b: float, vec, encoding: str, *, verbatim: bool) -> None:
    """Write b (s/mm²) and direction `vec` with the given vendor `encoding` (see DicomStyle)."""
    g = np.zeros(3) if vec is None else np.asarray(vec, float)
    if encoding == "ge":
        ds.add_new((0x0019, 0x0010), "LO", "GEMS_ACQU_01")
        ds.add_new((0x0043, 0x0010), "LO", "GEMS_PARM_01")
        ds.add_new((0x0043, 0x1039), "IS", [int(b) + 1000000000, 8, 0, 0])
        for t, x in zip((0x10BB, 0x10BC, 0x10BD), g):
            ds.add_new((0x0019, t), "DS", f"{x:.6f}")
    elif encoding == "philips":
        ds.add_new((0x2001, 0x0010), "LO", "Philips Imaging DD 001")
        ds.add_new((0x2005, 0x0010), "LO", "Philips MR Imaging DD 001")
        ds.add_new((0x2001, 0x1003), "FL", float(b))
        for t, x in zip((0x10B0, 0x10B1, 0x10B2), g):
            ds.add_new((0x2005, t), "FL", float(x))
    else:
        ds.DiffusionBValue = float(b)
        if b > 0 and (verbatim or np.linalg.norm(g) > 0):
            ds.DiffusionDirectionality = "DIRECTIONAL"
            ds.DiffusionGradientOrientation = [round(float(x), 8) for x in g]
        else:
            ds.DiffusionDirectionality = "NONE"


def _save(ds, path: Path) -> Path:
    """Write `ds` as a Part-10 file."""
    import pydicom

    pydicom.dcmwrite(path, ds, enforce_file_format=True)
    return path


def _identity(ds, meta: dict, style: DicomStyle, ids: dict) -> None:
    """Patient/study/series/acquisition attributes shared by every file of the series."""
    ds.Manufacturer = ids["manufacturer"]
    ds.ManufacturerModelName = str(meta.get("ManufacturersModelName", "Phantom 1"))
    ds.MagneticFieldStrength = float(meta.get("MagneticFieldStrength", 3))
    ds.ImageType = list(style.image_type)
    ds.PatientName, ds.PatientID = ids["patient_name"], ids["patient_id"]
    ds.PatientPosition = style.patient_position
    ds.StudyInstanceUID, ds.SeriesInstanceUID = ids["study_uid"], ids["series_uid"]
    ds.FrameOfReferenceUID = ids["frame_uid"]
    ds.SeriesNumber = int(ids["series_number"])
    ds.SeriesDescription = ids["description"]
    ds.EchoTime = float(meta.get("EchoTime", 0.07)) * 1000.0  # ms in DICOM, s in BIDS
    ds.RepetitionTime = float(meta.get("RepetitionTime", 4.0)) * 1000.0
    ds.FlipAngle = float(meta.get("FlipAngle", 90))
    ds.InPlanePhaseEncodingDirection = style.phase


def _place_slice(ds, a_lps, sizes, row_dir, col_dir, k: int) -> None:
    """Geometry of slice k: orientation, position, spacing."""
    ds.ImageOrientationPatient = [round(float(x), 8) for x in (*row_dir, *col_dir)]
    ds.ImagePositionPatient = [round(float(x), 6) for x in a_lps @ np.array([0.0, 0.0, k, 1.0])][:3]
    ds.PixelSpacing = [round(float(sizes[1]), 6), round(float(sizes[0]), 6)]
    ds.SliceThickness = round(float(sizes[2]), 6)
    ds.SpacingBetweenSlices = round(float(sizes[2]), 6)


def write_dicom_series(
    series: DWISeries,
    folder: str | os.PathLike,
    *,
    series_number: int = 1,
    description: str = "DWI (synthetic)",
    patient_name: str = "Anonymous",
    patient_id: str = "ANON",
    study_seed: str = "dwi_toolkit",
    manufacturer: str | None = None,
    style: DicomStyle | None = None,
) -> list[Path]:
    """Write `series` as classic single-frame MR DICOM files into `folder` (created).

    The one DICOM writer of the toolkit: the sample cohort, the tests (vendor styles through
    `style`) and the benchmarks use it.

    Parameters
    ----------
    series : DWISeries
        Data (X, Y, Z, N), affine voxel → RAS+ mm, b-values s/mm², FSL b-vectors.
    folder : path-like
        Output folder; files are named ``IM_<volume>_<slice>.dcm``.
    series_number, description : optional
        (0020,0011) and (0008,103E).
    patient_name, patient_id : str, optional
        Placeholders written to (0010,0010)/(0010,0020).
    study_seed : str, optional
        Seed of the deterministic Study/Series/SOP Instance UIDs (same input → same files).
    manufacturer : str, optional
        (0008,0070); default from ``series.meta["Manufacturer"]``.
    style : DicomStyle, optional
        Vendor encoding, patient position, phase direction, instance order (default: standard).

    Returns
    -------
    list of Path
        The files written, volume-major.

    Raises
    ------
    InputDataError
        Negative or non-finite data, or an affine whose third axis is not perpendicular to the
        slice plane (DICOM slices cannot be sheared).

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
    >>> len(files), files[0].suffix
    (4, '.dcm')
    >>> from dwi_toolkit.io.dicom import load_dicom_dwi
    >>> np.allclose(load_dicom_dwi(tmp / "dicom").data, s.data, atol=1)
    True
    """
    style = style or DicomStyle()
    data = np.asarray(series.data)
    if not np.all(np.isfinite(data)) or data.min() < 0:
        raise InputDataError("write_dicom_series needs finite, non-negative data.")
    a_lps, sizes, row_dir, col_dir = _slice_geometry(series.affine)
    slope, stored = _stored_pixels(data)
    vectors = style.vectors if style.vectors is not None else bvecs_to_lps(series.bvecs, series.affine)
    meta = dict(series.meta)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    ids = {"manufacturer": manufacturer or str(meta.get("Manufacturer", "dwi_toolkit")),
           "patient_name": patient_name, "patient_id": patient_id, "series_number": series_number,
           "description": description, "study_uid": _uid(study_seed, "study"),
           "series_uid": style.series_uid or _uid(study_seed, "series", series_number),
           "frame_uid": _uid(study_seed, "frame")}
    nx, ny, nz, nv = data.shape
    paths: list[Path] = []
    for v in range(nv):
        for k in range(nz):
            path = folder / f"IM_{v:04d}_{k:04d}.dcm"
            ds = _new_dataset(path, _MR_STORAGE, _uid(study_seed, "sop", series_number, v, k))
            _identity(ds, meta, style, ids)
            ds.InstanceNumber = v * nz + (nz - 1 - k if style.descending else k) + 1
            ds.AcquisitionNumber = v + 1
            _place_slice(ds, a_lps, sizes, row_dir, col_dir, k)
            _put_pixel_module(ds, ny, nx)
            ds.RescaleSlope, ds.RescaleIntercept = repr(float(slope))[:16], "0"
            if style.philips_scaling is not None:
                rs, ri, ss = style.philips_scaling
                ds.RescaleSlope, ds.RescaleIntercept = rs, ri
                ds.add_new((0x2005, 0x0010), "LO", "Philips MR Imaging DD 001")
                ds.add_new((0x2005, 0x100E), "FL", float(ss))
            _put_diffusion(ds, float(series.bvals[v]), vectors[v], style.encoding,
                          verbatim=style.vectors is not None)
            ds.PixelData = np.ascontiguousarray(stored[:, :, k, v].T).astype("<u2").tobytes()
            paths.append(_save(ds, path))
    return paths
