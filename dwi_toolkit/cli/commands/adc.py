"""``dwi-toolkit adc PATH -o OUTDIR``: fit an ADC map and write NIfTI maps and a PNG montage."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def add_parser(sub, add_common) -> None:
    from ._maps import add_map_args, add_noise_args

    p = sub.add_parser(
        "adc",
        help="fit a mono-exponential ADC map (writes ADC/S0/R^2/status NIfTI + PNG montage)",
        description="Fit S = S0 exp(-b ADC) on the trace signal and write adc.nii.gz (mm^2/s), "
        "s0.nii.gz, rsquared.nii.gz, status.nii.gz, adc_fit.json and adc_montage.png "
        "(displayed in x10^-3 mm^2/s).",
    )
    add_map_args(p, methods=("wls", "ols", "nlls"), default_method="wls",
                 method_help="log-linear WLS, OLS, or nonlinear least squares", extras=False)
    add_noise_args(p, ("rician",), None)
    add_common(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ...io._atomic import atomic_path, atomic_write_text
    from ...models.adc import fit_adc
    from .._options import b_range as given_b_range
    from .._options import chunk_kw
    from ._maps import load_inputs

    series, mask = load_inputs(args)
    b_range = given_b_range(args)
    sigma = None
    if args.noise_correction:
        from ._maps import resolve_sigma

        sigma = resolve_sigma(series, args.sigma)
    fit = fit_adc(series, method=args.method, b_range=b_range, mask=mask,
                  noise_correction=args.noise_correction, sigma=sigma, **chunk_kw(args))
    out = Path(args.out)
    paths = fit.save(out)
    summary = {"input": str(args.path), **fit.summary(), "mask": args.mask,
               "mask_voxels": None if mask is None else int(mask.sum()), "units": {"adc": "mm^2/s", "bvals": "s/mm^2"}}
    atomic_write_text(out / "adc_fit.json", json.dumps(summary, indent=2) + "\n")
    if not args.no_figures:
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
