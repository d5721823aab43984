"""Inline display of matplotlib figures in Jupyter without ``%matplotlib`` magic.

dwi_toolkit draws with the matplotlib object API (``matplotlib.figure.Figure``, no pyplot state), so
its figures are Agg-safe in scripts, servers and the CLI. IPython, however, only displays a bare
``Figure`` as an image after the inline backend has been activated, which happens when pyplot is
imported; before that a notebook shows ``<Figure size 640x480 with 1 Axes>``. This module registers
IPython's PNG printer for ``matplotlib.figure.Figure`` in a running Jupyter kernel, exactly as the
inline backend does, so every figure displays as an image in a fresh kernel. Outside a Jupyter
kernel (scripts, CLI, tests) it does nothing and imports nothing.
"""

from __future__ import annotations

import os
import sys

__all__ = ["enable_inline_figures"]

#: Non-interactive matplotlib backends: with these (e.g. ``MPLBACKEND=Agg`` in a docs build) figures
#: can only be shown as images, so the printer is registered; interactive ones (widget, qt, tk ...)
#: display figures themselves and are left alone.
_NON_INTERACTIVE = frozenset({"agg", "cairo", "pdf", "pgf", "ps", "svg", "template"})


def _png(fig) -> bytes | None:
    """PNG of a figure, as the inline backend renders it (tight bounding box)."""
    from IPython.core.pylabtools import print_figure

    return print_figure(fig, "png", bbox_inches="tight")


def enable_inline_figures() -> bool:
    """Let a running Jupyter kernel display ``matplotlib.figure.Figure`` objects as PNG images.

    A no-op (returning ``False``) when not in a Jupyter kernel, when the matplotlib backend chosen
    for the kernel (``MPLBACKEND``) is an interactive one other than inline (widget, qt ...), or
    when a PNG printer for figures is already registered. IPython's ``%matplotlib`` magic replaces
    or removes the registration as usual. Called on ``import dwi_toolkit``.

    Returns
    -------
    bool
        True when the printer was registered by this call.

    Examples
    --------
    >>> enable_inline_figures()          # not in a Jupyter kernel: nothing to do
    False
    """
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None and hasattr(ipython, "get_ipython") else None
    if shell is None or getattr(shell, "kernel", None) is None:
        return False
    backend = os.environ.get("MPLBACKEND", "").lower()
    if backend and "inline" not in backend and backend not in _NON_INTERACTIVE:
        return False
    formatter = shell.display_formatter.formatters["image/png"]
    if formatter.for_type_by_name("matplotlib.figure", "Figure") is not None:
        return False
    formatter.for_type_by_name("matplotlib.figure", "Figure", _png)
    return True
