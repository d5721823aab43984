"""``dwi-toolkit repeatability TABLE.csv -o OUT``: test-retest ICC, CoV and smallest detectable change."""

from __future__ import annotations

import argparse


def add_parser(sub, add_common) -> None:
    p = sub.add_parser(
        "repeatability",
        help="test-retest repeatability per root: within-subject CoV, ICC(3,1), SEM, SDC",
        description="From a long table with several sessions per subject (cohort_roi_stats.csv of a "
        "test-retest study): per level x side x segment x parameter the within-subject CoV, ICC(3,1) "
        "(Shrout & Fleiss 1979), SEM and SDC = 1.96*sqrt(2)*SEM. The CSV feeds 'dwi-toolkit longitudinal "
        "--retest-table'.",
    )
    p.add_argument("table", help="CSV, one row per subject x session x feature")
    from .._options import add_out

    add_out(p, help="output CSV", old=())
    p.add_argument("--subject", default="subject", help="subject column (default 'subject')")
    p.add_argument("--session", default="session", help="session column (default 'session')")
    p.add_argument("--value", default="mean", help="measured column (default 'mean')")
    add_common(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import csv

    from ...analysis.repeatability import repeatability
    from ...io._atomic import atomic_write_text
    from ...io.tables import format_csv

    with open(args.table, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    tab = repeatability(rows, subject=args.subject, session=args.session, value=args.value)
    atomic_write_text(args.out, format_csv(tab.rows))
    for r in tab.rows:
        print(f"{r['level']} {r['side']} {r['segment']} {r['parameter']}: ICC {r['icc']:.2f}, "
              f"wCV {100 * r['wcv']:.1f} %, SDC {r['sdc']:.3g}")
    print(f"written: {args.out}")
    return 0
