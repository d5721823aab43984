"""Scrubbing identifiers that sites type into free-text DICOM fields.

Identifier *attributes* (PatientName, PatientID, dates, ...) are dropped by
:func:`dwi_toolkit.io._phi.strip_phi`. Free-text fields such as SeriesDescription and
ProtocolName are kept because they name the acquisition, but technologists sometimes type a
patient's name, a date or a record number into them ("DWI SMITH 2024-03-01", "ep2d_diff
MRN1234567"). :func:`scrub_text` masks, in such text:

- **names**: every token (≥ 2 letters; placeholders such as "Anonymous", "Phantom", "Synthetic",
  "Patient" and MR acquisition words such as "DTI", "Lumbar" excepted) of the PatientName / OtherPatientNames / physician and
  operator names found *in the same header*, matched case-insensitively as whole words;
- **the header's own identifiers**: the PatientID, OtherPatientIDs, AccessionNumber, StudyID
  values, wherever they appear (also inside longer words);
- **dates**: ``YYYYMMDD``, ``YYYY-MM-DD`` / ``YYYY.MM.DD`` / ``YYYY/MM/DD``, ``DD.MM.YYYY``,
  ``DD/MM/YYYY``, ``MM-DD-YYYY``, ``DD-MM-YY`` (valid month and day), and ``12 Mar 2024``;
- **ID-like numbers**: a run of 6 or more digits (optionally after up to three letters, e.g.
  ``MRN1234567``, ``A12345678``).

What it cannot catch: names that are not in the header (another person's, a misspelling, a
nickname), initials and names of one letter, identifiers shorter than 6 digits that are not the
header's own PatientID/AccessionNumber, dates written in words without a day number ("March
2024"), and identifiers in fields we do not treat as free text. Acquisition terms (``b800``,
``ep2d_diff_b50_800``, ``3x3x4mm``, ``TE68``) are left alone because none reaches 6 digits.
"""

from __future__ import annotations

import contextlib
import contextvars
import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

__all__ = ["MASK", "FREE_TEXT_KEYS", "PLACEHOLDER_NAMES", "ACQUISITION_WORDS", "scrub_text", "scrub_meta",
           "header_identifiers", "safe_filename", "scrub_policy", "resolve_scrub"]

#: What a scrubbed identifier is replaced with.
MASK = "[scrubbed]"

#: Sidecar/DICOM keywords whose values are free text typed at the scanner.
FREE_TEXT_KEYS = ("SeriesDescription", "ProtocolName", "ImageComments", "StudyDescription",
                  "PerformedProcedureStepDescription", "RequestedProcedureDescription", "SequenceName")

_NAME_KEYS = ("PatientName", "OtherPatientNames", "PatientMotherBirthName", "ReferringPhysicianName",
              "PerformingPhysicianName", "OperatorsName", "RequestingPhysician", "PhysiciansOfRecord",
              "NameOfPhysiciansReadingStudy")
_ID_KEYS = ("PatientID", "OtherPatientIDs", "AccessionNumber", "StudyID", "PatientBirthDate")

#: Name tokens that are placeholders of de-identified or test data, not identifiers.
PLACEHOLDER_NAMES = frozenset({"anonymous", "anonymized", "anonymised", "anon", "patient", "phantom", "test",
                               "synthetic", "volunteer", "unknown", "subject", "qa", "dwi", "mri", "mr", "none",
                               "na", "nn", "xx", "removed", "deidentified"})

#: MR acquisition vocabulary: a name token that is also one of these words (test data are often
#: named "DTI Test", "Lumbar^DWI") is left in free text, where masking it would only garble the
#: series description ("ep2d_DTI_20dir" stays readable). Real names are very rarely these words.
ACQUISITION_WORDS = frozenset({"dti", "dwi", "adc", "ivim", "epi", "ep2d", "resolve", "trace", "tracew", "fa",
                               "md", "b0", "spine", "lumbar", "cervical", "thoracic", "brain", "head", "neuro",
                               "diffusion", "tensor", "axial", "sagittal", "coronal", "tra", "sag", "cor",
                               "flair", "stir", "tse", "fse", "se", "gre", "t1", "t2", "pd", "dir", "dirs",
                               "ap", "pa", "lr", "rl", "fov", "scan", "series", "protocol", "study", "research"})

_MONTHS = "jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec"
_D = r"(?:0?[1-9]|[12]\d|3[01])"
_M = r"(?:0?[1-9]|1[0-2])"
_DATES = [
    rf"(?<!\d)(?:19|20)\d\d(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])(?!\d)",  # 20240301
    rf"(?<!\d)(?:19|20)\d\d[-./]{_M}[-./]{_D}(?!\d)",  # 2024-03-01
    rf"(?<!\d){_D}[-./]{_M}[-./](?:19|20)?\d\d(?!\d)",  # 01.03.2024, 01/03/24
    rf"(?<!\d){_M}[-./]{_D}[-./](?:19|20)\d\d(?!\d)",  # 03/31/2024
    rf"(?<!\d){_D}[ -]?(?:{_MONTHS})[a-z]*\.?[ -]?(?:19|20)?\d\d(?!\d)",  # 1 Mar 2024, 01MAR24
    rf"\b(?:{_MONTHS})[a-z]*\.? {_D},? (?:19|20)\d\d(?!\d)",  # Mar 1, 2024
]
_DATE_RE = re.compile("|".join(f"(?:{d})" for d in _DATES), re.IGNORECASE)
_ID_RE = re.compile(r"(?<![A-Za-z0-9])[A-Za-z]{0,3}\d{6,}(?![0-9])")


def header_identifiers(header: Any) -> tuple[list[str], list[str]]:
    """(name tokens, identifier values) found in a DICOM header or a sidecar-like mapping.

    Examples
    --------
    >>> header_identifiers({"PatientName": "Doe^Jane^M", "PatientID": "ab12345"})
    (['doe', 'jane'], ['ab12345'])
    """
    names: list[str] = []
    ids: list[str] = []
    for key in _NAME_KEYS + _ID_KEYS:
        try:
            value = header.get(key) if hasattr(header, "get") else None
        except Exception:  # a damaged value must not stop scrubbing the others
            value = None
        if value is None:
            continue
        values = value if isinstance(value, (list, tuple)) else [value]
        for v in values:
            text = str(v).strip()
            if not text:
                continue
            if key in _NAME_KEYS:
                names += [t.lower() for t in re.split(r"[\^\s,=.;]+", text)
                          if len(t) >= 2 and t.isalpha() and t.lower() not in PLACEHOLDER_NAMES
                          and t.lower() not in ACQUISITION_WORDS]
            elif len(text) >= 3:
                ids.append(text)
    return sorted(set(names), key=names.index), sorted(set(ids), key=ids.index)


def scrub_text(text: str, *, names: Iterable[str] = (), identifiers: Iterable[str] = ()) -> str:
    """`text` with names, the given identifiers, dates and ID-like numbers replaced by :data:`MASK`.

    Parameters
    ----------
    text : str
        Free text (e.g. a SeriesDescription).
    names : iterable of str
        Name tokens to remove as whole words (case-insensitive), e.g. from the PatientName.
    identifiers : iterable of str
        Exact values to remove anywhere (case-insensitive), e.g. the PatientID.

    Examples
    --------
    >>> scrub_text("DWI b800 DOE 2024-03-01 MRN1234567", names=["doe"])
    'DWI b800 [scrubbed] [scrubbed] [scrubbed]'
    >>> scrub_text("ep2d_diff_b50_800_1400 3x3x4")     # acquisition terms stay
    'ep2d_diff_b50_800_1400 3x3x4'
    """
    out = str(text)
    for ident in sorted({i for i in identifiers if i}, key=len, reverse=True):
        out = re.sub(re.escape(ident), MASK, out, flags=re.IGNORECASE)
    for name in sorted({n for n in names if n}, key=len, reverse=True):
        out = re.sub(rf"(?<![A-Za-z]){re.escape(name)}(?![A-Za-z])", MASK, out, flags=re.IGNORECASE)
    out = _DATE_RE.sub(MASK, out)
    return _ID_RE.sub(MASK, out)


def scrub_meta(meta: Mapping[str, Any], header: Any = None) -> dict[str, Any]:
    """A copy of `meta` with its free-text fields (:data:`FREE_TEXT_KEYS`) scrubbed.

    Names and identifiers are taken from `header` (a DICOM dataset or mapping; default `meta`).

    Examples
    --------
    >>> scrub_meta({"SeriesDescription": "DWI Smith", "EchoTime": 0.07}, {"PatientName": "SMITH^JOHN"})
    {'SeriesDescription': 'DWI [scrubbed]', 'EchoTime': 0.07}
    """
    names, ids = header_identifiers(meta if header is None else header)
    out = dict(meta)
    for key in FREE_TEXT_KEYS:
        value = out.get(key)
        if isinstance(value, str):
            out[key] = scrub_text(value, names=names, identifiers=ids)
        elif isinstance(value, list):
            out[key] = [scrub_text(str(v), names=names, identifiers=ids) for v in value]
    return out


def safe_filename(text: str, *, names: Iterable[str] = (), identifiers: Iterable[str] = (),
                  max_len: int = 60) -> str:
    """A scrubbed description made safe as part of a file name (letters, digits, ``-``, ``_``).

    Examples
    --------
    >>> safe_filename("DWI/Doe 01.03.2024", names=["doe"])
    'DWI_x_x'
    """
    s = scrub_text(text, names=names, identifiers=identifiers).replace(MASK, "x")
    s = re.sub(r"[^A-Za-z0-9_-]+", "_", s).strip("_")
    return s[:max_len] or "series"


#: The scrub policy in force for loaders called without ``scrub_text`` (:func:`scrub_policy`).
_POLICY: contextvars.ContextVar[bool | None] = contextvars.ContextVar("dwi_scrub_text", default=None)


def resolve_scrub(scrub_text: bool | None, keep_phi: bool) -> bool:
    """Whether loaders scrub free text: `scrub_text` when given, else the :func:`scrub_policy` in force,
    else on unless `keep_phi`.

    Examples
    --------
    >>> resolve_scrub(None, False), resolve_scrub(None, True), resolve_scrub(True, True)
    (True, False, True)
    >>> with scrub_policy(False):
    ...     resolve_scrub(None, False)
    False
    """
    if scrub_text is not None:
        return bool(scrub_text)
    policy = _POLICY.get()
    return (not keep_phi) if policy is None else bool(policy)


@contextlib.contextmanager
def scrub_policy(enabled: bool | None) -> Iterator[bool | None]:
    """Context manager: loaders called without ``scrub_text`` use `enabled` (None: the default policy).

    Examples
    --------
    >>> with scrub_policy(None):
    ...     resolve_scrub(None, keep_phi=False)
    True
    """
    token = _POLICY.set(enabled)
    try:
        yield enabled
    finally:
        _POLICY.reset(token)
