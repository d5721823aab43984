"""Optional report sections (tractography, gradient check ...) as plain data objects.

A :class:`ReportSection` carries everything :class:`~dwi_toolkit.reporting.report.Report` needs
to include an optional part of a subject report: its key in ``report.json``, a heading, the
JSON block, the HTML body, its figures and its tidy tables. Section builders
(:mod:`dwi_toolkit.reporting.tracts_section`) make them; ``Report.sections`` holds them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["ReportSection"]


@dataclass
class ReportSection:
    """One optional section of a subject report.

    Attributes
    ----------
    key : str
        Key of the JSON block in ``report.json`` and the HTML anchor (e.g. ``"tractography"``).
    title : str
        Heading of the HTML section.
    data : dict
        JSON-ready block (values with units as ``{"value": ..., "unit": ...}`` or a ``units`` map).
    html : str
        HTML body (figures embedded as data URIs).
    figures : list of ReportFigure
        Written as ``figures/<name>.png`` with the report.
    tables : dict
        CSV stem → records, written as ``<stem>.csv`` with the report.

    Examples
    --------
    >>> s = ReportSection("demo", "Demo", {"n": 1}, "<p>demo</p>")
    >>> s.to_dict(), s.figures, s.tables
    ({'n': 1}, [], {})
    """

    key: str
    title: str
    data: dict[str, Any]
    html: str
    figures: list[Any] = field(default_factory=list)
    tables: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The JSON block of the section."""
        return self.data
