"""One subject end to end: load → fit ADC → ROI statistics → side comparison → assessments → report.

:func:`run_analysis` is the library function behind ``dwi-toolkit analyze`` and the batch
pipeline. It only calls the public API of the lower layers, in this order:

1. :func:`dwi_toolkit.io.loading.load_dwi` — the DWI series (NIfTI or DICOM).
2. :func:`dwi_toolkit.io.rois.load_rois` — the nerve-root ROIs (a ``RoiSet``).
3. :func:`dwi_toolkit.models.adc.fit_adc` — voxel-wise ADC (mm²/s) with status codes.
4. :func:`dwi_toolkit.analysis.roi_stats.roi_stats` — per-ROI statistics and voxel values.
5. :func:`dwi_toolkit.io.clinical.load_clinical` — the subject's ``clinical.json`` (optional).
6. :func:`dwi_toolkit.analysis.compare.compare_sides` — §2.8 indices with bootstrap CIs.
7. :func:`dwi_toolkit.clinical.indication.assess_indication` — rule set v1 (§3.10).
8. :func:`dwi_toolkit.clinical.entrapment.assess_entrapment` — per-level concordance.
9. :func:`dwi_toolkit.reporting.report.build_report` and :meth:`Report.save`.

The options used are recorded in the report's provenance with their units.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..clinical.entrapment import DEFAULT_THRESHOLD_PCT
from ..errors import PipelineError, RoiError

__all__ = ["run_analysis", "roi_masks"]

logger = logging.getLogger(__name__)


def _roi_label(roi: Any) -> str:
    seg = getattr(roi, "segment", None) or "ganglion"
    return f"{getattr(roi, 'level', '?')} {getattr(roi, 'side', '?')} {seg}"


def roi_masks(rois: Any, shape: Sequence[int], affine: np.ndarray) -> list[tuple[str, np.ndarray]]:
    """Rasterise ROIs on an image grid as ``(label, bool mask)`` pairs for figures and QC.

    Uses, in order, what the ROI objects offer: ``RoiSet.masks(shape, affine)`` (mapping or list),
    ``roi.mask(shape, affine)`` / ``roi.to_mask(shape, affine)``, or
    ``dwi_toolkit.roi.masks.rasterize(roi, shape, affine)``. When none is available the report is
    produced without overlays (logged), since ROI values come from ``roi_stats`` either way.

    Parameters
    ----------
    rois : RoiSet or iterable of RootROI
    shape : (X, Y, Z)
    affine : ndarray of shape (4, 4)
        Voxel → RAS+ mm of the grid.

    Examples
    --------
    >>> from dwi_toolkit.roi.model import RoiSet, RootROI, Sphere
    >>> rois = RoiSet([RootROI("L5", "left", shape=Sphere([3, 5, 5], 1.5))])
    >>> [(label, int(mask.sum())) for label, mask in roi_masks(rois, (10, 10, 10), np.eye(4))]
    [('L5 left ganglion', 19)]
    """
    shape = tuple(int(s) for s in shape[:3])
    out: list[tuple[str, np.ndarray]] = []
    fn = getattr(rois, "masks", None)
    if callable(fn):
        try:
            res = fn(shape, affine)
        except TypeError:
            res = None
        if res is not None:
            items = res.items() if hasattr(res, "items") else res
            for key, m in items:
                if isinstance(key, str):
                    lab = key
                elif isinstance(key, tuple):
                    lab = " ".join(map(str, key))
                else:
                    lab = _roi_label(key)
                out.append((lab, np.asarray(m, bool)))
            return out
    rasterize = None
    try:
        from ..roi import masks as _masks

        rasterize = getattr(_masks, "rasterize", None)
    except ImportError:
        pass
    for roi in rois:
        m = None
        for name in ("mask", "to_mask"):
            f = getattr(roi, name, None)
            if callable(f):
                try:
                    m = f(shape, affine)
                    break
                except TypeError:
                    continue
        if m is None and rasterize is not None:
            try:
                m = rasterize(roi, shape, affine)
            except (TypeError, RoiError) as err:
                logger.warning("could not rasterise ROI %s: %s", _roi_label(roi), err)
        if m is None:
            logger.warning("ROI %s cannot be rasterised; the report has no overlay for it", _roi_label(roi))
            continue
        out.append((_roi_label(roi), np.asarray(m, bool)))
    return out


def _side_from_clinical(clinical: Any) -> str | None:
    side = getattr(clinical, "radicular_side", None)
    if side is None and isinstance(clinical, dict):
        side = clinical.get("radicular_side")
    side = side.lower() if isinstance(side, str) else None
    return side if side in ("left", "right", "bilateral") else None


def run_analysis(
    series_path: str | os.PathLike,
    rois_path: str | os.PathLike,
    clinical_path: str | os.PathLike | None = None,
    out_dir: str | os.PathLike | None = None,
    *,
    method: str = "wls",
    b_min: float | None = None,
    b_max: float | None = None,
    symptomatic_side: str | None = None,
    threshold_pct: float = DEFAULT_THRESHOLD_PCT,
    parameter: str = "adc",
    n_boot: int = 2000,
    ci: float = 0.95,
    min_voxels: int = 5,
    seed: int = 0,
    bvals: str | os.PathLike | None = None,
    bvecs: str | os.PathLike | None = None,
    b0_threshold: float = 50.0,
    subject: str | None = None,
    stenosis_policy: str | None = None,
    dti: bool | None = None,
    csf_threshold: float | None = None,
    figures: bool = True,
    command: str | None = None,
) -> Any:
    """Analyse one subject and (when `out_dir` is given) write its report.

    Parameters
    ----------
    series_path : path-like
        DWI series: NIfTI (``.bval``/``.bvec`` beside it) or a DICOM file/folder.
    rois_path : path-like
        Nerve-root ROIs in a format :func:`dwi_toolkit.io.rois.load_rois` reads.
    clinical_path : path-like, optional
        The subject's ``clinical.json``; without it there is no indication assessment and the
        symptomatic side must come from `symptomatic_side`.
    out_dir : path-like, optional
        Where to write ``report.json``, CSV tables, figures and ``report.html``.
    method : {"wls", "ols", "nlls"}, optional
        ADC fit method (default ``"wls"``).
    b_min, b_max : float, optional
        b-value range in s/mm² used by the ADC fit (inclusive; default all b-values).
    symptomatic_side : {"left", "right"}, optional
        Overrides ``radicular_side`` of the clinical file.
    threshold_pct : float, optional
        Entrapment-assessment threshold on ``rel_diff_pct`` in % (default 10, not a diagnostic
        cut-off; see :func:`dwi_toolkit.clinical.entrapment.assess_entrapment`).
    parameter : str, optional
        Parameter assessed for entrapment (default ``"adc"``).
    n_boot, ci, min_voxels, seed : optional
        Bootstrap and flag settings of :func:`dwi_toolkit.analysis.compare.compare_sides`.
    bvals, bvecs : path-like, optional
        Gradient files when they are not beside a NIfTI input.
    b0_threshold : float, optional
        s/mm² (default 50).
    subject : str, optional
        Pseudonymous label printed on the report (default ``subject_id`` of the clinical file).
    stenosis_policy : {"kovacs2013", "acr2021"}, optional
        Stenosis-threshold policy of the indication rules (§3.10); default the rule set's own.
    dti : bool, optional
        Also fit the diffusion tensor and measure and compare FA and MD in the ROIs (FA is the
        most consistent marker of root compression, clinical-reference §2.2). Default (None):
        whenever the directions allow a tensor (b=0 plus six non-collinear directions);
        True requires it (FitError otherwise); False never.
    csf_threshold : float, optional
        ADC in mm²/s above which an ROI voxel counts as CSF-contaminated and is left out of the
        statistics (e.g. ``2.5e-3``; CSF ≈ 3.0e-3, clinical-reference §1.6); the excluded counts
        are reported. Default: no CSF exclusion.
    figures : bool, optional
        Render the figures (default True).

    Returns
    -------
    Report

    Raises
    ------
    DwiToolkitError
        From any step (bad input files, unknown clinical vocabulary, fit impossible ...).
    PipelineError
        Contradictory options.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> from dwi_toolkit.sample_data import COHORT, generate_cohort
    >>> tmp = Path(tempfile.mkdtemp())
    >>> _ = generate_cohort(tmp / "in", subjects={k: COHORT[k] for k in ("sub-01", "sub-05")}, dicom=False)
    >>> sub = tmp / "in" / "sub-01"
    >>> report = run_analysis(sub / "dwi" / "sub-01_dwi.nii.gz", sub / "rois.json", sub / "clinical.json",
    ...                       tmp / "report", figures=False, n_boot=200)
    >>> report.entrapment.get("L5").classification, (tmp / "report" / "report.html").is_file()
    ('concordant', True)
    """
    from ..analysis.compare import compare_sides
    from ..analysis.roi_stats import roi_stats
    from ..io.loading import load_dwi
    from ..io.rois import load_rois
    from ..models.adc import fit_adc
    from ..reporting.report import build_report

    if symptomatic_side is not None and symptomatic_side not in ("left", "right"):
        raise PipelineError(f"symptomatic_side must be 'left' or 'right', got {symptomatic_side!r}.")
    if b_min is not None and b_max is not None and b_min >= b_max:
        raise PipelineError(f"b_min ({b_min} s/mm^2) must be below b_max ({b_max} s/mm^2).")

    logger.info("loading %s", series_path)
    series = load_dwi(series_path, bvals=bvals, bvecs=bvecs, b0_threshold=b0_threshold)
    rois = load_rois(rois_path)

    b_range = None
    if b_min is not None or b_max is not None:
        b_range = (0.0 if b_min is None else float(b_min),
                   float(np.max(series.bvals)) if b_max is None else float(b_max))
    logger.info("fitting ADC (%s, b range %s)", method, b_range)
    fit = fit_adc(series, method=method, b_range=b_range)
    stats = roi_stats(fit, rois, csf_threshold=csf_threshold)
    dti_fit = None
    if dti or dti is None:
        from ..models.dti import dti_feasible, fit_dti

        if dti or dti_feasible(series):
            logger.info("fitting the diffusion tensor (FA, MD)")
            dti_fit = fit_dti(series, b_range=b_range)
            extra = [row for name in ("fa", "md")
                     for row in roi_stats(dti_fit.map(name, ok_only=True), rois).rows]
            stats = type(stats)(rows=[*stats.rows, *extra])  # one table, rows per parameter

    clinical = None
    indication = None
    if clinical_path is not None:
        from ..clinical.indication import assess_indication
        from ..io.clinical import load_clinical

        clinical = load_clinical(clinical_path)
        kw = {} if stenosis_policy is None else {"stenosis_policy": stenosis_policy}
        indication = assess_indication(clinical, **kw)
    side = symptomatic_side or _side_from_clinical(clinical)

    comparison = compare_sides(stats, symptomatic_side=side, n_boot=n_boot, ci=ci,
                               min_voxels=min_voxels, rng=seed)
    from ..clinical.entrapment import assess_entrapment

    entrapment = assess_entrapment(comparison, clinical, indication=indication,
                                   threshold_pct=threshold_pct, parameter=parameter)
    masks = roi_masks(rois, series.spatial_shape, series.affine)
    if subject is None and clinical is not None:
        subject = getattr(clinical, "subject_id", None)
    params = {
        "method": method, "b_min": b_min, "b_max": b_max, "b0_threshold": b0_threshold,
        "symptomatic_side": comparison.symptomatic_side, "symptomatic_side_source": (
            "option" if symptomatic_side else "clinical.radicular_side" if side else None),
        "threshold_pct": threshold_pct, "parameter": parameter, "n_boot": n_boot, "ci": ci,
        "min_voxels": min_voxels, "seed": seed, "stenosis_policy": stenosis_policy,
        "dti": dti_fit is not None, "csf_threshold": csf_threshold,
    }
    inputs = {"dwi": series_path, "rois": rois_path, "clinical": clinical_path,
              "bvals": bvals, "bvecs": bvecs}
    report = build_report(series=series, fit=fit, roi_masks=masks, stats=stats, comparison=comparison,
                          indication=indication, entrapment=entrapment, parameters=params,
                          inputs=inputs, subject=subject, command=command, figures=figures)
    if out_dir is not None:
        report.save(Path(out_dir))
    return report
