"""``dwi-toolkit analyze PATH --rois ROIS --clinical clinical.json -o OUTDIR``: one subject, end to end."""

from __future__ import annotations

import argparse
import shlex


def add_parser(sub, add_common) -> None:
    p = sub.add_parser(
        "analyze",
        help="one subject end to end: fit ADC, measure ROIs, compare sides, assess, write the report",
        description=(
            "Load a DWI series, fit ADC, measure the nerve-root ROIs, compare the symptomatic with "
            "the contralateral side level by level (clinical-reference.md §2.8), assess the MRI "
            "indication (rule set v1, §3.10) and entrapment concordance, and write report.json, "
            "CSV tables and a self-contained report.html to OUTDIR. Research use only: no "
            "threshold is a diagnostic cut-off."
        ),
    )
    p.add_argument("path", help="DWI series: NIfTI (with .bval/.bvec beside it), DICOM file or folder")
    p.add_argument("--rois", required=True, help="nerve-root ROI file")
    p.add_argument("--clinical", help="the subject's clinical.json (symptomatic side, suspected levels, "
                   "indication inputs)")
    p.add_argument("-o", "--out", "--output", dest="out_dir", required=True, help="output folder")
    p.add_argument("--method", choices=("wls", "ols", "nlls"), default="wls", help="ADC fit (default wls)")
    p.add_argument("--b-min", type=float, help="lowest b-value used by the fit, s/mm^2")
    p.add_argument("--b-max", type=float, help="highest b-value used by the fit, s/mm^2")
    p.add_argument("--symptomatic-side", choices=("left", "right"),
                   help="override radicular_side of the clinical file")
    p.add_argument("--threshold-pct", type=float, default=None,
                   help="side-difference threshold on rel_diff_pct in %% (default 10; a measurement "
                        "threshold, not a diagnostic cut-off)")
    p.add_argument("--stenosis-policy", choices=("kovacs2013", "acr2021"),
                   help="indication rules: failed-conservative-care threshold for suspected stenosis "
                        "(kovacs2013 = 12 weeks, the default; acr2021 = 6 weeks)")
    p.add_argument("--n-boot", type=int, default=2000, help="bootstrap resamples (default 2000)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    p.add_argument("--subject", help="pseudonymous subject label for the report")
    p.add_argument("--bvals", help="b-value file when not beside the NIfTI")
    p.add_argument("--bvecs", help="b-vector file when not beside the NIfTI")
    p.add_argument("--b0-threshold", type=float, default=50.0, help="s/mm^2 (default 50)")
    p.add_argument("--csf-threshold", type=float, default=None,
                   help="leave out ROI voxels with ADC above this (mm^2/s, e.g. 2.5e-3) as CSF "
                   "contamination; counts are reported (default: none)")
    p.add_argument("--no-figures", action="store_true", help="skip figures (faster)")
    add_common(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ...clinical.entrapment import DEFAULT_THRESHOLD_PCT
    from ...pipeline.analyze import run_analysis

    thr = DEFAULT_THRESHOLD_PCT if args.threshold_pct is None else args.threshold_pct
    opts = [f"--method {args.method}"]
    for flag, val in (("--b-min", args.b_min), ("--b-max", args.b_max),
                      ("--symptomatic-side", args.symptomatic_side), ("--threshold-pct", args.threshold_pct),
                      ("--stenosis-policy", args.stenosis_policy), ("--n-boot", args.n_boot),
                      ("--seed", args.seed)):
        if val is not None:
            opts.append(f"{flag} {shlex.quote(str(val))}")
    report = run_analysis(
        args.path, args.rois, args.clinical, args.out_dir,
        method=args.method, b_min=args.b_min, b_max=args.b_max,
        symptomatic_side=args.symptomatic_side, threshold_pct=thr, n_boot=args.n_boot,
        seed=args.seed, bvals=args.bvals, bvecs=args.bvecs, b0_threshold=args.b0_threshold,
        subject=args.subject, stenosis_policy=args.stenosis_policy, figures=not args.no_figures,
        csf_threshold=args.csf_threshold,
        command="dwi-toolkit analyze " + " ".join(opts),
    )
    ent = report.entrapment
    if report.indication is not None:
        from ...reporting.report import _as_dict, _indication_class

        print(f"indication: {_indication_class(_as_dict(report.indication)) or 'not assessed'}")
    if ent is not None:
        for lv in ent.levels:
            print(f"{lv.level:<3} {lv.segment:<15} {lv.classification}")
    print(f"report: {args.out_dir}/report.html")
    return 0
