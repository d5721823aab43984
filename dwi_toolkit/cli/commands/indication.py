"""``dwi-toolkit indication clinical.json``: was the lumbar MRI indicated (rule set v1)?"""

from __future__ import annotations

import argparse
import json


def add_parser(sub, add_common) -> None:
    p = sub.add_parser(
        "indication",
        help="classify whether a lumbar MRI was indicated by guideline criteria (rule set v1)",
        description="Classify a subject's lumbar spine MRI as appropriate / uncertain / "
        "inappropriate by rule set v1 (clinical-reference.md §3.10): prints the class, the "
        "decisive rules, guideline citations, the missing fields that mattered, Kovacs 2013 "
        "risk factors (reported only) and the ACR 2021 variant. Research use only.",
    )
    p.add_argument("clinical", help="clinical.json (schema: docs/clinical.md)")
    p.add_argument("--stenosis-policy", choices=("kovacs2013", "acr2021"), default="kovacs2013",
                   help="weeks of failed conservative care required for suspected stenosis: "
                   "kovacs2013 = 12 (default), acr2021 = 6")
    p.add_argument("--json", action="store_true", help="print the full assessment as JSON")
    add_common(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ...clinical.indication import assess_indication
    from ...io.clinical import load_clinical

    a = assess_indication(load_clinical(args.clinical), stenosis_policy=args.stenosis_policy)
    if args.json:
        print(json.dumps(a.to_dict(), indent=2, ensure_ascii=False))
        return 0
    variant = ("none fits exactly" if a.acr_2021_variant is None
               else f"{a.acr_2021_variant} ({a.acr_2021_variant_text})")
    print(f"classification:   {a.classification}")
    print(f"decisive rules:   {', '.join(a.decisive_rules)}")
    print(f"missing fields:   {', '.join(a.missing_fields) or 'none that matter'}")
    if len(a.possible_classes) > 1:
        print(f"possible classes: {', '.join(a.possible_classes)}")
    print(f"stenosis policy:  {a.stenosis_policy} ({a.stenosis_threshold_weeks:g} weeks)"
          + ("  [policy-sensitive case]" if a.policy_sensitive else ""))
    print(f"ACR 2021 variant: {variant}")
    print("Kovacs 2013 risk factors (reported, not used): "
          + (", ".join(a.kovacs_risk_factors_present) or "none present"))
    print("citations:")
    for c in a.citations:
        print(f"  - {c}")
    for n in a.notes:
        print(f"note: {n}")
    print()
    print(a.explanation)
    return 0
