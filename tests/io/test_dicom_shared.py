"""Real vendor DICOM (../shared/testdata/dicom or $DWI_TOOLKIT_SHARED) against dcm2niix.

Each input is loaded with load_dicom_dwi and compared with the dcm2niix .bval/.bvec, NIfTI
(data + affine, after both are put in closest-canonical voxel order) and JSON sidecar: the
stored oracle/ outputs where a folder has them, else dcm2niix run live on the files.
"""

from __future__ import annotations

import gzip
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import SHARED_TESTDATA, shared_path

pytestmark = pytest.mark.needs_shared_data

def _cases() -> list[str]:
    """One case per DICOM input, following every layout of testdata/dicom/README.md.

    A folder with ``oracle/`` is one case (its whole ``dicom/``, compared with the stored dcm2niix
    outputs). A folder with only ``reference/`` is run through dcm2niix live, one case per
    sub-folder of ``dicom/`` (e.g. the Canon classic and enhanced exports of one series).
    """
    out = []
    for p in sorted((SHARED_TESTDATA / "dicom").glob("*")):
        if not (p / "dicom").is_dir():
            continue
        subs = sorted(d.name for d in (p / "dicom").iterdir() if d.is_dir())
        if (p / "oracle").is_dir() or not subs:
            out.append(p.name)
        else:
            out.extend(f"{p.name}/{d}" for d in subs)
    return out or ["siemens_b15_mosaic_ep2d_dti_subset"]


FOLDERS = _cases()


def _input(case: str) -> Path:
    name, _, sub = case.partition("/")
    return shared_path("dicom", name, "dicom", *([sub] if sub else []))


def _dcm2niix() -> str | None:
    exe = shutil.which("dcm2niix") or str(Path(sys.executable).with_name("dcm2niix"))
    return exe if Path(exe).exists() else None


_LIVE: dict = {}


def stage_inputs(case: str, dst: Path) -> Path:
    """Copy the DICOM files of `case` into `dst` (created), gunzipped, as 000000.dcm, 000001.dcm, ..."""
    dst.mkdir(parents=True)
    for i, f in enumerate(sorted(q for q in _input(case).rglob("*") if q.is_file())):
        raw = f.read_bytes()
        (dst / f"{i:06d}.dcm").write_bytes(gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw)
    return dst


def _live(case: str, tmp_root: Path):
    """Run dcm2niix on the (gunzipped) files of `case`; (bval, bvec, nifti, json) of its DWI output."""
    if case not in _LIVE:
        exe = _dcm2niix()
        if exe is None:
            pytest.skip(f"{case} has no stored dcm2niix output and dcm2niix is not installed "
                        "(pip install -e .[test])")
        src = tmp_root / case.replace("/", "__") / "in"
        out = src.parent / "out"
        stage_inputs(case, src)
        out.mkdir()
        subprocess.run([exe, "-z", "n", "-f", "%s_%d", "-o", str(out), str(src)], check=True, capture_output=True)
        bval = max(out.glob("*.bval"), key=lambda p: p.stat().st_size)
        stem = bval.name[: -len(".bval")]
        _LIVE[case] = (bval, bval.with_suffix(".bvec"), out / f"{stem}.nii", bval.with_suffix(".json"))
    return _LIVE[case]


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
def reference(tmp_path_factory):
    """case -> (bval, bvec, nifti or None, json) written by dcm2niix (stored oracle or live run)."""
    root = tmp_path_factory.mktemp("dcm2niix_live")

    def get(case):
        name, _, sub = case.partition("/")
        folder = shared_path("dicom", name)
        if (folder / "oracle").is_dir() and not sub:
            return _oracle_files(folder)
        return _live(case, root)

    return get


@pytest.fixture(scope="module")
def loaded():
    from dwi_toolkit.io.dicom import load_dicom_dwi

    cache = {}

    def get(name):
        if name not in cache:
            cache[name] = load_dicom_dwi(_input(name))
        return cache[name]

    return get


def _world(affine, bvecs):
    r = np.asarray(affine, float)[:3, :3]
    r = r / np.linalg.norm(r, axis=0)
    v = np.array(bvecs, float)
    if np.linalg.det(r) > 0:
        v[:, 0] = -v[:, 0]
    return v @ r.T


@pytest.mark.parametrize("name", FOLDERS)
def test_bvals_bvecs_match_dcm2niix(loaded, reference, name):
    """b-values equal, b-vectors equal in the world frame (sign-free) for b > 5 s/mm^2, volume order."""
    nib = pytest.importorskip("nibabel")
    s = loaded(name)
    bval_f, bvec_f, nii, _ = reference(name)
    bvals = np.loadtxt(bval_f, ndmin=1)
    bvecs = np.loadtxt(bvec_f, ndmin=2).T
    np.testing.assert_allclose(s.bvals, bvals, atol=1e-3)  # dcm2niix prints 6 significant digits
    dw = bvals > 5
    ref_aff = nib.load(str(nii)).affine if nii is not None else s.affine
    ref = bvecs[dw] / np.linalg.norm(bvecs[dw], axis=1, keepdims=True)  # GE vectors are not unit
    w1, w2 = _world(s.affine, s.bvecs[dw]), _world(ref_aff, ref)
    diff = np.minimum(np.abs(w1 - w2).max(axis=1), np.abs(w1 + w2).max(axis=1))
    assert diff.max(initial=0) < 1e-4
    # volumes the scanner recorded without a direction are zero in both
    none = ~dw & (np.linalg.norm(bvecs, axis=1) < 1e-6)
    assert np.all(s.bvecs[none] == 0)


@pytest.mark.parametrize("name", FOLDERS)
def test_image_matches_dcm2niix(loaded, reference, name):
    nib = pytest.importorskip("nibabel")
    _, _, nii, _ = reference(name)
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
def test_sidecar_fields_match_dcm2niix(loaded, reference, name):
    _, _, _, js = reference(name)
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
def test_cli_info_on_every_folder(name, reference, capsys):
    from dwi_toolkit.cli.main import main

    assert main(["info", str(_input(name)), "--json"]) == 0
    facts = json.loads(capsys.readouterr().out)
    assert facts["shape"][3] == len(np.loadtxt(reference(name)[0], ndmin=1))


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
