"""``dwi-toolkit adc PATH -o OUTDIR``: fit an ADC map and write NIfTI maps and a PNG montage."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def add_parser(sub, add_common) -> None:
    p = sub.add_parser(
        "adc",
        help="fit a mono-exponential ADC map (writes ADC/S0/R^2/status NIfTI + PNG montage)",
        description="Fit S = S0 exp(-b ADC) on the trace signal and write adc.nii.gz (mm^2/s), "
        "s0.nii.gz, rsquared.nii.gz, status.nii.gz, adc_fit.json and adc_montage.png "
        "(displayed in x10^-3 mm^2/s).",
    )
    p.add_argument("path", help="NIfTI DWI (with .bval/.bvec beside it), DICOM file or folder")
    p.add_argument("-o", "--out-dir", required=True, help="output folder (created)")
    p.add_argument("--method", choices=["wls", "ols", "nlls"], default="wls",
                   help="log-linear WLS (default), OLS, or nonlinear least squares")
    p.add_argument("--b-min", type=float, help="leave out b-values below this (s/mm^2), e.g. 200")
    p.add_argument("--b-max", type=float, help="leave out b-values above this (s/mm^2)")
    p.add_argument("--b0-threshold", type=float, default=50.0, help="s/mm^2 (default 50)")
    p.add_argument("--bvals", help="b-value file when not beside the NIfTI")
    p.add_argument("--bvecs", help="b-vector file when not beside the NIfTI")
    p.add_argument("--series-uid", help="DICOM: which series to fit when several are present")
    p.add_argument("--noise-correction", choices=["rician"],
                   help="refit to the expected Rician magnitude (removes the noise-floor bias at high b)")
    p.add_argument("--sigma", default="auto",
                   help="noise sigma per channel for --noise-correction: a number in signal units, or "
                   "'auto' (repeated b=0 volumes when there are two, else the image background)")
    p.add_argument("--mask", default="auto",
                   help="'auto' (default: voxels above the background on the b=0 image), 'none' "
                   "(fit every voxel), or a NIfTI mask file on the same grid")
    p.add_argument("--no-figure", action="store_true", help="skip the PNG montage")
    add_common(p)
    p.set_defaults(func=run)


def resolve_mask(spec: str, series):
    """Turn the --mask option into a boolean array (or None for every voxel)."""
    if spec == "none":
        return None
    if spec == "auto":
        from ...core.masks import signal_mask

        return signal_mask(series.mean_b0()) if series.b0_mask.any() else None
    from ...core.masks import check_mask
    from ...io.nifti import load_map

    return check_mask(load_map(spec).data, series.spatial_shape)


def run(args: argparse.Namespace) -> int:
    from ...io._atomic import atomic_path, atomic_write_text
    from ...io.loading import load_dwi
    from ...models.adc import fit_adc

    series = load_dwi(args.path, bvals=args.bvals, bvecs=args.bvecs, series_uid=args.series_uid,
                      b0_threshold=args.b0_threshold)
    b_range = None if args.b_min is None and args.b_max is None else (args.b_min, args.b_max)
    mask = resolve_mask(args.mask, series)
    sigma = None
    if args.noise_correction:
        from ._maps import resolve_sigma

        sigma = resolve_sigma(series, args.sigma)
    fit = fit_adc(series, method=args.method, b_range=b_range, mask=mask,
                  noise_correction=args.noise_correction, sigma=sigma)
    out = Path(args.out_dir)
    paths = fit.save(out)
    summary = {"input": str(args.path), **fit.summary(), "units": {"adc": "mm^2/s", "bvals": "s/mm^2"}}
    atomic_write_text(out / "adc_fit.json", json.dumps(summary, indent=2) + "\n")
    if not args.no_figure:
        from ...reporting.montage import adc_montage

        fig = adc_montage(fit, title=f"ADC ({fit.method.upper()}), b = "
                          + ", ".join(f"{b:g}" for b in fit.bvals_used) + " s/mm²")
        with atomic_path(out / "adc_montage.png") as tmp:
            fig.savefig(tmp, dpi=110, format="png")
        paths["figure"] = out / "adc_montage.png"
    med = summary["median_adc_mm2_s"]
    print(f"ADC fit ({fit.method}): {summary['n_fitted']} voxels fitted"
          + (f", median {med * 1e3:.3f} x10^-3 mm^2/s" if med is not None else ""))
    for name, pth in paths.items():
        print(f"  {name:<9} {pth}")
    return 0
