"""``dwi-toolkit dti PATH -o OUTDIR``: DTI maps (FA, MD, AD, RD, principal direction)."""

from __future__ import annotations

import argparse


def add_parser(sub, add_common) -> None:
    from ._maps import add_map_args

    p = sub.add_parser(
        "dti",
        help="fit the diffusion tensor (FA, MD, AD, RD, principal direction)",
        description="Fit the diffusion tensor with dipy's TensorModel and write NIfTI maps (FA, MD, "
        "AD, RD in mm^2/s, status, principal eigenvector), a JSON summary and a PNG montage.",
    )
    add_map_args(p, methods=("WLS", "OLS", "IWLS", "NLLS", "RESTORE"), default_method="WLS",
                 method_help="dipy fit method", b_range=True)
    add_common(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from ...models.dti import fit_dti
    from .._options import b_range, chunk_kw
    from ._maps import load_inputs, preprocess, robust_range, write_fit_outputs

    series, mask = load_inputs(args)
    series, steps = preprocess(series, args)
    fit = fit_dti(series, method=args.method, b_range=b_range(args), mask=mask, **chunk_kw(args))

    def panels():
        ok = fit.status == 0
        fa = np.where(ok, fit.fa, np.nan)
        md = np.where(ok, fit.md * 1e3, np.nan)
        lo, hi = robust_range(md)
        return [("FA", fa, {"cmap": "gray", "vmin": 0.0, "vmax": 1.0}),
                ("MD (x1e-3 mm2/s)", md, {"cmap": "viridis", "vmin": lo, "vmax": hi}),
                ("colour FA (RAS)", fit.color_fa(), {})]

    out, summary, rows = write_fit_outputs(args, series, mask, fit, steps, model="dti",
                                           roi_maps=["fa", "md", "ad", "rd"], panels=panels,
                                           title=f"DTI ({fit.method})")
    counts = summary["status_counts"]
    print(f"DTI {fit.method}: {counts['ok']} voxels ok; maps in {out}")
    med = summary["median_ok"]
    if med["fa"] is not None:
        print(f"median FA {med['fa']:.3f}, MD {med['md'] * 1e3:.3f} x10^-3 mm^2/s")
    if args.rois:
        print(f"ROI statistics ({len(rows)} rows): {summary['outputs']['roi_stats']}")
    return 0
