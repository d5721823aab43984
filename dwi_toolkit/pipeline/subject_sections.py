"""The optional parts of a subject's analysis shared by ``analyze`` and the pipeline steps.

:func:`gradient_qc` checks (and optionally fixes) the gradient table before any fit
(:func:`dwi_toolkit.qc.gradient_check.check_gradients`: a flipped or permuted b-vector axis
leaves ADC unchanged but mirrors every fibre direction; Jeurissen et al., Med Image Anal 2014);
:func:`add_report_sections` adds its QC line and the tractography section to a
:class:`~dwi_toolkit.reporting.report.Report`. Used by
:func:`~dwi_toolkit.pipeline.analyze.run_analysis` (options ``check_gradients``, ``fix_gradients``,
``track``) and by the ``check_gradients``, ``track`` and ``report`` pipeline steps.
"""

from __future__ import annotations

import logging
from typing import Any

__all__ = ["gradient_qc", "add_report_sections"]

logger = logging.getLogger(__name__)


def gradient_qc(series: Any, *, fix: bool = False, mask: Any = None, fa_threshold: float = 0.2,
                min_margin: float = 0.1) -> tuple[Any, dict[str, Any]]:
    """Check the gradient table of `series` (and apply the best table when `fix` and it is wrong).

    Parameters
    ----------
    series : DWISeries
        b-values in s/mm²; needs a b=0 volume and ≥ 6 directions.
    fix : bool, optional
        Return the series with the best table when the check calls the given one wrong.
    mask : ndarray of bool, optional
        Body mask (default: mean b=0 above 10 % of its 99th percentile).
    fa_threshold, min_margin : float, optional
        As in :func:`~dwi_toolkit.qc.gradient_check.check_gradients`.

    Returns
    -------
    (DWISeries, dict)
        The series (corrected or the same) and the JSON-ready record: the check's
        ``to_dict()`` plus ``applied`` (bool) — what the report's QC and provenance show.

    Examples
    --------
    >>> from dwi_toolkit.phantom_sessions import make_gradient_error_phantom
    >>> ph = make_gradient_error_phantom("yxz", shape=(30, 26, 40), voxel_size=(3, 3, 3), seed=1)
    >>> fixed, rec = gradient_qc(ph.series, fix=True)
    >>> rec["status"], rec["best"], rec["applied"]
    ('wrong', 'yxz', True)
    """
    import warnings

    from ..errors import GradientWarning
    from ..qc.gradient_check import check_gradients, fix_gradients

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", GradientWarning)  # reported in the QC section instead
        res = check_gradients(series, mask=mask, fa_threshold=fa_threshold, min_margin=min_margin)
    rec = {**res.to_dict(), "applied": False}
    rec.pop("scores_mm", None)
    if fix and res.is_wrong:
        series, _ = fix_gradients(series, res)
        rec["applied"] = True
    logger.info("gradient check: %s (best %s, margin %.1f %%, applied %s)", res.status, res.best,
                100 * res.margin, rec["applied"])
    return series, rec


def _gradient_line(rec: dict[str, Any]) -> str:
    text = (f"{rec['status']}: given table scored {rec['given_score_mm']:.1f} mm, best {rec['best']!r} "
            f"{rec['best_score_mm']:.1f} mm (margin {100 * rec['margin']:.0f} %)")
    return text + ("; the best table was applied before fitting" if rec.get("applied") else "")


def add_report_sections(report: Any, *, adjacent_comparison: Any = None,
                        gradient_check: dict[str, Any] | None = None, tractography: Any = None,
                        figures: bool = True, out_dir: Any = None) -> Any:
    """Add the optional sections to `report` (in place): the comparison with adjacent levels, the
    gradient-check QC line and the tractography section.

    Parameters
    ----------
    report : Report
    adjacent_comparison : SideComparison, optional
        The side comparison against adjacent levels (its report section).
    gradient_check : dict, optional
        The record of :func:`gradient_qc` (QC line, a flag when wrong, provenance entry).
    tractography : TractographyResult, optional
        From :func:`dwi_toolkit.pipeline.tractography.run_tractography` (the ``tractography``
        block of report.json, its tables and figures).
    figures : bool, optional
        Render the tractography figures.
    out_dir : path-like, optional
        The subject's output folder: tractography files are listed relative to it.

    Returns
    -------
    Report
        The same object.

    Examples
    --------
    >>> from dwi_toolkit.reporting.report import Report, make_provenance
    >>> rep = Report(provenance=make_provenance(), acquisition={}, qc={"flags": []})
    >>> rec = {"status": "wrong", "best": "-xyz", "given_score_mm": 5.0, "best_score_mm": 9.0, "margin": 0.8,
    ...        "message": "flip x", "applied": False}
    >>> add_report_sections(rep, gradient_check=rec).qc["gradient_check"]
    "wrong: given table scored 5.0 mm, best '-xyz' 9.0 mm (margin 80 %)"
    >>> len(rep.qc["flags"]), rep.provenance["gradient_check"]["applied"]
    (1, False)
    """
    if adjacent_comparison is not None:
        from ..reporting.report import adjacent_comparison_section

        report.sections.append(adjacent_comparison_section(adjacent_comparison))
    if gradient_check is not None:
        report.qc["gradient_check"] = _gradient_line(gradient_check)
        report.provenance["gradient_check"] = dict(gradient_check)
        from ..qc.flags import gradient_table_flags

        report.qc.setdefault("flags", []).extend(f.to_dict() for f in gradient_table_flags(gradient_check))
    if tractography is not None:
        report.sections.append(tractography.section(figures=figures, relative_to=out_dir))
    return report
