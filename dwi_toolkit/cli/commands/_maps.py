"""Shared helpers of the map-fitting commands (``ivim``, ``dti``): inputs, montages, summaries.

Private to the CLI (the leading underscore keeps it out of subcommand discovery).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np


def add_map_args(p, *, methods: tuple[str, ...], default_method: str, method_help: str,
                 b_range: bool = True, extras: bool = True) -> None:
    """Options of the fitting commands (``adc``, ``ivim``, ``dti``), from the shared declarations.

    `extras` adds ``--rois`` (per-ROI statistics) and the preprocessing group.
    """
    from .._options import add_b_range, add_chunk_size, add_input, add_mask, add_method, add_no_figures, add_out

    add_input(p)
    add_out(p)
    add_method(p, methods, default_method, method_help)
    if b_range:
        add_b_range(p)
    add_mask(p)
    add_no_figures(p, help="do not write the PNG montage")
    add_chunk_size(p)
    if not extras:
        return
    p.add_argument("--rois", help="nerve-root ROIs (any format load_rois reads): also write per-ROI "
                   "statistics of every map (status-ok voxels only) as CSV, and b=0 SNR per ROI")
    g = p.add_argument_group("preprocessing (optional, dipy; applied in this order, recorded in the summary)")
    g.add_argument("--denoise", action="store_true", help="MP-PCA denoising (dipy localpca.mppca)")
    g.add_argument("--gibbs", action="store_true", help="Gibbs-ringing removal (dipy gibbs_removal)")
    g.add_argument("--motion", action="store_true",
                   help="volume-to-b0 affine motion correction with b-vector rotation (dipy.align)")


def add_noise_args(p, choices: tuple[str, ...], default: str | None) -> None:
    """``--noise-correction`` and ``--sigma`` (``adc``, ``ivim``)."""
    p.add_argument("--noise-correction", choices=choices, default=default,
                   help="noise-floor handling: 'rician' refits to the expected Rician magnitude (removes "
                   "the noise-floor bias at high b)" + (", 'exclude' leaves out samples below k*sigma"
                                                         if "exclude" in choices else ""))
    p.add_argument("--sigma", default="auto",
                   help="noise sigma per channel for --noise-correction: a number in signal units, or "
                   "'auto' (repeated b=0 volumes when there are two, else the image background)")


def load_inputs(args):
    """Load the series named on the command line and its analysis mask (``--mask``)."""
    from ...io.loading import load_analysis_mask, load_dwi

    series = load_dwi(args.path, bvals=args.bvals, bvecs=args.bvecs, series_uid=args.series_uid,
                      b0_threshold=args.b0_threshold, backend=args.backend)
    return series, load_analysis_mask(args.mask, series)


def preprocess(series, args) -> tuple[object, list[dict[str, Any]]]:
    """Apply the preprocessing steps selected on the command line; return the series and provenance."""
    from ...models.preprocess import denoise_mppca, motion_correct, remove_gibbs

    steps = []
    if getattr(args, "denoise", False):
        series, prov = denoise_mppca(series)
        steps.append(prov)
    if getattr(args, "gibbs", False):
        series, prov = remove_gibbs(series)
        steps.append(prov)
    if getattr(args, "motion", False):
        series, prov = motion_correct(series)
        steps.append(prov)
    return series, steps


def estimate_sigma(series) -> tuple[float, str]:
    """σ (signal units) from repeated b=0 volumes when there are two or more, else the background.

    Only true b=0 volumes (b <= 1 s/mm², which includes Philips' 0.001–0.004) count as repeats:
    low-b IVIM volumes under the b0 threshold carry perfusion contrast.
    """
    from ...models.noise import estimate_sigma_background, estimate_sigma_repeated

    zero = series.bvals <= min(series.b0_threshold, 1.0)
    if int(zero.sum()) >= 2:
        return estimate_sigma_repeated(series.data[..., zero]), "repeated b=0 volumes"
    return estimate_sigma_background(series.data), "background corners"


def resolve_sigma(series, text: str) -> float:
    """The ``--sigma`` option: a positive number in signal units, or ``auto`` (estimate_sigma)."""
    import logging

    from ...errors import InputDataError

    if text != "auto":
        try:
            value = float(text)
        except ValueError as err:
            raise InputDataError(f"--sigma must be a number or 'auto', got {text!r}.") from err
        if not value > 0:
            raise InputDataError(f"--sigma must be > 0, got {value}.")
        return value
    sigma, source = estimate_sigma(series)
    logging.getLogger("dwi_toolkit.cli").info("sigma %.4g from %s", sigma, source)
    return sigma


def try_roi_snr(series, rois_path: str, sigma: float | None = None) -> dict[str, Any]:
    """QC block: σ and b=0 SNR per ROI; never fails the command (the reason is recorded)."""
    import logging

    from ...errors import DwiToolkitError

    source = "given"
    try:
        if sigma is None:
            sigma, source = estimate_sigma(series)
        if not sigma > 0:
            raise DwiToolkitError("the noise estimate is 0 (noise-free data?)")
        return {"sigma": sigma, "sigma_source": source, "rois": roi_snr_table(series, rois_path, sigma)}
    except DwiToolkitError as err:
        logging.getLogger(__name__).warning("ROI SNR not computed: %s", err)
        return {"sigma": None, "error": str(err)}


def roi_snr_table(series, rois_path: str, sigma: float) -> list[dict[str, Any]]:
    """b=0 SNR (mean b=0 in the ROI / σ) per ROI, for the QC section."""
    from ...analysis.roi_stats import roi_stats
    from ...core.image import ParameterMap
    from ...io.rois import load_rois

    b0 = ParameterMap(series.mean_b0(), series.affine, "b0", "")
    rows = roi_stats(b0, load_rois(rois_path)).rows
    return [{"level": r.level, "side": r.side, "segment": r.segment, "n_voxels": r.n_voxels,
             "mean_b0": r.mean, "snr": (r.mean / sigma if r.n_voxels else None)} for r in rows]


def montage(panels: list[tuple[str, np.ndarray, dict[str, Any]]], path: Path, *, title: str,
            n_slices: int = 4) -> Path:
    """Write a PNG grid: one row per map, `n_slices` evenly spaced slices (voxel axis 2).

    Each panel is ``(label, volume (X, Y, Z) or (X, Y, Z, 3) RGB, imshow kwargs)``. Uses the
    matplotlib object API (Agg canvas), never pyplot state.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from ...io._atomic import atomic_path

    nz = panels[0][1].shape[2]
    zs = np.unique(np.linspace(0, nz - 1, min(n_slices, nz) + 2)[1:-1].round().astype(int)) if nz > 2 \
        else np.arange(nz)
    fig = Figure(figsize=(2.2 * len(zs) + 1.2, 2.2 * len(panels) + 0.5), dpi=100)
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(panels), len(zs), squeeze=False)
    for r, (label, vol, kw) in enumerate(panels):
        im = None
        for c, z in enumerate(zs):
            ax = axes[r, c]
            sl = vol[:, :, z]
            sl = np.swapaxes(sl, 0, 1)  # rows = voxel axis 1, columns = voxel axis 0
            im = ax.imshow(np.nan_to_num(sl) if sl.ndim == 3 else np.ma.masked_invalid(sl), origin="lower",
                           interpolation="nearest", **kw)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(f"slice {z}", fontsize=8)
            if c == 0:
                ax.set_ylabel(label, fontsize=9)
        if im is not None and vol.ndim == 3:
            fig.colorbar(im, ax=list(axes[r]), shrink=0.8, pad=0.01)
    fig.suptitle(title, fontsize=10)
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(str(tmp), format="png")
    return path


def robust_range(vol: np.ndarray, lo: float = 1.0, hi: float = 99.0) -> tuple[float, float]:
    """Display range from percentiles of the finite values (falls back to 0..1)."""
    v = vol[np.isfinite(vol)]
    if v.size == 0:
        return 0.0, 1.0
    a, b = np.percentile(v, [lo, hi])
    return float(a), float(b if b > a else a + 1e-12)


def write_summary(path: Path, summary: dict[str, Any]) -> Path:
    """Write a JSON summary atomically."""
    from ...io._atomic import atomic_write_text

    return atomic_write_text(path, json.dumps(summary, indent=2, sort_keys=True, default=str) + "\n")


def write_roi_stats(fit, names: list[str], rois_path: str, path: Path) -> tuple[Path, list]:
    """Per-ROI statistics of the maps `names` of `fit` (failed voxels excluded) → one CSV."""
    from ...analysis.roi_stats import RoiStatsTable, roi_stats
    from ...io.rois import load_rois

    rois = load_rois(rois_path)
    rows = []
    for name in names:
        rows.extend(roi_stats(fit.map(name, ok_only=True), rois).rows)
    table = RoiStatsTable(rows)
    table.to_csv(path)
    return path, rows


def write_fit_outputs(args, series, mask, fit, steps: list[dict[str, Any]], *, model: str, roi_maps: list[str],
                      panels, title: str, extra: dict[str, Any] | None = None) -> tuple[Path, dict[str, Any], list]:
    """Maps, montage, per-ROI statistics and ``<model>_summary.json`` of a fitting command.

    `panels` is called (only when figures are wanted) for the montage panels; `extra` is added to
    the summary (its ``sigma``, when given, is the noise level of the ROI SNR). Returns the output
    folder, the summary written and the ROI statistics rows (empty without ``--rois``).
    """
    out = Path(args.out)
    paths = fit.save(out)
    summary = fit.summary()
    summary.update({"input": str(args.path), "bvals_used": fit.bvals_used.tolist(),
                    "outputs": {k: str(v) for k, v in paths.items()}, "preprocessing": steps,
                    "mask": args.mask, "mask_voxels": None if mask is None else int(mask.sum()), **(extra or {})})
    if not args.no_figures:
        png = montage(panels(), out / f"{model}_montage.png", title=title)
        summary["outputs"]["montage"] = str(png)
    rows: list = []
    if args.rois:
        csv, rows = write_roi_stats(fit, roi_maps, args.rois, out / f"{model}_roi_stats.csv")
        summary["outputs"]["roi_stats"] = str(csv)
        summary["roi_snr"] = try_roi_snr(series, args.rois, (extra or {}).get("sigma"))
    write_summary(out / f"{model}_summary.json", summary)
    return out, summary, rows
