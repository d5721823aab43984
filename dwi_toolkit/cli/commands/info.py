"""``dwi-toolkit info PATH``: describe a DWI series without patient identifiers."""

from __future__ import annotations

import argparse
import json


def add_parser(sub, add_common) -> None:
    from .._options import add_input, add_scrub_text

    p = sub.add_parser(
        "info",
        help="describe a DWI series (shape, voxel size, orientation, b-values, shells)",
        description="Describe a DWI series: shape, voxel size, orientation, b-values/shells and "
        "directions per shell. Never prints patient identifiers.",
    )
    add_input(p)
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.add_argument("--check-gradients", action="store_true",
                   help="also check the b-vector table for a flipped or permuted axis (DTI data; see the "
                   "check-gradients command to write a corrected series)")
    add_scrub_text(p)
    add_common(p)
    p.set_defaults(func=run)


def describe(series) -> dict:
    """Facts about a series as a JSON-ready dict (no patient identifiers)."""
    import numpy as np

    shells = []
    for sh in series.shells:
        vecs = series.bvecs[list(sh.indices)]
        dirs = {tuple(np.round(v, 3)) for v in vecs if np.linalg.norm(v) > 0}
        shells.append({"bval": round(sh.bval, 3), "n_volumes": sh.n_volumes, "n_directions": len(dirs)})
    meta = series.meta
    return {
        "shape": list(series.shape),
        "voxel_size_mm": [round(float(v), 4) for v in series.voxel_sizes],
        "orientation": series.orientation,
        "slice_orientation": series.slice_orientation,
        "dtype": str(series.data.dtype),
        "bvals": [round(float(b), 4) for b in series.bvals],
        "b0_threshold": series.b0_threshold,
        "shells": shells,
        "affine": np.round(series.affine, 4).tolist(),
        **{k: meta[k] for k in ("Manufacturer", "ManufacturersModelName", "MagneticFieldStrength",
                                 "SeriesDescription", "EchoTime", "RepetitionTime",
                                 "PhaseEncodingDirection", "PatientPosition") if k in meta},
    }


def _load(args: argparse.Namespace):
    """The series to describe, and (DICOM input) every series found with the chosen one."""
    from pathlib import Path

    from ...io.loading import load_dwi, looks_like_dicom, nifti_dwi_candidates
    from .._options import scrub_text

    p = Path(args.path)
    dicom = (p.is_file() and looks_like_dicom(p)) or (p.is_dir() and (args.series_uid or not nifti_dwi_candidates(p)))
    if not dicom:
        return load_dwi(p, bvals=args.bvals, bvecs=args.bvecs, series_uid=args.series_uid,
                        b0_threshold=args.b0_threshold, scrub_text=scrub_text(args)), [], None
    from ...io.dicom import find_dwi_series, load_dicom_series, select_series

    infos = find_dwi_series(p, b0_threshold=args.b0_threshold)
    n_dwi = sum(s.role == "dwi" for s in infos)
    if n_dwi > 1 and not args.series_uid:
        from ...errors import InputDataError
        from .._series import series_table

        raise InputDataError(f"{n_dwi} raw DWI series under {p}; describe one of them.\n" + series_table(infos))
    chosen = select_series(infos, series_uid=args.series_uid, role="dwi", path=p)
    if args.backend == "dcm2niix":
        return load_dwi(p, series_uid=chosen.series_uid, b0_threshold=args.b0_threshold,
                        backend="dcm2niix"), infos, chosen
    return load_dicom_series(chosen, b0_threshold=args.b0_threshold, scrub_text=scrub_text(args)), infos, chosen


def run(args: argparse.Namespace) -> int:
    from .._series import series_rows, series_table

    series, infos, chosen = _load(args)
    facts = describe(series)
    if infos:
        facts["dicom_series"] = series_rows(infos, [chosen])
    if args.check_gradients:
        facts["gradient_check"] = _gradient_check(series)
    if args.json:
        print(json.dumps(facts, indent=2))
        return 0
    w = 24
    print(f"{'path:':<{w}}{args.path}")
    print(f"{'shape:':<{w}}{tuple(facts['shape'])} (X, Y, Z, volumes)")
    print(f"{'voxel size:':<{w}}{' x '.join(f'{v:g}' for v in facts['voxel_size_mm'])} mm")
    print(f"{'orientation:':<{w}}{facts['orientation']} ({facts['slice_orientation']} slices)")
    print(f"{'b0 threshold:':<{w}}{facts['b0_threshold']:g} s/mm^2")
    print(f"{'shells:':<{w}}b (s/mm^2)  volumes  directions")
    for sh in facts["shells"]:
        print(f"{'':<{w}}{sh['bval']:>10g}  {sh['n_volumes']:>7d}  {sh['n_directions']:>10d}")
    units = {"EchoTime": " s", "RepetitionTime": " s", "MagneticFieldStrength": " T"}
    for key in ("Manufacturer", "ManufacturersModelName", "MagneticFieldStrength", "SeriesDescription",
                "EchoTime", "RepetitionTime", "PhaseEncodingDirection", "PatientPosition"):
        if key in facts:
            print(f"{key + ':':<{w}}{facts[key]}{units.get(key, '')}")
    if "gradient_check" in facts:
        gc = facts["gradient_check"]
        print(f"{'gradient table:':<{w}}{gc['status']} (best {gc['best']}, margin {100 * gc['margin']:.0f} %)")
        print(f"{'':<{w}}{gc['message']}")
    if infos:
        print()
        print(series_table(infos, [chosen], what="described above"))
    return 0


def _gradient_check(series) -> dict:
    """The gradient-table check as the report records it (:func:`dwi_toolkit.pipeline.subject_sections.gradient_qc`)."""
    from ...pipeline.subject_sections import gradient_qc

    return gradient_qc(series)[1]
