"""Siemens CSA header parser (private tags (0029,1010) image and (0029,1020) series).

Siemens "classic" MR DICOM stores diffusion encoding (``B_value``, ``DiffusionGradientDirection``
in the patient LPS frame), mosaic layout (``NumberOfImagesInMosaic``, ``SliceNormalVector``) and
phase-encoding polarity (``PhaseEncodingDirectionPositive``) in a binary "CSA" blob. Both known
layouts are supported: CSA2 (starts with ``SV10``) and the older CSA1. The format is the one
described by nibabel's ``nicom.csareader`` and dcm2niix; this is an independent, dependency-free
reader.
"""

from __future__ import annotations

import struct

__all__ = ["parse_csa", "csa_float", "csa_floats", "csa_int"]


def parse_csa(blob: bytes | None) -> dict[str, list[str]]:
    """Parse a CSA blob into ``{tag name: [item strings]}`` (empty items dropped).

    Returns an empty dict for ``None``, empty or unparseable input (never raises): CSA is a
    private, undocumented format and a damaged header must not stop a load that does not need it.

    Examples
    --------
    >>> parse_csa(b"")
    {}
    """
    if not blob or len(blob) < 16:
        return {}
    try:
        return _parse(bytes(blob))
    except (struct.error, ValueError, IndexError, UnicodeDecodeError):
        return {}


def _parse(b: bytes) -> dict[str, list[str]]:
    if b[:4] == b"SV10":
        csa2 = True
        pos = 8
    else:
        csa2 = False
        pos = 0
    n_tags, _check = struct.unpack_from("<2I", b, pos)
    pos += 8
    if not 0 < n_tags <= 1000:
        raise ValueError("implausible CSA tag count")
    out: dict[str, list[str]] = {}
    n_bytes = len(b)
    for _ in range(n_tags):
        name_raw = b[pos : pos + 64]
        pos += 64
        _vm, _vr, _syngodt, n_items, _xx = struct.unpack_from("<i4siii", b, pos)
        pos += 20
        name = name_raw.split(b"\0", 1)[0].decode("latin-1")
        items: list[str] = []
        first_n_items = None
        for _i in range(n_items):
            x0, x1, _x2, _x3 = struct.unpack_from("<4i", b, pos)
            pos += 16
            if csa2:
                item_len = x1
            else:
                if first_n_items is None:
                    first_n_items = n_items
                item_len = x0 - first_n_items
                if item_len < 0 or pos + item_len > n_bytes:
                    item_len = x1
            if item_len < 0 or pos + item_len > n_bytes:
                raise ValueError("CSA item overruns the header")
            if item_len:
                s = b[pos : pos + item_len].split(b"\0", 1)[0].decode("latin-1").strip()
                if s:
                    items.append(s)
            pos += (item_len + 3) // 4 * 4
        out[name] = items
    return out


def csa_floats(csa: dict[str, list[str]], name: str) -> list[float] | None:
    """All numeric items of tag `name`, or None when absent/empty.

    Examples
    --------
    >>> csa_floats({"DiffusionGradientDirection": ["0", "0.6", "0.8"]}, "DiffusionGradientDirection")
    [0.0, 0.6, 0.8]
    """
    items = csa.get(name)
    if not items:
        return None
    try:
        return [float(x) for x in items]
    except ValueError:
        return None


def csa_float(csa: dict[str, list[str]], name: str) -> float | None:
    """First numeric item of tag `name`, or None.

    Examples
    --------
    >>> csa_float({"B_value": ["800"]}, "B_value"), csa_float({}, "B_value")
    (800.0, None)
    """
    v = csa_floats(csa, name)
    return v[0] if v else None


def csa_int(csa: dict[str, list[str]], name: str) -> int | None:
    """First item of tag `name` as int, or None.

    Examples
    --------
    >>> csa_int({"PhaseEncodingDirectionPositive": ["1"]}, "PhaseEncodingDirectionPositive")
    1
    """
    v = csa_float(csa, name)
    return int(round(v)) if v is not None else None
