"""The reading boundary: any failure while reading a user's file becomes the toolkit's own error.

Every public loader (``load_dwi``, ``load_rois``, ``load_clinical``, pipeline specs) runs its work
inside :func:`reading`. Errors the toolkit raises on purpose (:class:`DwiToolkitError`) pass
through unchanged; anything else a malformed file provokes in numpy, nibabel, pydicom, gzip, zlib
or the JSON/TOML parsers (``EOFError``, ``TypeError``, ``struct.error``, ...) becomes the given
error class with a message naming the file, what went wrong and what to do. The original
exception is chained (``raise ... from``), so ``dwi-toolkit --debug`` still shows its traceback.

``KeyboardInterrupt`` and ``SystemExit`` are never caught.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator

from ..errors import DwiToolkitError, InputDataError

__all__ = ["reading", "MAX_ARRAY_BYTES", "check_array_size"]

logger = logging.getLogger(__name__)

#: Largest array a loader allocates (bytes) unless ``DWI_TOOLKIT_MAX_ARRAY_GB`` says otherwise:
#: a header that declares more is refused before any memory is taken.
MAX_ARRAY_BYTES = int(float(os.environ.get("DWI_TOOLKIT_MAX_ARRAY_GB", "16")) * (1 << 30))


@contextlib.contextmanager
def reading(path: object, what: str, *, error: type[DwiToolkitError] = InputDataError,
            hint: str = "check the file is complete and in the expected format") -> Iterator[None]:
    """Turn any exception raised while reading `path` into `error` (own errors pass through).

    Examples
    --------
    >>> from dwi_toolkit.errors import InputDataError
    >>> try:
    ...     with reading("x.nii.gz", "a NIfTI image"):
    ...         raise EOFError("Compressed file ended before the end-of-stream marker was reached")
    ... except InputDataError as err:
    ...     message = str(err)
    >>> message
    'cannot read x.nii.gz as a NIfTI image (EOFError: Compressed file ended before the end-of-stream marker was reached); check the file is complete and in the expected format.'
    """
    try:
        yield
    except DwiToolkitError:
        raise
    except MemoryError as err:
        raise error(f"cannot read {path} as {what}: it needs more memory than is available; "
                    "check its header (dimensions, frame count) is not corrupt.") from err
    except RecursionError as err:
        raise error(f"cannot read {path} as {what}: it is nested too deeply; {hint}.") from err
    except Exception as err:  # the boundary: a malformed file can provoke any type in a parser
        msg = str(err).strip().splitlines()[0][:300] if str(err).strip() else "no details"
        logger.debug("reading %s failed", path, exc_info=True)
        raise error(f"cannot read {path} as {what} ({type(err).__name__}: {msg}); {hint}.") from err


def check_array_size(path: object, shape: tuple[int, ...], itemsize: int, *,
                     error: type[DwiToolkitError] = InputDataError) -> None:
    """Refuse a declared array shape whose size is not plausible, before allocating it.

    Examples
    --------
    >>> check_array_size("ok.nii", (64, 64, 20, 30), 2)
    >>> try:
    ...     check_array_size("big.nii", (32767, 32767, 32767, 100), 4)
    ... except InputDataError as err:
    ...     "declares" in str(err)
    True
    """
    n = 1
    for d in shape:
        if int(d) < 0:
            raise error(f"{path} declares a negative dimension in shape {tuple(shape)}; the header is corrupt.")
        n *= int(d)
    if n * int(itemsize) > MAX_ARRAY_BYTES:
        raise error(
            f"{path} declares an image of shape {tuple(int(d) for d in shape)} ({n * itemsize / 2**30:.1f} GiB), "
            f"more than the {MAX_ARRAY_BYTES / 2**30:.0f} GiB limit; the header is probably corrupt "
            "(set DWI_TOOLKIT_MAX_ARRAY_GB to raise the limit for a genuinely huge image)."
        )
