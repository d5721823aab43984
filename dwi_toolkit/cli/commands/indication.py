"""``dwi-toolkit indication``: was the lumbar MRI indicated, by every guideline side by side?

``dwi-toolkit indication clinical.json`` classifies one subject; ``dwi-toolkit indication --audit
referrals.csv -o audit/`` audits a department's referral list (Kovacs 2013 design).
"""

from __future__ import annotations

import argparse
import json
import sys


def add_parser(sub, add_common) -> None:
    p = sub.add_parser(
        "indication",
        help="was a lumbar MRI indicated? per-guideline verdicts, or a referral audit (--audit)",
        description="Classify a subject's lumbar spine MRI as appropriate / uncertain / "
        "inappropriate (combined class as in Kovacs 2013) and show the verdict of every guideline "
        "side by side (NICE NG59/CG88, ACP 2011, ACR 2021 incl. Back Pain-Child, European 2006) "
        "with the deciding criterion and its citation; missing data are listed with the class "
        "each value would give. With --audit, classify a CSV/TSV list of referrals and report "
        "rates (Wilson 95 % CI), odds ratios of an inappropriate request (logistic regression, "
        "needs the 'audit' extra) and Cohen's kappa against the radiologists' assessment. "
        "Research use only.",
    )
    p.add_argument("clinical", nargs="?", help="clinical.json (schema: docs/clinical.md)")
    p.add_argument("--audit", metavar="REFERRALS",
                   help="CSV/TSV of referrals (clinical fields of docs/clinical.md, plus optional "
                   "setting, prescriber_specialty, referred_pain, radiologist_assessment)")
    from .._options import add_out

    add_out(p, required=False, old=("--output",),
            help="with --audit: folder for audit_summary.html/.csv and audit_referrals.csv "
            "(default: indication_audit)")
    p.add_argument("--no-regression", action="store_true",
                   help="with --audit: skip the logistic regression (no statsmodels needed)")
    p.add_argument("--stenosis-policy", choices=("kovacs2013", "acr2021"), default="kovacs2013",
                   help="weeks of failed conservative care required for suspected stenosis: "
                   "kovacs2013 = 12 (default), acr2021 = 6")
    p.add_argument("--json", action="store_true", help="print the full result as JSON")
    add_common(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if (args.clinical is None) == (args.audit is None):
        print("dwi-toolkit indication: give either clinical.json or --audit REFERRALS.csv",
              file=sys.stderr)
        return 2
    if args.audit is not None:
        return _run_audit(args)
    from ...clinical.indication import assess_indication
    from ...io.clinical import load_clinical

    a = assess_indication(load_clinical(args.clinical), stenosis_policy=args.stenosis_policy)
    if args.json:
        print(json.dumps(a.to_dict(), indent=2, ensure_ascii=False))
        return 0
    _print_assessment(a)
    return 0


def _print_assessment(a) -> None:
    variant = ("none fits exactly" if a.acr_2021_variant is None
               else f"{a.acr_2021_variant} ({a.acr_2021_variant_text})")
    print(f"rule set:         {a.rule_set_version} (criteria file {a.guidelines_file_version})")
    print(f"classification:   {a.classification}  (combined, Kovacs 2013)")
    print(f"decisive rules:   {', '.join(a.decisive_rules)}")
    print(f"missing fields:   {', '.join(a.missing_fields) or 'none that matter'}")
    if len(a.possible_classes) > 1:
        print(f"possible classes: {', '.join(a.possible_classes)}")
    for w in a.what_would_change:
        print(f"  would be {w}")
    print(f"stenosis policy:  {a.stenosis_policy} ({a.stenosis_threshold_weeks:g} weeks)"
          + ("  [policy-sensitive case: the guidelines disagree]" if a.policy_sensitive else ""))
    print(f"ACR 2021 variant: {variant}")
    print("verdict per guideline:")
    for v in a.guideline_verdicts:
        extra = f" variant {v.variant} ({v.topic})" if v.variant is not None else ""
        step = f"; first: {v.first_step}" if v.first_step else ""
        print(f"  {v.name:<15} {v.verdict:<13} {v.criterion}{extra}{step} [{v.citation}]")
    print("Kovacs 2013 risk factors (reported, not used): "
          + (", ".join(a.kovacs_risk_factors_present) or "none present"))
    print("citations:")
    for c in a.citations:
        print(f"  - {c}")
    for n in a.notes:
        print(f"note: {n}")
    print()
    print(a.explanation)


def _run_audit(args: argparse.Namespace) -> int:
    from ...clinical.audit import audit_referrals, write_audit_summary

    audit = audit_referrals(args.audit, stenosis_policy=args.stenosis_policy,
                            regression=not args.no_regression)
    paths = write_audit_summary(audit, args.out or "indication_audit")
    if args.json:
        print(json.dumps(audit.to_dict(), indent=2, ensure_ascii=False))
        return 0
    print(f"referrals: {audit.n} (rule set {audit.rule_set_version})")
    for r in audit.summary_rows():
        print(f"  {r['measure']:<45} {r['estimate']:.3g}  (95 % CI {r['low']:.3g}-{r['high']:.3g},"
              f" n={r['n']})")
    for n in audit.notes:
        print(f"note: {n}")
    for k, p in paths.items():
        print(f"wrote {k}: {p}")
    return 0
