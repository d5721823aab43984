"""ADC fits against analytic truth, scipy's curve_fit, dipy, and the scanner's own ADC map."""

import numpy as np
import pytest

from dwi_toolkit.core.image import DWISeries
from dwi_toolkit.errors import FitError
from dwi_toolkit.models.adc import STATUS_CODES, adc_loglinear, adc_nlls, fit_adc

from ..conftest import shared_path

# dwi_toolkit References §1.1 anchor table (S0 = 1000)
ANCHORS = {
    1.10e-3: {0: 1000, 50: 946.485, 500: 576.950, 800: 414.783, 1000: 332.871},
    1.60e-3: {0: 1000, 50: 923.116, 500: 449.329, 800: 278.037, 1000: 201.897},
    3.00e-3: {0: 1000, 50: 860.708, 500: 223.130, 800: 90.718, 1000: 49.787},
}
METHODS = ["ols", "wls", "nlls"]


def make_series(adc, bvals=(0, 500, 1000), n_dir=3, s0=1000.0, dtype=np.float64):
    b, v = [0.0], [np.zeros(3)]
    for bb in bvals:
        if bb == 0:
            continue
        for d in range(n_dir):
            b.append(float(bb))
            v.append(np.eye(3)[d])
    b = np.array(b)
    adc = np.asarray(adc, dtype=float)
    data = s0 * np.exp(-b * adc[..., None])
    return DWISeries(data.astype(dtype), np.eye(4), b, np.array(v))


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("true_adc", sorted(ANCHORS))
def test_anchor_values_recovered(method, true_adc):
    b = np.array(sorted(ANCHORS[true_adc]), dtype=float)
    sig = np.array([ANCHORS[true_adc][k] for k in b])
    # one voxel built from the published table (rounded to 3 decimals)
    data = sig[None, None, None, :]
    s = DWISeries(data, np.eye(4), b, np.vstack([[0, 0, 0]] + [np.eye(3)[i % 3] for i in range(b.size - 1)]))
    fit = fit_adc(s, method=method)
    assert fit.status[0, 0, 0] == 0
    assert fit.adc[0, 0, 0] == pytest.approx(true_adc, rel=1e-3)  # §1.5: noiseless to <= 0.1 %
    assert fit.s0[0, 0, 0] == pytest.approx(1000.0, rel=1e-3)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_noiseless_volume_exact(method, dtype, rng):
    adc = rng.uniform(0.3e-3, 3.2e-3, size=(6, 5, 4))
    fit = fit_adc(make_series(adc, bvals=(0, 100, 400, 800), dtype=dtype), method=method)
    assert (fit.status == 0).all()
    np.testing.assert_allclose(fit.adc, adc, rtol=1e-3)
    if dtype == np.float64:
        np.testing.assert_allclose(fit.adc, adc, rtol=1e-9)
        np.testing.assert_allclose(fit.rsquared, 1.0, atol=1e-9)


def test_two_bvalues_closed_form(rng):
    adc = rng.uniform(0.5e-3, 3e-3, size=(3, 3, 2))
    s = make_series(adc, bvals=(0, 800), n_dir=1)
    s_noisy = s.replace(data=s.data * rng.uniform(0.95, 1.05, s.data.shape))
    for method in METHODS:
        fit = fit_adc(s_noisy, method=method)
        closed = np.log(s_noisy.data[..., 0] / s_noisy.data[..., 1]) / 800.0
        np.testing.assert_allclose(fit.adc, closed, rtol=1e-10)


def test_nlls_matches_curve_fit(rng):
    from scipy.optimize import curve_fit

    adc = rng.uniform(0.8e-3, 2.5e-3, size=(6, 5, 2))
    s = make_series(adc, bvals=(0, 100, 400, 800))
    noisy = np.abs(s.data + rng.normal(0, 15.0, s.data.shape))
    s = s.replace(data=noisy)
    fit = fit_adc(s, method="nlls")
    bv, tr = s.trace()
    weights = np.array([sh.n_volumes for sh in s.shells], dtype=float)
    worst = 0.0
    for idx in np.ndindex(adc.shape):
        y = tr[idx]
        popt, _ = curve_fit(lambda b, s0, d: s0 * np.exp(-b * d), bv, y, p0=[y[0], 1e-3],
                            sigma=1 / np.sqrt(weights), xtol=1e-15, ftol=1e-15, gtol=1e-15, maxfev=20000)
        assert fit.status[idx] == 0
        worst = max(worst, abs(popt[1] / fit.adc[idx] - 1))
    assert worst < 1e-6  # issue target 1e-6 (acceptance 1e-4)


def test_invalid_signal_never_crashes():
    adc = np.full((4, 1, 1), 1e-3)
    s = make_series(adc)
    data = s.data.copy()
    data[0, 0, 0, 2] = 0.0
    data[1, 0, 0, 3] = -4.0
    data[2, 0, 0, 1] = np.nan
    for method in METHODS:
        fit = fit_adc(s.replace(data=data), method=method)
        assert fit.status[:3, 0, 0].tolist() == [2, 2, 2]
        assert np.isnan(fit.adc[:3]).all()
        assert fit.status[3, 0, 0] == 0
        assert fit.status_counts()[STATUS_CODES[2]] == 3


def test_negative_adc_flagged():
    s = make_series(np.full((1, 1, 1), 1e-3))
    data = s.data.copy()
    data[..., 1:] = 1500.0  # DW signal above b0 -> negative slope
    fit = fit_adc(s.replace(data=data), method="ols")
    assert fit.status[0, 0, 0] == 3 and np.isnan(fit.adc[0, 0, 0])


def test_mask_and_b_range(rng):
    adc = rng.uniform(0.8e-3, 2e-3, size=(4, 4, 2))
    s = make_series(adc, bvals=(0, 50, 400, 800))
    mask = np.zeros(adc.shape, bool)
    mask[:2] = True
    fit = fit_adc(s, mask=mask, b_range=(200, None))  # literal range: b=0 left out too
    assert (fit.status[~mask] == 1).all() and np.isnan(fit.adc[~mask]).all()
    np.testing.assert_allclose(fit.adc[mask], adc[mask], rtol=1e-9)
    assert fit.bvals_used.tolist() == [400, 800]
    assert fit_adc(s, b_range=(None, 400)).bvals_used.tolist() == [0, 50, 400]
    with pytest.raises(FitError, match="two distinct"):
        fit_adc(s, b_range=(500, 900))


def test_unknown_method():
    with pytest.raises(FitError, match="ols, wls, nlls"):
        fit_adc(make_series(np.full((1, 1, 1), 1e-3)), method="magic")


def test_per_direction_adc(rng):
    # anisotropic voxel: directional ADCs differ; trace ADC is their mean (dwi_toolkit References §1.1)
    b = np.array([0.0, 800, 800, 800])
    dadc = np.array([0.8e-3, 1.2e-3, 2.2e-3])
    data = (1000 * np.exp(-b[1:] * dadc))
    data = np.r_[1000.0, data][None, None, None, :]
    s = DWISeries(data, np.eye(4), b, np.vstack([[0, 0, 0], np.eye(3)]))
    fit = fit_adc(s, method="ols", per_direction=True)
    np.testing.assert_allclose(fit.direction_adc[0, 0, 0], dadc, rtol=1e-10)
    assert fit.adc[0, 0, 0] == pytest.approx(dadc.mean(), rel=1e-10)


def test_chunking_does_not_change_result(rng):
    adc = rng.uniform(0.8e-3, 2e-3, size=(7, 5, 3))
    s = make_series(adc, bvals=(0, 100, 400, 800))
    s = s.replace(data=np.abs(s.data + rng.normal(0, 10, s.data.shape)))
    a = fit_adc(s, method="wls", chunk_size=7)
    b = fit_adc(s, method="wls")
    np.testing.assert_allclose(a.adc, b.adc, rtol=1e-12)


def test_fit_outputs(tmp_path, rng):
    fit = fit_adc(make_series(rng.uniform(1e-3, 2e-3, (2, 2, 2))))
    maps = fit.to_maps()
    assert set(maps) == {"adc", "s0", "rsquared", "status"}
    assert maps["adc"].unit == "mm^2/s"
    paths = fit.save(tmp_path)
    import nibabel as nib

    np.testing.assert_allclose(nib.load(paths["adc"]).get_fdata(), fit.adc, rtol=1e-6)
    assert fit.predict([0, 1000]).shape == (2, 2, 2, 2)
    assert "ADCFit" in repr(fit) and "<table>" in fit._repr_html_()


def test_pure_functions_examples():
    b = np.array([0.0, 400, 800])
    y = np.log(500 * np.exp(-b * 2e-3))[:, None]
    ln0, adc, r2 = adc_loglinear(y, b, method="wls")
    assert adc[0] == pytest.approx(2e-3) and r2[0] == pytest.approx(1.0)
    s0, a, ok = adc_nlls(np.exp(y), b)
    assert a[0] == pytest.approx(2e-3, rel=1e-9) and ok[0]


def test_trace_adc_agrees_with_dipy_md_on_real_data():
    """dipy's bundled small_64D (b=0 + 64 directions at b=1000): the geometric-mean trace ADC
    approximates the tensor's mean diffusivity (exact for the tensor model with uniform
    directions); agreement within a few percent on tissue voxels."""
    pytest.importorskip("dipy")
    from dipy.core.gradients import gradient_table
    from dipy.data import get_fnames
    from dipy.io.gradients import read_bvals_bvecs
    from dipy.reconst.dti import TensorModel

    import nibabel as nib

    fdata, fbval, fbvec = get_fnames(name="small_64D")
    img = nib.load(fdata)
    bvals, bvecs = read_bvals_bvecs(fbval, fbvec)
    data = np.asanyarray(img.dataobj).astype(np.float64)
    s = DWISeries(data, img.affine, bvals, bvecs)
    mask = s.mean_b0() > np.percentile(s.mean_b0(), 50)
    ours = fit_adc(s, method="wls", mask=mask)
    md = TensorModel(gradient_table(bvals, bvecs=bvecs), fit_method="WLS").fit(data, mask=mask).md
    ok = mask & (ours.status == 0) & (md > 0)
    rel = np.abs(ours.adc[ok] - md[ok]) / md[ok]
    assert ok.sum() > 50
    assert np.median(rel) < 0.03


@pytest.mark.needs_shared_data
def test_matches_scanner_adc_map_xa30():
    """Siemens XA30: our trace ADC equals the scanner's ADC map (1e-6 mm²/s integers);
    median |difference| <= 1e-6 mm²/s over tissue (brightest 30 % of b0)."""
    import nibabel as nib

    from dwi_toolkit.io.nifti import load_nifti_dwi

    folder = shared_path("dicom", "siemens_xa30_enhanced_dwi_with_scanner_adc")
    s = load_nifti_dwi(folder / "oracle" / "xa30_10_10_DWI_dir80_PA.nii.gz")
    scanner = nib.load(folder / "reference" / "11_DWI_dir80_PA.nii")
    np.testing.assert_allclose(scanner.affine, s.affine, atol=1e-3)
    scanner_adc = np.asanyarray(scanner.dataobj).astype(float) * 1e-6
    b0 = s.mean_b0()
    tissue = b0 > np.percentile(b0, 70)
    for method in METHODS:
        fit = fit_adc(s, method=method)
        ok = tissue & (fit.status == 0) & (scanner_adc > 0)
        assert np.median(np.abs(fit.adc[ok] - scanner_adc[ok])) <= 1e-6


@pytest.mark.parametrize("method", METHODS)
def test_layout_and_dtype_as_loaded(method, rng):
    """Fortran-ordered (as nibabel loads NIfTI) and int16 data, with and without a mask, give the
    same maps as the C-ordered float64 fit of the same values."""
    adc = rng.uniform(0.8e-3, 2e-3, size=(6, 5, 4))
    s = make_series(adc, bvals=(0, 100, 400, 800))
    noisy = np.round(np.abs(s.data + rng.normal(0, 10, s.data.shape)))
    ref = fit_adc(s.replace(data=noisy), method=method)
    mask = rng.random(adc.shape) > 0.3
    for data, tol in ((np.asfortranarray(noisy), 1e-12), (noisy.astype(np.int16), 2e-5)):
        fit = fit_adc(s.replace(data=data), method=method, chunk_size=11, mask=mask)
        np.testing.assert_array_equal(fit.status[mask], ref.status[mask])
        assert np.all(fit.status[~mask] == 1)
        np.testing.assert_allclose(fit.adc[mask], ref.adc[mask], rtol=tol)


def test_chunk_size_and_memory_refusal(rng, monkeypatch):
    from dwi_toolkit.errors import InputDataError, InsufficientMemoryError
    from dwi_toolkit.models import _chunks

    s = make_series(rng.uniform(0.8e-3, 2e-3, size=(3, 3, 2)))
    with pytest.raises(InputDataError, match="chunk_size"):
        fit_adc(s, chunk_size=0)
    monkeypatch.setattr(_chunks, "available_memory", lambda: 100)
    with pytest.raises(InsufficientMemoryError, match="mask"):
        fit_adc(s)
