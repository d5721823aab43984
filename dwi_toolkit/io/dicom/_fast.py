"""Fast typed access to header values, decoding pydicom's raw (not yet converted) elements.

pydicom converts values lazily and with validation, which dominates the cost of reading
hundreds of small headers. These getters decode the raw bytes of the few attributes the loader
needs directly (DS/IS/FD/US/strings), falling back to pydicom's conversion for anything else.
"""

from __future__ import annotations

import struct
from functools import lru_cache

__all__ = ["get_floats", "get_float", "get_int", "get_str", "get_strs"]


@lru_cache(maxsize=256)
def _dict_vr(tag: int) -> str:
    from pydicom.datadict import dictionary_VR

    try:
        return dictionary_VR(tag)
    except KeyError:
        return "UN"


def _raw(ds, tag: int):
    try:
        el = ds.get_item(tag)
    except (KeyError, AttributeError):
        return None, None, True
    if el is None:
        return None, None, True
    raw = getattr(el, "raw", None)
    if raw is not None and el.VR != "SQ":  # LightElement from the fast parser
        return raw, el.VR or "UN", True
    if getattr(el, "is_raw", False):  # pydicom RawDataElement
        vr = el.VR or _dict_vr(tag)
        return el.value, vr, el.is_little_endian
    return el.value, None, True  # already converted DataElement


_BIN = {"FD": ("d", 8), "FL": ("f", 4), "US": ("H", 2), "SS": ("h", 2), "UL": ("I", 4), "SL": ("i", 4)}


def get_floats(ds, tag: int) -> list[float] | None:
    """Numeric values of `tag` as floats (DS, IS, FD, FL, US, ...), or None when absent/empty."""
    v, vr, le = _raw(ds, tag)
    if v is None:
        return None
    try:
        if vr is None:  # converted value
            if isinstance(v, (bytes, bytearray, str)) and not str(v).strip():
                return None
            if hasattr(v, "__iter__") and not isinstance(v, (str, bytes)):
                return [float(x) for x in v]
            return [float(v)]
        if vr in ("DS", "IS"):
            s = v.strip(b" \0")
            return [float(x) for x in s.split(b"\\")] if s else None
        if vr in _BIN:
            code, size = _BIN[vr]
            n = len(v) // size
            return list(struct.unpack(("<" if le else ">") + code * n, v[: n * size])) if n else None
    except (ValueError, TypeError, struct.error):
        return None
    return _convert_fallback(ds.get(tag))  # other VRs: let pydicom convert


def _convert_fallback(el):
    if el is None:
        return None
    try:
        v = el.value
        if hasattr(v, "__iter__") and not isinstance(v, (str, bytes)):
            return [float(x) for x in v]
        return [float(v)]
    except (TypeError, ValueError):
        return None


def get_float(ds, tag: int, default: float | None = None) -> float | None:
    """First numeric value of `tag`, or `default`."""
    v = get_floats(ds, tag)
    return v[0] if v else default


def get_int(ds, tag: int, default: int | None = None) -> int | None:
    """First value of `tag` as int, or `default`."""
    v = get_float(ds, tag)
    return int(round(v)) if v is not None else default


def get_strs(ds, tag: int) -> list[str]:
    """String values of `tag` (backslash-separated), stripped; [] when absent."""
    v, vr, _le = _raw(ds, tag)
    if v is None:
        return []
    if vr is None:
        if isinstance(v, (list, tuple)) or (hasattr(v, "__iter__") and not isinstance(v, (str, bytes))):
            return [str(x) for x in v]
        return [str(v)] if str(v) != "" else []
    s = v.decode("latin-1").strip(" \0")
    return [x.strip(" \0") for x in s.split("\\")] if s else []


def get_str(ds, tag: int, default: str = "") -> str:
    """Whole string value of `tag` (multi-values joined by backslash), or `default`."""
    v = get_strs(ds, tag)
    return "\\".join(v) if v else default
