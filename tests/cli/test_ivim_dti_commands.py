"""``dwi-toolkit ivim`` and ``dwi-toolkit dti`` run in-process on synthetic NIfTI series."""

from __future__ import annotations

import json

import numpy as np
import pytest

from dwi_toolkit.cli.main import main
from dwi_toolkit.core.image import DWISeries
from dwi_toolkit.models.ivim import ivim_signal

B = np.array([0, 10, 20, 50, 100, 200, 400, 600, 800, 1000.0])


@pytest.fixture
def ivim_nifti(tmp_path):
    f = np.linspace(0.05, 0.25, 6)[:, None, None] * np.ones((6, 5, 3))
    data = ivim_signal(B, 1000.0, f, 1.2e-3, 0.03).astype(np.float32)
    s = DWISeries(data, np.diag([1.5, 1.5, 4.0, 1.0]), B, np.zeros((B.size, 3)))
    path = tmp_path / "in" / "ivim.nii.gz"
    path.parent.mkdir()
    s.save(path)
    return path, f


def test_ivim_command_writes_maps_summary_and_png(ivim_nifti, tmp_path, capsys):
    nib = pytest.importorskip("nibabel")
    path, f = ivim_nifti
    out = tmp_path / "out"
    # the phantom has no background, so fit every voxel (the default analysis mask is 'auto')
    rc = main(["ivim", str(path), "-o", str(out), "--method", "full", "--b-threshold", "200", "--mask", "none"])
    assert rc == 0
    for name in ("d", "dstar", "f", "s0", "rsquared", "status"):
        assert (out / f"ivim_{name}.nii.gz").is_file()
    fmap = np.asarray(nib.load(str(out / "ivim_f.nii.gz")).dataobj)
    np.testing.assert_allclose(fmap, f, rtol=1e-4)
    summary = json.loads((out / "ivim_summary.json").read_text())
    assert summary["method"] == "full" and summary["status_counts"]["ok"] == f.size
    assert (out / "ivim_montage.png").read_bytes()[:4] == b"\x89PNG"
    assert "voxels ok" in capsys.readouterr().out


def test_ivim_command_rician_with_fixed_sigma(ivim_nifti, tmp_path):
    path, _ = ivim_nifti
    rc = main(["ivim", str(path), "-o", str(tmp_path / "o"), "--noise-correction", "rician", "--sigma", "5",
               "--no-figures"])
    assert rc == 0
    assert json.loads((tmp_path / "o" / "ivim_summary.json").read_text())["noise_correction"] == "rician"
    assert not (tmp_path / "o" / "ivim_montage.png").exists()


def test_ivim_command_user_error_exit_2(ivim_nifti, tmp_path, capsys):
    path, _ = ivim_nifti
    rc = main(["ivim", str(path), "-o", str(tmp_path / "o"), "--b-threshold", "900"])
    assert rc == 2
    assert "b_threshold" in capsys.readouterr().err


def test_dti_command(tmp_path, rng):
    nib = pytest.importorskip("nibabel")
    v = rng.standard_normal((12, 3))
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    bvecs = np.vstack([np.zeros(3), v])
    bvals = np.r_[0.0, np.full(12, 1000.0)]
    tensor = np.diag([1.7e-3, 0.4e-3, 0.4e-3])
    sig = 900.0 * np.exp(-bvals * np.einsum("ni,ij,nj->n", bvecs, tensor, bvecs))
    s = DWISeries(np.tile(sig, (4, 4, 3, 1)).astype(np.float32), np.eye(4), bvals, bvecs)
    path = tmp_path / "dti.nii.gz"
    s.save(path)
    out = tmp_path / "out"
    assert main(["dti", str(path), "-o", str(out)]) == 0
    fa = np.asarray(nib.load(str(out / "dti_fa.nii.gz")).dataobj)
    ev = np.array([1.7, 0.4, 0.4])
    fa_true = np.sqrt(1.5) * np.linalg.norm(ev - ev.mean()) / np.linalg.norm(ev)
    np.testing.assert_allclose(fa, fa_true, atol=1e-5)
    assert (out / "dti_montage.png").is_file() and (out / "dti_v1.nii.gz").is_file()
    assert json.loads((out / "dti_summary.json").read_text())["method"] == "WLS"


def test_ivim_and_dti_commands_write_roi_statistics(tmp_path, rng):
    from dwi_toolkit.roi.model import RoiSet, RootROI, Sphere

    # one series that serves both models: 3 b-values x 12 directions + b=0, isotropic tissue
    v = rng.standard_normal((12, 3))
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    shells = [10.0, 30.0, 100.0, 300.0, 600.0, 1000.0]
    bvals = np.r_[0.0, np.repeat(shells, 12)]
    bvecs = np.vstack([np.zeros(3), np.tile(v, (len(shells), 1))])
    data = ivim_signal(bvals, 1000.0, np.full((12, 12, 6), 0.1), 1.1e-3, 0.03).astype(np.float32)
    path = tmp_path / "dwi.nii.gz"
    DWISeries(data, np.diag([2.0, 2.0, 2.0, 1.0]), bvals, bvecs).save(path)
    rois = tmp_path / "rois.json"
    RoiSet([RootROI("L5", "left", shape=Sphere([8.0, 8.0, 6.0], 3.0)),
            RootROI("L5", "right", shape=Sphere([14.0, 14.0, 6.0], 3.0))]).save(rois)
    assert main(["ivim", str(path), "-o", str(tmp_path / "iv"), "--method", "full", "--rois", str(rois),
                 "--no-figures"]) == 0
    text = (tmp_path / "iv" / "ivim_roi_stats.csv").read_text().splitlines()
    header = text[0].split(",")
    rows = [dict(zip(header, line.split(","))) for line in text[1:]]
    assert {r["parameter"] for r in rows} == {"d", "dstar", "f"} and len(rows) == 6
    d_rows = [r for r in rows if r["parameter"] == "d"]
    assert all(abs(float(r["mean"]) - 1.1e-3) < 1e-8 for r in d_rows)
    assert "roi_snr" in json.loads((tmp_path / "iv" / "ivim_summary.json").read_text())
    assert main(["dti", str(path), "-o", str(tmp_path / "dt"), "--rois", str(rois), "--no-figures",
                 "--b-range", "0", "1000"]) == 0
    text = (tmp_path / "dt" / "dti_roi_stats.csv").read_text().splitlines()
    header = text[0].split(",")
    rows = [dict(zip(header, line.split(","))) for line in text[1:]]
    assert {r["parameter"] for r in rows} == {"fa", "md", "ad", "rd"}
    # isotropic tissue: FA ~ 0 (the tensor absorbs part of the perfusion term, so MD > D)
    assert all(float(r["mean"]) < 0.05 for r in rows if r["parameter"] == "fa")


def test_preprocessing_flags_are_recorded(ivim_nifti, tmp_path):
    path, _ = ivim_nifti
    out = tmp_path / "o"
    assert main(["ivim", str(path), "-o", str(out), "--gibbs", "--no-figures"]) == 0
    steps = json.loads((out / "ivim_summary.json").read_text())["preprocessing"]
    assert [s["step"] for s in steps] == ["remove_gibbs"] and "dipy" in steps[0]["software"]


def test_roi_snr_in_summary(tmp_path, rng):
    from dwi_toolkit.roi.model import RoiSet, RootROI, Sphere

    b = np.r_[0.0, 0.0, B[1:]]
    obj = np.zeros((20, 20, 6))
    obj[5:15, 5:15] = 1.0
    clean = ivim_signal(b, 600.0, np.full(obj.shape, 0.1), 1.0e-3, 0.03) * obj[..., None]
    sigma = 10.0
    noisy = np.abs(clean + sigma * rng.standard_normal(clean.shape) + 1j * sigma * rng.standard_normal(clean.shape))
    path = tmp_path / "dwi.nii.gz"
    DWISeries(noisy.astype(np.float32), np.eye(4), b, np.zeros((b.size, 3))).save(path)
    rois = tmp_path / "rois.json"
    RoiSet([RootROI("S1", "right", shape=Sphere([10.0, 10.0, 3.0], 2.0))]).save(rois)
    assert main(["ivim", str(path), "-o", str(tmp_path / "o"), "--rois", str(rois), "--no-figures"]) == 0
    snr = json.loads((tmp_path / "o" / "ivim_summary.json").read_text())["roi_snr"]
    assert snr["sigma_source"] == "repeated b=0 volumes"
    assert snr["sigma"] == pytest.approx(sigma, rel=0.1)
    assert snr["rois"][0]["snr"] == pytest.approx(600.0 / sigma, rel=0.1)
