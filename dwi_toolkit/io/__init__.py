"""Files <-> objects: the only place that parses file formats.

:func:`load_dwi` is the single entry point for every supported input (NIfTI with FSL
``.bval``/``.bvec``, BIDS ``*_dwi.nii.gz`` with a JSON sidecar, and DICOM files or folders).
"""

from __future__ import annotations

from .loading import load_dwi
from .nifti import save_dwi, save_map

__all__ = ["load_dwi", "save_dwi", "save_map"]
