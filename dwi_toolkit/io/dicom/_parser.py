"""A minimal, fast DICOM header parser that keeps only the attributes the loader uses.

pydicom parses and stores every element of a header (and every item of every nested sequence),
which dominates load time for vendor headers with hundreds of private elements (Philips) or
thousands of per-frame items (enhanced multi-frame). This parser walks the elements with
``struct`` and keeps only wanted tags, at any nesting level, as pydicom ``RawDataElement``s in
pydicom ``Dataset``s, so the rest of the loader uses the ordinary pydicom API (values are
converted lazily by pydicom on access).

Supported: Part-10 files with explicit or implicit VR little endian datasets. Anything else
(big endian, deflate, no preamble, odd structure) raises :class:`FastParseError` and the caller
falls back to pydicom's reader.
"""

from __future__ import annotations

import struct

__all__ = ["FastParseError", "parse_header", "wanted_tags"]

_IMPLICIT_LE = "1.2.840.10008.1.2"
_EXPLICIT_LE = "1.2.840.10008.1.2.1"
_LONG_VRS = frozenset({b"OB", b"OW", b"OF", b"SQ", b"UT", b"UN", b"OD", b"OL", b"OV", b"UC", b"UR", b"SV", b"UV"})
_ITEM = 0xFFFEE000
_ITEM_END = 0xFFFEE00D
_SEQ_END = 0xFFFEE0DD
_PIXEL_DATA = 0x7FE00010
_UNDEF = 0xFFFFFFFF

def wanted_tags() -> frozenset:
    """Tags the fast parser keeps: :data:`_light.KEYWORDS` plus :data:`_light.PRIVATE_VR`."""
    global _WANTED
    if _WANTED is None:
        from ._light import KEYWORDS, PRIVATE_VR

        _WANTED = frozenset({t for t, _vr in KEYWORDS.values()} | set(PRIVATE_VR))
    return _WANTED


_WANTED: frozenset | None = None


class FastParseError(Exception):
    """The file is outside what the fast parser handles; use pydicom instead."""


def parse_header(buf: bytes, wanted: frozenset | None = None):
    """Parse a Part-10 file held in `buf` up to its Pixel Data.

    Returns
    -------
    ds : LightDataset
        Only the wanted attributes (converted lazily on access).
    sop_class : str
        MediaStorageSOPClassUID from the file meta information.
    transfer_syntax : str
    pixel_offset : int or None
        Offset of the Pixel Data element in `buf` (None when absent).
    """
    if wanted is None:
        wanted = wanted_tags()
    if len(buf) < 144 or buf[128:132] != b"DICM":
        raise FastParseError("no Part-10 preamble")
    pos, ts, sop = _file_meta(buf)
    if ts == _EXPLICIT_LE:
        explicit = True
    elif ts == _IMPLICIT_LE:
        explicit = False
    else:
        raise FastParseError(f"transfer syntax {ts!r}")
    walker = _Walker(buf, explicit, wanted)
    top, _ = walker.walk(pos, None, True, 0)
    return top, sop, ts, walker.pixel_offset


def _file_meta(buf: bytes) -> tuple[int, str, str]:
    """Walk the file meta group (0002, explicit VR LE); (offset after it, transfer syntax, SOP class)."""
    pos = 132
    meta: dict[int, bytes] = {}
    unpack = struct.unpack_from
    n = len(buf)
    while pos + 8 <= n:
        group, elem = unpack("<HH", buf, pos)
        if group != 2:
            break
        vr = buf[pos + 4 : pos + 6]
        if vr in _LONG_VRS:
            length = unpack("<I", buf, pos + 8)[0]
            vpos = pos + 12
        else:
            length = unpack("<H", buf, pos + 6)[0]
            vpos = pos + 8
        if length == _UNDEF:
            raise FastParseError("undefined length in file meta")
        meta[elem] = buf[vpos : vpos + length]
        pos = vpos + length
    ts = meta.get(0x0010, b"").decode("ascii", "replace").strip("\0 ")
    sop = meta.get(0x0002, b"").decode("ascii", "replace").strip("\0 ")
    return pos, ts, sop


_HEAD_EXPLICIT = struct.Struct("<HH2sH").unpack_from
_HEAD_IMPLICIT = struct.Struct("<HHI").unpack_from
_U32 = struct.Struct("<I").unpack_from


class _Walker:
    """Element walker over one buffer keeping only `wanted` tags (at any nesting depth)."""

    def __init__(self, buf: bytes, explicit: bool, wanted: frozenset):
        self.buf, self.explicit, self.wanted = buf, explicit, wanted
        self.n = len(buf)
        self.sq_vr = _sq_tags()
        self.enc = "utf-8" if b"ISO_IR 192" in buf[132:4096] else "latin-1"
        self.pixel_offset: int | None = None

    def _head(self, pos: int):
        """(tag, VR bytes or None, value length, value offset) of the element at `pos`."""
        if self.explicit:
            group, elem, vrb, length = _HEAD_EXPLICIT(self.buf, pos)
            if vrb in _LONG_VRS:
                return (group << 16) | elem, vrb, _U32(self.buf, pos + 8)[0], pos + 12
            return (group << 16) | elem, vrb, length, pos + 8
        group, elem, length = _HEAD_IMPLICIT(self.buf, pos)
        return (group << 16) | elem, None, length, pos + 8

    def walk(self, pos: int, end: int | None, keep: bool, depth: int):
        """Parse elements in [pos, end) (end None: until an item delimiter). Returns (dict, pos)."""
        from ._light import LightDataset, LightElement

        buf, n, wanted, head = self.buf, self.n, self.wanted, self._head
        out = LightDataset() if keep else None
        limit = n if end is None else end
        while pos < limit:
            if pos + 8 > n:
                raise FastParseError("truncated")
            tag, vrb, length, vpos = head(pos)
            if tag >> 16 == 0xFFFE:
                if tag & 0xFFFF == 0xE00D:  # item delimitation
                    return out, pos + 8
                raise FastParseError(f"unexpected delimiter FFFE,{tag & 0xFFFF:04X}")
            if tag == _PIXEL_DATA and depth == 0:
                self.pixel_offset = pos
                return out, pos
            if self.explicit:
                is_sq = vrb == b"SQ" or (length == _UNDEF and vrb == b"UN")
            else:
                is_sq = length == _UNDEF or tag in self.sq_vr
            if is_sq:
                want = keep and tag in wanted
                items, pos = self.walk_seq(vpos, length, want, depth + 1)
                if want:
                    out[tag] = LightElement(tag, "SQ", items, self.enc)
                continue
            if length == _UNDEF:
                raise FastParseError("undefined-length non-sequence element")
            if keep and tag in wanted:
                out[tag] = LightElement(tag, vrb.decode("ascii") if vrb else None, buf[vpos : vpos + length], self.enc)
            pos = vpos + length
        if pos > n:
            raise FastParseError("element overruns the file")
        if end is None and depth > 0:
            raise FastParseError("truncated item")
        return out, pos

    def walk_seq(self, pos: int, length: int, keep: bool, depth: int):
        """Items of a sequence starting at `pos`; returns (list of datasets or None, pos after it)."""
        buf, n = self.buf, self.n
        items = [] if keep else None
        end = None if length == _UNDEF else pos + length
        if end is not None and end > n:
            raise FastParseError("sequence overruns the file")
        while True:
            if end is not None and pos >= end:
                return items, pos
            if pos + 8 > n:
                raise FastParseError("truncated sequence")
            group, elem, ilen = _HEAD_IMPLICIT(buf, pos)
            tag = (group << 16) | elem
            if tag == _SEQ_END:
                return items, pos + 8
            if tag != _ITEM:
                raise FastParseError(f"unexpected tag {tag:08X} in a sequence")
            ipos = pos + 8
            if ilen == _UNDEF:
                d, pos = self.walk(ipos, None, keep, depth)
            else:
                d = self.walk(ipos, ipos + ilen, True, depth)[0] if keep else None
                pos = ipos + ilen
            if keep:
                items.append(d)


_SQ_CACHE: frozenset | None = None


def _sq_tags() -> frozenset:
    """Wanted tags whose VR is SQ (needed for implicit VR files, which carry no VR)."""
    global _SQ_CACHE
    if _SQ_CACHE is None:
        from ._light import KEYWORDS, PRIVATE_VR

        _SQ_CACHE = frozenset({t for t, vr in KEYWORDS.values() if vr == "SQ"}
                              | {t for t, vr in PRIVATE_VR.items() if vr == "SQ"})
    return _SQ_CACHE
