"""One helper for functions that take a frozen options dataclass plus keyword overrides.

Public functions keep at most ten parameters by grouping cohesive settings in a frozen dataclass
(:class:`~dwi_toolkit.analysis.options.AnalysisOptions`, :class:`~dwi_toolkit.analysis.compare.CompareOptions`,
:class:`~dwi_toolkit.reporting.roi_figures.MontageStyle` ...). For backward compatibility such a
function also accepts the fields as keywords (``**settings``); :func:`with_settings` merges them onto
the options object and names the unknown ones.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, TypeVar

from .errors import InputDataError

__all__ = ["with_settings"]

T = TypeVar("T")


def with_settings(cls: type[T], options: T | None, settings: Mapping[str, Any], *, where: str) -> T:
    """`options` (or the defaults of `cls`) with the keyword `settings` applied.

    Parameters
    ----------
    cls : type
        A frozen dataclass of options.
    options : cls instance or None
        The starting options; None means ``cls()``.
    settings : mapping
        Field names to new values (a function's ``**settings``).
    where : str
        The function name, for the error message.

    Returns
    -------
    cls instance

    Raises
    ------
    InputDataError
        A name in `settings` that is no field of `cls` (the valid ones are listed).

    Examples
    --------
    >>> from dataclasses import dataclass
    >>> @dataclass(frozen=True)
    ... class Style:
    ...     cmap: str = "gray"
    ...     dpi: int = 100
    >>> with_settings(Style, None, {"dpi": 150}, where="plot")
    Style(cmap='gray', dpi=150)
    >>> with_settings(Style, Style(cmap="magma"), {"colour": 1}, where="plot")
    Traceback (most recent call last):
    ...
    dwi_toolkit.errors.InputDataError: plot got unknown option(s) colour; valid: cmap, dpi.
    """
    names = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
    unknown = sorted(set(settings) - set(names))
    if unknown:
        raise InputDataError(f"{where} got unknown option(s) {', '.join(unknown)}; valid: {', '.join(names)}.")
    base = cls() if options is None else options
    return dataclasses.replace(base, **settings) if settings else base  # type: ignore[type-var]
