"""Validation of issue #22 on phantoms (not a timing benchmark, except the gradient check).

1. Gradient-table check: every flip/permutation on axial, sagittal and oblique grids, and the
   correct table, several noise seeds; plus the time on a lumbar-size 256x256x30x31 volume.
2. Repeat-scan comparison: follow-ups moved by up to 10 mm / 10 deg, +15 % on L4 right;
   registration error (mm at the roots), detection of the changed root, share of unchanged
   roots inside their smallest real change.
3. ComBat: site-effect ANOVA p before/after and the disease effect kept, over seeds.

Run: ``python benchmarks/validate_trust.py [--quick]``; prints Markdown, writes JSON to
benchmarks/results/validate_trust.json and a figure docs/_static/trust_validation.png.
"""

from __future__ import annotations

import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np

from dwi_toolkit.analysis.harmonize import harmonize
from dwi_toolkit.longitudinal import Registration, compare_sessions, register_sessions
from dwi_toolkit.phantom_sessions import (GRADIENT_ERRORS, make_gradient_error_phantom, make_session_pair,
                                          simulate_site_table)
from dwi_toolkit.qc.gradient_check import check_gradients
from dwi_toolkit.roi.sample import sample_rois

GRIDS = {"axial": (0, 0, 0), "sagittal": (0, 90, 0), "oblique": (15, 10, 20)}


def gradients(seeds) -> dict:
    out = {"cases": 0, "detected_and_corrected": 0, "correct_tables": 0, "correct_flagged": 0, "margins": []}
    for grid, rot in GRIDS.items():
        for seed in seeds:
            for err in [None, *GRADIENT_ERRORS]:
                ph = make_gradient_error_phantom(err, shape=(30, 26, 40), voxel_size=(3, 3, 3), seed=seed,
                                                 grid_rotation_deg=rot)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    r = check_gradients(ph.series)
                fixed = np.allclose(np.abs((r.bvecs_best * ph.true_bvecs).sum(1))[1:], 1)
                if err is None:
                    out["correct_tables"] += 1
                    out["correct_flagged"] += int(r.status != "ok")
                else:
                    out["cases"] += 1
                    out["detected_and_corrected"] += int(r.status == "wrong" and fixed)
                    out["margins"].append(r.margin)
    out["min_margin"] = float(min(out.pop("margins")))
    return out


def gradient_timing() -> dict:
    ph = make_gradient_error_phantom("xyz flip y", shape=(256, 256, 30), voxel_size=(0.7, 0.7, 4.0),
                                     seed=0, dtype=np.float32)
    t = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = check_gradients(ph.series)
    return {"shape": list(ph.series.shape), "seconds": round(time.perf_counter() - t, 2), "status": r.status,
            "best": r.best}


def sessions(n_repeats: int) -> dict:
    rng = np.random.default_rng(22)
    reg_err, found, inside, total, inside_true, total_true = [], 0, 0, 0, 0, 0
    for i in range(n_repeats):
        rot = rng.uniform(-10, 10, 3) * (10 / np.sqrt(3) / 10)  # |angle| up to ~10 deg
        shift = rng.uniform(-1, 1, 3) * 10 / np.sqrt(3)          # |shift| up to 10 mm
        pair = make_session_pair(shape=(48, 38, 40), voxel_size=(3, 3, 5), rotation_deg=rot, translation_mm=shift,
                                 seed=100 + 2 * i)
        reg = register_sessions(pair.baseline.series, pair.follow_up.series)
        pts = np.c_[np.array([c.mean(0) for c in pair.baseline.centerlines.values()]), np.ones(12)]
        reg_err.append(float(np.linalg.norm((pts @ reg.matrix.T - pts @ pair.transform.T)[:, :3], axis=1).max()))
        cmp = compare_sessions(pair.baseline.series, pair.follow_up.series, sample_rois(pair.baseline, kind="tube"),
                               registration=reg)
        biggest = max(cmp.rows, key=lambda r: abs(r["change"]))
        found += int((biggest["level"], biggest["side"]) == ("L4", "right") and biggest["real_change"])
        for r in cmp.rows:
            if (r["level"], r["side"]) != ("L4", "right"):
                total += 1
                inside += int(not r["real_change"])
        known = compare_sessions(pair.baseline.series, pair.follow_up.series,
                                 sample_rois(pair.baseline, kind="tube"), registration=Registration(pair.transform, "rigid"))
        for r in known.rows:
            if (r["level"], r["side"]) != ("L4", "right"):
                total_true += 1
                inside_true += int(not r["real_change"])
    return {"repeats": n_repeats, "max_registration_error_mm": max(reg_err), "voxel_mm": [3, 3, 5],
            "changed_root_found": found, "unchanged_inside_sdc_pct": round(100 * inside / total, 1),
            "registration_errors_mm": [round(e, 2) for e in reg_err],
            "unchanged_inside_sdc_pct_true_transform": round(100 * inside_true / total_true, 1)}


def combat(seeds) -> dict:
    from scipy import stats

    before, after, kept = [], [], []
    for s in seeds:
        res = harmonize(simulate_site_table(seed=s), batch="site", covariates=["group"])
        unaffected = [f for f in res.features if f != "L5_left_ganglion_adc"]
        before.append(max(res.before[f]["anova_p"] for f in unaffected))
        after.append(min(res.after[f]["anova_p"] for f in res.features))
        pat = [r["mean"] for r in res.rows if r["group"] == "patient" and (r["level"], r["side"]) == ("L5", "left")]
        con = [r["mean"] for r in res.rows if r["group"] == "control" and (r["level"], r["side"]) == ("L5", "left")]
        kept.append((np.mean(pat) - np.mean(con), stats.ttest_ind(pat, con).pvalue))
    return {"seeds": len(seeds), "max_before_p": max(before), "min_after_p": min(after),
            "disease_effect_mm2s": float(np.mean([k[0] for k in kept])), "max_disease_p": max(k[1] for k in kept)}


def main(quick: bool = False) -> dict:
    res = {"sessions": sessions(5 if quick else 10)}
    if "--sessions-only" not in sys.argv:
        res.update({"gradients": gradients(range(2 if quick else 5)), "gradient_timing": gradient_timing(),
                    "combat": combat(range(5 if quick else 20))})
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    (out / "validate_trust.json").write_text(json.dumps(res, indent=2))
    for k, v in res.items():
        print(f"| {k} | {json.dumps(v)} |")
    return res


if __name__ == "__main__":
    main("--quick" in sys.argv)
