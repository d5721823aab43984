"""Output-path safety: an output never lands in a DICOM or BIDS subject folder of an input, nor on an input.

The policy (docs/robustness.md, "Outputs never touch the inputs"):

- an output (folder or file) that *is*, or lies *inside*, a protected folder of an input is
  refused: a DICOM folder given as input (or the folder of a DICOM file given as input), any
  other folder given as input, and the BIDS subject folder (``sub-*`` under a folder holding
  ``dataset_description.json``) holding an input file;
- an output path equal to an input file is refused;
- writing into the folder of a plain NIfTI input (outside BIDS) is allowed, as users expect
  (``adc dwi.nii.gz -o .``); while a command runs, :func:`protect_inputs` makes every atomic
  write (:mod:`dwi_toolkit.io._atomic`) refuse to replace an input file there.

Both paths are compared after resolving symlinks and also as written (absolute, not resolved),
before anything is written.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from ..errors import InputDataError
from ._sniff import looks_like_dicom

__all__ = ["check_output_target", "protect_inputs", "check_not_input"]

_PROTECTED: contextvars.ContextVar[frozenset[Path]] = contextvars.ContextVar("dwi_protected_inputs",
                                                                             default=frozenset())
_NOT_DICOM = (".nii", ".gz", ".json", ".bval", ".bvec", ".csv", ".tsv", ".txt", ".label", ".tck", ".trk",
              ".trx", ".toml", ".png", ".pdf", ".svg", ".html", ".mgz", ".npz", ".npy")


def _forms(p: str | os.PathLike) -> set[Path]:
    """The path as written (absolute) and with symlinks resolved."""
    return {Path(os.path.abspath(p)), Path(p).resolve()}


def _is_dicom_file(p: Path) -> bool:
    if p.suffix.lower() in (".dcm", ".ima"):
        return True
    if p.suffix.lower() in _NOT_DICOM:
        return False
    return looks_like_dicom(p)


def _bids_subject(p: Path) -> Path | None:
    for parent in p.parents:
        if parent.name.startswith("sub-") and (parent.parent / "dataset_description.json").is_file():
            return parent
    return None


def _protected_folders(p: Path) -> list[tuple[Path, str]]:
    """(folder, why) pairs no output may be in, for one existing input path."""
    found: list[tuple[Path, str]] = []
    if p.is_dir():
        found.append((p, "an input folder"))
    elif _is_dicom_file(p):
        found.append((p.parent, "the folder of an input DICOM file"))
    sub = _bids_subject(p)
    if sub is not None:
        found.append((sub, "the BIDS subject folder of an input"))
    return found


def _inside(child: Path, parent: Path) -> bool:
    return child == parent or parent in child.parents


def check_output_target(out: str | os.PathLike, inputs: Iterable[str | os.PathLike | None]) -> Path:
    """Refuse an output path that is an input file or lies in a protected folder of an input.

    Parameters
    ----------
    out : path-like
        The output folder or file (it need not exist yet).
    inputs : iterable of path-like or None
        The input paths of the command; None and paths that do not exist are ignored.

    Returns
    -------
    Path
        `out` with symlinks resolved.

    Raises
    ------
    InputDataError
        When `out` is an input file, or is (or is inside) an input folder, the folder of an input
        DICOM file or the BIDS subject folder of an input. Nothing has been written then.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> (d / "dicom").mkdir(); (d / "dicom" / "IM1.dcm").write_bytes(b"")
    0
    >>> check_output_target(d / "out", [d / "dicom"]) == (d / "out").resolve()
    True
    >>> try:
    ...     check_output_target(d / "dicom" / "out", [d / "dicom"])
    ... except InputDataError as e:
    ...     "inside an input folder" in str(e)
    True
    """
    outs = _forms(out)
    for given in inputs:
        if given is None or not os.path.lexists(given):
            continue
        src = Path(given)
        if not src.is_dir() and outs & _forms(src):
            raise InputDataError(f"the output {out} is the input file {given}; inputs are never overwritten, "
                                 "so choose another output path.")
        for form in _forms(src):
            for folder, why in _protected_folders(form):
                if any(_inside(o, folder) for o in outs):
                    raise InputDataError(
                        f"the output {out} is inside {why} ({folder}); inputs are never modified, so "
                        "choose an output folder outside it.")
    return Path(out).resolve()


@contextlib.contextmanager
def protect_inputs(inputs: Iterable[str | os.PathLike | None]) -> Iterator[frozenset[Path]]:
    """While the block runs, atomic writes refuse to replace any of `inputs` (files, symlinks resolved).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> f = pathlib.Path(tempfile.mkdtemp()) / "adc.nii.gz"; _ = f.write_bytes(b"x")
    >>> with protect_inputs([f]):
    ...     try:
    ...         check_not_input(f)
    ...     except InputDataError:
    ...         refused = True
    >>> refused
    True
    """
    paths = {form for p in inputs if p is not None and os.path.isfile(p) for form in _forms(p)}
    token = _PROTECTED.set(_PROTECTED.get() | frozenset(paths))
    try:
        yield _PROTECTED.get()
    finally:
        _PROTECTED.reset(token)


def check_not_input(path: str | os.PathLike) -> None:
    """Raise :class:`InputDataError` when `path` is an input protected by :func:`protect_inputs`.

    Examples
    --------
    >>> check_not_input("nothing-protected.json")  # outside protect_inputs: always allowed
    """
    protected = _PROTECTED.get()
    if protected and _forms(path) & protected:
        raise InputDataError(f"refusing to overwrite the input file {path}; inputs are never modified, so "
                             "write the output elsewhere (another -o/--out).")
