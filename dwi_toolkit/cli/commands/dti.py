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
    add_map_args(p, methods=("WLS", "OLS", "NLLS", "RESTORE"), default_method="WLS",
                 method_help="dipy fit method", b_range=True)
    add_common(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    import numpy as np

    from ...models.dti import fit_dti
    from .._options import b_range
    from ._maps import (
        load_inputs,
        montage,
        preprocess,
        robust_range,
        try_roi_snr,
        write_roi_stats,
        write_summary,
    )

    series, mask = load_inputs(args)
    series, steps = preprocess(series, args)
    fit = fit_dti(series, method=args.method, b_range=b_range(args), mask=mask)
    out = Path(args.out)
    paths = fit.save(out)
    summary = fit.summary()
    summary.update({"input": str(args.path), "bvals_used": fit.bvals_used.tolist(),
                    "outputs": {k: str(v) for k, v in paths.items()}, "preprocessing": steps, "mask": args.mask,
                    "mask_voxels": None if mask is None else int(mask.sum())})
    if not args.no_figures:
        ok = fit.status == 0
        fa = np.where(ok, fit.fa, np.nan)
        md = np.where(ok, fit.md * 1e3, np.nan)
        lo, hi = robust_range(md)
        panels = [("FA", fa, {"cmap": "gray", "vmin": 0.0, "vmax": 1.0}),
                  ("MD (x1e-3 mm2/s)", md, {"cmap": "viridis", "vmin": lo, "vmax": hi}),
                  ("colour FA (RAS)", fit.color_fa(), {})]
        png = montage(panels, out / "dti_montage.png", title=f"DTI ({fit.method})")
        summary["outputs"]["montage"] = str(png)
    if args.rois:
        csv, rows = write_roi_stats(fit, ["fa", "md", "ad", "rd"], args.rois, out / "dti_roi_stats.csv")
        summary["outputs"]["roi_stats"] = str(csv)
        summary["roi_snr"] = try_roi_snr(series, args.rois)
    write_summary(out / "dti_summary.json", summary)
    counts = summary["status_counts"]
    print(f"DTI {fit.method}: {counts['ok']} voxels ok; maps in {out}")
    med = summary["median_ok"]
    if med["fa"] is not None:
        print(f"median FA {med['fa']:.3f}, MD {med['md'] * 1e3:.3f} x10^-3 mm^2/s")
    if args.rois:
        print(f"ROI statistics ({len(rows)} rows): {csv}")
    return 0
