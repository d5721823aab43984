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
    "InsufficientMemoryError",
    "PipelineError",
    "ClinicalDataError",
    "DwiToolkitWarning",
    "GradientWarning",
    "FitWarning",
    "DicomWarning",
]


class DwiToolkitError(Exception):
    """Base class for every error dwi_toolkit raises on purpose.

    Examples
    --------
    >>> issubclass(InputDataError, DwiToolkitError) and issubclass(DicomError, DwiToolkitError)
    True
    """


class InputDataError(DwiToolkitError, ValueError):
    """Bad input values: shapes, units, NaNs, inconsistent files.

    Examples
    --------
    >>> issubclass(InputDataError, ValueError)  # ``except ValueError`` also catches it
    True
    >>> str(InputDataError("data must be 4-D (X, Y, Z, N), got shape (4, 4)"))
    'data must be 4-D (X, Y, Z, N), got shape (4, 4)'
    """


class GradientError(InputDataError):
    """A problem with b-values or b-vectors (count, norm, layout, missing file).

    Examples
    --------
    >>> from dwi_toolkit.core.gradients import check_gradients
    >>> try:
    ...     check_gradients([0, 800], [[0, 0, 0]])
    ... except GradientError as err:
    ...     caught = type(err).__name__
    >>> caught
    'GradientError'
    """


class DicomError(DwiToolkitError, OSError):
    """A DICOM file or series that cannot be read or assembled.

    Examples
    --------
    >>> issubclass(DicomError, OSError)
    True
    """


class RoiError(InputDataError):
    """A region of interest that is malformed, unknown, empty or outside the image.

    Examples
    --------
    >>> from dwi_toolkit.roi.model import normalize_level
    >>> try:
    ...     normalize_level("L7")
    ... except RoiError:
    ...     caught = "not a lumbar level"
    >>> caught
    'not a lumbar level'
    """


class FitError(DwiToolkitError, RuntimeError):
    """A whole fit cannot run (e.g. too few b-values for the model).

    Examples
    --------
    >>> issubclass(FitError, RuntimeError)
    True
    """


class InsufficientMemoryError(FitError, MemoryError):
    """A fit whose results (plus one chunk of work) would not fit in the memory available.

    Raised before anything large is allocated. Fit a mask, a smaller region or fewer volumes,
    or lower ``chunk_size``.

    Examples
    --------
    >>> issubclass(InsufficientMemoryError, MemoryError), issubclass(InsufficientMemoryError, FitError)
    (True, True)
    """


class PipelineError(DwiToolkitError):
    """A bad pipeline definition or run set-up.

    Examples
    --------
    >>> from dwi_toolkit.pipeline.spec import load_pipeline
    >>> try:
    ...     load_pipeline("no-such-pipeline")
    ... except PipelineError:
    ...     caught = "unknown pipeline"
    >>> caught
    'unknown pipeline'
    """


class ClinicalDataError(InputDataError):
    """Clinical input (``clinical.json``) that does not follow the documented schema.

    Examples
    --------
    >>> from dwi_toolkit.clinical.indication import assess_indication
    >>> try:
    ...     assess_indication({"radicular_side": "up"})
    ... except ClinicalDataError:
    ...     caught = "invalid clinical.json"
    >>> caught
    'invalid clinical.json'
    """


class DwiToolkitWarning(UserWarning):
    """Base class for warnings the caller can act on.

    Examples
    --------
    >>> import warnings
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     warnings.warn("b-vectors renormalised", GradientWarning)
    >>> issubclass(caught[0].category, DwiToolkitWarning)
    True
    """


class GradientWarning(DwiToolkitWarning):
    """Suspicious but usable gradient information (e.g. renormalised b-vectors).

    Examples
    --------
    >>> issubclass(GradientWarning, UserWarning)
    True
    """


class FitWarning(DwiToolkitWarning):
    """A fit ran but something about it deserves attention.

    Examples
    --------
    >>> issubclass(FitWarning, DwiToolkitWarning)
    True
    """


class DicomWarning(DwiToolkitWarning):
    """A DICOM file was skipped or a vendor convention was assumed.

    Examples
    --------
    >>> issubclass(DicomWarning, DwiToolkitWarning)
    True
    """
