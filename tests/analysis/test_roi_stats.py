"""roi_stats against numpy computed on brute-force masks."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass

import nibabel as nib
import numpy as np
import pytest

from dwi_toolkit.analysis.roi_stats import CSV_COLUMNS, RoiStats, roi_stats
from dwi_toolkit.core.image import ParameterMap
from dwi_toolkit.errors import RoiError
from dwi_toolkit.roi.model import RootROI, RoiSet, Sphere

AFFINE = np.array([[1.5, 0, 0, -15.0], [0, 1.5, 0, -15.0], [0, 0, 4.0, -20.0], [0, 0, 0, 1]])
SHAPE = (20, 20, 10)


@dataclass
class FakeFit:
    """Stand-in with the ADCFit attributes roi_stats reads (adc, s0, status, affine)."""

    adc: np.ndarray
    s0: np.ndarray
    status: np.ndarray
    affine: np.ndarray


def _centres():
    ijk = np.stack(np.meshgrid(*[np.arange(n) for n in SHAPE], indexing="ij"), -1)
    return ijk @ AFFINE[:3, :3].T + AFFINE[:3, 3]


@pytest.fixture
def setup(rng):
    adc = rng.normal(1.3e-3, 0.1e-3, SHAPE)
    status = np.zeros(SHAPE, np.uint8)
    status[rng.random(SHAPE) < 0.2] = 4
    status[rng.random(SHAPE) < 0.2] = 1  # outside the analysis mask: never fitted
    adc[status != 0] = np.nan
    adc[rng.random(SHAPE) < 0.1] = 3.1e-3  # "CSF"
    rois = RoiSet([RootROI("L5", "left", shape=Sphere([-5.0, 0.3, 0.0], 4.0)),
                   RootROI("L5", "right", shape=Sphere([5.2, -0.4, 4.0], 4.0))])
    return FakeFit(adc, rng.normal(500, 5, SHAPE), status, AFFINE), rois


def test_fit_stats_match_numpy(setup):
    fit, rois = setup
    table = roi_stats(fit, rois, csf_threshold=2.5e-3)
    assert len(table) == 2
    for roi, row in zip(rois, table):
        inside = np.linalg.norm(_centres() - roi.shape.center, axis=-1) <= 4.0
        vals = fit.adc[inside]
        outside = fit.status[inside] == 1
        failed = ((fit.status[inside] != 0) | np.isnan(vals)) & ~outside
        csf = ~failed & ~outside & (vals > 2.5e-3)
        good = vals[~failed & ~outside & ~csf]
        assert outside.sum() > 0 and failed.sum() > 0
        assert row.n_voxels == good.size and row.n_excluded_fit == failed.sum()
        assert row.n_excluded_mask == outside.sum()
        assert row.n_excluded_csf == csf.sum()
        assert row.n_excluded == failed.sum() + outside.sum() + csf.sum()
        assert row.volume_mm3 == pytest.approx(good.size * 1.5 * 1.5 * 4.0)
        np.testing.assert_allclose(row.mean, good.mean(), rtol=1e-12)
        np.testing.assert_allclose(row.median, np.median(good), rtol=1e-12)
        np.testing.assert_allclose(row.sd, good.std(ddof=1), rtol=1e-12)
        q = np.percentile(good, [5, 25, 75, 95])
        np.testing.assert_allclose([row.p5, row.iqr, row.p95], [q[0], q[2] - q[1], q[3]], rtol=1e-12)
        np.testing.assert_array_equal(np.sort(row.values), np.sort(good))
        assert (row.parameter, row.unit) == ("adc", "mm^2/s")
    assert table.get("L5", "rt").side == "right"


def test_other_parameter_and_input_types(setup):
    fit, rois = setup
    s0_rows = roi_stats(fit, rois, parameter="s0")
    adc_rows = roi_stats(fit, rois)
    assert s0_rows[0].parameter == "s0"
    # status still applies to other parameters of the fit (s0 itself is finite everywhere)
    assert [r.n_excluded_fit for r in s0_rows] == [r.n_excluded_fit for r in adc_rows]
    assert sum(r.n_excluded_fit for r in s0_rows) > 0
    clean = np.where(np.isnan(fit.adc), 1e-3, fit.adc)
    a = roi_stats(ParameterMap(clean, AFFINE, "adc", "mm^2/s"), rois)
    b = roi_stats(nib.Nifti1Image(clean, AFFINE), rois, parameter="adc", unit="mm^2/s")
    c = roi_stats((clean, AFFINE), rois, parameter="adc", unit="mm^2/s")
    for x, y, z in zip(a, b, c):
        assert x.to_record() == y.to_record() == z.to_record()
        assert x.n_excluded == 0


def test_no_usable_voxel_is_a_row_not_an_error(setup):
    fit, rois = setup
    fit.status[:] = 4
    row = roi_stats(fit, rois)[0]
    assert row.n_voxels == 0 and np.isnan(row.mean) and row.n_excluded > 0


def test_errors(setup):
    fit, _ = setup
    with pytest.raises(RoiError, match="outside the image"):
        roi_stats(fit, RootROI("S1", "left", shape=Sphere([300, 0, 0], 3)))
    with pytest.raises(RoiError, match="covers no voxel"):
        roi_stats(fit, RootROI("S1", "left", shape=Sphere([-14.25, -14.25, -18.0], 0.3)))


def test_csv_and_records(tmp_path, setup):
    fit, rois = setup
    table = roi_stats(fit, rois, csf_threshold=2.5e-3)
    recs = table.to_records()
    assert list(recs[0]) == list(CSV_COLUMNS) and "values" not in recs[0]
    p = table.to_csv(tmp_path / "stats.csv")
    text = p.read_text()
    assert text == table.to_csv_text()
    rows = list(csv.DictReader(io.StringIO(text)))
    assert rows[0]["level"] == "L5" and float(rows[0]["mean"]) == pytest.approx(table[0].mean, rel=1e-8)
    assert "<table" in table._repr_html_()


def test_dataframe_when_pandas(setup):
    pd = pytest.importorskip("pandas")
    fit, rois = setup
    df = roi_stats(fit, rois).to_dataframe()
    assert isinstance(df, pd.DataFrame) and len(df) == 2


def test_columns_cover_dataclass():
    from dataclasses import fields

    assert {f.name for f in fields(RoiStats)} - {"values", "coords", "voxel_size_mm"} == set(CSV_COLUMNS)
