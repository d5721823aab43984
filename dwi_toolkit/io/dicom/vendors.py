"""Vendor conventions for diffusion encoding, intensity scaling and acquisition metadata.

Where each vendor stores the b-value and gradient direction (see docs/dicom.md):

.. list-table::
   :header-rows: 1

   * - source
     - b-value / direction
     - direction frame
   * - DICOM standard
     - (0018,9087) / (0018,9089), classic top level or in MRDiffusionSequence (0018,9117) per frame of enhanced multi-frame objects
     - patient (LPS)
   * - Siemens classic (CSA)
     - CSA ``B_value`` / ``DiffusionGradientDirection``
     - patient (LPS)
   * - Siemens classic without CSA (XA ``MFSPLIT``, de-identified)
     - (0019,100C) / (0019,100E)
     - patient (LPS)
   * - GE
     - (0043,1039)[0] mod 1e9 / (0019,10BB..BD)
     - logical (image) frame
   * - Philips classic
     - (2001,1003) / (2005,10B0..B2)
     - patient (LPS)
   * - United Imaging (private)
     - (0065,1009) / (0065,1037)
     - image frame
   * - Canon (V6.1+, classic and enhanced), Toshiba
     - DICOM standard tags; (0018,9087) is omitted on b=0 images (read as b=0)
     - patient (LPS)
   * - Canon V6.0 classic
     - (0018,9087) / ImageComments ``b=1500(x,y,z)``
     - logical (as GE, x and y swapped)

Directions are turned into the output image frame (FSL ``.bvec`` convention) exactly as dcm2niix
does: see :func:`to_image_frame`.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._fast import get_float, get_floats, get_str, get_strs
from .csa import csa_float, csa_floats, csa_int

logger = logging.getLogger(__name__)

__all__ = ["vendor_of", "Diffusion", "RULES", "classic_diffusion", "frame_diffusion", "to_image_frame",
           "rescale_of", "acquisition_meta", "phase_encoding"]


def vendor_of(ds) -> str:
    """Short vendor key: ``siemens``, ``ge``, ``philips``, ``canon``, ``toshiba``, ``uih``,
    ``hitachi`` or ``other``.

    Examples
    --------
    >>> vendor_of({"Manufacturer": "Philips Medical Systems"})
    'philips'
    """
    m = (ds.get("Manufacturer", "") if isinstance(ds, dict) else get_str(ds, 0x00080070)) or ""
    m = str(m).lower()
    for key, names in (("siemens", ("siemens",)), ("ge", ("ge medical", "ge healthcare", "general electric")),
                       ("philips", ("philips",)), ("canon", ("canon",)), ("toshiba", ("toshiba",)),
                       ("uih", ("uih", "united imaging")), ("hitachi", ("hitachi", "fujifilm"))):
        if any(n in m for n in names):
            return key
    if m.strip() == "ge":
        return "ge"
    return "other"


@dataclass(frozen=True)
class Diffusion:
    """Diffusion encoding of one frame.

    ``bval`` in s/mm² (None when the file has no diffusion information), ``vec`` a 3-vector or
    None, ``frame`` the frame of `vec`: ``"lps"`` (patient), ``"ge"`` (GE logical) or ``"uih"``
    (UIH image frame); ``isotropic`` marks scanner-computed trace frames; ``rule`` names the
    vendor rule the encoding was read with (see :data:`RULES`).

    Examples
    --------
    >>> d = Diffusion(800.0, (0.0, 0.0, 1.0))
    >>> d.bval, d.frame, d.isotropic, d.rule
    (800.0, 'lps', False, 'standard')
    """

    bval: float | None
    vec: tuple[float, float, float] | None = None
    frame: str = "lps"
    isotropic: bool = False
    rule: str = "standard"


#: Vendor rules a diffusion encoding can be read with (``Diffusion.rule``, ``DicomSeriesInfo.rule``).
RULES = {
    "standard": "DICOM standard (0018,9087)/(0018,9089), patient frame",
    "siemens-csa": "Siemens CSA B_value/DiffusionGradientDirection, patient frame",
    "siemens-private": "Siemens (0019,100C)/(0019,100E) without CSA (XA classic, de-identified), patient frame",
    "ge": "GE (0043,1039)/(0019,10BB-BD), logical frame",
    "philips": "Philips (2001,1003)/(2005,10B0-B2), patient frame",
    "uih": "United Imaging (0065,1009)/(0065,1037), image frame",
    "canon-comments": "Canon V6.0 (0018,9087)/ImageComments, logical frame",
    "none": "no diffusion tags",
}


def _num(ds, tag) -> Any:
    el = ds.get(tag)
    if el is None:
        return None
    v = el.value
    if isinstance(v, (bytes, bytearray)):
        return None
    return v


def _vec3(v) -> tuple[float, float, float] | None:
    try:
        t = tuple(float(x) for x in v)
    except (TypeError, ValueError):
        return None
    if len(t) != 3 or not all(math.isfinite(x) for x in t):
        return None
    return t  # type: ignore[return-value]


def _std_direction(item) -> tuple[float, float, float] | None:
    v = get_floats(item, 0x00189089)
    if v:
        return _vec3(v)
    seq = item.get("DiffusionGradientDirectionSequence")
    if seq:
        v = get_floats(seq[0], 0x00189089)
        if v:
            return _vec3(v)
    return None


def _norm(v) -> float:
    return math.sqrt(sum(x * x for x in v)) if v is not None else 0.0


def frame_diffusion(item) -> Diffusion:
    """Diffusion encoding from an MRDiffusionSequence item (standard, enhanced or classic).

    Examples
    --------
    >>> from pydicom import Dataset
    >>> item = Dataset()
    >>> item.DiffusionBValue = 0.0
    >>> item.DiffusionDirectionality = "NONE"
    >>> frame_diffusion(item)
    Diffusion(bval=0.0, vec=None, frame='lps', isotropic=False, rule='standard')
    """
    bval = get_float(item, 0x00189087)
    direc = get_str(item, 0x00189075).upper()
    vec = _std_direction(item)
    iso = direc == "ISOTROPIC"
    if direc == "NONE" and bval is not None and bval <= 0:
        vec = None
    return Diffusion(bval, vec, "lps", iso, "standard")


def classic_diffusion(ds, vendor: str, csa: dict) -> Diffusion:
    """Diffusion encoding of a classic (single-frame or mosaic) image, any vendor.

    Examples
    --------
    >>> from pydicom import Dataset
    >>> ds = Dataset()
    >>> ds.DiffusionBValue = 800.0
    >>> ds.DiffusionGradientOrientation = [0.0, 0.0, 1.0]
    >>> classic_diffusion(ds, "other", {})
    Diffusion(bval=800.0, vec=(0.0, 0.0, 1.0), frame='lps', isotropic=False, rule='standard')
    """
    # Vendor private tags first where vendors are known to fill the standard ones inconsistently.
    if vendor == "ge":
        raw = _num(ds, (0x0043, 0x1039))
        if raw is not None:
            try:
                b = float(raw if isinstance(raw, (int, float, str)) else raw[0])
            except (TypeError, ValueError, IndexError):
                b = None
            if b is not None:
                if b >= 1e9:  # GE adds 1e9 (or multiples) as a flag on some software versions
                    b = math.fmod(b, 1e9)
                vec = _vec3([_num(ds, (0x0019, t)) for t in (0x10BB, 0x10BC, 0x10BD)])
                if vec is not None and b > 0:
                    n = _norm(vec)
                    if 0.03 < n < 0.97:  # multi-shell: b scaled by |g|^2, rounded to 5 (dcm2niix)
                        bt = b * n * n
                        b = 5.0 if 0 < bt < 5 else float(int((bt + 2.5) / 5) * 5)
                        vec = tuple(x / n for x in vec)  # type: ignore[assignment]
                if b <= 0 or _norm(vec) < 1e-6:
                    vec = None
                iso = b > 0 and vec is None
                return Diffusion(b, vec, "ge", iso, "ge")
    if vendor in ("canon", "toshiba"):
        d = _canon_comments(ds)
        if d is not None:
            return d
    if 0x00189087 not in ds and ds.get("MRDiffusionSequence"):
        # classic image with the standard attributes nested in (0018,9117), as dcm2niix reads
        # (0018,9087)/(0018,9089) wherever they occur
        d = frame_diffusion(ds.get("MRDiffusionSequence")[0])
        if d.bval is not None:
            return d
    if 0x00189087 in ds:
        # (0018,9089) is in the patient frame for every vendor that fills it, Canon classic
        # included (dcm2niix sets isBVecWorldCoordinates whenever it reads (0018,9089)).
        d = frame_diffusion(ds)
        if vendor == "philips" and d.bval is not None and d.bval > 0 and (d.vec is None or _norm(d.vec) < 1e-6):
            return Diffusion(d.bval, None, "lps", True)
        if d.bval is not None:
            return d
    if vendor == "siemens" and csa:
        b = csa_float(csa, "B_value")
        if b is not None:
            vec = _vec3(csa_floats(csa, "DiffusionGradientDirection") or [])
            if b <= 0 or _norm(vec) < 1e-6:
                vec = None
            return Diffusion(b, vec, "lps", False, "siemens-csa")
    if vendor == "siemens":
        d = _siemens_private(ds)
        if d is not None:
            return d
    if vendor == "philips":
        b = _num(ds, (0x2001, 0x1003))
        if b is not None:
            try:
                b = float(b)
            except (TypeError, ValueError):
                b = None
        if b is not None:
            vec = _vec3([_num(ds, (0x2005, t)) for t in (0x10B0, 0x10B1, 0x10B2)])
            if b > 0 and _norm(vec) < 1e-6:
                return Diffusion(b, None, "lps", True, "philips")
            return Diffusion(b, vec if b > 0 else None, "lps", False, "philips")
    if vendor == "uih":
        b = _num(ds, (0x0065, 0x1009))
        if b is not None:
            try:
                b = float(b[0] if isinstance(b, (list, tuple)) else b)
            except (TypeError, ValueError):
                b = None
            if b is not None:
                vec = _vec3(_num(ds, (0x0065, 0x1037)) or [])
                return Diffusion(b, vec if b > 0 else None, "uih", False, "uih")
    return Diffusion(None, rule="none")


def _siemens_private(ds) -> Diffusion | None:
    """Siemens 'SIEMENS MR HEADER' (0019,100C) B_value / (0019,100E) DiffusionGradientDirection.

    Classic images without a CSA header carry them, e.g. XA30 "interoperability" classic exports
    (ImageType ``MFSPLIT``) and de-identified files; patient (LPS) frame, as the CSA fields
    (dcm2niix ``kDiffusion_bValueSiemens``/``kDiffusionGradientDirectionSiemens``, issue 409).
    """
    raw = _num(ds, (0x0019, 0x100C))
    if raw is None:
        return None
    try:
        b = float(raw[0] if isinstance(raw, (list, tuple)) else raw)
    except (TypeError, ValueError, IndexError):
        return None
    vec = _vec3(_num(ds, (0x0019, 0x100E)) or [])
    if b <= 0 or _norm(vec) < 1e-6:
        vec = None
    return Diffusion(b, vec, "lps", False, "siemens-private")


_COMMENT_B = None


def _canon_comments(ds) -> Diffusion | None:
    """Canon V6.0 classic: direction in ImageComments ``b=1500(0.445,0.000,0.895)``.

    Read only when (0018,9089) is absent and the comment's b matches (0018,9087), as dcm2niix
    does (issue 388): the triplet is in the logical frame with x and y swapped, then converted
    with the GE rule.
    """
    global _COMMENT_B
    if 0x00189089 in ds:
        return None
    text = get_str(ds, 0x00204000)
    if not text or "b=" not in text:
        return None
    import re

    if _COMMENT_B is None:
        _COMMENT_B = re.compile(r"b=(-?[0-9.]+)\(\s*(-?[0-9.]+)\s*,\s*(-?[0-9.]+)\s*,\s*(-?[0-9.]+)")
    m = _COMMENT_B.search(text)
    if m is None:
        return None
    bc, x, y, z = (float(g) for g in m.groups())
    b = get_float(ds, 0x00189087)
    if b is None:
        b = bc
    if b <= 0 or round(b) != round(bc):
        return None
    vec = (y, x, z)
    return Diffusion(b, vec if _norm(vec) > 1e-6 else None, "ge", False, "canon-comments")


def to_image_frame(
    vec, frame: str, iop: np.ndarray, *, phase_rc: str = "C", slice_axis: int = 2
) -> np.ndarray:
    """Direction in the output voxel frame (FSL ``.bvec`` convention), as dcm2niix writes it.

    The output voxel axes are: x along the DICOM row direction (increasing column index),
    y opposite to the DICOM column direction (rows flipped bottom-up), z along
    ``row × column`` (the slice normal). With the LPS→RAS flip this affine always has a
    negative determinant, so FSL's extra x-flip for positive determinants never applies and the
    image-frame vector is simply ``(g·row, −g·col, g·normal)`` for a patient-frame (LPS) vector.

    Parameters
    ----------
    vec : 3-sequence
        Gradient direction.
    frame : {"lps", "ge", "uih"}
        Frame of `vec` (see :class:`Diffusion`).
    iop : ndarray of shape (6,)
        ImageOrientationPatient (row direction cosines then column direction cosines, LPS).
    phase_rc : {"C", "R"}
        GE only: InPlanePhaseEncodingDirection (COL/ROW).
    slice_axis : int
        GE only: patient axis (0 x, 1 y, 2 z) closest to the slice normal.

    Examples
    --------
    >>> to_image_frame((0, 0, 1), "lps", np.array([1., 0, 0, 0, 1, 0])).tolist()
    [0.0, 0.0, 1.0]
    >>> to_image_frame((0, 1, 0), "lps", np.array([1., 0, 0, 0, 1, 0])).tolist()
    [0.0, -1.0, 0.0]
    """
    g = np.asarray(vec, dtype=float)
    row, col = np.asarray(iop[:3], float), np.asarray(iop[3:], float)
    if frame == "lps":
        n = np.cross(row, col)
        row, col, n = (a / np.linalg.norm(a) for a in (row, col, n))
        v = np.array([g @ row, -(g @ col), g @ n])
    elif frame == "ge":
        # GE (and Canon classic) store directions in the logical (frequency, phase, slice) frame;
        # dcm2niix's geCorrectBvecs (after Xiangrui Li's dicm2nii): flip by slice plane, swap for
        # ROW phase encoding, flip y for the bottom-up row order, negate the whole vector.
        v = g.copy()
        flp = {0: (1, 1, 0), 1: (0, 1, 1), 2: (0, 0, 1)}[slice_axis]
        for k in range(3):
            if flp[k]:
                v[k] = -v[k]
        if phase_rc == "R":  # flip in the logical frame first, then swap (dcm2niix >= 2025)
            v = np.array([v[1], -v[0], v[2]])
        v[1] = -v[1]
        v = -v
    elif frame == "uih":
        v = np.array([g[0], -g[1], g[2]])
    else:  # pragma: no cover - internal misuse
        raise ValueError(frame)
    nrm = np.linalg.norm(v)
    v = v / nrm if nrm > 0 else v
    v[np.abs(v) < 1e-12] = 0.0
    return v + 0.0  # no negative zeros


def rescale_of(ds, vendor: str) -> tuple[float, float]:
    """(slope, intercept) turning stored values into the values dcm2niix writes.

    Philips: floating-point ("precise") values ``(SV·RS + RI) / (RS·SS)`` with RS/RI the
    rescale slope/intercept (RealWorldValueMapping when present) and SS the private scale slope
    (2005,100E), as dcm2niix with ``UsePhilipsFloatNotDisplayScaling`` (PMC3998685). Others:
    RescaleSlope/RescaleIntercept (identity when absent).

    Examples
    --------
    >>> from pydicom import Dataset
    >>> ds = Dataset()
    >>> ds.RescaleSlope, ds.RescaleIntercept = 2.0, -10.0
    >>> rescale_of(ds, "siemens")
    (2.0, -10.0)
    """
    slope = get_float(ds, 0x00281053) or 1.0
    inter = get_float(ds, 0x00281052) or 0.0
    if vendor == "philips":
        ss = _num(ds, (0x2005, 0x100E))
        if ss is None:
            pvt = ds.get((0x2005, 0x140F))
            if pvt is not None and pvt.value:
                try:
                    it = pvt.value[0]
                    slope = float(it.get("RescaleSlope", slope) or slope)
                    inter = float(it.get("RescaleIntercept", inter) or inter)
                    ss = _num(it, (0x2005, 0x100E))
                except (TypeError, ValueError, AttributeError):
                    ss = None
        try:
            ss = float(ss) if ss is not None else None
        except (TypeError, ValueError):
            ss = None
        if ss is not None and ss > 0 and slope != 0:
            return 1.0 / ss, inter / (slope * ss)
    return slope, inter


def phase_encoding(ds, vendor: str, csa: dict, phase_rc: str | None) -> dict[str, str]:
    """BIDS PhaseEncodingDirection (or PhaseEncodingAxis when the polarity is unknown).

    The sign follows dcm2niix: axis ``i`` for ROW, ``j`` for COL; the output rows are flipped
    (bottom-up), so a positive DICOM polarity along COL is ``j-``.

    Examples
    --------
    >>> from pydicom import Dataset
    >>> phase_encoding(Dataset(), "siemens", {"PhaseEncodingDirectionPositive": ["1"]}, "C")
    {'PhaseEncodingDirection': 'j-'}
    >>> phase_encoding(Dataset(), "ge", {}, "R")                # polarity unknown
    {'PhaseEncodingAxis': 'i'}
    """
    if phase_rc not in ("R", "C"):
        return {}
    axis = "j" if phase_rc == "C" else "i"
    pos: int | None = None
    if vendor == "siemens":
        pos = csa_int(csa, "PhaseEncodingDirectionPositive") if csa else None
        if pos is None:  # XA enhanced: (0021,111C) in the SIEMENS MR SDI (0021,11FE) item
            holders = [ds]
            for kw in ("SharedFunctionalGroupsSequence", "PerFrameFunctionalGroupsSequence"):
                seq = ds.get(kw)
                if seq:
                    holders.append(seq[0])
            for h in holders:
                sdi = h.get((0x0021, 0x11FE))
                try:
                    if sdi is not None and sdi.value and (0x0021, 0x111C) in sdi.value[0]:
                        pos = int(sdi.value[0][(0x0021, 0x111C)].value)
                        break
                except (TypeError, ValueError, AttributeError):
                    pos = None
    if pos not in (0, 1):
        return {"PhaseEncodingAxis": axis}
    if axis == "j":
        return {"PhaseEncodingDirection": "j-" if pos == 1 else "j"}
    return {"PhaseEncodingDirection": "i" if pos == 1 else "i-"}


def _first(ds, *path):
    """Value at a path of (sequence keyword, ..., keyword) through first items, or None."""
    cur = ds
    for key in path[:-1]:
        seq = cur.get(key) if cur is not None else None
        if not seq:
            return None
        cur = seq[0]
    return cur.get(path[-1]) if cur is not None else None


def _clean(v):
    """JSON-ready value from pydicom or light-parser values (no pydicom import needed)."""
    if isinstance(v, (bytes, bytearray)):
        return None
    if isinstance(v, str):
        return v.strip()
    if isinstance(v, bool):
        return v
    if isinstance(v, int):
        return int(v)
    if isinstance(v, float):
        f = float(v)
        return int(f) if f.is_integer() else f
    if isinstance(v, (list, tuple)) or (hasattr(v, "__iter__") and not hasattr(v, "keys")):
        return [_clean(x) for x in v]
    return str(v)


def acquisition_meta(ds, vendor: str, csa: dict, *, keep_phi: bool = False) -> dict[str, Any]:
    """BIDS-sidecar-style acquisition facts from one header (times in seconds, no PHI by default).

    Examples
    --------
    >>> from pydicom import Dataset
    >>> ds = Dataset()
    >>> ds.Manufacturer, ds.EchoTime, ds.RepetitionTime = "SIEMENS", 68.0, 4000.0
    >>> ds.PatientName = "Doe^Jane"
    >>> acquisition_meta(ds, "siemens", {})              # times in s, no patient identifiers
    {'Manufacturer': 'SIEMENS', 'EchoTime': 0.068, 'RepetitionTime': 4.0}
    """
    meta: dict[str, Any] = {}

    def put(key, value):
        value = _clean(value)
        if value is not None and value != "" and value != []:
            meta[key] = value

    for kw in ("Modality", "Manufacturer", "ManufacturerModelName", "MagneticFieldStrength",
               "ImagingFrequency", "SoftwareVersions", "BodyPartExamined", "PatientPosition",
               "MRAcquisitionType", "SeriesDescription", "ProtocolName", "ScanningSequence",
               "SequenceVariant", "ScanOptions", "SequenceName", "SeriesNumber",
               "AcquisitionNumber", "SliceThickness", "SpacingBetweenSlices", "PixelBandwidth",
               "ReceiveCoilName"):
        if kw in ds:
            put("ManufacturersModelName" if kw == "ManufacturerModelName" else
                "BodyPart" if kw == "BodyPartExamined" else kw, ds.get(kw))
    if "ImageType" in ds:
        put("ImageType", get_strs(ds, 0x00080008))
    te = ds.get("EchoTime")
    for grp in ("PerFrameFunctionalGroupsSequence", "SharedFunctionalGroupsSequence"):
        if te is None:
            te = _first(ds, grp, "MREchoSequence", "EffectiveEchoTime")
    tr = ds.get("RepetitionTime")
    fa = ds.get("FlipAngle")
    if tr is None:
        tr = _first(ds, "SharedFunctionalGroupsSequence", "MRTimingAndRelatedParametersSequence", "RepetitionTime")
    if fa is None:
        fa = _first(ds, "SharedFunctionalGroupsSequence", "MRTimingAndRelatedParametersSequence", "FlipAngle")
    for key, val in (("EchoTime", te), ("RepetitionTime", tr)):
        try:
            if val is not None and float(val) > 0:
                meta[key] = round(float(val) / 1000.0, 7)
        except (TypeError, ValueError):
            pass
    if fa is not None:
        put("FlipAngle", fa)
    if "SliceThickness" not in meta:
        el = _first(ds, "SharedFunctionalGroupsSequence", "PixelMeasuresSequence", "SliceThickness")
        if el is None:
            el = _first(ds, "PerFrameFunctionalGroupsSequence", "PixelMeasuresSequence", "SliceThickness")
        if el is not None:
            put("SliceThickness", el)
    rc = phase_rc_of(ds)
    if rc:
        meta["InPlanePhaseEncodingDirectionDICOM"] = "COL" if rc == "C" else "ROW"
        meta.update(phase_encoding(ds, vendor, csa, rc))
    if keep_phi:
        for kw in ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "PatientAge",
                   "StudyDate", "SeriesDate", "AcquisitionDate", "AcquisitionTime", "StudyInstanceUID",
                   "SeriesInstanceUID", "InstitutionName", "StationName", "DeviceSerialNumber",
                   "AccessionNumber", "StudyID"):
            if kw in ds:
                put(kw, ds.get(kw))
    return meta


def phase_rc_of(ds) -> str | None:
    """``"R"``/``"C"`` from InPlanePhaseEncodingDirection (classic or enhanced), else None."""
    v = ds.get("InPlanePhaseEncodingDirection")
    if v is None:
        v = _first(ds, "SharedFunctionalGroupsSequence", "MRFOVGeometrySequence", "InPlanePhaseEncodingDirection")
    v = str(v or "").upper()
    if v.startswith("ROW"):
        return "R"
    if v.startswith("COL"):
        return "C"
    return None


def mosaic_count(ds, csa: dict) -> int | None:
    """Number of slices in a Siemens MOSAIC image, or None when not a mosaic."""
    it = [x.upper() for x in get_strs(ds, 0x00080008)]
    if "MOSAIC" not in it:
        return None
    n = csa_int(csa, "NumberOfImagesInMosaic") if csa else None
    if n is None:
        el = ds.get((0x0019, 0x100A))  # SIEMENS MR HEADER NumberOfImagesInMosaic
        try:
            n = int(el.value) if el is not None else None
        except (TypeError, ValueError):
            n = None
    return n if n and n > 1 else None
