"""Imported by the local pool's fork server (``runner.WORKER_PRELOAD``): first-use costs paid once.

Importing this module draws a tiny figure with matplotlib's Agg canvas, which loads the font
list, the default font and the mathtext parser (log-axis tick labels) — work that each worker
process would otherwise repeat for its first subject (issue 21: ``--jobs`` start-up).
"""

from ..reporting.figure_worker import _warm_up

_warm_up()
