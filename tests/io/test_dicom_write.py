"""The synthetic DICOM writer: geometry, intensities and diffusion attributes, read back by pydicom
with the DICOM standard's formulas (independent of the writer's own code)."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest

from dwi_toolkit.core.image import DWISeries
from dwi_toolkit.errors import DicomError, InputDataError
from dwi_toolkit.io.dicom_write import bvecs_to_lps, write_dicom_series
from dwi_toolkit.phantom import rotation_matrix


def _series(affine, data=None):
    rng = np.random.default_rng(3)
    shape = (5, 4, 3, 4)
    if data is None:
        data = rng.uniform(0, 1000, shape)
    bvals = np.array([0.0, 800.0, 800.0, 800.0])
    bvecs = np.vstack([[0, 0, 0], np.eye(3)])
    return DWISeries(data, affine, bvals, bvecs)


def _oblique():
    a = np.eye(4)
    a[:3, :3] = rotation_matrix([12, -7, 25]) @ np.diag([-1.8, 2.2, 4.5])
    a[:3, 3] = [30.0, -12.0, 55.0]
    return a


@pytest.mark.parametrize("affine", [np.diag([-2.0, 2.0, 4.0, 1.0]), np.diag([2.0, 2.0, 4.0, 1.0]), _oblique()])
def test_geometry_and_values_by_the_dicom_formula(tmp_path, affine):
    s = _series(affine)
    files = write_dicom_series(s, tmp_path)
    assert len(files) == s.n_volumes * s.spatial_shape[2]
    to_ras = np.diag([-1.0, -1.0, 1.0])
    uids = set()
    for f in files:
        ds = pydicom.dcmread(f)
        assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.4" and ds.Modality == "MR"
        v, k = (int(x) for x in f.stem.split("_")[1:])
        iop = np.array(ds.ImageOrientationPatient, float)
        ipp = np.array(ds.ImagePositionPatient, float)
        dr, dc = (float(x) for x in ds.PixelSpacing)  # row spacing, column spacing
        for c, r in [(0, 0), (4, 0), (0, 3), (4, 3), (2, 1)]:
            p_lps = ipp + c * dc * iop[:3] + r * dr * iop[3:]  # DICOM PS3.3 C.7.6.2.1.1
            np.testing.assert_allclose(to_ras @ p_lps, (affine @ [c, r, k, 1])[:3], atol=1e-4)
        pix = ds.pixel_array.astype(float) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
        np.testing.assert_allclose(pix, s.data[:, :, k, v].T, atol=float(ds.RescaleSlope) / 2 + 1e-9)
        assert float(ds.DiffusionBValue) == s.bvals[v]
        assert float(ds.SliceThickness) == pytest.approx(np.linalg.norm(affine[:3, 2]))
        uids.add(ds.SOPInstanceUID)
        if s.bvals[v] > 0:
            assert ds.DiffusionDirectionality == "DIRECTIONAL"
            g = np.array(ds.DiffusionGradientOrientation, float)
            assert np.linalg.norm(g) == pytest.approx(1.0)
        else:
            assert "DiffusionGradientOrientation" not in ds
    assert len(uids) == len(files)
    assert write_dicom_series(s, tmp_path / "again")[0].read_bytes() == files[0].read_bytes()  # deterministic


def test_fsl_bvecs_to_lps_known_cases():
    # FSL bvecs are "radiological": for LAS (det < 0) they are voxel axes, for RAS x is flipped;
    # either way bvec x = +1 points to the patient's left = LPS +x.
    e = np.eye(3)
    for aff in (np.diag([-2.0, 2.0, 4.0, 1.0]), np.diag([2.0, 2.0, 4.0, 1.0])):
        np.testing.assert_allclose(bvecs_to_lps(e, aff), [[1, 0, 0], [0, -1, 0], [0, 0, 1]], atol=1e-12)
    # an oblique grid rotates the directions with it
    aff = _oblique()
    rot = aff[:3, :3] / np.linalg.norm(aff[:3, :3], axis=0)
    np.testing.assert_allclose(bvecs_to_lps(e, aff), (np.diag([-1, -1, 1]) @ rot).T, atol=1e-12)


def test_integer_data_stored_exactly_and_bad_input_refused(tmp_path):
    data = np.arange(5 * 4 * 3 * 4).reshape(5, 4, 3, 4).astype(np.int16)
    f = write_dicom_series(_series(np.diag([-2.0, 2.0, 4.0, 1.0]), data), tmp_path)[0]
    ds = pydicom.dcmread(f)
    assert float(ds.RescaleSlope) == 1.0
    np.testing.assert_array_equal(ds.pixel_array, data[:, :, 0, 0].T)
    with pytest.raises(InputDataError):
        write_dicom_series(_series(np.eye(4), -np.ones((5, 4, 3, 4))), tmp_path / "neg")


def test_round_trip_through_load_dwi(tmp_path):
    """With DICOM support (issue 3), the loaded series has the same world grid and directions."""
    from dwi_toolkit.io.loading import load_dwi

    s = _series(_oblique(), np.rint(_series(np.eye(4)).data))
    write_dicom_series(s, tmp_path)
    try:
        back = load_dwi(tmp_path)
    except DicomError as err:
        if "not supported by this build" in str(err):
            pytest.skip("DICOM loading is not in this build")
        raise
    # same world coordinates of every voxel centre (the reader may reorder axes)
    ijk = np.indices(back.spatial_shape).reshape(3, -1).T
    world = ijk @ back.affine[:3, :3].T + back.affine[:3, 3]
    src = np.linalg.solve(s.affine, np.c_[world, np.ones(len(world))].T).T[:, :3]
    idx = np.rint(src).astype(int)
    np.testing.assert_allclose(src, idx, atol=1e-3)
    vals = s.data[idx[:, 0], idx[:, 1], idx[:, 2]]
    np.testing.assert_allclose(back.data.reshape(-1, back.n_volumes), vals, atol=0.5)
    np.testing.assert_allclose(back.bvals, s.bvals)
    np.testing.assert_allclose(bvecs_to_lps(back.bvecs, back.affine), bvecs_to_lps(s.bvecs, s.affine), atol=1e-4)
