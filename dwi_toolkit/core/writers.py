"""The writers the data objects use to save themselves, filled in by :mod:`dwi_toolkit.io`.

``core``, ``roi``, ``models`` and ``analysis`` sit below ``io`` in the layers
(docs/architecture.md), so their convenience ``save`` methods (``DWISeries.save``,
``RoiSet.save``, ``ADCFit.save`` ...) must not import ``io``. They look their writer up here by
name instead. The package's entry point (``dwi_toolkit/__init__.py``) registers ``io``'s writers
as ``"module:function"`` strings, resolved on first use, so ``import dwi_toolkit`` stays light and
the dependency stays one way: ``io`` knows the objects, the objects know only this registry.

Registered names (see ``dwi_toolkit/__init__.py``):

====================  =============================================
``"dwi"``             :func:`dwi_toolkit.io.nifti.save_dwi`
``"map"``             :func:`dwi_toolkit.io.nifti.save_map`
``"rois"``            :func:`dwi_toolkit.io.rois.save_rois`
``"csv"``             :func:`dwi_toolkit.io.tables.write_csv`
``"atomic_path"``     :func:`dwi_toolkit.io._atomic.atomic_path`
``"comparison_str"``  :func:`dwi_toolkit.reporting.presentation.comparison_str`
``"comparison_csv"``  :func:`dwi_toolkit.reporting.presentation.comparison_to_csv`
``"entrapment_str"``  :func:`dwi_toolkit.reporting.presentation.entrapment_str`
``"records_csv"``     :func:`dwi_toolkit.reporting.presentation.records_to_csv`
====================  =============================================

A new file format for an existing object is added in ``io`` (and registered there or in
``dwi_toolkit/__init__.py``); the object's class does not change.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from ..errors import DwiToolkitError

__all__ = ["get_writer", "register_writer"]

_WRITERS: dict[str, Callable[..., Any] | str] = {}


def register_writer(name: str, writer: Callable[..., Any] | str) -> None:
    """Register `writer` (a callable or a ``"package.module:function"`` string) under `name`.

    Examples
    --------
    >>> register_writer("demo_upper", str.upper)
    >>> get_writer("demo_upper")("ok")
    'OK'
    """
    if not (callable(writer) or (isinstance(writer, str) and ":" in writer)):
        raise TypeError(f"writer must be a callable or 'module:function', got {writer!r}")
    _WRITERS[name] = writer


def get_writer(name: str) -> Callable[..., Any]:
    """The writer registered under `name` (imports its module on first use).

    Raises
    ------
    DwiToolkitError
        Nothing is registered under `name`.

    Examples
    --------
    >>> get_writer("map").__name__
    'save_map'
    """
    try:
        writer = _WRITERS[name]
    except KeyError:
        raise DwiToolkitError(
            f"no writer registered for {name!r} (known: {', '.join(sorted(_WRITERS)) or 'none'}); "
            "use the functions of dwi_toolkit.io directly, or register one with "
            "dwi_toolkit.core.writers.register_writer."
        ) from None
    if isinstance(writer, str):
        module, _, attr = writer.partition(":")
        writer = getattr(importlib.import_module(module), attr)
        _WRITERS[name] = writer
    return writer
