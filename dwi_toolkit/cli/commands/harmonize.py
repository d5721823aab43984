"""``dwi-toolkit harmonize TABLE.csv -o OUT``: ComBat across sites of a cohort ROI table."""

from __future__ import annotations

import argparse


def add_parser(sub, add_common) -> None:
    p = sub.add_parser(
        "harmonize",
        help="remove site effects from a cohort ROI table with ComBat (keeps covariate effects)",
        description="ComBat (Johnson 2007; Fortin 2017) on a long cohort table (cohort_roi_stats.csv "
        "with a site column): each level x side x segment x parameter is a feature. Writes the "
        "harmonised table (the raw value kept in <value>_raw) and the site effects before/after "
        "(ANOVA and Kruskal-Wallis p per feature).",
    )
    p.add_argument("table", help="CSV, one row per subject x feature, with the site and covariate columns")
    from .._options import add_out

    add_out(p)
    p.add_argument("--batch", default="site", help="site / scanner column (default 'site')")
    p.add_argument("--covariates", nargs="*", default=[], help="subject columns whose effects are kept")
    p.add_argument("--value", default="mean", help="column to harmonise (default 'mean')")
    p.add_argument("--min-subjects-per-site", type=int, default=4, help="refuse below this (default 4)")
    add_common(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import csv
    import json
    from pathlib import Path

    from ...analysis.harmonize import harmonize
    from ...io._atomic import atomic_write_text
    from ...io.tables import format_csv

    with open(args.table, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    res = harmonize(rows, batch=args.batch, covariates=args.covariates, value=args.value,
                    min_subjects_per_site=args.min_subjects_per_site)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "harmonized.csv", format_csv(res.rows))
    atomic_write_text(out / "harmonization.json", json.dumps(res.summary(), indent=2))
    print(f"ComBat over {len(res.estimates['sites'])} sites, {len(res.features)} features")
    for f in res.features:
        print(f"  {f}: site p {res.before[f]['anova_p']:.2g} -> {res.after[f]['anova_p']:.2g}")
    print(f"written: {out / 'harmonized.csv'}, {out / 'harmonization.json'}")
    return 0
