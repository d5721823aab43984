"""Deterministic generator of the bundled ``sample_data/``: a synthetic lumbar DWI subject.

Run ``python -m dwi_toolkit.sample_data OUT_DIR`` (``make sample-data``) to regenerate it; the
output is byte-for-byte reproducible for a given version (fixed seed, fixed gzip timestamps).

Layout (BIDS-like, one folder per subject)::

    sub-01/dwi/sub-01_dwi.nii.gz (+ .bval, .bvec, .json)   DWI, int16, b = 0/100/400/800 s/mm²
    sub-01/truth/sub-01_adc_true.nii.gz                     true ADC per voxel (mm²/s)
    sub-01/truth/sub-01_tissue_dseg.nii.gz (+ .tsv)          tissue labels
    sub-01/truth/sub-01_roots_dseg.nii.gz (+ .tsv)           one label per root (L1..S1 x left/right)
    sub-01/truth/sub-01_root_centerlines.json               centre-lines in RAS+ mm, root ADCs
    sub-01/rois/sub-01_rois.json (+ .mrk.json)              a sphere on every root's ganglion (ROI set)
    sub-01/clinical.json                                    the subject's clinical picture (left L5 sciatica)
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
from pathlib import Path

import numpy as np

from .io._atomic import atomic_path, atomic_write_text
from .io.clinical import save_clinical
from .io.nifti import save_dwi
from .io.rois import save_rois
from .phantom import TISSUES, LumbarPhantom, make_lumbar_phantom
from .roi.sample import sample_rois

__all__ = ["SAMPLE_SUBJECT", "make_sample_phantom", "write_subject", "generate", "checksums"]

logger = logging.getLogger(__name__)

SAMPLE_SUBJECT = "sub-01"
SAMPLE_SEED = 20261124

#: Clinical picture of the sample subject (schema of docs/clinical.md): left L5 radicular pain from
#: a suspected disc herniation after 8 weeks of failed conservative care, surgery considered.
SAMPLE_CLINICAL = {
    "subject_id": SAMPLE_SUBJECT,
    "age": 45,
    "sex": "M",
    "pain_duration_weeks": 10,
    "conservative_treatment_weeks": 8,
    "radicular_pain": True,
    "radicular_side": "left",
    "suspected_levels": ["L5"],
    "referred_pain": True,
    "suspected_condition": "disc_herniation",
    "red_flags": [],
    "cauda_equina_signs": [],
    "surgery_considered": True,
    "prior_lumbar_surgery": False,
    "new_or_progressive_symptoms": False,
    "prior_lumbar_mri_months_ago": None,
    "clinical_change_since_prior_mri": None,
    "setting": "public",
    "prescriber_specialty": "neurosurgery",
}


def make_sample_phantom(**overrides) -> LumbarPhantom:
    """The phantom behind ``sample_data/sub-01`` (left L5 root altered to 1.65×10⁻³ mm²/s)."""
    kwargs = dict(seed=SAMPLE_SEED, snr=40.0, altered={("L5", "left"): 1.65e-3})
    kwargs.update(overrides)
    return make_lumbar_phantom(**kwargs)


def _save_nifti(data, affine, path: Path, descrip: str = "") -> None:
    import nibabel as nib

    img = nib.Nifti1Image(data, affine)
    img.header.set_xyzt_units("mm")
    if descrip:
        img.header["descrip"] = descrip.encode()[:79]
    with atomic_path(path) as tmp:
        # nibabel's gzip writer stores no file name and mtime 0 -> reproducible bytes
        nib.save(img, str(tmp))


def write_subject(
    phantom: LumbarPhantom,
    out_dir: str | os.PathLike,
    subject: str = SAMPLE_SUBJECT,
    *,
    clinical: dict | None = None,
) -> dict:
    """Write one phantom subject under ``out_dir/subject``: DWI (int16), ground truth, an ROI set
    on every root's ganglion (JSON and 3D Slicer markups) and, when given, ``clinical.json``."""
    root = Path(out_dir) / subject
    s = phantom.series
    data16 = np.clip(np.rint(s.data), 0, np.iinfo(np.int16).max).astype(np.int16)
    meta = dict(s.meta, SyntheticPhantom=phantom.params, Sigma=phantom.sigma)
    paths = save_dwi(s.replace(data=data16, meta=meta), root / "dwi" / f"{subject}_dwi.nii.gz")
    truth = root / "truth"
    _save_nifti(phantom.adc_true.astype(np.float32), s.affine, truth / f"{subject}_adc_true.nii.gz", "adc [mm^2/s]")
    _save_nifti(phantom.labels.astype(np.int16), s.affine, truth / f"{subject}_tissue_dseg.nii.gz", "tissue labels")
    atomic_write_text(
        truth / f"{subject}_tissue_dseg.tsv",
        "index\tname\tadc_mm2_s\n"
        + "".join(f"{k}\t{v[0]}\t{v[1]:g}\n" for k, v in TISSUES.items() if k != 5)
        + "5\troot\tsee roots_dseg\n",
    )
    _save_nifti(phantom.root_labels.astype(np.int16), s.affine, truth / f"{subject}_roots_dseg.nii.gz", "roots")
    atomic_write_text(
        truth / f"{subject}_roots_dseg.tsv",
        "index\tname\n" + "".join(f"{k}\t{lev}_{side}\n" for k, (lev, side) in phantom.root_table.items()),
    )
    lines = {
        f"{lev}_{side}": {
            "level": lev,
            "side": side,
            "points_ras_mm": np.round(pts, 4).tolist(),
            "adc_mm2_s": phantom.root_adc[(lev, side)],
            "radius_mm": phantom.root_radius_mm,
        }
        for (lev, side), pts in phantom.centerlines.items()
    }
    doc = {
        "description": "True centre-lines of the synthetic nerve roots (world RAS+ mm).",
        "coordinate_system": "RAS+ mm (world, as the NIfTI affine)",
        "units": {"adc": "mm^2/s", "radius": "mm"},
        "midsagittal_plane": {
            "point_ras_mm": phantom.midsagittal_plane[0].tolist(),
            "normal": phantom.midsagittal_plane[1].tolist(),
        },
        "roots": lines,
    }
    atomic_write_text(truth / f"{subject}_root_centerlines.json", json.dumps(doc, indent=2) + "\n")
    paths["truth"] = truth
    rois = sample_rois(phantom)
    paths["rois"] = save_rois(rois, root / "rois" / f"{subject}_rois.json")
    save_rois(rois, root / "rois" / f"{subject}_rois.mrk.json")
    if clinical is not None:
        from .core.clinical import ClinicalInput

        paths["clinical"] = save_clinical(ClinicalInput.from_dict(clinical), root / "clinical.json")
    return paths


def checksums(folder: str | os.PathLike) -> str:
    """SHA-256 lines (``hash  relative/path``) of every file under `folder` except CHECKSUMS/README."""
    base = Path(folder)
    lines = []
    for p in sorted(base.rglob("*")):
        if p.is_file() and p.name not in ("CHECKSUMS.sha256", "README.md"):
            lines.append(f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {p.relative_to(base).as_posix()}")
    return "\n".join(lines) + "\n"


def generate(out_dir: str | os.PathLike) -> Path:
    """(Re)generate the whole sample folder and its checksum list."""
    out = Path(out_dir)
    write_subject(make_sample_phantom(), out, clinical=SAMPLE_CLINICAL)
    atomic_write_text(out / "CHECKSUMS.sha256", checksums(out))
    logger.info("sample data written to %s", out)
    return out


def main(argv=None) -> int:  # pragma: no cover - thin wrapper
    parser = argparse.ArgumentParser(description="Regenerate dwi_toolkit's synthetic sample data.")
    parser.add_argument("out_dir", nargs="?", default="sample_data")
    args = parser.parse_args(argv)
    generate(args.out_dir)
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
