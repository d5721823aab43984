"""BIDS sidecar keys as dcm2niix derives them from the same DICOM header (our own code).

:func:`acquisition_meta` (vendors.py) collects the plain DICOM attributes; :func:`dcm2niix_keys`
then makes the sidecar agree with dcm2niix (``nii_SaveBIDSX`` of dcm2niix v1.0.2024+): multi-valued
strings joined by a backslash, ``ImageType`` split at underscores with ``MAGNITUDE`` appended,
the short manufacturer name, the matrix and k-space keys (``AcquisitionMatrixPE``,
``ReconMatrixPE``, ``PercentPhaseFOV``, ``PercentSampling``, ``EchoTrainLength``,
``PhaseEncodingSteps``, ``SAR``, ``ParallelReductionFactorInPlane``), ``ImageOrientationPatientDICOM``,
and for Siemens the CSA-derived ``BandwidthPerPixelPhaseEncode``, ``EffectiveEchoSpacing``,
``TotalReadoutTime``, ``DwellTime`` and ``SliceTiming`` (mosaic). Numbers are printed as dcm2niix
prints them (``%g``: 6 significant digits). Keys dcm2niix writes that are not derived here are
listed with their reasons in docs/file-formats.md.
"""

from __future__ import annotations

import math
from typing import Any

from .csa import csa_float, csa_floats

__all__ = ["dcm2niix_keys", "MULTI_VALUED", "MANUFACTURER_NAMES"]

#: Attributes dcm2niix writes as one backslash-joined string (not a JSON list).
MULTI_VALUED = ("ScanningSequence", "SequenceVariant", "ScanOptions", "SoftwareVersions")
#: dcm2niix's short manufacturer names by our vendor key.
MANUFACTURER_NAMES = {"siemens": "Siemens", "ge": "GE", "philips": "Philips", "canon": "Canon",
                      "toshiba": "Toshiba", "uih": "UIH", "hitachi": "Hitachi", "bruker": "Bruker"}


def _g(x: float) -> float | int:
    """A number as dcm2niix prints it with ``%g`` (6 significant digits), back as a JSON number."""
    v = float(f"{float(x):g}")
    return int(v) if v.is_integer() and abs(v) < 1e15 else v


def _num(ds: Any, kw: Any) -> float | None:
    v = ds.get(kw)
    v = getattr(v, "value", v)
    if isinstance(v, (list, tuple)):
        v = v[0] if v else None
    try:
        f = float(v) if v is not None and str(v).strip() != "" else None
    except (TypeError, ValueError):
        return None
    return f if f is not None and math.isfinite(f) else None


def _enhanced(ds: Any, kw: str, *seqs: str) -> float | None:
    """`kw` at the top level or in the first item of a functional-group sequence."""
    v = _num(ds, kw)
    for grp in ("SharedFunctionalGroupsSequence", "PerFrameFunctionalGroupsSequence"):
        for seq in seqs:
            if v is not None:
                return v
            try:
                outer = ds.get(grp)
                inner = outer[0].get(seq) if outer else None
                v = _num(inner[0], kw) if inner else None
            except (AttributeError, IndexError, KeyError, TypeError):
                v = None
    return v


def _image_type(values: list[str], ds: Any, vendor: str) -> list[str]:
    """ImageType split at underscores; ``MAGNITUDE`` appended when dcm2niix knows the image is one.

    dcm2niix knows it from an ``M`` value, the enhanced ComplexImageComponent or GE's private
    image type (0043,102F) = 0.
    """
    parts = [p for v in values for p in str(v).split("_") if p]
    if "MAGNITUDE" in parts:
        return parts
    magnitude = "M" in parts
    comp = ds.get("ComplexImageComponent")
    for grp in ("SharedFunctionalGroupsSequence", "PerFrameFunctionalGroupsSequence"):
        try:
            comp = comp or ds.get(grp)[0].get("MRImageFrameTypeSequence")[0].get("ComplexImageComponent")
        except (AttributeError, IndexError, KeyError, TypeError):
            pass
    magnitude = magnitude or str(getattr(comp, "value", comp) or "").upper() == "MAGNITUDE"
    if vendor == "ge":
        magnitude = magnitude or _num(ds, (0x0043, 0x102F)) == 0  # type: ignore[arg-type]
    return parts + ["MAGNITUDE"] if magnitude else parts


def _recon_matrix_pe(shape: tuple[int, ...], rc: str | None, lines: int | None) -> int | None:
    """ReconMatrixPE as dcm2niix: the image size along the phase axis (columns for ROW, rows for COL)."""
    nx, ny = int(shape[0]), int(shape[1])
    if nx == ny or rc == "C":
        return ny
    if rc == "R":
        return nx
    return lines


def _matrix_keys(ds: Any, meta: dict[str, Any], shape: tuple[int, ...], rc: str | None) -> int | None:
    """Matrix and k-space keys; returns ReconMatrixPE."""
    acq = ds.get("AcquisitionMatrix")
    acq = getattr(acq, "value", acq)
    lines = None
    if isinstance(acq, (list, tuple)) and len(acq) == 4:
        lines = int(acq[2]) if int(acq[2]) > 0 else (int(acq[3]) if int(acq[3]) > 0 else None)
    for key, kw, seq in (("PercentPhaseFOV", "PercentPhaseFieldOfView", "MRFOVGeometrySequence"),
                         ("PercentSampling", "PercentSampling", "MRFOVGeometrySequence"),
                         ("PixelBandwidth", "PixelBandwidth", "MRImagingModifierSequence"),
                         ("SAR", "SAR", "SAR")):
        v = _enhanced(ds, kw, seq)
        if v is not None and v > 0:
            meta[key] = _g(v)
    etl = _num(ds, "EchoTrainLength")
    if etl is not None and etl > 1:
        meta["EchoTrainLength"] = int(etl)
    steps = _num(ds, "PhaseEncodingSteps")
    if steps is not None and steps > 0 and meta.get("Manufacturer") != "Philips":
        meta["PhaseEncodingSteps"] = int(steps)
    if lines:
        meta["AcquisitionMatrixPE"] = lines
    recon = _recon_matrix_pe(shape, rc, lines)
    if recon:
        meta["ReconMatrixPE"] = int(recon)
    return recon


def _siemens_keys(ds: Any, csa: dict, meta: dict[str, Any], recon: int | None, nz: int) -> None:
    """Keys from the Siemens CSA image header (``BandwidthPerPixelPhaseEncode``, slice times)."""
    accel = None
    pat = str(getattr(ds.get((0x0051, 0x1011)), "value", "") or "")
    if pat.lower().startswith("p") and pat[1:].split("s")[0].replace(".", "", 1).isdigit():
        accel = float(pat[1:].split("s")[0])
    if accel and accel > 1:
        meta["ParallelReductionFactorInPlane"] = _g(accel)
    bw = csa_float(csa, "BandwidthPerPixelPhaseEncode") if csa else None
    if bw and bw > 0:
        meta["BandwidthPerPixelPhaseEncode"] = _g(bw)
        if recon:
            ees = 1.0 / (bw * recon)
            meta["EffectiveEchoSpacing"] = _g(ees)
            meta["TotalReadoutTime"] = _g(ees * (recon - 1.0))
    dwell = csa_float(csa, "RealDwellTime") if csa else None
    if dwell and dwell > 0:
        meta["DwellTime"] = _g(dwell * 1e-9)
    times = csa_floats(csa, "MosaicRefAcqTimes") if csa else None
    if times and nz > 1 and len(times) >= nz and min(times[:nz]) >= 0:
        meta["SliceTiming"] = [_g(t / 1000.0) for t in times[:nz]]


def dcm2niix_keys(meta: dict[str, Any], ds: Any, vendor: str, csa: dict | None,
                  shape: tuple[int, ...]) -> dict[str, Any]:
    """Make a sidecar from :func:`acquisition_meta` agree with dcm2niix's; returns `meta` (changed in place).

    Parameters
    ----------
    meta : dict
        The sidecar so far (from ``acquisition_meta``).
    ds : DICOM dataset
        First header of the series (pydicom or the light reader).
    vendor : str
        Our vendor key (``siemens``, ``ge``, ``philips``, ``canon``, ``uih`` ...).
    csa : dict or None
        Siemens CSA image header (:func:`dwi_toolkit.io.dicom.csa.parse_csa`).
    shape : tuple of int
        NIfTI shape (columns, rows, slices[, volumes]) of the converted image.

    Returns
    -------
    dict

    Examples
    --------
    >>> from pydicom import Dataset
    >>> ds = Dataset()
    >>> ds.AcquisitionMatrix, ds.PercentPhaseFieldOfView = [0, 128, 128, 0], 100
    >>> ds.ComplexImageComponent = "MAGNITUDE"
    >>> meta = {"ScanOptions": ["PFP", "FS"], "ImageType": ["ORIGINAL", "PRIMARY", "M_SE"],
    ...         "InPlanePhaseEncodingDirectionDICOM": "COL"}
    >>> out = dcm2niix_keys(meta, ds, "siemens", {"BandwidthPerPixelPhaseEncode": ["20.345"]}, (128, 128, 40))
    >>> out["ScanOptions"], out["ImageType"], out["Manufacturer"], out["ReconMatrixPE"]
    ('PFP\\\\FS', ['ORIGINAL', 'PRIMARY', 'M', 'SE', 'MAGNITUDE'], 'Siemens', 128)
    >>> out["EffectiveEchoSpacing"], out["TotalReadoutTime"]
    (0.000384001, 0.0487681)
    """
    for key in MULTI_VALUED:
        if isinstance(meta.get(key), list):
            meta[key] = "\\".join(str(x) for x in meta[key])
    if isinstance(meta.get("ImageType"), list):
        meta["ImageType"] = _image_type(meta["ImageType"], ds, vendor)
    if vendor in MANUFACTURER_NAMES:
        meta["Manufacturer"] = MANUFACTURER_NAMES[vendor]
    for key in ("ImagingFrequency", "RepetitionTime", "SpacingBetweenSlices", "SliceThickness"):
        if isinstance(meta.get(key), float):
            meta[key] = _g(meta[key]) if key != "ImagingFrequency" else float(f"{meta[key]:.10g}")
    rc = {"COL": "C", "ROW": "R"}.get(str(meta.get("InPlanePhaseEncodingDirectionDICOM")))
    recon = _matrix_keys(ds, meta, shape, rc)
    accel = _enhanced(ds, "ParallelReductionFactorInPlane", "MRModifierSequence")
    if accel and accel > 1 and vendor != "siemens":
        meta["ParallelReductionFactorInPlane"] = _g(accel)
    iop = ds.get("ImageOrientationPatient")
    iop = getattr(iop, "value", iop)
    if iop is None:
        try:
            iop = ds.get("SharedFunctionalGroupsSequence")[0].get("PlaneOrientationSequence")[0].get(
                "ImageOrientationPatient")
        except (AttributeError, IndexError, KeyError, TypeError):
            iop = None
    if iop is not None and len(list(iop)) == 6:
        meta["ImageOrientationPatientDICOM"] = [_g(float(v)) for v in iop]
    if vendor == "siemens":
        _siemens_keys(ds, csa or {}, meta, recon, int(shape[2]) if len(shape) > 2 else 1)
    return meta
