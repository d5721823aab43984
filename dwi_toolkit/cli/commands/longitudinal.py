"""``dwi-toolkit longitudinal BASELINE FOLLOWUP --rois ROIS -o OUT``: what changed between two scans."""

from __future__ import annotations

import argparse


def add_parser(sub, add_common) -> None:
    p = sub.add_parser(
        "longitudinal",
        help="compare two scans of one patient: per-root ADC change and the smallest real change",
        description="Register the follow-up to the baseline (dipy, rigid by default, on the mean "
        "DWI images), carry the baseline ROIs over, fit ADC in both sessions and report per root the change "
        "with its smallest real change (from a test-retest CoV or table when given, else from the data's "
        "noise). Writes longitudinal.json/.csv/.png/.html.",
    )
    p.add_argument("baseline", help="baseline DWI (NIfTI with .bval/.bvec, DICOM file or folder)")
    p.add_argument("follow_up", help="follow-up DWI of the same patient")
    p.add_argument("--rois", required=True, help="nerve-root ROIs drawn on the baseline (any format load_rois reads)")
    from .._options import add_out

    add_out(p)
    p.add_argument("--mode", choices=["rigid", "affine"], default="rigid", help="registration (default rigid)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--retest-cv", type=float,
                   help="within-subject coefficient of variation of the protocol (e.g. 0.05); SDC = 1.96*sqrt(2)*CV*mean")
    g.add_argument("--retest-table", help="CSV written by 'dwi-toolkit repeatability' (columns level, side, "
                   "segment, parameter, sdc in mm^2/s)")
    add_common(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import csv
    from pathlib import Path

    from ...io.loading import load_dwi
    from ...io.rois import load_rois
    from ...longitudinal import compare_sessions

    base = load_dwi(args.baseline)
    follow = load_dwi(args.follow_up)
    rois = load_rois(args.rois)
    retest = args.retest_cv
    if args.retest_table:
        with open(args.retest_table, newline="", encoding="utf-8") as fh:
            retest = {(r["level"], r["side"], r.get("segment", ""), r.get("parameter", "")): float(r["sdc"])
                      for r in csv.DictReader(fh)}
    cmp = compare_sessions(base, follow, rois, retest=retest, mode=args.mode)
    paths = cmp.save(Path(args.out))
    reg = cmp.registration
    print(f"registration ({reg.mode}): rotation {reg.rotation_deg:.1f} deg, translation "
          f"{[round(float(x), 1) for x in reg.translation_mm]} mm")
    for r in cmp.rows:
        flag = "REAL" if r["real_change"] else "    "
        print(f"{flag} {r['level']:>2} {r['side']:<5} {r['segment']:<14} {r['change_pct']:+6.1f} % "
              f"(smallest real change {r['sdc_pct']:.1f} %, {r['sdc_source']})")
    print(f"report: {paths['html']}")
    return 0
