"""Property tests with pydicom-written synthetic classic DWI series.

Truth is computed independently of the loader: world positions of written pixels straight from
ImagePositionPatient/ImageOrientationPatient/PixelSpacing (DICOM PS3.3 C.7.6.2.1.1), and the
physical gradient direction from the FSL .bvec convention; when the dcm2niix command is
installed, its output on the same files is compared as well.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pydicom = pytest.importorskip("pydicom")

from dwi_toolkit.errors import DicomError, DicomWarning  # noqa: E402
from dwi_toolkit.io.dicom import find_dwi_series, load_dicom_dwi  # noqa: E402
from dwi_toolkit.io.dicom._synthetic import pixel_value, rotation, write_series  # noqa: E402

# (name, IOP) for the three planes, two in-plane variants and obliques
ORIENTATIONS = {
    "axial": (1, 0, 0, 0, 1, 0),
    "axial_flipped_rows": (1, 0, 0, 0, -1, 0),
    "sagittal": (0, 1, 0, 0, 0, -1),
    "coronal": (1, 0, 0, 0, 0, -1),
    "oblique": tuple(np.concatenate([rotation(20, -15, 10)[:, 0], rotation(20, -15, 10)[:, 1]])),
    "oblique_sagittal": tuple(np.concatenate([rotation(5, 80, 12)[:, 0], rotation(5, 80, 12)[:, 1]])),
}
LPS2RAS = np.diag([-1.0, -1.0, 1.0])
DIRS = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1], [0.6, -0.48, 0.64]], float)
BVALS = (0.0, 800.0, 800.0, 800.0, 800.0)


def _world_from_written(iop, origin, spacing, slice_spacing, c, r, k):
    """LPS position of column c, row r of slice k as written by write_series (independent truth)."""
    iop = np.asarray(iop, float)
    row, col = iop[:3], iop[3:]
    n = np.cross(row, col)
    return np.asarray(origin) + k * slice_spacing * n + c * spacing[1] * row + r * spacing[0] * col


def _physical_from_fsl(bvec, affine):
    """World (RAS) direction of an FSL-convention b-vector given the image affine."""
    r = affine[:3, :3] / np.linalg.norm(affine[:3, :3], axis=0)
    v = np.array(bvec, float)
    if np.linalg.det(r) > 0:
        v[0] = -v[0]
    return r @ v


def _check_series(tmp_path, **kw):
    folder = tmp_path / "dcm"
    write_series(folder, bvals=BVALS, bvecs_lps=DIRS, **kw)
    s = load_dicom_dwi(folder)
    iop = kw.get("iop", ORIENTATIONS["axial"])
    origin = (-10.0, -20.0, 30.0)
    spacing, slsp = (2.0, 1.5), 3.0
    rows, cols, nz = 8, 10, 5
    assert s.shape == (cols, rows, nz, len(BVALS))
    inv = np.linalg.inv(s.affine)
    # every written pixel lands in the voxel whose world position is the pixel's position
    for c, r, k, v in [(0, 0, 0, 0), (cols - 1, 0, 1, 1), (3, rows - 1, nz - 1, 2), (7, 5, 2, 4)]:
        world = LPS2RAS @ _world_from_written(iop, origin, spacing, slsp, c, r, k)
        ijk = inv[:3, :3] @ world + inv[:3, 3]
        assert np.allclose(ijk, np.round(ijk), atol=1e-3), ijk
        i, j, kk = np.round(ijk).astype(int)
        assert s.data[i, j, kk, v] == pixel_value(c, r, k, v)
    # b-vectors: same physical direction as written (up to the sign of a whole vector)
    for v in range(1, len(BVALS)):
        want = LPS2RAS @ (DIRS[v] / np.linalg.norm(DIRS[v]))
        got = _physical_from_fsl(s.bvecs[v], s.affine)
        assert abs(abs(want @ got) - 1) < 1e-6, (v, want, got)
    np.testing.assert_allclose(s.bvals, BVALS)
    return s


@pytest.mark.parametrize("orientation", sorted(ORIENTATIONS))
@pytest.mark.parametrize("position", ["HFS", "FFS", "HFP"])
def test_orientations_positions(tmp_path, orientation, position):
    s = _check_series(tmp_path, iop=ORIENTATIONS[orientation], patient_position=position)
    assert s.meta["PatientPosition"] == position
    # the output voxel frame is dcm2niix's: det < 0, so the FSL x flip never applies
    assert np.linalg.det(s.affine[:3, :3]) < 0


@pytest.mark.parametrize("descending", [False, True])
@pytest.mark.parametrize("shuffle", [False, True])
def test_slice_order_and_names_do_not_matter(tmp_path, descending, shuffle):
    s = _check_series(tmp_path, iop=ORIENTATIONS["oblique"], descending=descending, shuffle_names=shuffle)
    assert "PatientName" not in s.meta and "PatientID" not in s.meta


def test_keep_phi(tmp_path):
    write_series(tmp_path / "d")
    assert load_dicom_dwi(tmp_path / "d", keep_phi=True).meta["PatientID"] == "SYN001"


def test_single_file_loads_its_series(tmp_path):
    paths = write_series(tmp_path / "d", shuffle_names=True)
    s = load_dicom_dwi(paths[3])
    assert s.shape[3] == 4


def test_missing_slice_is_a_clear_error(tmp_path):
    write_series(tmp_path / "d", drop=((2, 1),))
    with pytest.raises(DicomError, match="missing"):
        load_dicom_dwi(tmp_path / "d")


def test_missing_slice_in_every_volume_is_a_gap(tmp_path):
    write_series(tmp_path / "d", drop=tuple((2, v) for v in range(4)))
    with pytest.raises(DicomError, match="slice\\(s\\) missing between"):
        load_dicom_dwi(tmp_path / "d")


def test_duplicated_file_is_ignored_with_warning(tmp_path):
    write_series(tmp_path / "d", duplicate=((1, 2),))
    with pytest.warns(DicomWarning, match="duplicate"):
        s = load_dicom_dwi(tmp_path / "d")
    assert s.shape == (10, 8, 5, 4)


def test_inconsistent_orientation(tmp_path):
    write_series(tmp_path / "d")
    f = sorted((tmp_path / "d").iterdir())[0]
    ds = pydicom.dcmread(f)
    ds.ImageOrientationPatient = [0, 1, 0, 0, 0, -1]
    ds.save_as(f)
    with pytest.raises(DicomError, match="inconsistent ImageOrientationPatient"):
        load_dicom_dwi(tmp_path / "d")


def test_missing_position_tag_is_named(tmp_path):
    write_series(tmp_path / "d")
    f = sorted((tmp_path / "d").iterdir())[0]
    ds = pydicom.dcmread(f)
    del ds.ImagePositionPatient
    ds.save_as(f)
    with pytest.raises(DicomError, match="ImagePositionPatient"):
        load_dicom_dwi(tmp_path / "d")


def test_truncated_and_junk_files_are_skipped(tmp_path):
    paths = write_series(tmp_path / "d", n_slices=3)
    extra = write_series(tmp_path / "d" / "sub", n_slices=3, series_uid="1.2.3.4", description="other",
                         bvals=(0, 0, 0, 0), bvecs_lps=((0, 0, 0),) * 4, image_type=("ORIGINAL", "PRIMARY", "M"))
    (tmp_path / "d" / "notes.txt").write_text("not dicom")
    (tmp_path / "d" / "junk").write_bytes(b"\x00" * 300)
    bad = tmp_path / "d" / "zz_truncated"
    bad.write_bytes(paths[0].read_bytes()[:400])
    with pytest.warns(DicomWarning, match="zz_truncated"):
        infos = find_dwi_series(tmp_path / "d")
    roles = sorted(i.role for i in infos)
    assert roles == ["dwi", "other"], infos
    assert len(extra) == 12


def test_gzip_files_and_nested_folders(tmp_path):
    import gzip

    paths = write_series(tmp_path / "src", n_slices=3)
    for i, p in enumerate(paths):
        sub = tmp_path / "gz" / f"a{i % 2}" / "b"
        sub.mkdir(parents=True, exist_ok=True)
        (sub / (p.name + ".gz")).write_bytes(gzip.compress(p.read_bytes()))
    s = load_dicom_dwi(tmp_path / "gz")
    assert s.shape == (10, 8, 3, 4)


def test_several_dwi_series_listed(tmp_path):
    write_series(tmp_path / "d" / "a", series_uid="1.2.3.1", description="dwi one")
    write_series(tmp_path / "d" / "b", series_uid="1.2.3.2", description="dwi two", series_number=4)
    with pytest.raises(DicomError) as exc:
        load_dicom_dwi(tmp_path / "d")
    msg = str(exc.value)
    assert "1.2.3.1" in msg and "1.2.3.2" in msg and "series_uid" in msg and "dwi two" in msg
    s = load_dicom_dwi(tmp_path / "d", series_uid="1.2.3.2")
    assert s.meta["SeriesDescription"] == "dwi two"


def test_derived_trace_never_merged(tmp_path):
    write_series(tmp_path / "d" / "raw", series_uid="1.2.3.1")
    write_series(tmp_path / "d" / "trace", series_uid="1.2.3.9", description="TRACEW",
                 bvals=(0, 1000), bvecs_lps=((0, 0, 0), (0, 0, 0)),
                 image_type=("DERIVED", "PRIMARY", "DIFFUSION", "TRACEW"))
    infos = {i.series_uid: i for i in find_dwi_series(tmp_path / "d")}
    assert infos["1.2.3.9"].role == "trace" and infos["1.2.3.1"].role == "dwi"
    assert load_dicom_dwi(tmp_path / "d").shape[3] == 4


def _dcm2niix() -> str | None:
    exe = shutil.which("dcm2niix") or str(Path(sys.executable).with_name("dcm2niix"))
    return exe if Path(exe).exists() else None


@pytest.mark.slow
@pytest.mark.parametrize("orientation", sorted(ORIENTATIONS))
@pytest.mark.parametrize("position", ["HFS", "FFS"])
def test_matches_dcm2niix(tmp_path, orientation, position):
    exe = _dcm2niix()
    if exe is None:
        pytest.skip("dcm2niix not installed (pip install dcm2niix)")
    nib = pytest.importorskip("nibabel")
    folder = tmp_path / "dcm"
    write_series(folder, iop=ORIENTATIONS[orientation], patient_position=position, bvals=BVALS,
                 bvecs_lps=DIRS, descending=True, manufacturer="SIEMENS")
    out = tmp_path / "out"
    out.mkdir()
    subprocess.run([exe, "-z", "n", "-f", "x", "-o", str(out), str(folder)], check=True, capture_output=True)
    ref = nib.load(str(out / "x.nii"))
    bvec = np.loadtxt(out / "x.bvec").T
    s = load_dicom_dwi(folder)
    np.testing.assert_allclose(s.affine, ref.affine, atol=1e-3)
    np.testing.assert_array_equal(np.asarray(s.data), np.asanyarray(ref.dataobj))
    dw = np.asarray(BVALS) > 50
    np.testing.assert_allclose(s.bvecs[dw], bvec[dw], atol=1e-4)


@pytest.mark.parametrize("orientation", ["axial", "sagittal", "coronal", "oblique"])
@pytest.mark.parametrize("normal_sign", [1.0, -1.0])
def test_mosaic_geometry_and_bvecs(tmp_path, orientation, normal_sign):
    from dwi_toolkit.io.dicom._synthetic import write_mosaic_series

    iop = ORIENTATIONS[orientation]
    dirs = ((0, 0, 0), (1, 0, 0), (0.6, 0.0, 0.8))
    write_mosaic_series(tmp_path / "m", iop=iop, normal_sign=normal_sign, bvecs_lps=dirs)
    s = load_dicom_dwi(tmp_path / "m")
    assert s.shape == (8, 6, 5, 3)
    row, col = np.asarray(iop[:3], float), np.asarray(iop[3:], float)
    normal = normal_sign * np.cross(row, col)
    inv = np.linalg.inv(s.affine)
    for c, r, k, v in [(0, 0, 0, 0), (7, 5, 4, 2), (3, 1, 2, 1)]:
        lps = np.array([-10.0, -20.0, 30.0]) + k * 3.0 * normal + c * 1.5 * row + r * 2.0 * col
        ijk = inv[:3, :3] @ (LPS2RAS @ lps) + inv[:3, 3]
        assert np.allclose(ijk, np.round(ijk), atol=1e-3)
        i, j, kk = np.round(ijk).astype(int)
        assert s.data[i, j, kk, v] == pixel_value(c, r, k, v)
    for v in (1, 2):
        want = LPS2RAS @ np.asarray(dirs[v], float)
        got = _physical_from_fsl(s.bvecs[v], s.affine)
        assert abs(abs(want @ got) - 1) < 1e-6


@pytest.mark.slow
@pytest.mark.parametrize("orientation", ["axial", "sagittal", "coronal", "oblique"])
@pytest.mark.parametrize("normal_sign", [1.0, -1.0])
def test_mosaic_matches_dcm2niix(tmp_path, orientation, normal_sign):
    exe = _dcm2niix()
    if exe is None:
        pytest.skip("dcm2niix not installed (pip install dcm2niix)")
    nib = pytest.importorskip("nibabel")
    from dwi_toolkit.io.dicom._synthetic import write_mosaic_series

    write_mosaic_series(tmp_path / "m", iop=ORIENTATIONS[orientation], normal_sign=normal_sign)
    out = tmp_path / "out"
    out.mkdir()
    subprocess.run([exe, "-z", "n", "-f", "x", "-o", str(out), str(tmp_path / "m")], check=True, capture_output=True)
    ref = nib.load(str(out / "x.nii"))
    s = load_dicom_dwi(tmp_path / "m")
    np.testing.assert_allclose(s.affine, ref.affine, atol=1e-3)
    np.testing.assert_array_equal(np.asarray(s.data), np.asanyarray(ref.dataobj))
    bvec = np.loadtxt(out / "x.bvec").T
    np.testing.assert_allclose(s.bvecs[1:], bvec[1:], atol=1e-4)


def _run_dcm2niix(exe, folder, out):
    out.mkdir()
    subprocess.run([exe, "-z", "n", "-f", "x", "-o", str(out), str(folder)], check=True, capture_output=True)


@pytest.mark.slow
@pytest.mark.parametrize("orientation", ["axial", "sagittal", "coronal", "oblique", "oblique_sagittal"])
@pytest.mark.parametrize("phase", ["COL", "ROW"])
@pytest.mark.parametrize("vendor", ["GE MEDICAL SYSTEMS", "CANON_MEC", "TOSHIBA"])
def test_image_frame_vendors_match_dcm2niix(tmp_path, orientation, phase, vendor):
    """GE private and Canon classic (image/logical frame) and Toshiba (patient frame) vectors."""
    exe = _dcm2niix()
    if exe is None:
        pytest.skip("dcm2niix not installed (pip install dcm2niix)")
    write_series(tmp_path / "g", iop=ORIENTATIONS[orientation], bvals=BVALS, bvecs_lps=DIRS,
                 manufacturer=vendor, encoding="ge" if vendor.startswith("GE") else "standard", phase=phase)
    _run_dcm2niix(exe, tmp_path / "g", tmp_path / "out")
    s = load_dicom_dwi(tmp_path / "g")
    np.testing.assert_allclose(s.bvals, BVALS)
    bvec = np.loadtxt(tmp_path / "out" / "x.bvec").T
    dw = np.asarray(BVALS) > 50
    ref = bvec[dw] / np.linalg.norm(bvec[dw], axis=1, keepdims=True)
    np.testing.assert_allclose(s.bvecs[dw], ref, atol=1e-4)


@pytest.mark.slow
def test_philips_precise_scaling_matches_dcm2niix(tmp_path):
    exe = _dcm2niix()
    if exe is None:
        pytest.skip("dcm2niix not installed (pip install dcm2niix)")
    nib = pytest.importorskip("nibabel")
    write_series(tmp_path / "p", iop=ORIENTATIONS["oblique"], bvals=BVALS, bvecs_lps=DIRS,
                 manufacturer="Philips Medical Systems", encoding="philips",
                 philips_scaling=(1.51477, 0.0, 0.0269347))
    _run_dcm2niix(exe, tmp_path / "p", tmp_path / "out")
    s = load_dicom_dwi(tmp_path / "p")
    ref = nib.load(str(tmp_path / "out" / "x.nii"))
    np.testing.assert_allclose(np.asarray(s.data), np.asanyarray(ref.dataobj), rtol=1e-5)
    bvec = np.loadtxt(tmp_path / "out" / "x.bvec").T
    dw = np.asarray(BVALS) > 50
    np.testing.assert_allclose(s.bvecs[dw], bvec[dw], atol=1e-4)


def test_philips_precise_scaling_formula(tmp_path):
    rs, ri, ss = 2.0, 10.0, 0.5
    write_series(tmp_path / "p", manufacturer="Philips Medical Systems", encoding="philips",
                 philips_scaling=(rs, ri, ss))
    s = load_dicom_dwi(tmp_path / "p")
    stored = pixel_value(3, 2, 1, 1)  # column 3, row 2, slice 1, volume 1
    # voxel (x=3, y=rows-1-2, z=1) in the output order; precise value (SV*RS + RI) / (RS*SS)
    assert s.data[3, 8 - 1 - 2, 1, 1] == pytest.approx((stored * rs + ri) / (rs * ss))
    assert s.data.dtype == np.float32


def test_ge_feet_first_warns(tmp_path):
    write_series(tmp_path / "g", manufacturer="GE MEDICAL SYSTEMS", encoding="ge", patient_position="FFS")
    with pytest.warns(DicomWarning, match="PatientPosition FFS"):
        s = load_dicom_dwi(tmp_path / "g")
    assert s.shape[3] == 4


@pytest.mark.parametrize("orientation", ["axial", "sagittal", "oblique"])
@pytest.mark.parametrize("slice_major", [True, False])
def test_enhanced_single_file(tmp_path, orientation, slice_major):
    from dwi_toolkit.io.dicom._synthetic import write_enhanced_series

    iop = ORIENTATIONS[orientation]
    dirs = ((0, 0, 0), (1, 0, 0), (0.0, 0.6, 0.8))
    f = write_enhanced_series(tmp_path / "e" / "multi.dcm", iop=iop, slice_major=slice_major,
                              bvecs_lps=dirs, rescale=(2.0, -5.0))
    s = load_dicom_dwi(f)  # a single multi-frame file
    assert s.shape == (10, 8, 4, 3) and s.data.dtype == np.float32
    np.testing.assert_allclose(s.bvals, [0, 1000, 1000])
    inv = np.linalg.inv(s.affine)
    row, col = np.asarray(iop[:3], float), np.asarray(iop[3:], float)
    for c, r, k, v in [(0, 0, 0, 0), (9, 7, 3, 2), (4, 2, 1, 1)]:
        lps = np.array([-10.0, -20.0, 30.0]) + k * 3.0 * np.cross(row, col) + c * 1.5 * row + r * 2.0 * col
        i, j, kk = np.round(inv[:3, :3] @ (LPS2RAS @ lps) + inv[:3, 3]).astype(int)
        assert s.data[i, j, kk, v] == pytest.approx(2.0 * pixel_value(c, r, k, v) - 5.0)
    for v in (1, 2):
        got = _physical_from_fsl(s.bvecs[v], s.affine)
        assert abs(abs((LPS2RAS @ np.asarray(dirs[v], float)) @ got) - 1) < 1e-6
    assert s.meta["EchoTime"] == 0.08 and s.meta["RepetitionTime"] == 4.0


def test_truncated_pixel_data_is_skipped_and_named(tmp_path):
    paths = write_series(tmp_path / "d", n_slices=3)
    victim = paths[4]
    victim.write_bytes(victim.read_bytes()[:-50])
    with pytest.warns(DicomWarning, match=victim.name):
        with pytest.raises(DicomError, match="missing"):
            load_dicom_dwi(tmp_path / "d")


def test_scanner_adc_missing_is_a_clear_error(tmp_path):
    from dwi_toolkit.io.dicom import load_scanner_adc

    write_series(tmp_path / "d")
    with pytest.raises(DicomError, match="no adc series"):
        load_scanner_adc(tmp_path / "d")


def test_scanner_adc_synthetic_units(tmp_path):
    from dwi_toolkit.io.dicom import load_scanner_adc

    write_series(tmp_path / "d" / "adc", series_uid="1.2.3.7", description="ADC", bvals=(0,),
                 bvecs_lps=((0, 0, 0),), image_type=("DERIVED", "PRIMARY", "DIFFUSION", "ADC"))
    m = load_scanner_adc(tmp_path / "d")
    assert m.unit == "mm^2/s" and m.shape == (10, 8, 5)
    # stored integers are 1e-6 mm^2/s: value at column 3, row 2, slice 1
    assert m.data[3, 8 - 1 - 2, 1] == pytest.approx(pixel_value(3, 2, 1, 0) * 1e-6)
