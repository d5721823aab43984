"""Longitudinal analysis: compare two scans of one patient with the smallest real change.

- :func:`~dwi_toolkit.longitudinal.compare.compare_sessions` — register the follow-up to the
  baseline (dipy), carry the ROIs over, per-root ADC change with its smallest real change.
- :func:`~dwi_toolkit.longitudinal.compare.register_sessions` — the registration alone.

Test–retest statistics (ICC, SDC) of a cohort are in :mod:`dwi_toolkit.analysis.repeatability`.

Examples
--------
>>> from dwi_toolkit.longitudinal import compare_sessions
>>> callable(compare_sessions)
True
"""

from .compare import Registration, SessionComparison, carry_rois, compare_sessions, register_sessions

__all__ = ["Registration", "SessionComparison", "carry_rois", "compare_sessions", "register_sessions"]
