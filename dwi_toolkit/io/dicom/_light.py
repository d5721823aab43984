"""Light, pydicom-free dataset objects produced by the fast header parser.

Importing pydicom costs more than reading a typical DWI series' headers (its import pulls in
pixel decoders and optional network code), so the fast path keeps parsed attributes in these
small classes, which offer the subset of pydicom's ``Dataset`` API the loader uses: keyword and
tag lookup (``ds.get("Rows")``, ``"Rows" in ds``, ``ds.Rows``, ``ds[0x00280010]``,
``ds.get_item(tag)``), lazily converted values and sequences. The pydicom reader remains the
fallback for files the fast parser does not handle.
"""

from __future__ import annotations

import struct

__all__ = ["LightDataset", "LightElement", "KEYWORDS", "PRIVATE_VR"]

#: keyword -> (tag, VR) for every attribute the fast parser keeps (generated from pydicom's
#: data dictionary; see _parser.WANTED_KEYWORDS).
KEYWORDS: dict[str, tuple[int, str]] = {
    "SpecificCharacterSet": (0x00080005, "CS"),
    "ImageType": (0x00080008, "CS"),
    "SOPClassUID": (0x00080016, "UI"),
    "SOPInstanceUID": (0x00080018, "UI"),
    "StudyDate": (0x00080020, "DA"),
    "SeriesDate": (0x00080021, "DA"),
    "AcquisitionDate": (0x00080022, "DA"),
    "AcquisitionTime": (0x00080032, "TM"),
    "AccessionNumber": (0x00080050, "SH"),
    "Modality": (0x00080060, "CS"),
    "Manufacturer": (0x00080070, "LO"),
    "InstitutionName": (0x00080080, "LO"),
    "SeriesDescription": (0x0008103E, "LO"),
    "StationName": (0x00081010, "SH"),
    "ManufacturerModelName": (0x00081090, "LO"),
    "FrameType": (0x00089007, "CS"),
    "PatientName": (0x00100010, "PN"),
    "OtherPatientIDs": (0x00101000, "LO"),  # this and the names below: for scrubbing free text
    "OtherPatientNames": (0x00101001, "PN"),
    "ReferringPhysicianName": (0x00080090, "PN"),
    "PerformingPhysicianName": (0x00081050, "PN"),
    "OperatorsName": (0x00081070, "PN"),
    "PatientID": (0x00100020, "LO"),
    "PatientBirthDate": (0x00100030, "DA"),
    "PatientSex": (0x00100040, "CS"),
    "PatientAge": (0x00101010, "AS"),
    "BodyPartExamined": (0x00180015, "CS"),
    "ScanningSequence": (0x00180020, "CS"),
    "SequenceVariant": (0x00180021, "CS"),
    "ScanOptions": (0x00180022, "CS"),
    "MRAcquisitionType": (0x00180023, "CS"),
    "SequenceName": (0x00180024, "SH"),
    "SliceThickness": (0x00180050, "DS"),
    "RepetitionTime": (0x00180080, "DS"),
    "EchoTime": (0x00180081, "DS"),
    "ImagingFrequency": (0x00180084, "DS"),
    "MagneticFieldStrength": (0x00180087, "DS"),
    "SpacingBetweenSlices": (0x00180088, "DS"),
    "PixelBandwidth": (0x00180095, "DS"),
    "DeviceSerialNumber": (0x00181000, "LO"),
    "SoftwareVersions": (0x00181020, "LO"),
    "ProtocolName": (0x00181030, "LO"),
    "ReceiveCoilName": (0x00181250, "SH"),
    "InPlanePhaseEncodingDirection": (0x00181312, "CS"),
    "FlipAngle": (0x00181314, "DS"),
    "PatientPosition": (0x00185100, "CS"),
    "ComplexImageComponent": (0x00089208, "CS"),
    "MRImagingModifierSequence": (0x00189006, "SQ"),
    "NumberOfAverages": (0x00180083, "DS"),
    "PhaseEncodingSteps": (0x00180089, "IS"),
    "EchoTrainLength": (0x00180091, "IS"),
    "PercentSampling": (0x00180093, "DS"),
    "PercentPhaseFieldOfView": (0x00180094, "DS"),
    "AcquisitionMatrix": (0x00181310, "US"),
    "SAR": (0x00181316, "DS"),
    "ParallelReductionFactorInPlane": (0x00189069, "FD"),
    "DiffusionDirectionality": (0x00189075, "CS"),
    "DiffusionGradientDirectionSequence": (0x00189076, "SQ"),
    "EffectiveEchoTime": (0x00189082, "FD"),
    "DiffusionBValue": (0x00189087, "FD"),
    "DiffusionGradientOrientation": (0x00189089, "FD"),
    "MRFOVGeometrySequence": (0x00189125, "SQ"),
    "MRTimingAndRelatedParametersSequence": (0x00189112, "SQ"),
    "MREchoSequence": (0x00189114, "SQ"),
    "MRDiffusionSequence": (0x00189117, "SQ"),
    "MRImageFrameTypeSequence": (0x00189226, "SQ"),
    "StudyInstanceUID": (0x0020000D, "UI"),
    "SeriesInstanceUID": (0x0020000E, "UI"),
    "StudyID": (0x00200010, "SH"),
    "SeriesNumber": (0x00200011, "IS"),
    "AcquisitionNumber": (0x00200012, "IS"),
    "InstanceNumber": (0x00200013, "IS"),
    "ImagePositionPatient": (0x00200032, "DS"),
    "ImageOrientationPatient": (0x00200037, "DS"),
    "ImageComments": (0x00204000, "LT"),
    "FrameContentSequence": (0x00209111, "SQ"),
    "PlanePositionSequence": (0x00209113, "SQ"),
    "PlaneOrientationSequence": (0x00209116, "SQ"),
    "TemporalPositionIndex": (0x00209128, "UL"),
    "InStackPositionNumber": (0x00209057, "UL"),
    "SamplesPerPixel": (0x00280002, "US"),
    "PhotometricInterpretation": (0x00280004, "CS"),
    "NumberOfFrames": (0x00280008, "IS"),
    "Rows": (0x00280010, "US"),
    "Columns": (0x00280011, "US"),
    "PixelSpacing": (0x00280030, "DS"),
    "BitsAllocated": (0x00280100, "US"),
    "BitsStored": (0x00280101, "US"),
    "PixelRepresentation": (0x00280103, "US"),
    "RescaleIntercept": (0x00281052, "DS"),
    "RescaleSlope": (0x00281053, "DS"),
    "RescaleType": (0x00281054, "LO"),
    "PixelMeasuresSequence": (0x00289110, "SQ"),
    "PixelValueTransformationSequence": (0x00289145, "SQ"),
    "DirectoryRecordSequence": (0x00041220, "SQ"),
    "SharedFunctionalGroupsSequence": (0x52009229, "SQ"),
    "PerFrameFunctionalGroupsSequence": (0x52009230, "SQ"),
}
#: VR of the vendor private attributes the loader reads (implicit VR files carry no VR).
PRIVATE_VR = {
    0x00291010: "OB", 0x0019100A: "US", 0x00431039: "IS", 0x001910BB: "DS", 0x001910BC: "DS",
    0x001910BD: "DS", 0x20011003: "FL", 0x200510B0: "FL", 0x200510B1: "FL", 0x200510B2: "FL",
    0x2005100E: "FL", 0x2005140F: "SQ", 0x20051596: "IS", 0x20051412: "IS", 0x20051413: "IS",
    0x00651009: "FD", 0x00651037: "FD", 0x00651050: "DS", 0x00651051: "SQ", 0x002111FE: "SQ", 0x0021111C: "IS",
    0x0043102F: "SS", 0x0019100C: "IS", 0x0019100E: "FD",
}
_TAG_VR = {t: vr for t, vr in KEYWORDS.values()} | PRIVATE_VR
_TAG_OF = {k: t for k, (t, _vr) in KEYWORDS.items()}
_BIN = {"FD": ("d", 8), "FL": ("f", 4), "US": ("H", 2), "SS": ("h", 2), "UL": ("I", 4), "SL": ("i", 4)}
_TEXT_SINGLE = {"LT", "ST", "UT", "UR"}


def _tag_of(key) -> int | None:
    if isinstance(key, str):
        return _TAG_OF.get(key)
    if isinstance(key, tuple):
        return (int(key[0]) << 16) | int(key[1])
    return int(key)


class LightElement:
    """One attribute: ``tag``, ``VR`` (None when unknown), raw ``bytes`` or items, lazy ``value``."""

    __slots__ = ("tag", "VR", "raw", "is_little_endian", "_value", "_encoding")
    is_raw = True

    def __init__(self, tag: int, vr: str | None, raw, encoding: str = "latin-1"):
        self.tag = tag
        self.VR = vr or _TAG_VR.get(tag)
        self.raw = raw  # bytes, or a list of LightDataset for sequences
        self.is_little_endian = True
        self._value = None
        self._encoding = encoding

    @property
    def value(self):
        """Converted value: float/int/str, a list of them for multi-valued attributes, or a list
        of :class:`LightDataset` for sequences; bytes for binary VRs (OB/UN/...)."""
        if self._value is None:
            self._value = self._convert()
        return self._value

    def _convert(self):
        vr, raw = self.VR, self.raw
        if vr == "SQ":
            return raw
        if vr in ("DS", "IS"):
            s = raw.decode("latin-1").strip(" \0")
            if not s:
                return ""
            parts = s.split("\\")
            try:
                conv = [(float(p) if vr == "DS" else int(float(p))) if p.strip() else None for p in parts]
            except (ValueError, OverflowError) as err:
                raise ValueError(f"attribute ({self.tag >> 16:04X},{self.tag & 0xFFFF:04X}) holds a malformed "
                                 f"{vr} value {s[:40]!r}") from err
            return conv[0] if len(conv) == 1 else conv
        if vr in _BIN:
            code, size = _BIN[vr]
            n = len(raw) // size
            vals = list(struct.unpack("<" + code * n, raw[: n * size]))
            return vals[0] if n == 1 else vals
        if vr in ("OB", "OW", "UN", "OF", "OD", "OL", "OV") or vr is None:
            return raw
        s = raw.decode(self._encoding, "replace").rstrip(" \0")
        if vr in _TEXT_SINGLE:
            return s
        s = s.lstrip(" ")
        parts = [p.strip(" \0") for p in s.split("\\")]
        return parts[0] if len(parts) == 1 else parts

    def __repr__(self) -> str:
        return f"LightElement({self.tag >> 16:04X},{self.tag & 0xFFFF:04X} {self.VR})"


class LightDataset(dict):
    """Parsed attributes keyed by integer tag, with the pydicom Dataset API subset the loader uses."""

    def get_item(self, key):
        return dict.get(self, _tag_of(key))

    def __contains__(self, key) -> bool:
        t = _tag_of(key)
        return t is not None and dict.__contains__(self, t)

    def __getitem__(self, key) -> LightElement:
        return dict.__getitem__(self, _tag_of(key))

    def get(self, key, default=None):
        """Keyword: the converted value; tag (int or (group, elem)): the element (pydicom semantics)."""
        t = _tag_of(key)
        el = dict.get(self, t) if t is not None else None
        if el is None:
            return default
        return el.value if isinstance(key, str) else el

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        t = _TAG_OF.get(name)
        el = dict.get(self, t) if t is not None else None
        if el is None:
            raise AttributeError(f"LightDataset has no attribute {name!r}")
        return el.value

    def __repr__(self) -> str:
        return f"LightDataset({len(self)} attributes)"
