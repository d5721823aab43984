"""``dwi-toolkit check-gradients PATH``: is the b-vector table flipped or permuted?"""

from __future__ import annotations

import argparse


def add_parser(sub, add_common) -> None:
    p = sub.add_parser(
        "check-gradients",
        help="check the gradient table for a flipped or permuted axis (and fix it)",
        description="Fit the tensor once, then score the coherence of the principal directions (mean "
        "length of short deterministic streamlines) under each of the 24 signed axis permutations of "
        "the b-vectors, as MRtrix3's dwigradcheck does (Jeurissen et al. 2014). Needs DTI data (b=0 and "
        ">= 6 directions). Exit code 1 when the table looks wrong and --fix-gradients was not given.",
    )
    from .._options import add_input, add_mask, add_out

    add_input(p)
    add_out(p, required=False, help="write gradient_check.json here (and the fixed series)")
    add_mask(p)
    p.add_argument("--fa-threshold", type=float, default=0.2, help="FA of streamline seeds and steps (default 0.2)")
    p.add_argument("--min-margin", type=float, default=0.1,
                   help="relative score gain another table needs to call the given one wrong (default 0.1)")
    p.add_argument("--fix-gradients", action="store_true",
                   help="when the table is wrong, write the series with the best table to OUT "
                   "(dwi_fixed.nii.gz + .bval/.bvec/.json; the correction is recorded in the sidecar)")
    add_common(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import json
    import warnings
    from pathlib import Path

    from ...errors import GradientWarning, InputDataError
    from ...io._atomic import atomic_write_text
    from ...io.nifti import save_dwi
    from ...qc.gradient_check import check_gradients, fix_gradients
    from ._maps import load_inputs

    if args.fix_gradients and not args.out:
        raise InputDataError("--fix-gradients needs -o/--out for the corrected series.")
    series, mask = load_inputs(args)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", GradientWarning)  # reported below
        res = check_gradients(series, mask=mask, fa_threshold=args.fa_threshold, min_margin=args.min_margin)
    summary = {"input": str(args.path), **res.to_dict()}
    print(f"gradient table: {res.status} (best {res.best!r}, given {res.given_score:.1f} mm, "
          f"best {res.best_score:.1f} mm, {res.n_seeds} seeds)")
    print(res.message)
    fixed = False
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        if args.fix_gradients and res.is_wrong:
            new, _ = fix_gradients(series, res)
            paths = save_dwi(new, out / "dwi_fixed.nii.gz")
            summary["fixed_series"] = {k: str(v) for k, v in paths.items()}
            fixed = True
            print(f"corrected series written: {paths['nifti']}")
        atomic_write_text(out / "gradient_check.json", json.dumps(summary, indent=2))
    return 1 if res.is_wrong and not fixed else 0
