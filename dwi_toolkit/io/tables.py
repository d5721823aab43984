"""Tabular outputs (CSV) written atomically.

Floats are written with 9 significant digits (enough to round-trip ADC values in mm²/s to
10⁻¹² mm²/s), NaN and ``None`` as empty cells; units belong in column names or a ``unit`` column.
"""

from __future__ import annotations

import csv
import io
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ..errors import InputDataError
from ._atomic import atomic_write_text

__all__ = ["format_csv", "write_csv"]


def _cell(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return "" if math.isnan(v) else f"{v:.9g}"
    return str(v)


def format_csv(records: Iterable[Mapping[str, Any]], *, columns: Sequence[str] | None = None) -> str:
    """CSV text for a list of dicts; columns default to the keys of the first record.

    Examples
    --------
    >>> format_csv([{"roi": "L5_left", "adc": 1.2e-3}, {"roi": "L5_right", "adc": float("nan")}]).splitlines()
    ['roi,adc', 'L5_left,0.0012', 'L5_right,']
    """
    recs = list(records)
    if columns is None:
        columns = list(recs[0]) if recs else []
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(columns)
    for r in recs:
        missing = [c for c in columns if c not in r]
        if missing:
            raise InputDataError(f"CSV record lacks columns {missing}: {dict(r)!r:.200}")
        w.writerow([_cell(r[c]) for c in columns])
    return buf.getvalue()


def write_csv(path: str | os.PathLike, records: Iterable[Mapping[str, Any]], *,
              columns: Sequence[str] | None = None) -> Path:
    """Write records as CSV to `path` atomically and return the path.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> p = write_csv(Path(tempfile.mkdtemp()) / "t.csv", [{"level": "L5", "mean": 1.2e-3}])
    >>> p.read_text().splitlines()
    ['level,mean', 'L5,0.0012']
    """
    return atomic_write_text(path, format_csv(records, columns=columns))
