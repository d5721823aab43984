"""``dwi-toolkit convert PATH -o OUTDIR``: DICOM DWI → NIfTI + .bval + .bvec + JSON sidecar."""

from __future__ import annotations

import argparse
import re


def add_parser(sub, add_common) -> None:
    from .._options import add_out

    p = sub.add_parser(
        "convert",
        help="convert DICOM DWI to NIfTI + .bval/.bvec + BIDS JSON sidecar",
        description="Convert raw DWI series found under PATH (any depth, any vendor) to NIfTI with "
        "FSL .bval/.bvec (image frame, as dcm2niix) and a BIDS JSON sidecar without patient "
        "identifiers. Scanner-derived TRACEW/ADC/FA series are never merged into the DWI.",
    )
    p.add_argument("path", help="DICOM folder (searched recursively) or one DICOM file")
    add_out(p, required=False, help="output folder (created if needed)", old=("--outdir", "--out-dir", "--output"))
    p.add_argument("--series-uid", help="convert only this SeriesInstanceUID")
    p.add_argument("--all", action="store_true", help="convert every raw DWI series found")
    p.add_argument("--list", action="store_true", help="list the series found and exit")
    p.add_argument("--keep-phi", action="store_true", help="keep patient identifiers in the sidecar")
    from .._options import add_backend, add_scrub_text

    add_scrub_text(p)
    p.add_argument("--no-gzip", action="store_true", help="write .nii instead of .nii.gz")
    p.add_argument("--scanner-adc", action="store_true",
                   help="also write the scanner's ADC map(s) in mm^2/s (scanner_adc_*.nii.gz)")
    p.add_argument("--bids", action="store_true",
                   help="write a BIDS raw dataset (sub-<label>/[ses-<label>/]dwi/sub-<label>_dwi.nii.gz ..., "
                   "dataset_description.json, README.md, participants.tsv) instead of the flat dcm2niix-like "
                   "<series number>_<description>.nii.gz; needs --subject")
    p.add_argument("--subject", help="BIDS participant label with --bids (e.g. 01)")
    p.add_argument("--session", help="BIDS session label with --bids (e.g. 1); optional")
    p.add_argument("--b0-threshold", type=float, default=50.0, help="s/mm^2 (default 50)")
    p.add_argument("--verify", action="store_true",
                   help="also convert with dcm2niix and compare b-values, b-vectors (world frame), affine "
                   "and voxels; exit code 1 when they differ (needs: pip install dcm2niix)")
    add_backend(p)
    add_common(p)
    p.set_defaults(func=run)


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "series"


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ...errors import InputDataError
    from ...io.dicom import find_dwi_series, select_series

    if not args.list:
        from .._imports import import_nibabel_without_pydicom

        import_nibabel_without_pydicom()
    infos = find_dwi_series(args.path, b0_threshold=args.b0_threshold)
    if args.list:
        from .._series import series_table

        print(series_table(infos))
        return 0
    if not args.out:
        raise InputDataError("convert needs an output folder: -o OUTDIR (or --list to only list series)")
    out = Path(args.out)
    _list_others(infos, args)
    if args.all and not args.series_uid:
        chosen = [s for s in infos if s.role == "dwi"]
        if not chosen:
            select_series(infos, series_uid=None, role="dwi", path=args.path)  # raises with listing
    else:
        chosen = [select_series(infos, series_uid=args.series_uid, role="dwi", path=args.path)]
    ext = ".nii" if args.no_gzip else ".nii.gz"
    bids = _bids_options(args)
    used: set[str] = set()
    agree = True
    for i, info in enumerate(chosen):
        series = _load_one(info, args)
        if getattr(args, "verify", False):
            agree = _verify_one(series, info, args) and agree
        if bids:
            target = _bids_target(out, args, "dwi", run=i + 1 if len(chosen) > 1 else None)
        else:
            stem = f"{info.series_number if info.series_number is not None else 0}_{_safe(info.description)}"
            while stem in used:
                stem += "_b"
            used.add(stem)
            target = out / stem
        written = series.save(target.with_name(target.name + ext))
        print(f"{info.description or info.series_uid}: {series.shape} -> {written['nifti']}")
    if args.scanner_adc:
        _write_scanner_adc(infos, out, args, ext)
    if bids:
        from ...io.bids import write_raw_dataset_files

        write_raw_dataset_files(out, args.subject)
    return 0 if agree else 1


def _list_others(infos, args: argparse.Namespace) -> None:
    """With several series under PATH, list them all and mark the one(s) converted."""
    from ...errors import DicomError
    from ...io.dicom import select_series
    from .._series import series_table

    if len(infos) < 2:
        return
    if args.all and not args.series_uid:
        chosen = [s for s in infos if s.role == "dwi"]
    else:
        try:
            chosen = [select_series(infos, series_uid=args.series_uid, role="dwi", path=args.path)]
        except DicomError:
            chosen = []  # none chosen: the conversion below raises the error saying why
    print(series_table(infos, chosen, what="converted") + ("" if args.all else " (or --all)"))


def _bids_options(args: argparse.Namespace) -> bool:
    """Whether --bids is on; --subject/--session without --bids, or --bids without --subject, are errors."""
    from ...errors import InputDataError

    if not args.bids:
        if args.subject or args.session:
            raise InputDataError("--subject/--session name BIDS entities: add --bids (or leave them out).")
        return False
    if not args.subject:
        raise InputDataError("convert --bids needs the participant label: --subject 01 (and optionally --session).")
    return True


def _bids_target(out, args: argparse.Namespace, suffix: str, run: int | None = None):
    from ...io.bids import bids_stem

    return bids_stem(out, args.subject, suffix, session=args.session, run=run)


def _write_scanner_adc(infos, out, args: argparse.Namespace, ext: str) -> None:
    """The scanner's ADC map(s) in mm^2/s: ``scanner_adc_<n>_<description>`` or BIDS ``_ADC`` (+ sidecar)."""
    from ...io.dicom import load_scanner_adc
    from ...io.nifti import save_map

    adcs = [s for s in infos if s.role == "adc"]
    for i, info in enumerate(adcs):
        pmap = load_scanner_adc(args.path, series_uid=info.series_uid)
        if args.bids:
            stem = _bids_target(out, args, "ADC", run=i + 1 if len(adcs) > 1 else None)
            target = save_map(pmap, stem.with_name(stem.name + ext))
            _write_adc_sidecar(stem.with_name(stem.name + ".json"), info)
        else:
            target = save_map(pmap, out / f"scanner_adc_{info.series_number}_{_safe(info.description)}{ext}")
        print(f"{info.description}: scanner ADC (mm^2/s) -> {target}")


def _write_adc_sidecar(path, info) -> None:
    import json

    from ...io._atomic import atomic_write_text

    doc = {"Description": "ADC map computed by the scanner, rescaled to mm^2/s",
           "Units": "mm^2/s", "SeriesDescription": info.description, "SeriesNumber": info.series_number}
    atomic_write_text(path, json.dumps({k: v for k, v in doc.items() if v not in (None, "")}, indent=2) + "\n")


def _load_one(info, args):
    from ...io.dicom import load_dicom_series

    if getattr(args, "backend", "native") == "dcm2niix":
        from ...io.dicom.dcm2niix import load_with_dcm2niix

        return load_with_dcm2niix(info.files[0] if info.n_files == 1 else args.path, series_uid=info.series_uid,
                                  b0_threshold=args.b0_threshold)
    from .._options import scrub_text

    return load_dicom_series(info, b0_threshold=args.b0_threshold, keep_phi=args.keep_phi,
                             scrub_text=scrub_text(args))


def _verify_one(series, info, args) -> bool:
    from ...io.dicom.dcm2niix import verify_with_dcm2niix

    report = verify_with_dcm2niix(series, args.path, series_uid=info.series_uid, b0_threshold=args.b0_threshold)
    print(f"dcm2niix cross-check of '{info.description}' (rule {info.rule}): "
          f"{'agree' if report.ok else 'DIFFER'}")
    print(report.table())
    return report.ok
