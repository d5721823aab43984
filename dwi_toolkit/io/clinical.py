"""Read and write the per-subject ``clinical.json`` (schema in ``docs/clinical.md``).

The content is validated by :class:`dwi_toolkit.clinical.vocab.ClinicalInput` (field names and
vocabularies of dwi_toolkit References §3.10–§3.11). Files are never modified on read and are
written atomically.

Examples
--------
>>> import tempfile, pathlib
>>> from dwi_toolkit.clinical.vocab import ClinicalInput
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> p = save_clinical(ClinicalInput(age=45, radicular_side="left", suspected_levels=["L5"]),
...                   d / "clinical.json")
>>> load_clinical(p).suspected_levels
('L5',)
"""

from __future__ import annotations

import csv
import json
import logging
import os
from pathlib import Path

from ..clinical.vocab import ClinicalInput
from ..errors import ClinicalDataError
from ._atomic import atomic_write_text

__all__ = ["load_clinical", "save_clinical", "read_referral_table"]

logger = logging.getLogger(__name__)


def load_clinical(path: str | os.PathLike) -> ClinicalInput:
    """Read a ``clinical.json`` file.

    Parameters
    ----------
    path : str or os.PathLike
        JSON object with the fields documented in ``docs/clinical.md``. Absent fields and
        ``null`` mean "not recorded".

    Returns
    -------
    ClinicalInput

    Raises
    ------
    ClinicalDataError
        When the file is missing, is not valid JSON, or has unknown fields or vocabulary (the
        message names the file, the field and the allowed values).

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> from dwi_toolkit.sample_data import SAMPLE_CLINICAL
    >>> from dwi_toolkit.clinical.vocab import ClinicalInput
    >>> path = save_clinical(ClinicalInput.from_dict(SAMPLE_CLINICAL), Path(tempfile.mkdtemp()) / "clinical.json")
    >>> c = load_clinical(path)
    >>> c.radicular_side, c.suspected_levels, c.pain_duration_weeks
    ('left', ('L5',), 10)
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError as err:
        raise ClinicalDataError(f"clinical file not found: {p}") from err
    except (OSError, UnicodeDecodeError) as err:
        raise ClinicalDataError(f"cannot read clinical file {p}: {err}") from err
    try:
        data = json.loads(text)
    except RecursionError as err:
        raise ClinicalDataError(f"{p} is nested too deeply to be a clinical.json object.") from err
    except json.JSONDecodeError as err:
        raise ClinicalDataError(
            f"{p} is not valid JSON (line {err.lineno}, column {err.colno}: {err.msg})"
        ) from err
    from ._guard import reading

    try:
        with reading(p, "clinical data", error=ClinicalDataError,
                     hint="its fields must follow the documented clinical.json schema"):
            clinical = ClinicalInput.from_dict(data)
    except ClinicalDataError as err:
        raise ClinicalDataError(f"{p}: {err}") from err
    logger.debug("read clinical data from %s", p)
    return clinical


def save_clinical(clinical: ClinicalInput, path: str | os.PathLike) -> Path:
    """Write `clinical` as ``clinical.json`` (atomically; every field, schema version included).

    Returns
    -------
    pathlib.Path
        The path written.

    Examples
    --------
    >>> import json, tempfile
    >>> from pathlib import Path
    >>> from dwi_toolkit.sample_data import SAMPLE_CLINICAL
    >>> from dwi_toolkit.clinical.vocab import ClinicalInput
    >>> path = save_clinical(ClinicalInput.from_dict(SAMPLE_CLINICAL), Path(tempfile.mkdtemp()) / "clinical.json")
    >>> json.loads(path.read_text())["schema"]
    'dwi_toolkit.clinical'
    """
    if not isinstance(clinical, ClinicalInput):
        raise ClinicalDataError(
            f"save_clinical expects a ClinicalInput, got {type(clinical).__name__}; build one "
            "with ClinicalInput.from_dict(...)"
        )
    text = json.dumps(clinical.to_dict(), indent=2, ensure_ascii=False) + "\n"
    return atomic_write_text(path, text)


def read_referral_table(path: str | os.PathLike) -> list[dict[str, str | None]]:
    """Read a CSV or TSV table of referrals (one row per request) as text cells.

    The delimiter is a tab for ``.tsv``/``.tab`` files and is detected among comma, semicolon
    and tab otherwise. Empty cells become ``None`` ("not recorded"). Values are not interpreted
    here; :func:`dwi_toolkit.clinical.audit.audit_referrals` validates them against the clinical
    vocabulary (``docs/clinical.md``). The file is never modified.

    Parameters
    ----------
    path : str or os.PathLike
        Table with a header row naming the clinical fields (plus optional ``setting``,
        ``prescriber_specialty``, ``referred_pain``, ``radiologist_assessment`` and an ``id``).

    Returns
    -------
    list of dict
        One mapping per row, column name -> text or ``None``.

    Raises
    ------
    ClinicalDataError
        When the file is missing, unreadable, empty or has rows longer than the header.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "referrals.tsv"
    >>> _ = p.write_text("id\\tage\\tred_flags\\nr1\\t45\\t\\n", encoding="utf-8")
    >>> read_referral_table(p)
    [{'id': 'r1', 'age': '45', 'red_flags': None}]
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8-sig")
    except FileNotFoundError as err:
        raise ClinicalDataError(f"referral table not found: {p}") from err
    except OSError as err:
        raise ClinicalDataError(f"cannot read referral table {p}: {err}") from err
    if not text.strip():
        raise ClinicalDataError(f"referral table {p} is empty; expected a header row and one row "
                                "per referral (docs/clinical.md)")
    if p.suffix.lower() in (".tsv", ".tab"):
        delimiter = "\t"
    else:
        try:
            delimiter = csv.Sniffer().sniff(text.splitlines()[0], delimiters=",;\t").delimiter
        except csv.Error:
            delimiter = ","
    rows = []
    for i, row in enumerate(csv.DictReader(text.splitlines(), delimiter=delimiter), start=2):
        if None in row:
            raise ClinicalDataError(f"{p}, line {i}: more cells than header columns")
        rows.append({k.strip(): (v.strip() if v is not None and v.strip() else None)
                     for k, v in row.items()})
    logger.debug("read %d referrals from %s", len(rows), p)
    return rows
