"""NIfTI + bval/bvec + sidecar loading and saving."""

import json

import nibabel as nib
import numpy as np
import pytest

from dwi_toolkit import load_dwi
from dwi_toolkit.core.image import DWISeries
from dwi_toolkit.errors import GradientError, GradientWarning, InputDataError
from dwi_toolkit.io.gradients import read_bvecs
from dwi_toolkit.io.nifti import load_map, save_map

B = np.array([0.0, 800, 800, 800])
V = np.vstack([[0, 0, 0], np.eye(3)[[2, 0, 1]]])


def write_case(tmp_path, *, bvec_layout="fsl", data=None, name="sub-01_dwi"):
    tmp_path.mkdir(parents=True, exist_ok=True)
    data = np.arange(3 * 4 * 2 * 4, dtype=np.int16).reshape(3, 4, 2, 4) + 1 if data is None else data
    aff = np.diag([-2.0, 2.0, 3.0, 1.0])
    nib.save(nib.Nifti1Image(data, aff), tmp_path / f"{name}.nii.gz")
    (tmp_path / f"{name}.bval").write_text(" ".join(map(str, B)) + "\n")
    vec = V.T if bvec_layout == "fsl" else V
    (tmp_path / f"{name}.bvec").write_text("\n".join(" ".join(map(str, r)) for r in vec) + "\n")
    return tmp_path / f"{name}.nii.gz", data, aff


@pytest.mark.parametrize("layout", ["fsl", "rows"])
def test_load_nifti_with_gradients(tmp_path, layout):
    path, data, aff = write_case(tmp_path, bvec_layout=layout)
    s = load_dwi(path)
    np.testing.assert_array_equal(s.data, data)
    np.testing.assert_allclose(s.affine, aff)
    np.testing.assert_allclose(s.bvals, B)
    np.testing.assert_allclose(s.bvecs, V)


def test_bids_sidecar_read_and_phi_dropped(tmp_path):
    path, _, _ = write_case(tmp_path)
    (tmp_path / "sub-01_dwi.json").write_text(json.dumps({"EchoTime": 0.07, "PatientName": "Doe^J"}))
    s = load_dwi(path)
    assert s.meta == {"EchoTime": 0.07}


def test_missing_bval_is_a_clear_error(tmp_path):
    path, _, _ = write_case(tmp_path)
    (tmp_path / "sub-01_dwi.bval").unlink()
    with pytest.raises(GradientError, match=r"no \.bval file"):
        load_dwi(path)


def test_count_mismatch(tmp_path):
    path, _, _ = write_case(tmp_path)
    (tmp_path / "sub-01_dwi.bval").write_text("0 800 800\n")
    with pytest.raises(GradientError, match="4 volumes"):
        load_dwi(path)


def test_3d_image_rejected(tmp_path):
    nib.save(nib.Nifti1Image(np.ones((3, 3, 3), np.float32), np.eye(4)), tmp_path / "x.nii.gz")
    with pytest.raises(InputDataError, match="4-D"):
        load_dwi(tmp_path / "x.nii.gz")


def test_unreadable_file(tmp_path):
    (tmp_path / "bad.nii.gz").write_bytes(b"not a nifti")
    with pytest.raises(InputDataError, match="cannot read"):
        load_dwi(tmp_path / "bad.nii.gz")
    with pytest.raises(InputDataError, match="no such file"):
        load_dwi(tmp_path / "missing.nii.gz")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(InputDataError, match="neither NIfTI"):
        load_dwi(tmp_path / "notes.txt")


def test_bvec_3x3_ambiguous(tmp_path):
    p = tmp_path / "a.bvec"
    np.savetxt(p, np.eye(3))  # symmetric: unambiguous
    np.testing.assert_allclose(read_bvecs(p, 3), np.eye(3))
    rows = np.array([[0.6, 0.8, 0.0], [0.0, 1.0, 0.0], [0.8, 0.0, 0.6]])
    np.savetxt(p, rows)  # rows are unit vectors, columns are not -> N x 3
    np.testing.assert_allclose(read_bvecs(p, 3), rows)
    np.savetxt(p, rows.T)  # columns unit -> FSL
    np.testing.assert_allclose(read_bvecs(p, 3), rows)
    both = np.array([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [1.0, 0.0, 0.0]])
    np.savetxt(p, both)
    with pytest.warns(GradientWarning, match="ambiguous"):
        read_bvecs(p, 3)


def test_bvec_bad_shape(tmp_path):
    p = tmp_path / "a.bvec"
    np.savetxt(p, np.ones((2, 5)))
    with pytest.raises(GradientError, match="3 x N"):
        read_bvecs(p, 5)


def test_save_roundtrip_and_atomic(tmp_path):
    rng = np.random.default_rng(1)
    s = DWISeries(rng.uniform(1, 100, (3, 3, 2, 4)).astype(np.float32), np.diag([-2.0, 2, 3, 1]), B, V,
                  meta={"Manufacturer": "X"})
    out = s.save(tmp_path / "out" / "dwi")
    assert out["nifti"].name == "dwi.nii.gz"
    t = load_dwi(out["nifti"])
    np.testing.assert_array_equal(t.data, s.data)
    np.testing.assert_allclose(t.bvecs, s.bvecs, atol=1e-6)
    np.testing.assert_allclose(t.bvals, s.bvals)
    assert t.meta["Manufacturer"] == "X"
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.startswith(".")]


def test_failed_write_leaves_nothing(tmp_path, monkeypatch):
    import dwi_toolkit.io.nifti as nifti_mod

    s = DWISeries(np.ones((2, 2, 2, 4), np.float32), np.eye(4), B, V)

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(nifti_mod, "write_bvals", boom)
    with pytest.raises(OSError):
        s.save(tmp_path / "x.nii.gz")
    # the image was completed atomically before the failure; no temporary files remain
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_save_and_load_map(tmp_path):
    from dwi_toolkit.core.image import ParameterMap

    m = ParameterMap(np.full((2, 3, 4), 1.1e-3), np.diag([2.0, 2, 2, 1]), "adc", "mm^2/s")
    p = save_map(m, tmp_path / "adc.nii.gz")
    back = load_map(p)
    assert back.unit == "mm^2/s"
    np.testing.assert_allclose(back.data, 1.1e-3, rtol=1e-6)


def test_folder_with_one_nifti_dwi_loads_it(tmp_path):
    path, data, _ = write_case(tmp_path / "sub" / "dwi")
    s = load_dwi(tmp_path / "sub")
    np.testing.assert_array_equal(s.data, data)
    write_case(tmp_path / "sub" / "dwi", name="sub-01_run-2_dwi")
    with pytest.raises(InputDataError, match="2 NIfTI DWI series"):
        load_dwi(tmp_path / "sub")
