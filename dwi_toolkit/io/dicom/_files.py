"""Reading DICOM files: header-only parses, pixel bytes read straight from the file.

A file is parsed once, without its pixel data (``pydicom.dcmread(..., stop_before_pixels=True)``);
the byte offset of the Pixel Data element is remembered, so pixels are later read with one
``seek`` + ``read`` and :func:`numpy.frombuffer` instead of a second full parse. Gzip-compressed
files (``.gz`` or not) are decompressed in memory. Compressed (encapsulated) transfer syntaxes
fall back to pydicom's decoders.
"""

from __future__ import annotations

import gzip
import logging
import os
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import DicomError

logger = logging.getLogger(__name__)

_IMPLICIT_LE = "1.2.840.10008.1.2"
_EXPLICIT_LE = "1.2.840.10008.1.2.1"
_EXPLICIT_BE = "1.2.840.10008.1.2.2"
_DEFLATED = "1.2.840.10008.1.2.1.99"
_DICOMDIR_SOP = "1.2.840.10008.1.3.10"
#: Standard storage classes under 1.2.840.10008.5.1.4.1.1 that carry no Pixel Data.
_NON_IMAGE_SOPS = frozenset({
    "1.2.840.10008.5.1.4.1.1.11.1", "1.2.840.10008.5.1.4.1.1.11.2", "1.2.840.10008.5.1.4.1.1.11.3",
    "1.2.840.10008.5.1.4.1.1.11.4", "1.2.840.10008.5.1.4.1.1.66", "1.2.840.10008.5.1.4.1.1.66.1",
    "1.2.840.10008.5.1.4.1.1.4.2", "1.2.840.10008.5.1.4.1.1.88.11", "1.2.840.10008.5.1.4.1.1.88.22",
    "1.2.840.10008.5.1.4.1.1.88.33", "1.2.840.10008.5.1.4.1.1.104.1", "1.2.840.10008.5.1.4.1.1.481.3",
})


_SPECIFIC: list | None = None


def _specific_tags() -> list:
    """Tags kept by the pydicom fallback reader (same set as the fast parser)."""
    global _SPECIFIC
    if _SPECIFIC is None:
        from pydicom.tag import Tag

        from ._parser import wanted_tags

        _SPECIFIC = [Tag(t) for t in sorted(wanted_tags())]
    return _SPECIFIC


class NotDicom(Exception):
    """Internal: the file is not DICOM (silently skipped)."""


class CorruptDicom(Exception):
    """Internal: the file looks like DICOM but cannot be parsed (skipped with a warning)."""


@dataclass(eq=False)
class DicomFile:
    """One parsed DICOM file: header dataset plus where its pixel bytes are."""

    path: Path
    ds: Any  # pydicom Dataset without pixel data
    gz: bool
    pixel_offset: int | None
    transfer_syntax: str
    csa: dict = field(default_factory=dict)
    raw: bytes | None = field(default=None, repr=False)  # decompressed bytes of gzip files
    frames: list | None = field(default=None, repr=False)  # cache of series.expand_file


def _read_bytes(path: Path) -> tuple[bytes, bool]:
    with open(path, "rb") as fh:
        raw = fh.read()
    if raw[:2] == b"\x1f\x8b":
        try:
            return gzip.decompress(raw), True
        except (OSError, EOFError, zlib.error) as err:
            raise CorruptDicom(f"gzip stream is damaged ({err})") from err
    return raw, False


def _looks_like_dicom(head: bytes) -> bool:
    if len(head) >= 132 and head[128:132] == b"DICM":
        return True
    # Part-10 files without preamble: a dataset that starts with group 0002 or 0008.
    return len(head) >= 8 and head[:2] in (b"\x02\x00", b"\x08\x00") and head[2:4] < b"\x80\x00"


def read_header(path: str | os.PathLike) -> DicomFile:
    """Parse the header of one file (no pixel data).

    Raises
    ------
    NotDicom
        Not a DICOM file, or a DICOMDIR (skipped silently by callers).
    CorruptDicom
        DICOM signature present but the header cannot be parsed (truncated, damaged).
    """
    import io

    p = Path(path)
    try:
        raw, gz = _read_bytes(p)
    except OSError as err:
        raise CorruptDicom(f"cannot read ({err})") from err
    if not _looks_like_dicom(raw[:132]):
        raise NotDicom(str(p))
    from ._parser import FastParseError, parse_header

    try:
        ds, sop, ts, offset = parse_header(raw)
        has_pixels = offset is not None
        sop = sop or str(ds.get("SOPClassUID", "") or "")
    except (FastParseError, struct.error, ValueError, UnicodeDecodeError, IndexError, TypeError,
            KeyError, OverflowError, RecursionError):
        import pydicom

        bio = io.BytesIO(raw)
        try:
            ds = pydicom.dcmread(bio, stop_before_pixels=True, force=raw[128:132] != b"DICM",
                                 specific_tags=_specific_tags())
            offset = bio.tell()
        except Exception as err:  # pydicom raises many types (InvalidDicomError, EOFError, ...) on damage
            if isinstance(err, MemoryError):
                raise CorruptDicom("an element length exceeds the available memory (damaged header)") from err
            raise CorruptDicom(f"{type(err).__name__}: {err}") from err
        meta = getattr(ds, "file_meta", None)
        sop = str(getattr(meta, "MediaStorageSOPClassUID", "") or ds.get("SOPClassUID", ""))
        ts = str(getattr(meta, "TransferSyntaxUID", "") or _IMPLICIT_LE)
        has_pixels = offset < len(raw) - 8 and raw[offset : offset + 4] == b"\xe0\x7f\x10\x00"
    if sop == _DICOMDIR_SOP or "DirectoryRecordSequence" in ds:
        raise NotDicom(str(p))
    if has_pixels and ts in (_IMPLICIT_LE, _EXPLICIT_LE) and len(raw) >= offset + 12:
        if ts == _IMPLICIT_LE or raw[offset + 4 : offset + 6] in (b"OB", b"OW", b"UN"):
            hdr = 8 if ts == _IMPLICIT_LE else 12
            length = struct.unpack_from("<I", raw, offset + hdr - 4)[0]
            if length != 0xFFFFFFFF and offset + hdr + length > len(raw):
                raise CorruptDicom(
                    f"pixel data truncated ({len(raw) - offset - hdr} of {length} bytes present)"
                )
    if not has_pixels and ts in (_IMPLICIT_LE, _EXPLICIT_LE, _EXPLICIT_BE):
        if sop.startswith("1.2.840.10008.5.1.4.1.1.") and sop not in _NON_IMAGE_SOPS:
            # a standard image object without pixel data: the file was cut short
            raise CorruptDicom("the file ends before its pixel data (truncated)")
        raise NotDicom(str(p))  # presentation states, vendor private objects, reports...
    return DicomFile(p, ds, gz, offset if has_pixels else None, ts, raw=raw if gz else None)


def _pixel_dtype(ds) -> np.dtype:
    bits = _one_int(ds, 0x00280100, 16)
    signed = _one_int(ds, 0x00280103, 0) == 1
    if bits == 8:
        return np.dtype(np.int8 if signed else np.uint8)
    if bits == 16:
        return np.dtype(np.int16 if signed else np.uint16)
    if bits == 32:
        if str(ds.get("FloatPixelData", "")):  # pragma: no cover - float images are rare in MR
            return np.dtype(np.float32)
        return np.dtype(np.int32 if signed else np.uint32)
    raise DicomError(f"unsupported BitsAllocated={bits}")


def _one_int(ds, tag: int, default: int | None) -> int | None:
    """A single integer attribute; a multi-valued or non-numeric one is an error (damaged header)."""
    from ._fast import get_floats

    v = get_floats(ds, tag)
    if not v:
        return default
    if len(v) != 1 or not np.isfinite(v[0]) or v[0] != int(v[0]):
        raise ValueError(f"({tag >> 16:04X},{tag & 0xFFFF:04X}) must be one integer, got {v}")
    return int(v[0])


def read_pixels(f: DicomFile) -> np.ndarray:
    """Pixel array of one file, shape (frames, rows, cols), stored values (no rescale).

    Raises
    ------
    DicomError
        When pixel data is missing, truncated or in an unsupported encoding.
    """
    from .._guard import check_array_size, reading

    ds = f.ds
    with reading(f.path, "a DICOM image", error=DicomError, hint="its Rows/Columns/NumberOfFrames/"
                 "SamplesPerPixel are malformed; re-export the series, or remove this file"):
        rows, cols = _one_int(ds, 0x00280010, None), _one_int(ds, 0x00280011, None)
        n_frames = _one_int(ds, 0x00280008, 1) or 1
        spp = _one_int(ds, 0x00280002, 1) or 1
    if rows is None or cols is None or rows < 1 or cols < 1 or n_frames < 1:
        raise DicomError(f"{f.path}: Rows/Columns/NumberOfFrames ({rows}, {cols}, {n_frames}) are missing or "
                         "not positive; the file is damaged: re-export the series.")
    check_array_size(f.path, (n_frames, rows, cols), 4, error=DicomError)
    if spp != 1:
        raise DicomError(f"{f.path}: {spp} samples per pixel (colour image), not an MR magnitude image.")
    if f.pixel_offset is not None and f.transfer_syntax in (_IMPLICIT_LE, _EXPLICIT_LE, _EXPLICIT_BE):
        dtype = _pixel_dtype(ds)
        if f.transfer_syntax == _EXPLICIT_BE:
            dtype = dtype.newbyteorder(">")
        n_bytes = rows * cols * n_frames * dtype.itemsize
        if f.gz:
            raw = f.raw if f.raw is not None else _read_bytes(f.path)[0]
            head = raw[f.pixel_offset : f.pixel_offset + 12]
        else:
            raw = None
            fh = open(f.path, "rb")
            fh.seek(f.pixel_offset)
            head = fh.read(12)
        try:
            if f.transfer_syntax == _IMPLICIT_LE:
                hdr = 8
                length = struct.unpack_from("<I", head, 4)[0]
            else:
                vr = head[4:6]
                if vr in (b"OB", b"OW", b"OF", b"UN", b"OD", b"OL", b"OV"):
                    hdr = 12
                    length = struct.unpack_from(">I" if f.transfer_syntax == _EXPLICIT_BE else "<I", head, 8)[0]
                else:
                    hdr = 8
                    length = struct.unpack_from(">H" if f.transfer_syntax == _EXPLICIT_BE else "<H", head, 6)[0]
            if length == 0xFFFFFFFF:
                raise DicomError("encapsulated pixel data in a native transfer syntax")
            if raw is not None:
                buf = raw[f.pixel_offset + hdr : f.pixel_offset + hdr + n_bytes]
            else:
                fh.seek(f.pixel_offset + hdr)
                buf = fh.read(n_bytes)
        finally:
            if raw is None:
                fh.close()
        if len(buf) < n_bytes or length < n_bytes:
            raise DicomError(
                f"{f.path}: pixel data is truncated ({min(len(buf), length)} of {n_bytes} bytes); "
                "the file is incomplete: copy it again from the scanner/PACS."
            )
        arr = np.frombuffer(buf, dtype=dtype, count=rows * cols * n_frames)
        if dtype.byteorder == ">":
            arr = arr.astype(dtype.newbyteorder("="))
        try:
            bits_stored = _one_int(ds, 0x00280101, dtype.itemsize * 8)
        except ValueError:
            bits_stored = dtype.itemsize * 8
        if 0 < bits_stored < dtype.itemsize * 8 and dtype.kind == "i":
            shift = dtype.itemsize * 8 - bits_stored
            arr = (arr << shift) >> shift  # sign-extend
        return arr.reshape(n_frames, rows, cols)
    return _read_pixels_pydicom(f, n_frames, rows, cols)


def _read_pixels_pydicom(f: DicomFile, n_frames: int, rows: int, cols: int) -> np.ndarray:
    import io

    import pydicom

    try:
        raw, _ = _read_bytes(f.path)
        full = pydicom.dcmread(io.BytesIO(raw), force=True)
        arr = np.asarray(full.pixel_array)
    except Exception as err:  # pydicom raises many types for codecs and damaged data
        raise DicomError(
            f"{f.path}: cannot decode pixel data (transfer syntax {f.transfer_syntax}): "
            f"{type(err).__name__}: {err}. Compressed DICOM may need an extra decoder "
            "(pip install pylibjpeg pylibjpeg-libjpeg or python-gdcm), or decompress with "
            "gdcmconv --raw."
        ) from err
    return arr.reshape(n_frames, rows, cols)
