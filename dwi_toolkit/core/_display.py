"""Small helpers for the rich Jupyter display (``_repr_html_``) of the toolkit's objects.

Everything here is cheap and headless-safe: the HTML is a plain table, and the thumbnails are
8-bit greyscale PNGs encoded with :mod:`zlib` (no matplotlib, no display), embedded as base64
``data:`` URIs. Nothing shown here may contain patient identifiers: callers pass only facts about
the data (shapes, units, counts, parameters).
"""

from __future__ import annotations

import base64
import html
import struct
import zlib
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

__all__ = ["esc", "html_table", "png_gray", "thumbnail_img", "middle_slice", "fmt_seq"]

_STYLE = "text-align:left;padding:1px 8px 1px 0;vertical-align:top"


def esc(value: Any) -> str:
    """HTML-escape ``str(value)``.

    Examples
    --------
    >>> esc("<b> & 'x'")
    '&lt;b&gt; &amp; &#x27;x&#x27;'
    """
    return html.escape(str(value))


def html_table(
    caption: str,
    rows: Iterable[tuple[str, Any]],
    *,
    image: str = "",
    note: str = "",
) -> str:
    """A two-column key/value table with a caption, an optional image (HTML) and a note.

    Parameters
    ----------
    caption : str
        Bold caption (escaped).
    rows : iterable of (key, value)
        Values are escaped; use short strings.
    image : str, optional
        Raw HTML (e.g. from :func:`thumbnail_img`) shown to the right of the table.
    note : str, optional
        A line of plain text under the table (escaped).

    Returns
    -------
    str
        An HTML fragment (a ``<div>``).

    Examples
    --------
    >>> out = html_table("Thing", [("shape", (2, 3)), ("unit", "mm^2/s")])
    >>> out.startswith("<div") and "<caption><b>Thing</b></caption>" in out and "(2, 3)" in out
    True
    """
    body = "".join(f"<tr><th style='{_STYLE}'>{esc(k)}</th><td style='{_STYLE}'>{esc(v)}</td></tr>"
                   for k, v in rows)
    table = f"<table><caption><b>{esc(caption)}</b></caption>{body}</table>"
    foot = f"<div style='font-size:smaller'>{esc(note)}</div>" if note else ""
    if image:
        return (f"<div class='dwi-toolkit-repr' style='display:flex;gap:12px;align-items:flex-start'>"
                f"<div>{table}{foot}</div><div>{image}</div></div>")
    return f"<div class='dwi-toolkit-repr'>{table}{foot}</div>"


def png_gray(image: np.ndarray) -> bytes:
    """Encode a 2-D uint8 array (rows, columns) as a greyscale PNG.

    Examples
    --------
    >>> png = png_gray(np.zeros((2, 3), dtype=np.uint8))
    >>> png[:8] == b"\\x89PNG\\r\\n\\x1a\\n"
    True
    """
    img = np.ascontiguousarray(image, dtype=np.uint8)
    if img.ndim != 2:
        raise ValueError(f"png_gray needs a 2-D array, got shape {img.shape}")
    h, w = img.shape
    raw = b"".join(b"\x00" + img[r].tobytes() for r in range(h))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b""))


def middle_slice(volume: np.ndarray) -> tuple[np.ndarray, int]:
    """The axial (third-axis) slice with most finite non-zero voxels near the middle, and its index.

    Examples
    --------
    >>> v = np.zeros((4, 4, 5)); v[..., 3] = 1.0
    >>> middle_slice(v)[1]
    3
    """
    vol = np.asarray(volume)
    if vol.ndim == 2:
        return vol, 0
    counts = (np.isfinite(vol) & (vol != 0)).sum(axis=(0, 1))
    k = vol.shape[2] // 2
    if counts.size and counts[k] == 0 and counts.max() > 0:
        k = int(np.argmax(counts))
    return vol[:, :, k], k


def thumbnail_img(volume: np.ndarray, *, max_px: int = 128, vmin: float | None = None,
                  vmax: float | None = None, title: str = "") -> str:
    """A ``<figure>`` with an ``<img>`` holding a greyscale PNG of the middle slice of a 2-D or 3-D array.

    The slice is shown with the first voxel axis to the right and the second upwards (radiological
    conventions are not applied; the caption says which slice). Grey levels span `vmin`–`vmax`
    (default the 1st–99th percentiles of the finite values); NaN is black. The image is subsampled
    to at most `max_px` pixels per side, so the tag stays a few kB.

    Returns ``""`` when the array is empty or has no finite value.

    Examples
    --------
    >>> tag = thumbnail_img(np.arange(24.0).reshape(2, 3, 4))
    >>> tag.startswith("<figure") and "<img src='data:image/png;base64," in tag
    True
    """
    vol = np.asarray(volume)
    if vol.size == 0 or vol.ndim not in (2, 3):
        return ""
    sl, k = middle_slice(vol)
    sl = np.asarray(sl, dtype=np.float64)
    finite = np.isfinite(sl)
    if not finite.any():
        return ""
    step = max(1, int(np.ceil(max(sl.shape) / max_px)))
    sl, finite = sl[::step, ::step], finite[::step, ::step]
    lo = float(np.percentile(sl[finite], 1)) if vmin is None else float(vmin)
    hi = float(np.percentile(sl[finite], 99)) if vmax is None else float(vmax)
    scale = 255.0 / (hi - lo) if hi > lo else 0.0
    g = np.where(finite, np.clip((np.where(finite, sl, lo) - lo) * scale, 0, 255), 0).astype(np.uint8)
    img = np.flipud(g.T)  # rows = second axis (upwards), columns = first axis
    data = base64.b64encode(png_gray(img)).decode("ascii")
    label = esc(title or (f"slice k={k}" if vol.ndim == 3 else "image"))
    size = max(64, min(160, 2 * max(img.shape)))
    return (f"<figure style='margin:0'><img src='data:image/png;base64,{data}' alt='{label}' "
            f"style='width:{size}px;image-rendering:pixelated'/>"
            f"<figcaption style='font-size:smaller'>{label}</figcaption></figure>")


def fmt_seq(values: Sequence[float], fmt: str = "g") -> str:
    """Comma-separated numbers.

    Examples
    --------
    >>> fmt_seq([0, 100.0, 800])
    '0, 100, 800'
    """
    return ", ".join(format(float(v), fmt) for v in values)
