"""``dwi-toolkit track DWI --rois ROIS -o OUT``: root tractography and along-root profiles."""

from __future__ import annotations

import argparse


def add_parser(sub, add_common) -> None:
    from .._options import add_input, add_mask, add_no_figures, add_out

    p = sub.add_parser(
        "track",
        help="track each nerve root from its ROI (dipy, tensor) and profile FA/ADC along it",
        description="Fit the tensor, track each lumbar root from its seed ROI (sphere on the ganglion, "
        "point, tube or label map) with dipy, reject implausible streamlines, and write per-root "
        "streamline files (+ JSON index), centre-line tube ROIs (ROI JSON), along-root profiles "
        "(CSV, distance in mm from the dural junction), the left-right comparison at homologous "
        "distances (CSV) and figures.",
    )
    add_input(p)
    add_out(p)
    add_mask(p)
    add_no_figures(p)
    p.add_argument("--rois", required=True,
                   help="seed ROIs per root (any format load_rois reads: ROI JSON, Slicer markups, label map)")
    p.add_argument("--method", choices=["det", "prob"], default="det",
                   help="deterministic (EuDX on the principal eigenvector, default) or probabilistic")
    p.add_argument("--format", dest="fmt", choices=["tck", "trk", "trx"], default="tck",
                   help="streamline file format (trx needs the 'tracts' extra); one file per root")
    p.add_argument("--fa-threshold", type=float, default=0.2, help="stop tracking below this FA (default 0.2)")
    p.add_argument("--max-angle", type=float, default=40.0, help="maximum turn per step, degrees (default 40)")
    p.add_argument("--seeds-per-root", type=int, default=40, help="seeds drawn per root (default 40)")
    p.add_argument("--min-length", type=float, default=15.0, help="reject streamlines shorter than this, mm")
    p.add_argument("--tube-radius", type=float, default=2.5, help="radius of the centre-line tube ROIs, mm")
    p.add_argument("--origins", metavar="PATH",
                   help="dural-junction points per root, where distance along it is 0 (any format load_rois "
                   "reads, e.g. Slicer point markups named like L5_left; each ROI's centre); roots without "
                   "one get the junction found from the CSF")
    add_common(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ...io.rois import load_rois
    from ...pipeline.tractography import run_tractography
    from ...tracts import TrackingParams
    from ._maps import load_inputs, preprocess, write_summary

    series, mask = load_inputs(args)
    series, steps = preprocess(series, args)
    params = TrackingParams(method=args.method, fa_threshold=args.fa_threshold, max_angle_deg=args.max_angle,
                            seeds_per_root=args.seeds_per_root, min_length_mm=args.min_length,
                            tube_radius_mm=args.tube_radius)
    out = Path(args.out)
    res = run_tractography(series, load_rois(args.rois), out, params=params, mask=mask, fmt=args.fmt,
                           figures=not args.no_figures, origins=load_rois(args.origins) if args.origins else None)
    outputs = {k: str(v) for k, v in res.files.items() if k != "summary"}
    write_summary(out / "track_summary.json", {"input": str(args.path), **res.summary(), "outputs": outputs,
                                               "preprocessing": steps})
    for r in res.tracts.summary():
        print(f"{r['level']} {r['side']}: {r['n_kept']}/{r['n_tracked']} streamlines kept, "
              f"centre-line {r['centerline_length_mm']:.0f} mm ({r['origin']})")
    for les in res.lesions:
        print(f"focal deviation: {les['level']} {les['side']} at {les['distance_mm']:.0f} mm "
              f"({les['start_mm']:.0f}-{les['end_mm']:.0f} mm from the dural junction)")
    print(f"outputs in {out}")
    return 0
