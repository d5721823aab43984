"""DWISeries / ParameterMap validation and helpers."""

import numpy as np
import pytest

from dwi_toolkit.core.gradients import b0_mask, find_shells
from dwi_toolkit.core.image import DWISeries, ParameterMap
from dwi_toolkit.errors import DwiToolkitError, GradientError, GradientWarning, InputDataError

B = np.array([0.0, 500, 500, 500, 1000, 1000, 1000])
V = np.vstack([[0, 0, 0], np.eye(3), np.eye(3)])


def series(data=None, **kw):
    data = np.ones((3, 4, 2, B.size)) if data is None else data
    args = dict(data=data, affine=np.diag([2.0, 2.0, 3.0, 1.0]), bvals=B, bvecs=V)
    args.update(kw)
    return DWISeries(**args)


def test_valid_series_properties():
    s = series()
    assert s.shape == (3, 4, 2, 7)
    assert s.spatial_shape == (3, 4, 2)
    np.testing.assert_allclose(s.voxel_sizes, [2, 2, 3])
    assert s.orientation == "RAS"
    assert s.slice_orientation == "axial"
    assert s.b0_mask.tolist() == [True] + [False] * 6
    assert [(sh.bval, sh.n_volumes) for sh in s.shells] == [(0.0, 1), (500.0, 3), (1000.0, 3)]
    assert "DWISeries" in repr(s) and "<table>" in s._repr_html_()


@pytest.mark.parametrize(
    "kw, exc, words",
    [
        (dict(data=np.ones((3, 4, 7))), InputDataError, "4-D"),
        (dict(bvals=B[:-1], bvecs=V[:-1]), GradientError, "volumes"),
        (dict(bvecs=V[:-1]), GradientError, "shape"),
        (dict(bvals=np.r_[B[:-1], np.nan]), GradientError, "NaN"),
        (dict(bvals=np.r_[B[:-1], -5.0]), GradientError, ">= 0"),
        (dict(bvecs=np.vstack([V[:-1], [2.0, 0, 0]])), GradientError, "norm"),
        (dict(affine=np.eye(3)), InputDataError, "4x4"),
        (dict(affine=np.zeros((4, 4))), InputDataError, "singular"),
        (dict(data=np.ones((3, 4, 2, 7), dtype=complex)), InputDataError, "real"),
    ],
)
def test_invalid_inputs_raise_clear_errors(kw, exc, words):
    with pytest.raises(exc, match=words) as info:
        series(**kw)
    assert isinstance(info.value, DwiToolkitError)


def test_near_unit_bvecs_are_renormalised_with_warning():
    v = V.copy()
    v[1] *= 1.05
    with pytest.warns(GradientWarning, match="renormalised"):
        s = series(bvecs=v)
    np.testing.assert_allclose(np.linalg.norm(s.bvecs[1:], axis=1), 1.0)


def test_inputs_not_modified_and_arrays_read_only():
    b, v = B.copy(), V.copy()
    s = series(bvals=b, bvecs=v)
    assert np.array_equal(b, B) and np.array_equal(v, V)
    with pytest.raises(ValueError):
        s.bvals[0] = 5


def test_select_and_select_b():
    s = series()
    assert s.select([0, 4]).bvals.tolist() == [0, 1000]
    assert s.select_b(b_min=600).bvals.tolist() == [1000, 1000, 1000]
    assert s.select_b(b_max=600).n_volumes == 4
    with pytest.raises(InputDataError, match="no volume"):
        s.select_b(b_min=2000, b_max=3000)
    with pytest.raises(InputDataError):
        s.select([])


def test_trace_is_geometric_mean():
    rng = np.random.default_rng(0)
    data = rng.uniform(100, 1000, size=(2, 2, 1, 7))
    bv, tr = series(data=data).trace()
    assert bv.tolist() == [0.0, 500.0, 1000.0]
    np.testing.assert_allclose(tr[..., 1], np.exp(np.log(data[..., 1:4]).mean(-1)), rtol=1e-12)
    np.testing.assert_allclose(tr[..., 0], data[..., 0])


def test_mean_b0_requires_b0():
    s = series().select([1, 2, 3, 4])
    with pytest.raises(InputDataError, match="no b=0"):
        s.mean_b0()


def test_b0_threshold_and_shell_jitter():
    b = [0, 0.004, 998, 1000, 1003, 50, 51]
    assert b0_mask(b).tolist() == [True, True, False, False, False, True, False]
    shells = find_shells(b)
    assert [s.n_volumes for s in shells] == [3, 1, 3]
    assert [round(s.bval) for s in shells] == [0, 51, 1000]


def test_parameter_map():
    m = ParameterMap(np.zeros((2, 2, 2)), np.eye(4), "adc", "mm^2/s")
    assert m.to_nifti().shape == (2, 2, 2)
    with pytest.raises(InputDataError):
        ParameterMap(np.zeros((2, 2)), np.eye(4), "adc")
