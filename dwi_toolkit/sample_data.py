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

The folder is a valid BIDS 1.11 raw dataset (``dataset_description.json``, ``participants.tsv``/``.json``,
``README.md``; the non-BIDS ``truth/``, ``rois/`` and ``clinical.json`` are listed in ``.bidsignore``),
checked with the official BIDS validator in ``tests/test_bids_validator.py``.
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

__all__ = ["SAMPLE_SUBJECT", "make_sample_phantom", "write_subject", "generate", "checksums", "COHORT",
           "generate_cohort"]

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
    """The phantom behind ``sample_data/sub-01`` (left L5 root altered to 1.65×10⁻³ mm²/s).

    Examples
    --------
    >>> ph = make_sample_phantom(shape=(36, 28, 24), voxel_size=(4.0, 4.0, 8.0))
    >>> round(ph.root_adc[("L5", "left")] * 1e3, 2), round(ph.root_adc[("L5", "right")] * 1e3, 2)
    (1.65, 1.32)
    """
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
    on every root's ganglion (JSON and 3D Slicer markups) and, when given, ``clinical.json``.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> out = Path(tempfile.mkdtemp())
    >>> _ = write_subject(make_sample_phantom(shape=(36, 28, 24), voxel_size=(4.0, 4.0, 8.0)), out, "sub-01",
    ...                   clinical=SAMPLE_CLINICAL)
    >>> sorted(p.name for p in (out / "sub-01").iterdir())
    ['clinical.json', 'dwi', 'rois', 'truth']
    """
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
        from .clinical.vocab import ClinicalInput

        paths["clinical"] = save_clinical(ClinicalInput.from_dict(clinical), root / "clinical.json")
    return paths


#: BIDS version the sample dataset is written for (checked with the official validator).
BIDS_VERSION = "1.11.0"

#: Files and folders of the sample that are not part of BIDS (``.bidsignore`` syntax, as .gitignore).
SAMPLE_BIDSIGNORE = ("CHECKSUMS.sha256", "**/truth", "**/rois", "**/clinical.json")


def _write_bids_top_level(out: Path, subject: str, clinical: dict) -> None:
    """Top-level BIDS files of the sample: dataset description, participants table and sidecar,
    ``.bidsignore`` (BIDS 1.11, "Modality agnostic files")."""
    description = {
        "Name": "dwi_toolkit synthetic lumbar DWI sample",
        "BIDSVersion": BIDS_VERSION,
        "DatasetType": "raw",
        "License": "CC0",
        "Authors": ["dwi_toolkit developers"],
        "GeneratedBy": [{"Name": "dwi_toolkit.sample_data",
                         "Description": f"deterministic synthetic lumbar phantom, seed {SAMPLE_SEED}"}],
    }
    atomic_write_text(out / "dataset_description.json", json.dumps(description, indent=2) + "\n")
    atomic_write_text(out / "participants.tsv",
                      f"participant_id\tage\tsex\n{subject}\t{clinical['age']}\t{clinical['sex']}\n")
    participants = {
        "age": {"Description": "age of the participant", "Units": "year"},
        "sex": {"Description": "sex of the participant", "Levels": {"M": "male", "F": "female"}},
    }
    atomic_write_text(out / "participants.json", json.dumps(participants, indent=2) + "\n")
    atomic_write_text(out / ".bidsignore", "\n".join(SAMPLE_BIDSIGNORE) + "\n")


def checksums(folder: str | os.PathLike) -> str:
    """SHA-256 lines (``hash  relative/path``) of every file under `folder` except CHECKSUMS/README.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> d = Path(tempfile.mkdtemp()); _ = (d / "a.txt").write_text("x")
    >>> checksums(d).split()
    ['2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881', 'a.txt']
    """
    base = Path(folder)
    lines = []
    for p in sorted(base.rglob("*")):
        if p.is_file() and p.name not in ("CHECKSUMS.sha256", "README.md"):
            lines.append(f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {p.relative_to(base).as_posix()}")
    return "\n".join(lines) + "\n"


def generate(out_dir: str | os.PathLike) -> Path:
    """(Re)generate the whole sample folder and its checksum list.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> out = generate(Path(tempfile.mkdtemp()))                      # the bundled sample, ~1 s
    >>> (out / "sub-01" / "dwi" / "sub-01_dwi.nii.gz").is_file(), (out / "CHECKSUMS.sha256").is_file()
    (True, True)
    """
    out = Path(out_dir)
    write_subject(make_sample_phantom(), out, clinical=SAMPLE_CLINICAL)
    _write_bids_top_level(out, SAMPLE_SUBJECT, SAMPLE_CLINICAL)
    atomic_write_text(out / "CHECKSUMS.sha256", checksums(out))
    logger.info("sample data written to %s", out)
    return out


# ------------------------------------------------------------------------------ sample cohort
#: The sample cohort: folder name → (altered roots, storage, clinical facts or None, note).
#: ``broken`` subjects are written without their .bval/.bvec files (the run must report them).
COHORT = {
    "sub-01": ({("L5", "left"): 1.65e-3}, "nifti",
               {"radicular_side": "left", "suspected_levels": ["L5"], "pain_duration_weeks": 10,
                "conservative_treatment_weeks": 8, "surgery_considered": True},
               "left L5 root altered; symptoms left L5"),
    "sub-02": ({("S1", "right"): 1.70e-3}, "dicom",
               {"radicular_side": "right", "suspected_levels": ["S1"], "pain_duration_weeks": 14,
                "conservative_treatment_weeks": 12, "surgery_considered": True},
               "right S1 root altered; DICOM; symptoms right S1"),
    "sub-03": ({}, "nifti",
               {"radicular_side": "left", "suspected_levels": ["L4"], "pain_duration_weeks": 2,
                "conservative_treatment_weeks": 0, "surgery_considered": False},
               "symmetric control (no root altered); early, mild symptoms"),
    "sub-04": ({("L4", "left"): 1.60e-3}, "dicom",
               {"radicular_side": "left", "suspected_levels": ["L5"], "pain_duration_weeks": 9,
                "conservative_treatment_weeks": 7, "surgery_considered": True},
               "left L4 root altered but L5 suspected clinically; DICOM"),
    "sub-05": ({("L5", "right"): 1.65e-3}, "broken", None,
               "deliberately broken: NIfTI without .bval/.bvec (missing b-values)"),
}
COHORT_SHAPE = (64, 52, 44)
COHORT_VOXEL = (2.0, 2.0, 4.0)


def _clinical_doc(subject: str, facts: dict) -> dict:
    """A clinical.json document (schema of docs/clinical.md, field names of dwi_toolkit References §3.10-3.11)."""
    doc = {
        "schema": "dwi_toolkit.clinical", "schema_version": "1.0", "subject_id": subject, "age": 45,
        "sex": "M", "pain_duration_weeks": 10, "conservative_treatment_weeks": 8, "radicular_pain": True,
        "radicular_side": "left", "suspected_levels": ["L5"], "referred_pain": True,
        "suspected_condition": "disc_herniation", "red_flags": [], "cauda_equina_signs": [],
        "surgery_considered": True, "prior_lumbar_surgery": False, "new_or_progressive_symptoms": False,
        "prior_lumbar_mri_months_ago": None, "clinical_change_since_prior_mri": None, "setting": "public",
        "prescriber_specialty": "neurosurgery",
    }
    doc.update(facts)
    return doc


def _write_rois(phantom: LumbarPhantom, folder: Path, subject: str) -> Path:
    """ROIs of the subject: ``rois.json`` (tubes around each ganglion, RAS+ mm) when the ROI tools are
    installed, else a ``<subject>_roots_dseg.nii.gz`` label map with ``L5_left_ganglion``-style names."""
    try:
        from .io.rois import save_rois
        from .roi.sample import sample_rois
    except ImportError:
        save_rois = sample_rois = None
    if save_rois is not None and sample_rois is not None:
        return save_rois(sample_rois(phantom, kind="tube"), folder / "rois.json",
                         reference=(phantom.series.spatial_shape, phantom.series.affine))
    from .phantom import SEGMENT_BOUNDS

    segs = list(SEGMENT_BOUNDS)
    lab = np.zeros(phantom.root_labels.shape, np.int16)
    names = []
    for key, (lev, side) in sorted(phantom.root_table.items()):
        for j, seg in enumerate(segs):
            idx = len(names) + 1
            lab[(phantom.root_labels == key) & (phantom.segment_labels == j + 1)] = idx
            names.append(f"{lev}_{side}_{seg}")
    path = folder / f"{subject}_roots_dseg.nii.gz"
    _save_nifti(lab, phantom.series.affine, path, "root segments")
    atomic_write_text(folder / f"{subject}_roots_dseg.tsv",
                      "index\tname\n" + "".join(f"{i}\t{n}\n" for i, n in enumerate(names, start=1)))
    return path


def generate_cohort(
    out_dir: str | os.PathLike,
    *,
    subjects: dict | None = None,
    shape: tuple[int, int, int] = COHORT_SHAPE,
    voxel_size: tuple[float, float, float] = COHORT_VOXEL,
    dicom: bool = True,
    seed: int = SAMPLE_SEED,
) -> dict[str, dict]:
    """Write the small synthetic sample cohort (a folder of subject folders) under `out_dir`.

    Each subject folder holds its DWI (NIfTI + .bval/.bvec/.json under ``dwi/``, or classic DICOM
    under ``dicom/`` written by :func:`dwi_toolkit.io.dicom_write.write_dicom_series`), its ROIs
    (``rois.json``, or a root label map when the ROI tools are absent) and ``clinical.json``. The
    truth (altered roots and their ADC) is in ``out_dir/cohort_truth.json``, outside every subject
    folder. About 2 MB per subject with the default grid.

    Parameters
    ----------
    subjects : dict, optional
        Like :data:`COHORT` (the default): folder → (altered, storage, clinical facts, note) with
        storage ``"nifti"``, ``"dicom"`` or ``"broken"``.
    shape, voxel_size : optional
        Grid of every subject (voxel size in mm).
    dicom : bool, optional
        Write ``"dicom"`` subjects as DICOM (else as NIfTI).
    seed : int, optional
        Noise seed of the first subject (the others add their index).

    Returns
    -------
    dict
        Folder → facts (storage, altered roots, note), also written to ``cohort_truth.json``.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> out = Path(tempfile.mkdtemp())
    >>> truth = generate_cohort(out, subjects={"sub-01": COHORT["sub-01"]}, dicom=False)
    >>> truth["sub-01"]["note"], sorted(p.name for p in (out / "sub-01").iterdir())
    ('left L5 root altered; symptoms left L5', ['clinical.json', 'dwi', 'rois.json'])
    """
    from .io.dicom_write import write_dicom_series

    out = Path(out_dir)
    truth = {}
    for i, (name, (altered, storage, clinical, note)) in enumerate((subjects or COHORT).items()):
        ph = make_lumbar_phantom(shape=shape, voxel_size=voxel_size, altered=dict(altered), seed=seed + i,
                                 snr=40.0)
        folder = out / name
        s = ph.series
        data16 = np.clip(np.rint(s.data), 0, np.iinfo(np.int16).max).astype(np.int16)
        if storage == "dicom" and dicom:
            write_dicom_series(s.replace(data=data16), folder / "dicom", study_seed=f"cohort-{name}",
                               description="synthetic lumbar DWI")
        else:
            paths = save_dwi(s.replace(data=data16, meta=dict(s.meta)), folder / "dwi" / f"{name}_dwi.nii.gz")
            if storage == "broken":
                paths["bval"].unlink()
                paths["bvec"].unlink()
        _write_rois(ph, folder, name)
        if clinical is not None:
            atomic_write_text(folder / "clinical.json", json.dumps(_clinical_doc(name, clinical), indent=2) + "\n")
        truth[name] = {"storage": storage if (storage != "dicom" or dicom) else "nifti", "note": note,
                       "altered": [{"level": lv, "side": sd, "adc_mm2_s": v} for (lv, sd), v in altered.items()],
                       "root_adc_mm2_s": {f"{lv}_{sd}": a for (lv, sd), a in ph.root_adc.items()}}
    atomic_write_text(out / "cohort_truth.json", json.dumps(truth, indent=2) + "\n")
    logger.info("sample cohort (%d subjects) written to %s", len(truth), out)
    return truth


def main(argv=None) -> int:  # pragma: no cover - thin wrapper
    parser = argparse.ArgumentParser(description="Regenerate dwi_toolkit's synthetic sample data.")
    parser.add_argument("out_dir", nargs="?", default="sample_data")
    parser.add_argument("--cohort", action="store_true",
                        help="write the sample cohort (folder of subject folders) instead of sample_data")
    args = parser.parse_args(argv)
    if args.cohort:
        generate_cohort(args.out_dir)
    else:
        generate(args.out_dir)
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
