"""Long-format cohort tables (one row per subject × session × root × parameter) → matrices.

Private helpers shared by :mod:`~dwi_toolkit.analysis.harmonize` and
:mod:`~dwi_toolkit.analysis.repeatability`. A "feature" is one measured quantity of a subject:
the tuple of the `by` columns (default level, side, segment, parameter).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from ..errors import InputDataError

FEATURE_COLUMNS = ("level", "side", "segment", "parameter")


def as_records(table: Any) -> list[dict[str, Any]]:
    """Rows as dicts from a list of mappings or a pandas DataFrame."""
    if hasattr(table, "to_dict") and hasattr(table, "columns"):
        return [dict(r) for r in table.to_dict("records")]
    try:
        rows = [dict(r) for r in table]
    except (TypeError, ValueError) as err:
        raise InputDataError("the table must be a list of row mappings or a pandas DataFrame "
                             "(e.g. cohort_roi_stats.csv read with csv.DictReader).") from err
    if not rows:
        raise InputDataError("the table has no rows.")
    return rows


def require_columns(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> None:
    missing = [c for c in columns if c not in rows[0]]
    if missing:
        raise InputDataError(f"the table lacks column(s) {missing}; it has {sorted(rows[0])}.")


def number(x: Any) -> float:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return math.nan
    return v


def feature_of(row: Mapping[str, Any], by: Sequence[str]) -> tuple:
    return tuple(str(row.get(c, "")) for c in by)


def feature_name(feature: tuple) -> str:
    return "_".join(p for p in feature if p)
