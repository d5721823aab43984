"""``dwi-toolkit ivim PATH -o OUTDIR``: IVIM maps (D, D*, f, S0) from a multi-b series."""

from __future__ import annotations

import argparse



def add_parser(sub, add_common) -> None:
    from ._maps import add_map_args, add_noise_args

    p = sub.add_parser(
        "ivim",
        help="fit IVIM (D, D*, f, S0 maps) to a multi-b series",
        description="Fit the bi-exponential IVIM model voxel by voxel (vectorised segmented or full "
        "bounded fit) and write NIfTI maps (D and D* in mm^2/s, f unitless), a status map, a JSON "
        "summary and a PNG montage.",
    )
    add_map_args(p, methods=("map", "segmented", "full"), default_method="map",
                 method_help="map (full 4-parameter fit with a log-normal D* prior), segmented (D from "
                 "high b, then f and D*) or full (4-parameter fit without prior)", b_range=False)
    p.add_argument("--b-threshold", type=float, default=200.0,
                   help="s/mm^2; b-values at or above are used for D in the segmented step (default 200)")
    add_noise_args(p, ("none", "exclude", "rician"), "none")
    p.add_argument("-k", type=float, default=2.0, help="exclusion threshold in units of sigma (default 2)")
    add_common(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from ...models.ivim import fit_ivim
    from .._options import chunk_kw
    from ._maps import load_inputs, preprocess, resolve_sigma, robust_range, write_fit_outputs

    series, mask = load_inputs(args)
    series, steps = preprocess(series, args)
    corr = None if args.noise_correction == "none" else args.noise_correction
    sigma = resolve_sigma(series, args.sigma) if corr else None
    fit = fit_ivim(series, method=args.method, b_threshold=args.b_threshold, mask=mask,
                   noise_correction=corr, sigma=sigma, k=args.k, **chunk_kw(args))

    def panels():
        # D and f are meaningful at a bound (f = 0: no perfusion); D* is not when f is ~0
        shown = {"d": np.isin(fit.status, (0, 5)), "f": np.isin(fit.status, (0, 5)), "dstar": fit.status == 0}
        out = []
        for name, label, scale in (("d", "D (x1e-3 mm2/s)", 1e3), ("dstar", "D* (x1e-3 mm2/s)", 1e3), ("f", "f", 1.0)):
            vol = np.where(shown[name], getattr(fit, name) * scale, np.nan)
            lo, hi = robust_range(vol)
            out.append((label, vol, {"cmap": "viridis", "vmin": lo, "vmax": hi}))
        return out

    out, summary, rows = write_fit_outputs(
        args, series, mask, fit, steps, model="ivim", roi_maps=["d", "dstar", "f"], panels=panels,
        title=f"IVIM ({fit.method}); D, f: status 0 or 5 (at a bound); D*: status 0",
        extra={"sigma": sigma, "bounds": fit.bounds})
    counts = summary["status_counts"]
    print(f"IVIM {fit.method}: {counts['ok']} voxels ok, "
          f"{sum(v for k, v in counts.items() if k not in ('ok', 'outside mask'))} flagged; maps in {out}")
    med = summary["median_ok"]
    if med["d"] is not None:
        print(f"median D {med['d'] * 1e3:.3f} x10^-3 mm^2/s, D* {med['dstar'] * 1e3:.2f} x10^-3 mm^2/s, "
              f"f {med['f']:.3f}")
    if args.rois:
        print(f"ROI statistics ({len(rows)} rows): {summary['outputs']['roi_stats']}")
    return 0
