"""``dwi-toolkit analyze PATH --rois ROIS --clinical clinical.json -o OUTDIR``: one subject, end to end.

A thin layer over :func:`dwi_toolkit.pipeline.analyze.run_analysis`: every analysis option comes
from :class:`dwi_toolkit.analysis.options.AnalysisOptions` (declared once, in
:mod:`dwi_toolkit.cli._options`).
"""

from __future__ import annotations

import argparse
import shlex


def add_parser(sub, add_common) -> None:
    from .._options import add_analysis_options, add_out

    p = sub.add_parser(
        "analyze",
        help="one subject end to end: fit ADC, measure ROIs, compare sides, assess, write the report",
        description=(
            "Load a DWI series, fit ADC in the analysis mask (default: the body above the background), "
            "measure the nerve-root ROIs, compare the symptomatic with "
            "the contralateral side level by level (dwi_toolkit References §2.8), assess the MRI "
            "indication (rule set v1, §3.10) and entrapment concordance, and write report.json, "
            "CSV tables and a self-contained report.html to OUTDIR. Research use only: no "
            "threshold is a diagnostic cut-off."
        ),
    )
    p.add_argument("--rois", required=True, help="nerve-root ROI file")
    p.add_argument("--clinical", help="the subject's clinical.json (symptomatic side, suspected levels, "
                   "indication inputs)")
    p.add_argument("--subject", help="pseudonymous subject label for the report")
    add_out(p, help="output folder (created)", old=("--output", "--out-dir", "--outdir"))
    add_analysis_options(p)
    from .._options import add_scrub_text

    add_scrub_text(p)
    add_common(p)
    p.set_defaults(func=run)


def command_line(opts) -> str:
    """The analysis as a ``dwi-toolkit analyze`` command line with its non-default options."""
    from ...analysis.options import AnalysisOptions

    default = AnalysisOptions()
    parts = [f"--method {opts.method}"]
    if opts.b_range is not None:
        lo, hi = ("-" if v is None else f"{v:g}" for v in opts.b_range)
        parts.append(f"--b-range {lo} {hi}")
    if opts.mask != default.mask:
        parts.append(f"--mask {shlex.quote(opts.mask)}")
    for name in ("symptomatic_side", "threshold_pct", "stenosis_policy", "n_boot", "seed", "csf_threshold"):
        v = getattr(opts, name)
        if v is not None and (v != getattr(default, name) or name in ("n_boot", "seed")):
            parts.append(f"--{name.replace('_', '-')} {shlex.quote(str(v))}")
    return "dwi-toolkit analyze " + " ".join(parts)


def run(args: argparse.Namespace) -> int:
    # the report figures are drawn by a worker process forked at start-up (cli.main: FIGURE_WORKER_COMMANDS)
    from ...pipeline.analyze import run_analysis
    from ...io._scrub import scrub_policy
    from .._imports import import_nibabel_without_pydicom
    from .._options import analysis_options, scrub_text

    import_nibabel_without_pydicom()
    opts = analysis_options(args)
    with scrub_policy(scrub_text(args)):
        report = run_analysis(args.path, args.rois, args.clinical, args.out, options=opts, bvals=args.bvals,
                              bvecs=args.bvecs, subject=args.subject, command=command_line(opts))
    ent = report.entrapment
    if report.indication is not None:
        from ...reporting.report import _as_dict, _indication_class

        print(f"indication: {_indication_class(_as_dict(report.indication)) or 'not assessed'}")
    if ent is not None:
        for lv in ent.levels:
            print(f"{lv.level:<3} {lv.segment:<15} {lv.classification}")
    print(f"analysis mask: {opts.mask}")
    flags = report.qc.get("flags") or []
    for f in flags:  # an error flag (no signal, swapped side...) must not pass unseen
        if f.get("severity") == "error":
            print(f"QC error: {f['message']}")
    if flags:
        print(f"QC flags: {len(flags)} (listed at the top of the report)")
    print(f"report: {args.out}/report.html")
    return 0
