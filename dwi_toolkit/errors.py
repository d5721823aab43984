"""Exceptions and warnings raised by dwi_toolkit.

Every error the toolkit raises on purpose derives from :class:`DwiToolkitError`, so a caller can
catch everything from us with one ``except``. Each class also derives from the matching builtin
(``ValueError``, ``OSError``, ...), so ``except ValueError`` keeps working.

Messages say what was wrong, where, what was expected and what to do.
"""

from __future__ import annotations

__all__ = [
    "DwiToolkitError",
    "InputDataError",
    "GradientError",
    "DicomError",
    "RoiError",
    "FitError",
    "PipelineError",
    "ClinicalDataError",
    "DwiToolkitWarning",
    "GradientWarning",
    "FitWarning",
    "DicomWarning",
]


class DwiToolkitError(Exception):
    """Base class for every error dwi_toolkit raises on purpose."""


class InputDataError(DwiToolkitError, ValueError):
    """Bad input values: shapes, units, NaNs, inconsistent files."""


class GradientError(InputDataError):
    """A problem with b-values or b-vectors (count, norm, layout, missing file)."""


class DicomError(DwiToolkitError, OSError):
    """A DICOM file or series that cannot be read or assembled."""


class RoiError(InputDataError):
    """A region of interest that is malformed, unknown, empty or outside the image."""


class FitError(DwiToolkitError, RuntimeError):
    """A whole fit cannot run (e.g. too few b-values for the model)."""


class PipelineError(DwiToolkitError):
    """A bad pipeline definition or run set-up."""


class ClinicalDataError(InputDataError):
    """Clinical input (``clinical.json``) that does not follow the documented schema."""


class DwiToolkitWarning(UserWarning):
    """Base class for warnings the caller can act on."""


class GradientWarning(DwiToolkitWarning):
    """Suspicious but usable gradient information (e.g. renormalised b-vectors)."""


class FitWarning(DwiToolkitWarning):
    """A fit ran but something about it deserves attention."""


class DicomWarning(DwiToolkitWarning):
    """A DICOM file was skipped or a vendor convention was assumed."""
