"""The sample cohort generator: subjects, storage kinds, broken subject, truth outside the subjects."""

import json

import numpy as np
import pydicom

from dwi_toolkit.pipeline.layout import discover
from dwi_toolkit.sample_data import COHORT, generate_cohort


def test_generate_cohort_small_grid(tmp_path):
    truth = generate_cohort(tmp_path, shape=(24, 20, 12), voxel_size=(6.0, 6.0, 16.0))
    assert set(truth) == set(COHORT) and 4 <= len(truth) <= 6
    assert json.loads((tmp_path / "cohort_truth.json").read_text()) == truth
    kinds = {k: v["storage"] for k, v in truth.items()}
    assert sorted(kinds.values()) == ["broken", "dicom", "dicom", "nifti", "nifti"]
    assert [k for k, v in truth.items() if not v["altered"]] == ["sub-03"]  # one symmetric control
    ds = {s.key: s for s in discover(tmp_path).subjects}
    assert set(ds) == set(COHORT)
    for key, kind in kinds.items():
        s = ds[key]
        assert s.rois is not None
        if kind == "dicom":
            assert s.kind == "dicom" and s.clinical is not None
            f = sorted(s.dwi.glob("*.dcm"))[0]
            d = pydicom.dcmread(f)
            assert "PatientBirthDate" not in d and str(d.PatientName) == "Anonymous"
        elif kind == "broken":
            assert s.bvals is None and s.clinical is None
        else:
            assert s.bvals is not None
    alt = {(a["level"], a["side"]): a["adc_mm2_s"] for a in truth["sub-01"]["altered"]}
    assert alt == {("L5", "left"): 1.65e-3}
    assert np.isclose(truth["sub-01"]["root_adc_mm2_s"]["L5_left"], 1.65e-3)
