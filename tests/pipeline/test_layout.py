"""Subject discovery: folder of subject folders (NIfTI / DICOM), BIDS datasets with derivatives."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from dwi_toolkit.errors import PipelineError
from dwi_toolkit.io.nifti import save_dwi
from dwi_toolkit.pipeline.layout import discover, input_checksums, subject_label
from dwi_toolkit.phantom import make_lumbar_phantom
from tests.pipeline._helpers import TINY, tiny_cohort


@pytest.fixture(scope="module")
def series():
    return make_lumbar_phantom(noise=False, **TINY).series


def test_folder_layout_finds_dwi_rois_clinical(tmp_path):
    tiny_cohort(tmp_path, n_good=2, broken=True)
    (tmp_path / "notes.txt").write_text("not a subject")
    ds = discover(tmp_path)
    assert ds.kind == "folders" and [s.key for s in ds.subjects] == ["sub-01", "sub-02", "sub-03"]
    s1 = ds.subjects[0]
    assert s1.dwi == tmp_path / "sub-01" / "dwi" / "sub-01_dwi.nii.gz"
    assert s1.bvals.name == "sub-01_dwi.bval" and s1.bvecs.name == "sub-01_dwi.bvec"
    assert s1.rois is not None and s1.rois.parent == tmp_path / "sub-01"
    assert s1.clinical == tmp_path / "sub-01" / "clinical.json"
    broken = ds.subjects[2]
    assert broken.bvals is None and broken.clinical is None  # load_dwi will say what is missing
    assert discover(tmp_path, participant_labels=["02"]).subjects[0].key == "sub-02"
    with pytest.raises(PipelineError, match="sub-09"):
        discover(tmp_path, participant_labels=["sub-09"])


def test_truth_label_maps_are_not_taken_for_dwi_or_rois(tmp_path, series):
    save_dwi(series, tmp_path / "patient_A" / "scan" / "dwi.nii.gz")
    import nibabel as nib

    tissue = nib.Nifti1Image(np.zeros(series.spatial_shape, np.int16), series.affine)
    (tmp_path / "patient_A" / "truth").mkdir()
    nib.save(tissue, tmp_path / "patient_A" / "truth" / "x_tissue_dseg.nii.gz")
    nib.save(tissue, tmp_path / "patient_A" / "x_tissue_dseg.nii.gz")
    (s,) = discover(tmp_path).subjects
    assert s.label == "sub-patientA" and s.source == "patient_A"
    assert s.dwi.name == "dwi.nii.gz" and s.rois is None and s.problem is None


def test_dicom_folder_at_any_depth(tmp_path, series):
    from dwi_toolkit.io.dicom_write import write_dicom_series

    write_dicom_series(series.replace(data=np.rint(series.data)), tmp_path / "p1" / "study" / "series7")
    (tmp_path / "p1" / "clinical.json").write_text("{}")
    (s,) = discover(tmp_path).subjects
    assert s.kind == "dicom" and s.dwi == tmp_path / "p1" / "study" / "series7"
    sums = input_checksums(s)
    assert sums["dwi"]["n_files"] == series.n_volumes * series.spatial_shape[2]
    assert sums["clinical"]["path"] == "p1/clinical.json"


def test_subject_without_dwi_is_listed_with_a_reason(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("no scans")
    (s,) = discover(tmp_path).subjects
    assert s.dwi is None and "no DWI found" in s.problem


def test_label_collisions_and_empty_input(tmp_path):
    (tmp_path / "a_1").mkdir()
    (tmp_path / "a-1").mkdir()
    with pytest.raises(PipelineError, match="both map to label 'sub-a1'"):
        discover(tmp_path)
    with pytest.raises(PipelineError, match="no subjects found"):
        discover(tmp_path / "a_1")
    with pytest.raises(PipelineError, match="not found"):
        discover(tmp_path / "missing")
    assert subject_label("sub-01") == "sub-01"


def _bids(root, series):
    (root).mkdir(parents=True)
    (root / "dataset_description.json").write_text(json.dumps({"Name": "t", "BIDSVersion": "1.9.0"}))
    save_dwi(series, root / "sub-01" / "ses-1" / "dwi" / "sub-01_ses-1_dwi.nii.gz")
    save_dwi(series, root / "sub-01" / "ses-2" / "dwi" / "sub-01_ses-2_dwi.nii.gz")
    save_dwi(series, root / "sub-02" / "dwi" / "sub-02_dwi.nii.gz")
    (root / "sub-03" / "anat").mkdir(parents=True)
    d = root / "derivatives" / "rois" / "sub-01" / "ses-1"
    d.mkdir(parents=True)
    (d / "sub-01_ses-1_rois.json").write_text("{}")
    (d / "sub-01_ses-1_clinical.json").write_text("{}")
    return root


def test_bids_dataset_units_and_derivatives(tmp_path, series):
    root = _bids(tmp_path / "bids", series)
    ds = discover(root)
    assert ds.kind == "bids"
    units = {s.key: s for s in ds.subjects}
    assert sorted(units) == ["sub-01_ses-1", "sub-01_ses-2", "sub-02", "sub-03"]
    s = units["sub-01_ses-1"]
    assert s.out_relpath == "sub-01/ses-1" and s.rois.name == "sub-01_ses-1_rois.json"
    assert s.clinical.name == "sub-01_ses-1_clinical.json" and s.bvals is not None
    assert units["sub-01_ses-2"].rois is None
    assert "no sub-03/dwi" in units["sub-03"].problem
    # extra derivatives folder given by the user
    extra = tmp_path / "myrois" / "sub-02"
    extra.mkdir(parents=True)
    (extra / "sub-02_desc-roots_dseg.nii.gz").write_bytes(b"")
    ds2 = discover(root, participant_labels=["sub-02"], derivatives=[tmp_path / "myrois"])
    assert ds2.subjects[0].rois.name == "sub-02_desc-roots_dseg.nii.gz"


def test_bids_run_writes_derivatives_inside_dataset_only_under_derivatives(tmp_path, series):
    from dwi_toolkit.pipeline.runner import run_pipeline
    from tests.pipeline._helpers import pipeline_file, tree_hash

    root = _bids(tmp_path / "bids", series)
    shutil.rmtree(root / "sub-03")
    before = {k: v for k, v in tree_hash(root).items() if not k.startswith("derivatives/dwi_toolkit")}
    out = root / "derivatives" / "dwi_toolkit"
    res = run_pipeline(root, out, pipeline=pipeline_file(tmp_path / "p.toml"))
    assert res.exit_code == 0 and len(res.results) == 3
    assert (out / "sub-01" / "ses-1" / "dwi" / "sub-01_ses-1_ADC.nii.gz").is_file()
    after = {k: v for k, v in tree_hash(root).items() if not k.startswith("derivatives/dwi_toolkit")}
    assert after == before
