"""Import helpers that keep the command-line start-up light."""

from __future__ import annotations

import sys


def import_nibabel_without_pydicom() -> None:
    """Import nibabel's NIfTI module without letting it import pydicom.

    nibabel.nifti1 imports pydicom eagerly (``optional_package``) only to decode DICOM NIfTI
    extensions, which dwi_toolkit never uses; that import (pydicom, its pixel handlers and
    ``requests``) costs about as much as converting a whole series or analysing the sample
    subject. pydicom is hidden during nibabel's import only, and stays importable after it
    (dwi_toolkit imports it when a file needs its DICOM reader). Only the CLI calls this: a
    library user's own nibabel import is left alone.
    """
    if "pydicom" in sys.modules or "nibabel.nifti1" in sys.modules:
        return
    sys.modules["pydicom"] = None  # type: ignore[assignment]
    try:
        import nibabel.nifti1  # noqa: F401
    except ImportError:  # pragma: no cover - nibabel is a core dependency
        pass
    finally:
        if sys.modules.get("pydicom", 0) is None:
            del sys.modules["pydicom"]
