"""Real vendor DICOM (../shared/testdata/dicom) against dcm2niix's outputs (oracle/, reference/).

Each folder's dicom/ is loaded with load_dicom_dwi and compared with the dcm2niix .bval/.bvec,
NIfTI (data + affine, after both are put in closest-canonical voxel order) and JSON sidecar.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import SHARED_TESTDATA, shared_path

pytestmark = pytest.mark.needs_shared_data

FOLDERS = sorted(p.name for p in (SHARED_TESTDATA / "dicom").glob("*") if (p / "dicom").is_dir()) or [
    "siemens_b15_mosaic_ep2d_dti_subset"
]


def _oracle_files(folder: Path):
    """(bval, bvec, nifti or None, json) of the raw DWI conversion in oracle/."""
    bval = sorted((folder / "oracle").glob("*.bval"))[0]
    stem = bval.name[: -len(".bval")]
    nii = [p for p in (folder / "oracle").glob(stem + ".nii*")]
    if not nii:  # upstream reference NIfTI when the oracle one was not kept
        ref_bval = sorted((folder / "reference").glob("*.bval"))
        nii = [p for p in (folder / "reference").glob("*.nii*")
               if ref_bval and p.name.split(".")[0] == ref_bval[0].name.split(".")[0]]
    return bval, bval.with_suffix(".bvec"), (nii[0] if nii else None), bval.with_suffix(".json")


@pytest.fixture(scope="module")
def loaded():
    from dwi_toolkit.io.dicom import load_dicom_dwi

    cache = {}

    def get(name):
        if name not in cache:
            cache[name] = load_dicom_dwi(shared_path("dicom", name, "dicom"))
        return cache[name]

    return get


@pytest.mark.parametrize("name", FOLDERS)
def test_bvals_bvecs_match_dcm2niix(loaded, name):
    folder = shared_path("dicom", name)
    s = loaded(name)
    bval_f, bvec_f, _, _ = _oracle_files(folder)
    bvals = np.loadtxt(bval_f, ndmin=1)
    bvecs = np.loadtxt(bvec_f, ndmin=2).T
    np.testing.assert_allclose(s.bvals, bvals, atol=1e-6)
    dw = bvals > s.b0_threshold
    ref = bvecs[dw] / np.linalg.norm(bvecs[dw], axis=1, keepdims=True)  # GE vectors are not unit
    np.testing.assert_allclose(s.bvecs[dw], ref, atol=1e-4)
    assert np.all(s.bvecs[~dw] == 0)


@pytest.mark.parametrize("name", FOLDERS)
def test_image_matches_dcm2niix(loaded, name):
    nib = pytest.importorskip("nibabel")
    folder = shared_path("dicom", name)
    _, _, nii, _ = _oracle_files(folder)
    if nii is None:
        pytest.skip(f"{name}: no dcm2niix NIfTI kept (header-only data set)")
    s = loaded(name)
    ref = nib.as_closest_canonical(nib.load(str(nii)))
    ours = nib.as_closest_canonical(nib.Nifti1Image(np.asarray(s.data), s.affine))
    np.testing.assert_allclose(ours.affine, ref.affine, atol=1e-3)
    a = np.asanyarray(ours.dataobj).astype(np.float64)
    b = np.asanyarray(ref.dataobj).astype(np.float64)
    assert a.shape == b.shape
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-4 * max(1.0, np.abs(b).max() * 1e-3))


@pytest.mark.parametrize("name", FOLDERS)
def test_sidecar_fields_match_dcm2niix(loaded, name):
    folder = shared_path("dicom", name)
    _, _, _, js = _oracle_files(folder)
    ref = json.loads(js.read_text())
    meta = loaded(name).meta
    for key in ("EchoTime", "RepetitionTime", "FlipAngle", "MagneticFieldStrength", "SeriesNumber",
                "PatientPosition", "PhaseEncodingDirection", "PhaseEncodingAxis"):
        if key in ref and key in meta:
            if isinstance(ref[key], (int, float)):
                assert meta[key] == pytest.approx(ref[key], rel=1e-4), key
            else:
                assert meta[key] == ref[key], key
    for key in ("EchoTime", "RepetitionTime", "Manufacturer", "SeriesDescription"):
        assert key in meta
    assert ("PhaseEncodingDirection" in meta) or ("PhaseEncodingAxis" in meta)
    assert "PatientName" not in meta and "PatientID" not in meta


def test_xa30_roles_and_raw_dwi_alone():
    from dwi_toolkit.io.dicom import find_dwi_series, load_dicom_dwi

    folder = shared_path("dicom", "siemens_xa30_enhanced_dwi_with_scanner_adc", "dicom")
    infos = {i.series_number: i for i in find_dwi_series(folder)}
    assert infos[10].role == "dwi" and infos[10].n_volumes == 21
    assert infos[11].role == "adc"
    assert infos[12].role == "trace"
    s = load_dicom_dwi(folder)
    assert s.shape == (72, 72, 39, 21)


def test_xa30_scanner_adc_in_mm2_per_s_and_matches_our_trace_adc():
    nib = pytest.importorskip("nibabel")
    from dwi_toolkit.io.dicom import load_dicom_dwi, load_scanner_adc

    base = shared_path("dicom", "siemens_xa30_enhanced_dwi_with_scanner_adc")
    adc = load_scanner_adc(base / "dicom")
    assert adc.unit == "mm^2/s"
    ref = nib.as_closest_canonical(nib.load(str(base / "reference" / "11_DWI_dir80_PA.nii")))
    ours = nib.as_closest_canonical(nib.Nifti1Image(adc.data, adc.affine))
    np.testing.assert_allclose(ours.affine, ref.affine, atol=1e-3)
    np.testing.assert_allclose(np.asanyarray(ours.dataobj) * 1e6, np.asanyarray(ref.dataobj), atol=0.05)
    # independent ADC: -ln(geometric mean of the b=2500 volumes / b0) / b   (SOURCE.md recipe)
    s = load_dicom_dwi(base / "dicom")
    d = np.asarray(s.data, dtype=np.float64)
    b0 = d[..., s.bvals < 50].mean(axis=-1)
    dw = d[..., s.bvals > 50]
    tissue = b0 > np.percentile(b0, 70)
    with np.errstate(divide="ignore", invalid="ignore"):
        gm = np.exp(np.log(np.clip(dw, 1, None)).mean(axis=-1))
        ours_adc = -np.log(gm / b0) / 2500.0
    diff = np.abs(ours_adc[tissue] - adc.data[tissue])
    assert np.nanmedian(diff) <= 1e-6


@pytest.mark.parametrize("name", FOLDERS)
def test_cli_info_on_every_folder(name, capsys):
    from dwi_toolkit.cli.main import main

    folder = shared_path("dicom", name, "dicom")
    assert main(["info", str(folder), "--json"]) == 0
    facts = json.loads(capsys.readouterr().out)
    assert facts["shape"][3] == len(np.loadtxt(_oracle_files(shared_path("dicom", name))[0], ndmin=1))


@pytest.mark.slow
def test_xa30_fit_adc_matches_scanner_adc():
    """Issue 3: fit_adc of the loaded DWI matches the scanner ADC (median |diff| <= 1e-6 mm^2/s)."""
    from dwi_toolkit.io.dicom import load_dicom_dwi, load_scanner_adc
    from dwi_toolkit.models.adc import fit_adc

    base = shared_path("dicom", "siemens_xa30_enhanced_dwi_with_scanner_adc", "dicom")
    s = load_dicom_dwi(base)
    scanner = load_scanner_adc(base)
    b0 = s.mean_b0()
    tissue = b0 > np.percentile(b0, 70)
    fit = fit_adc(s, method="ols", mask=tissue)
    ok = tissue & (fit.status == 0) & (scanner.data > 0)
    assert ok.sum() > 1000
    assert np.median(np.abs(fit.adc[ok] - scanner.data[ok])) <= 1e-6


def test_cli_convert_xa30_with_scanner_adc(tmp_path, capsys):
    nib = pytest.importorskip("nibabel")
    from dwi_toolkit.cli.main import main

    folder = shared_path("dicom", "siemens_xa30_enhanced_dwi_with_scanner_adc", "dicom")
    assert main(["convert", str(folder), "-o", str(tmp_path), "--scanner-adc"]) == 0
    dwi = nib.load(str(tmp_path / "10_DWI_dir80_PA.nii.gz"))
    assert dwi.shape == (72, 72, 39, 21)
    adc = np.asanyarray(nib.load(str(tmp_path / "scanner_adc_11_DWI_dir80_PA_ADC.nii.gz")).dataobj)
    tissue = adc[adc > 0]
    assert 1e-4 < np.median(tissue) < 3e-3  # mm^2/s
    side = json.loads((tmp_path / "10_DWI_dir80_PA.json").read_text())
    assert side["PhaseEncodingDirection"] == "j" and side["EchoTime"] == pytest.approx(0.068)
