"""DICOM loading (work in progress: see issue 3)."""

from __future__ import annotations

from ...errors import DicomError

__all__ = ["load_dicom_dwi"]


def load_dicom_dwi(path, *, series_uid=None, b0_threshold=50.0, keep_phi=False):
    """Not yet available in this build: DICOM support lands with issue 3."""
    raise DicomError(
        f"{path}: DICOM input is not supported by this build yet; convert with dcm2niix and load "
        "the NIfTI + .bval/.bvec."
    )
