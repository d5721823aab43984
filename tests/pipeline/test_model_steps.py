"""The ivim and dti steps (skipped until dwi_toolkit.models.ivim / .dti are in the build)."""

from __future__ import annotations

import numpy as np
import pytest

from dwi_toolkit.core.image import DWISeries
from dwi_toolkit.io.nifti import save_dwi
from dwi_toolkit.pipeline.runner import run_pipeline


def _load(path):
    import nibabel as nib

    return np.asanyarray(nib.load(path).dataobj)


def test_dti_step_on_isotropic_data(tmp_path):
    pytest.importorskip("dwi_toolkit.models.dti")
    rng = np.random.default_rng(0)
    dirs = rng.normal(size=(12, 3))
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    bvals = np.r_[0.0, 0.0, np.full(12, 800.0)]
    bvecs = np.vstack([[0, 0, 0], [0, 0, 0], dirs])
    d = 1.3e-3
    data = 1000.0 * np.exp(-bvals * d) * np.ones((6, 5, 4, 1))
    save_dwi(DWISeries(data, np.diag([-2.0, 2.0, 4.0, 1.0]), bvals, bvecs), tmp_path / "in" / "s1" / "dwi.nii.gz")
    p = tmp_path / "dti.toml"
    p.write_text('schema = "dwi_toolkit.pipeline/1"\nname = "dti"\n[[steps]]\nstep = "load"\n'
                 '[[steps]]\nstep = "dti"\nmask = "none"\n')
    res = run_pipeline(tmp_path / "in", tmp_path / "out", pipeline=p)
    assert res.exit_code == 0, res.failed
    out = tmp_path / "out" / "sub-s1" / "dwi"
    np.testing.assert_allclose(_load(out / "sub-s1_desc-dti_ADC.nii.gz"), d, rtol=1e-4)
    np.testing.assert_allclose(_load(out / "sub-s1_desc-dti_FA.nii.gz"), 0.0, atol=1e-4)


def test_ivim_step_matches_a_direct_fit(tmp_path):
    pytest.importorskip("dwi_toolkit.models.ivim")
    from dwi_toolkit.models.ivim import fit_ivim

    b = np.array([0.0, 20, 50, 100, 200, 400, 600, 800])
    sig = 1000.0 * (0.9 * np.exp(-b * 1.2e-3) + 0.1 * np.exp(-b * 2e-2))
    body = np.ones((4, 3, 2, 1))
    body[0] = 0.0  # background, left out by the step's automatic mask
    s = DWISeries(sig * body, np.diag([-2.0, 2.0, 4.0, 1.0]), b,
                  np.vstack([[0, 0, 0], np.tile([1.0, 0, 0], (7, 1))]))
    save_dwi(s, tmp_path / "in" / "s1" / "dwi.nii.gz")
    res = run_pipeline(tmp_path / "in", tmp_path / "out", pipeline="ivim")
    assert res.exit_code == 0, res.failed
    out = tmp_path / "out" / "sub-s1" / "dwi"
    from dwi_toolkit.core.masks import signal_mask

    direct = fit_ivim(s, method="segmented", mask=signal_mask(s.mean_b0()))  # the ivim recipe sets segmented
    for name in ("d", "f", "dstar"):
        got = _load(out / f"sub-s1_model-ivim_param-{name}_dwimap.nii.gz")
        np.testing.assert_allclose(got, direct.map(name).data.astype(np.float32), rtol=1e-6, equal_nan=True)
    d_map = _load(out / "sub-s1_model-ivim_param-d_dwimap.nii.gz")
    assert np.isnan(d_map[0]).all()
    np.testing.assert_allclose(d_map[1:], 1.2e-3, rtol=0.05)


def test_dti_pipeline_compares_fa_side_to_side(tmp_path):
    """The built-in `dti` pipeline puts FA/MD rows into the comparison and the report."""
    import json

    from dwi_toolkit.io.clinical import save_clinical
    from dwi_toolkit.io.rois import save_rois
    from dwi_toolkit.clinical.vocab import ClinicalInput
    from dwi_toolkit.phantom import make_lumbar_phantom
    from dwi_toolkit.roi.sample import sample_rois
    from dwi_toolkit.sample_data import SAMPLE_CLINICAL

    ph = make_lumbar_phantom(shape=(64, 52, 44), voxel_size=(2.0, 2.0, 4.0), n_directions=12, bvals=(0, 800),
                             root_fa=0.32, altered_fa={("L5", "left"): 0.20}, snr=80, seed=4)
    subj = tmp_path / "in" / "p01"
    save_dwi(ph.series, subj / "dwi.nii.gz")
    save_rois(sample_rois(ph), subj / "rois.json")
    save_clinical(ClinicalInput.from_dict({**SAMPLE_CLINICAL, "subject_id": "p01"}), subj / "clinical.json")
    res = run_pipeline(tmp_path / "in", tmp_path / "out", pipeline="dti")
    assert res.exit_code == 0, res.failed
    report = json.loads(next((tmp_path / "out").rglob("*report.json")).read_text())
    rows = report["side_comparison"]["rows"]
    fa_l5 = next(r for r in rows if r["parameter"] == "fa" and r["level"] == "L5")
    assert fa_l5["rel_diff_pct"] < -15  # lower FA on the altered, symptomatic root
    assert {r["parameter"] for r in rows} >= {"adc", "fa", "md"}
