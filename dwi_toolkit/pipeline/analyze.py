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

Its options are one :class:`~dwi_toolkit.analysis.options.AnalysisOptions` object (defaults in
one place), recorded in the report's provenance. The fits run in the analysis mask
(``options.mask``, default ``"auto"``: the body above the background on the mean b=0 image).
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..analysis.options import AnalysisOptions
from .._options import with_settings
from ..errors import RoiError

__all__ = ["run_analysis", "roi_masks", "side_comparisons", "AnalysisOptions"]

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
    options: AnalysisOptions | None = None,
    bvals: str | os.PathLike | None = None,
    bvecs: str | os.PathLike | None = None,
    subject: str | None = None,
    command: str | None = None,
    **option_values: Any,
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
        symptomatic side must come from ``options.symptomatic_side``.
    out_dir : path-like, optional
        Where to write ``report.json``, CSV tables, figures and ``report.html``.
    options : AnalysisOptions, optional
        Every analysis option (fit method, b-value range in s/mm², analysis mask, bootstrap,
        thresholds, figures ...) with its default; see
        :class:`dwi_toolkit.analysis.options.AnalysisOptions`. The options are printed in the
        report's provenance.
    bvals, bvecs : path-like, optional
        Gradient files when they are not beside a NIfTI input.
    subject : str, optional
        Pseudonymous label printed on the report (default ``subject_id`` of the clinical file).
    command : str, optional
        The command line recorded in the provenance.
    **option_values
        Individual options (``n_boot=200``, ``b_min=100`` ...), applied on top of `options`.

    Returns
    -------
    Report

    Raises
    ------
    DwiToolkitError
        From any step (bad input files, unknown clinical vocabulary, fit impossible ...).
    InputDataError
        Unknown or invalid options.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> from dwi_toolkit.sample_data import COHORT, generate_cohort
    >>> tmp = Path(tempfile.mkdtemp())
    >>> _ = generate_cohort(tmp / "in", subjects={k: COHORT[k] for k in ("sub-01", "sub-05")}, dicom=False)
    >>> sub = tmp / "in" / "sub-01"
    >>> opts = AnalysisOptions(figures=False, n_boot=200)
    >>> report = run_analysis(sub / "dwi" / "sub-01_dwi.nii.gz", sub / "rois.json", sub / "clinical.json",
    ...                       tmp / "report", options=opts)
    >>> report.entrapment.get("L5").classification, (tmp / "report" / "report.html").is_file()
    ('concordant', True)
    """
    from ..io.loading import load_dwi
    from ..io.rois import load_rois
    from ..reporting.report import build_report

    opts = _merge_options(options, option_values)
    logger.info("loading %s", series_path)
    series = load_dwi(series_path, bvals=bvals, bvecs=bvecs, b0_threshold=opts.b0_threshold, backend=opts.backend)
    series, gcheck = _gradient_check(series, opts)
    rois = load_rois(rois_path)
    scanner_adc, scanner_info = _scanner_adc(series_path, series, opts)
    masks = roi_masks(rois, series.spatial_shape, series.affine)
    fit, stats, dti_fit, dti_done, n_mask = _fit_and_measure(series, rois, opts, masks)
    if opts.figures:
        _send_montage(fit, masks)
    clinical, indication = _clinical(clinical_path, opts)
    side = opts.symptomatic_side or _side_from_clinical(clinical)
    comparison, adjacent, entrapment = _compare_and_assess(stats, clinical, indication, side, opts,
                                                           meta=getattr(series, "meta", None))
    if subject is None and clinical is not None:
        subject = getattr(clinical, "subject_id", None)
    params = {
        **opts.to_dict(),
        "symptomatic_side": comparison.symptomatic_side,
        "symptomatic_side_source": "option" if opts.symptomatic_side else "clinical.radicular_side" if side else None,
        "dti": dti_done,
        "mask_voxels": n_mask,
        # the ROI set's mid-sagittal plane (RAS+ x, mm) for the QC side check (report.md §4.1)
        "midsagittal_x_mm": _plane_x(rois),
        # a file's name, not its path (paths may hold identifiers); checksummed with the inputs
        "track_origins": Path(opts.track_origins).name if opts.track_origins else None,
    }
    inputs = {"dwi": series_path, "rois": rois_path, "clinical": clinical_path, "bvals": bvals, "bvecs": bvecs,
              "junctions": opts.track_origins if opts.track else None}
    report = build_report(series=series, fit=fit, roi_masks=masks,
                          stats=stats, comparison=comparison, indication=indication, entrapment=entrapment,
                          parameters=params, inputs=inputs, subject=subject, command=command,
                          figures=opts.figures, scanner_adc=scanner_adc, scanner_adc_info=scanner_info)
    _track_and_sections(report, series, rois, dti_fit, gcheck, adjacent, opts, out_dir)
    if out_dir is not None:
        report.save(Path(out_dir))
    return report


# ------------------------------------------------------------------------------ steps of run_analysis
def _plane_x(rois: Any) -> float | None:
    """x (RAS+ mm) of the mid-sagittal plane stored in the ROI set's meta, or None."""
    plane = (getattr(rois, "meta", None) or {}).get("midsagittal_plane")
    try:
        return round(float(plane["point"][0]), 3)
    except (TypeError, KeyError, IndexError, ValueError):
        return None


def _scanner_adc(series_path: str | os.PathLike, series: Any, opts: AnalysisOptions) -> tuple[Any, dict[str, Any]]:
    """The scanner's ADC map on the DWI grid for the QC comparison (option ``scanner_adc``), and its source."""
    from ..io.scanner_adc import scanner_adc_on_grid

    return scanner_adc_on_grid(opts.scanner_adc, series_path, series.spatial_shape, series.affine)


def _merge_options(options: AnalysisOptions | None, values: dict[str, Any]) -> AnalysisOptions:
    """`options` (default: all defaults) with the individually given `values` applied on top."""
    return with_settings(AnalysisOptions, options, values, where="run_analysis")


def _gradient_check(series: Any, opts: AnalysisOptions) -> tuple[Any, dict[str, Any] | None]:
    """The gradient-table check (options ``check_gradients`` / ``fix_gradients``), before any fit."""
    if not (opts.check_gradients or opts.fix_gradients):
        return series, None
    from .subject_sections import gradient_qc

    return gradient_qc(series, fix=opts.fix_gradients)


def _track_and_sections(report: Any, series: Any, rois: Any, dti_fit: Any, gcheck: dict[str, Any] | None,
                        adjacent: Any, opts: AnalysisOptions, out_dir: str | os.PathLike | None) -> None:
    """Root tractography (option ``track``, files under ``out_dir/tracts``) and the optional report sections."""
    tracking = None
    if opts.track:
        from ..io.loading import load_analysis_mask
        from .tractography import run_tractography

        origins = None
        if opts.track_origins:
            from ..io.rois import load_rois

            origins = load_rois(opts.track_origins)
        tracking = run_tractography(series, rois, None if out_dir is None else Path(out_dir) / "tracts",
                                    dti_fit=dti_fit, mask=load_analysis_mask(opts.mask, series), origins=origins)
    from .subject_sections import add_report_sections

    add_report_sections(report, adjacent_comparison=adjacent, gradient_check=gcheck, tractography=tracking,
                        figures=opts.figures, out_dir=out_dir)


def _fit_b_range(series: Any, opts: AnalysisOptions) -> tuple[float, float] | None:
    """The closed b-value range of the fits in s/mm² (open ends: 0 and the largest b)."""
    if opts.b_range is None:
        return None
    return (0.0 if opts.b_min is None else opts.b_min,
            float(np.max(series.bvals)) if opts.b_max is None else opts.b_max)


def _send_montage(fit: Any, masks: list[tuple[str, np.ndarray]]) -> None:
    """Send the report's ADC montage to the figure worker now, when one runs (CLI ``analyze``).

    Its inputs exist once the fit is done, so the worker draws it during the side comparison; the
    report takes it later (:func:`dwi_toolkit.reporting.figure_worker.figure_job`, issue 21).
    """
    from ..reporting.figure_worker import figure_job, worker_running

    if worker_running() and getattr(fit, "adc", None) is not None:
        from ..reporting.figures import adc_montage

        figure_job(adc_montage, fit, rois=masks)


def _fit_and_measure(series: Any, rois: Any, opts: AnalysisOptions,
                     masks: list[tuple[str, np.ndarray]]) -> tuple[Any, Any, Any, bool, int | None]:
    """ADC fit (and DTI when possible) in the analysis mask, and the ROI statistics table.

    Returns the ADC fit, the statistics (ADC, then FA and MD rows when the tensor was fitted),
    the tensor fit when tractography needs it (option ``track``; else None), whether the tensor
    was fitted, and the number of voxels in the analysis mask (None: every voxel). Without
    tracking, the tensor fit's maps (about half the size of an int16 series) are released as soon
    as their ROI statistics are taken, before the report is built (issue 21: peak memory).
    """
    from ..analysis.roi_stats import roi_stats
    from ..io.loading import load_analysis_mask
    from ..models.adc import fit_adc

    mask = load_analysis_mask(opts.mask, series)
    b_range = _fit_b_range(series, opts)
    logger.info("fitting ADC (%s, b range %s, mask %s)", opts.method, b_range, opts.mask)
    chunk = {} if opts.chunk_size is None else {"chunk_size": opts.chunk_size}
    fit = fit_adc(series, method=opts.method, b_range=b_range, mask=mask, **chunk)
    stats = roi_stats(fit, rois, csf_threshold=opts.csf_threshold)
    dti_done, dti_fit = False, None
    if opts.dti or opts.dti is None:
        from ..models.dti import dti_feasible, fit_dti

        if opts.dti or dti_feasible(series):
            box = None if opts.track else _roi_box(masks, series)
            logger.info("fitting the diffusion tensor (FA, MD)%s", "" if box is None else " around the ROIs")
            if box is None:
                dti_fit = fit_dti(series, b_range=b_range, mask=mask, **chunk)
                dti_maps = [dti_fit.map(name, ok_only=True) for name in ("fa", "md")]
            else:  # only the ROI statistics need the tensor: fit the voxels in the ROIs' box
                sub = fit_dti(series.replace(data=series.data[box]), b_range=b_range,
                              mask=None if mask is None else mask[box], **chunk)
                dti_maps = [_uncrop(sub.map(name, ok_only=True), box, series) for name in ("fa", "md")]
            extra = [row for m in dti_maps for row in roi_stats(m, rois).rows]
            stats = type(stats)(rows=[*stats.rows, *extra])  # one table, rows per parameter
            dti_done = True
            if not opts.track:
                dti_fit = None  # released before the report (peak memory)
    return fit, stats, dti_fit, dti_done, None if mask is None else int(mask.sum())


def _roi_box(masks: list[tuple[str, np.ndarray]], series: Any, margin: int = 2) -> tuple[slice, ...] | None:
    """The voxel box holding every ROI voxel (`masks`, + `margin` voxels), or None when it is most of the image.

    The tensor fit is voxel by voxel, so fitting only this box gives the ROI voxels exactly the
    values of a whole-image fit (issue 21: the whole-image fit was the largest cost of a
    lumbar-size analysis without tracking).
    """
    shape = series.spatial_shape
    hit = [np.zeros(n, bool) for n in shape]
    for _, m in masks:
        for axis in range(3):
            hit[axis] |= m.any(axis=tuple(a for a in range(3) if a != axis))
    if not all(h.any() for h in hit):
        return None
    box = tuple(slice(max(int(np.argmax(h)) - margin, 0), min(len(h) - int(np.argmax(h[::-1])) + margin, len(h)))
                for h in hit)
    inside = float(np.prod([b.stop - b.start for b in box])) / float(np.prod(shape))
    return box if inside < 0.5 else None


def _uncrop(cropped: Any, box: tuple[slice, ...], series: Any) -> Any:
    """A map fitted in `box`, on the whole image grid (NaN outside the box)."""
    full = np.full(series.spatial_shape, np.nan, dtype=cropped.data.dtype)
    full[box] = cropped.data
    return type(cropped)(full, series.affine, cropped.name, cropped.unit)


def _clinical(clinical_path: str | os.PathLike | None, opts: AnalysisOptions) -> tuple[Any, Any]:
    """The clinical input and the indication assessment (both None without a clinical file)."""
    if clinical_path is None:
        return None, None
    from ..clinical.indication import assess_indication
    from ..io.clinical import load_clinical

    clinical = load_clinical(clinical_path)
    kw = {} if opts.stenosis_policy is None else {"stenosis_policy": opts.stenosis_policy}
    return clinical, assess_indication(clinical, **kw)


def _compare_and_assess(stats: Any, clinical: Any, indication: Any, side: str | None,
                        opts: AnalysisOptions, meta: Any = None) -> tuple[Any, Any, Any]:
    """Side comparison (§2.8 indices, intervals per ``opts.interval``/``opts.noise``), the adjacent-level
    comparison (``opts.reference``; None when not asked for) and the per-level entrapment assessment."""
    from ..clinical.entrapment import assess_entrapment

    comparison, adjacent = side_comparisons(stats, side, opts, meta)
    entrapment = assess_entrapment(comparison, clinical, indication=indication,
                                   threshold_pct=opts.threshold_pct, parameter=opts.entrapment_parameter_list)
    return comparison, adjacent, entrapment


def side_comparisons(stats: Any, side: str | None, opts: AnalysisOptions, meta: Any = None) -> tuple[Any, Any]:
    """The contralateral comparison and, when ``opts.reference`` asks for it, the adjacent-level one.

    ``reference="adjacent"`` always adds the adjacent comparison; ``"auto"`` adds it when the
    symptomatic side is unknown or bilateral (a note says so). Both use the same interval method,
    noise model (``opts.noise``) and settings.

    Parameters
    ----------
    stats : RoiStatsTable
    side : {"left", "right", "bilateral"} or None
    opts : AnalysisOptions
    meta : mapping, optional
        Series metadata (for ``noise="metadata"``).

    Returns
    -------
    (SideComparison, SideComparison or None)

    Examples
    --------
    >>> from dwi_toolkit.analysis.roi_stats import roi_stats
    >>> from dwi_toolkit.core.image import ParameterMap
    >>> from dwi_toolkit.roi.model import RootROI, Sphere
    >>> rois = [RootROI(lv, s, shape=Sphere([x, 5 + 6 * i, 5], 2.0)) for i, lv in enumerate(["L4", "L5"])
    ...         for s, x in (("left", 5), ("right", 14))]
    >>> st = roi_stats(ParameterMap(np.full((20, 20, 10), 1.2e-3), np.eye(4), "adc", "mm^2/s"), rois)
    >>> c, adj = side_comparisons(st, None, AnalysisOptions(reference="auto", noise="0"))
    >>> c.settings["reference"], adj.settings["reference"], adj.get("L5", side="left").reference_levels
    ('contralateral', 'adjacent', 'L4')
    """
    from ..analysis.compare import compare_sides, estimate_noise_models, noise_from_option

    noise = noise_from_option(opts.noise, stats, meta)
    if noise is None:  # estimated from the ROIs once, for both references
        noise = estimate_noise_models(stats)
    common = {"interval": opts.interval, "noise": noise,
              "n_boot": opts.n_boot, "ci": opts.ci, "min_voxels": opts.min_voxels, "rng": opts.seed}
    comparison = compare_sides(stats, symptomatic_side=side, **common)
    unknown_side = comparison.symptomatic_side is None
    if not (opts.reference == "adjacent" or (opts.reference == "auto" and unknown_side)):
        return comparison, None
    adjacent = compare_sides(stats, symptomatic_side=side, reference="adjacent", **common)
    if opts.reference == "auto":
        adjacent = dataclasses.replace(adjacent, notes=(*adjacent.notes, (
            "Added automatically (reference='auto'): the symptomatic side is unknown or bilateral, so each "
            "root is also compared with the adjacent levels on the same side, which are assumed intact "
            "(dwi_toolkit References §2.6).")))
    return comparison, adjacent
