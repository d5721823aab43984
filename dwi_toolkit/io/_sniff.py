"""What kind of file a path is, from its name or first bytes (no other dwi_toolkit import, so
every io module can use it; :mod:`dwi_toolkit.io.loading` re-exports both)."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

__all__ = ["is_nifti", "looks_like_dicom"]


def is_nifti(path: str | os.PathLike) -> bool:
    """True if `path` has a ``.nii`` or ``.nii.gz`` extension.

    Examples
    --------
    >>> is_nifti("sub-01_dwi.nii.gz"), is_nifti("IM_0001.dcm")
    (True, False)
    """
    name = Path(path).name.lower()
    return name.endswith(".nii") or name.endswith(".nii.gz")


def looks_like_dicom(path: str | os.PathLike) -> bool:
    """True if `path` is a DICOM Part-10 file (``DICM`` at byte 128), plain or gzip-compressed.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> p = Path(tempfile.mkdtemp()) / "x.dcm"
    >>> _ = p.write_bytes(bytes(128) + b"DICM")
    >>> looks_like_dicom(p)
    True
    """
    p = Path(path)
    try:
        with open(p, "rb") as fh:
            head = fh.read(132)
            if head[:2] == b"\x1f\x8b":
                with gzip.open(p, "rb") as gz:
                    head = gz.read(132)
    except (OSError, EOFError):
        return False
    return len(head) >= 132 and head[128:132] == b"DICM"
