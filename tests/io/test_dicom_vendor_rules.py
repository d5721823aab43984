"""Vendor diffusion rules on synthetic series: every vendor style, plane and patient position,
with a b = 50 s/mm² shell (IVIM/lumbar protocols).

Truth is independent of the loader: the patient-frame (LPS) direction written into the files,
turned into RAS, must equal the world direction of the loaded FSL b-vector (sign-free); for GE's
logical frame and for single-volume/low-b series the dcm2niix program is the reference
(tests marked slow).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pydicom = pytest.importorskip("pydicom")

from dwi_toolkit.io.dicom import find_dwi_series, load_dicom_dwi  # noqa: E402
from dwi_toolkit.io.dicom._synthetic import rotation, write_series  # noqa: E402

PLANES = {
    "axial": (1, 0, 0, 0, 1, 0),
    "sagittal": (0, 1, 0, 0, 0, -1),
    "coronal": (1, 0, 0, 0, 0, -1),
    "oblique": tuple(np.concatenate([rotation(20, -15, 10)[:, 0], rotation(20, -15, 10)[:, 1]])),
}
BVALS = (0.0, 50.0, 50.0, 800.0, 800.0)
DIRS = np.array([[0, 0, 0], [1, 0, 0], [0.6, -0.48, 0.64], [0, 1, 0], [0, 0, 1]], float)
# (Manufacturer, encoding of write_series) for the patient-frame vendor styles
LPS_STYLES = {
    "siemens-standard": ("SIEMENS", "standard"),
    "philips-private": ("Philips Medical Systems", "philips"),
    "toshiba": ("TOSHIBA", "standard"),
    "canon": ("CANON_MEC", "standard"),
    "uih-standard": ("UIH", "standard"),
}


def _world(affine, bvecs):
    r = np.asarray(affine, float)[:3, :3]
    r = r / np.linalg.norm(r, axis=0)
    v = np.array(bvecs, float).reshape(-1, 3)
    if np.linalg.det(r) > 0:
        v[:, 0] = -v[:, 0]
    return v @ r.T


def _strip_b0_tags(folder: Path) -> None:
    """Toshiba/Canon style: b=0 images carry no diffusion attributes at all."""
    for f in folder.iterdir():
        ds = pydicom.dcmread(f)
        if float(ds.get("DiffusionBValue", 1)) == 0:
            for kw in ("DiffusionBValue", "DiffusionGradientOrientation", "DiffusionDirectionality"):
                if kw in ds:
                    delattr(ds, kw)
            ds.save_as(f)


def _b0_zero_vector(folder: Path) -> None:
    """Canon V6.1 style: b=0 images carry (0018,9089) = 0,0,0."""
    for f in folder.iterdir():
        ds = pydicom.dcmread(f)
        if float(ds.get("DiffusionBValue", 1)) == 0:
            ds.DiffusionGradientOrientation = [0.0, 0.0, 0.0]
            ds.save_as(f)


@pytest.mark.parametrize("position", ["HFS", "FFS"])
@pytest.mark.parametrize("plane", sorted(PLANES))
@pytest.mark.parametrize("style", sorted(LPS_STYLES))
def test_patient_frame_vendors_world_direction_and_low_b(tmp_path, style, plane, position):
    maker, encoding = LPS_STYLES[style]
    folder = tmp_path / "d"
    write_series(folder, iop=PLANES[plane], bvals=BVALS, bvecs_lps=DIRS, manufacturer=maker,
                 encoding=encoding, patient_position=position, n_slices=3, rows=4, cols=5)
    if style == "toshiba":
        _strip_b0_tags(folder)
    if style == "canon":
        _b0_zero_vector(folder)
    s = load_dicom_dwi(folder)
    np.testing.assert_allclose(s.bvals, BVALS)
    dw = np.asarray(BVALS) > 0
    truth = DIRS[dw] @ np.diag([-1.0, -1.0, 1.0])  # LPS -> RAS
    got = _world(s.affine, s.bvecs[dw])
    diff = np.minimum(np.abs(got - truth).max(axis=1), np.abs(got + truth).max(axis=1))
    assert diff.max() < 1e-6
    assert np.all(s.bvecs[~dw] == 0)


@pytest.mark.parametrize("b0_threshold", [0.0, 50.0, 100.0])
def test_no_recorded_direction_is_ever_zeroed(tmp_path, b0_threshold):
    """Regression: a b > 0 volume with a recorded direction never gets a zero vector, whatever the
    b0 threshold (the threshold groups volumes for analysis; it never edits stored gradients)."""
    from dwi_toolkit.io.loading import load_dwi

    write_series(tmp_path / "d", bvals=BVALS, bvecs_lps=DIRS, n_slices=2, rows=3, cols=4)
    s = load_dwi(tmp_path / "d", b0_threshold=b0_threshold)
    recorded = (np.asarray(BVALS) > 0) & (np.linalg.norm(DIRS, axis=1) > 0)
    assert np.all(np.linalg.norm(s.bvecs[recorded], axis=1) > 0.999)
    # and the .bvec that convert writes keeps them
    written = s.save(tmp_path / "out" / "x.nii.gz")
    bvec = np.loadtxt(written["bvec"], ndmin=2).T
    assert np.all(np.linalg.norm(bvec[recorded], axis=1) > 0.999)


def test_single_volume_diffusion_series_loads(tmp_path):
    write_series(tmp_path / "d", bvals=(5.0,), bvecs_lps=((0.0, 0.0, 1.0),), n_slices=2, rows=3, cols=4)
    (info,) = find_dwi_series(tmp_path / "d")
    assert info.role == "dwi" and info.n_volumes == 1
    s = load_dicom_dwi(tmp_path / "d")
    assert s.shape == (4, 3, 2, 1) and s.bvals.tolist() == [5.0]
    assert abs(abs(s.bvecs[0, 2]) - 1.0) < 1e-9


def test_canon_v60_image_comments_rule(tmp_path):
    """Canon V6.0 classic: direction only in ImageComments, logical frame with x/y swapped
    (dcm2niix issue 388): same vectors as the GE private-tag rule with the swap."""
    folder = tmp_path / "c"
    dirs = DIRS.copy()
    write_series(folder, bvals=BVALS, bvecs_lps=dirs, manufacturer="CANON_MEC", n_slices=2, rows=3, cols=4)
    for f in folder.iterdir():
        ds = pydicom.dcmread(f)
        b = float(ds.DiffusionBValue)
        v = [float(x) for x in ds.get("DiffusionGradientOrientation", [0, 0, 0])]
        if "DiffusionGradientOrientation" in ds:
            del ds.DiffusionGradientOrientation
        ds.ImageComments = f"b={int(b)}({v[0]:.3f},{v[1]:.3f},{v[2]:.3f})"
        ds.save_as(f)
    ge = tmp_path / "g"
    swapped = dirs[:, [1, 0, 2]]
    write_series(ge, bvals=BVALS, bvecs_lps=swapped, manufacturer="GE MEDICAL SYSTEMS", encoding="ge",
                 n_slices=2, rows=3, cols=4)
    a, b = load_dicom_dwi(folder), load_dicom_dwi(ge)
    np.testing.assert_allclose(a.bvecs, b.bvecs, atol=1e-3)
    (info,) = find_dwi_series(folder)
    assert info.rule == "canon-comments"


def test_rule_is_listed(tmp_path):
    write_series(tmp_path / "p", bvals=BVALS, bvecs_lps=DIRS, manufacturer="Philips Medical Systems",
                 encoding="philips", n_slices=2, rows=3, cols=4)
    (info,) = find_dwi_series(tmp_path / "p")
    assert info.rule == "philips" and "rule=philips" in info.summary()


def _dcm2niix() -> str | None:
    exe = shutil.which("dcm2niix") or str(Path(sys.executable).with_name("dcm2niix"))
    return exe if Path(exe).exists() else None


@pytest.mark.slow
@pytest.mark.parametrize("style", ["siemens-standard", "philips-private", "toshiba", "canon", "ge"])
def test_low_b_shell_and_order_match_dcm2niix(tmp_path, style):
    """b = 50 volumes: b-values, directions and volume order as dcm2niix writes them."""
    exe = _dcm2niix()
    if exe is None:
        pytest.skip("dcm2niix not installed (pip install dcm2niix)")
    maker, encoding = LPS_STYLES.get(style, ("GE MEDICAL SYSTEMS", "ge"))
    folder = tmp_path / "d"
    write_series(folder, iop=PLANES["oblique"], bvals=BVALS, bvecs_lps=DIRS, manufacturer=maker,
                 encoding=encoding, n_slices=3, rows=4, cols=5)
    if style == "toshiba":
        _strip_b0_tags(folder)
    if style == "canon":
        _b0_zero_vector(folder)
    out = tmp_path / "o"
    out.mkdir()
    subprocess.run([exe, "-z", "n", "-f", "x", "-o", str(out), str(folder)], check=True, capture_output=True)
    s = load_dicom_dwi(folder)
    np.testing.assert_allclose(s.bvals, np.loadtxt(out / "x.bval"))
    import nibabel as nib

    ref = np.loadtxt(out / "x.bvec").T
    dw = s.bvals > 5
    w1 = _world(s.affine, s.bvecs[dw])
    w2 = _world(nib.load(str(out / "x.nii")).affine, ref[dw] / np.linalg.norm(ref[dw], axis=1, keepdims=True))
    diff = np.minimum(np.abs(w1 - w2).max(axis=1), np.abs(w1 + w2).max(axis=1))
    assert diff.max() < 1e-4


@pytest.mark.slow
def test_verify_and_backend(tmp_path):
    from dwi_toolkit.cli.main import main
    from dwi_toolkit.io.loading import load_dwi

    if _dcm2niix() is None:
        pytest.skip("dcm2niix not installed (pip install dcm2niix)")
    write_series(tmp_path / "d", bvals=BVALS, bvecs_lps=DIRS, manufacturer="SIEMENS", n_slices=3, rows=4, cols=5)
    s = load_dwi(tmp_path / "d", verify="dcm2niix")
    assert s.meta["Dcm2niixAgreement"] is True
    b = load_dwi(tmp_path / "d", backend="dcm2niix")
    np.testing.assert_allclose(b.bvals, s.bvals)
    assert main(["convert", str(tmp_path / "d"), "-o", str(tmp_path / "o"), "--verify"]) == 0
    # every command that loads a series takes the same --backend (the loader's hint names it)
    assert main(["adc", str(tmp_path / "d"), "-o", str(tmp_path / "adc"), "--backend", "dcm2niix",
                 "--no-figures", "--mask", "none"]) == 0
    assert (tmp_path / "adc" / "adc.nii.gz").is_file()
    assert main(["info", str(tmp_path / "d"), "--backend", "dcm2niix"]) == 0


@pytest.mark.slow
def test_single_low_b_volume_agrees_with_dcm2niix(tmp_path):
    """One b = 5 s/mm² volume: dcm2niix writes it with its .bval/.bvec; so do we (direction kept)."""
    from dwi_toolkit.io.loading import load_dwi

    if _dcm2niix() is None:
        pytest.skip("dcm2niix not installed (pip install dcm2niix)")
    write_series(tmp_path / "d", bvals=(5.0,), bvecs_lps=((0.0, 0.6, 0.8),), n_slices=2, rows=3, cols=4,
                 manufacturer="SIEMENS")
    s = load_dwi(tmp_path / "d", verify="dcm2niix")
    assert s.meta["Dcm2niixAgreement"] is True
    assert s.bvals.tolist() == [5.0] and np.linalg.norm(s.bvecs[0]) > 0.999


def test_b0_only_series_with_directions_is_not_dwi(tmp_path):
    """Regression (dcm_qa_philips fMRI 'EPI_asc'): an EPI series whose every image has b=0 but a
    (0018,9089) = (0, 0, 0) and no (0018,9075) is not diffusion-weighted; dcm2niix writes no .bval."""
    write_series(tmp_path / "e", bvals=(0.0, 0.0), bvecs_lps=((0, 0, 0), (0, 0, 0)), n_slices=2, rows=3, cols=4)
    for f in (tmp_path / "e").iterdir():  # as the Philips export: zero vector, no directionality
        ds = pydicom.dcmread(f)
        ds.DiffusionGradientOrientation = [0.0, 0.0, 0.0]
        if "DiffusionDirectionality" in ds:
            del ds.DiffusionDirectionality
        ds.save_as(f)
    (info,) = find_dwi_series(tmp_path / "e")
    assert info.role == "other"


def test_siemens_private_header_rule_without_csa(tmp_path):
    """Siemens classic without CSA (XA30 'MFSPLIT' classic exports, dcm_qa_xa30i): b-value and
    direction only in 'SIEMENS MR HEADER' (0019,100C)/(0019,100E), patient frame as the standard tags."""
    std, prv = tmp_path / "std", tmp_path / "prv"
    kw = dict(bvals=BVALS, bvecs_lps=DIRS, manufacturer="SIEMENS", n_slices=2, rows=3, cols=4, iop=PLANES["oblique"])
    write_series(std, **kw)
    write_series(prv, **kw)
    for f in prv.iterdir():
        ds = pydicom.dcmread(f)
        b = float(ds.DiffusionBValue)
        v = [float(x) for x in ds.get("DiffusionGradientOrientation", [0, 0, 0])]
        for k in ("DiffusionBValue", "DiffusionGradientOrientation", "DiffusionDirectionality"):
            if k in ds:
                delattr(ds, k)
        block = ds.private_block(0x0019, "SIEMENS MR HEADER", create=True)
        block.add_new(0x0C, "IS", str(int(b)))
        if b > 0:
            block.add_new(0x0E, "FD", v)
        ds.save_as(f)
    (info,) = find_dwi_series(prv)
    assert info.role == "dwi" and info.rule == "siemens-private"
    a, b = load_dicom_dwi(std), load_dicom_dwi(prv)
    np.testing.assert_allclose(b.bvals, BVALS)
    np.testing.assert_allclose(_world(b.affine, b.bvecs), _world(a.affine, a.bvecs), atol=1e-6)
    recorded = np.asarray(BVALS) > 0
    np.testing.assert_allclose(np.abs(_world(b.affine, b.bvecs[recorded])), np.abs(DIRS[recorded] * [-1, -1, 1]),
                               atol=1e-6)


def test_classic_standard_tags_nested_in_mr_diffusion_sequence(tmp_path):
    """Classic images whose (0018,9087)/(0018,9089) sit only inside MRDiffusionSequence (0018,9117)
    (dcm2niix reads the attributes wherever they occur): same table as top-level tags."""
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    top, nested = tmp_path / "top", tmp_path / "nested"
    kw = dict(bvals=BVALS, bvecs_lps=DIRS, manufacturer="TOSHIBA", n_slices=2, rows=3, cols=4, iop=PLANES["sagittal"])
    write_series(top, **kw)
    write_series(nested, **kw)
    for f in nested.iterdir():
        ds = pydicom.dcmread(f)
        item = Dataset()
        for k in ("DiffusionBValue", "DiffusionGradientOrientation", "DiffusionDirectionality"):
            if k in ds:
                setattr(item, k, getattr(ds, k))
                delattr(ds, k)
        ds.MRDiffusionSequence = Sequence([item])
        ds.save_as(f)
    (info,) = find_dwi_series(nested)
    assert info.role == "dwi" and info.rule == "standard"
    a, b = load_dicom_dwi(top), load_dicom_dwi(nested)
    np.testing.assert_allclose(b.bvals, a.bvals)
    np.testing.assert_allclose(b.bvecs, a.bvecs, atol=1e-9)
    assert np.all(np.linalg.norm(b.bvecs[np.asarray(BVALS) > 0], axis=1) > 0.999)
