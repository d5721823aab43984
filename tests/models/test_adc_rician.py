"""Rician-bias-aware ADC fit (issue 7): modelling the noise floor removes the downward ADC bias
of high-b magnitude data (dwi_toolkit References §1.1)."""

import numpy as np
import pytest

from dwi_toolkit.errors import InputDataError
from dwi_toolkit.models.adc import adc_rician, fit_adc
from dwi_toolkit.models.noise import rician_expected_magnitude
from dwi_toolkit.phantom import make_lumbar_phantom


def test_noiseless_expected_magnitude_recovered_exactly():
    b = np.array([0.0, 400, 800, 1500, 2500])
    adc = np.array([0.8e-3, 1.6e-3, 3.0e-3])
    m = rician_expected_magnitude(200 * np.exp(-b[:, None] * adc[None, :]), 10.0)
    s0, a, ok = adc_rician(m, b, 10.0, s0_init=np.full(3, 150.0), adc_init=np.full(3, 1e-3))
    assert ok.all()
    np.testing.assert_allclose(a, adc, rtol=1e-6)
    np.testing.assert_allclose(s0, 200.0, rtol=1e-6)


def test_noise_floor_bias_removed_on_phantom():
    ph = make_lumbar_phantom(shape=(40, 32, 16), voxel_size=(3.6, 3.6, 12.0), bvals=(0, 400, 800, 1500, 2500),
                             snr=8, seed=2)
    tissue = ph.labels == 1  # muscle: ADC 1.45e-3, S0 300 -> near the floor at b = 2500
    plain = fit_adc(ph.series, method="nlls", mask=tissue)
    corr = fit_adc(ph.series, method="nlls", mask=tissue, noise_correction="rician", sigma=ph.sigma)
    truth = 1.45e-3
    bias_plain = np.median(plain.adc[tissue & (plain.status == 0)]) / truth - 1
    bias_corr = np.median(corr.adc[tissue & (corr.status == 0)]) / truth - 1
    assert bias_plain < -0.2
    assert abs(bias_corr) < 0.03
    assert (corr.status[tissue] == 0).mean() > 0.97
    assert corr.params["noise_correction"] == "rician"


def test_rician_needs_sigma():
    ph = make_lumbar_phantom(shape=(16, 12, 6), voxel_size=(9, 9, 32), noise=False)
    with pytest.raises(InputDataError, match="needs sigma"):
        fit_adc(ph.series, noise_correction="rician")
    with pytest.raises(InputDataError, match="unknown noise_correction"):
        fit_adc(ph.series, noise_correction="gaussian", sigma=1.0)


def test_batched_newton_matches_scipy_least_squares_on_exact_bessel_model():
    """adc_rician (tabulated Bessel terms, batched Newton) against scipy's least_squares on the
    exact Bessel expression of the expected Rician magnitude, voxel by voxel."""
    from scipy.optimize import least_squares

    rng = np.random.default_rng(3)
    b = np.repeat([0.0, 400.0, 800.0, 1200.0, 1600.0, 2000.0], 3)
    truth = rng.uniform(0.8e-3, 2.5e-3, 6)
    sigma = 12.0
    clean = 300.0 * np.exp(-b[:, None] * truth[None, :])
    m = np.abs(clean + rng.normal(0, sigma, clean.shape) + 1j * rng.normal(0, sigma, clean.shape))
    s0, adc, ok = adc_rician(m, b, sigma, s0_init=m[0].copy(), adc_init=np.full(6, 1e-3))
    assert ok.all()
    for v in range(6):
        res = least_squares(lambda p, v=v: m[:, v] - rician_expected_magnitude(p[0] * np.exp(-b * p[1]), sigma),
                            x0=[m[0, v], 1e-3], bounds=([0, 0], [np.inf, np.inf]), x_scale=[100.0, 1e-3],
                            xtol=1e-15, ftol=1e-15, gtol=1e-15)
        np.testing.assert_allclose([s0[v], adc[v]], res.x, rtol=1e-6)


def test_refit_equals_tightly_converged_rician_fit():
    """fit_adc's refit stops at xtol 1e-6 (the last Newton step is applied, so the estimate is
    quadratically closer): it must equal adc_rician iterated to xtol 1e-12 within 1e-8."""
    from dwi_toolkit.core.image import DWISeries

    rng = np.random.default_rng(11)
    b = np.repeat([0.0, 200, 500, 1000, 1500], 3)
    n, sigma = 400, 20.0
    adc_true = rng.uniform(0.4e-3, 3e-3, n)
    clean = 600 * np.exp(-np.outer(adc_true, b))
    m = np.abs(clean + rng.normal(0, sigma, clean.shape) + 1j * rng.normal(0, sigma, clean.shape))
    series = DWISeries(m.reshape(n, 1, 1, -1), np.eye(4), b, np.tile([1.0, 0, 0], (b.size, 1)))
    wls = fit_adc(series, method="wls")
    fit = fit_adc(series, method="wls", noise_correction="rician", sigma=sigma)
    ok = (fit.status == 0).reshape(-1)
    assert ok.mean() > 0.95
    _, tight, conv = adc_rician(m[ok].T, b, sigma, s0_init=wls.s0.reshape(-1)[ok].astype(float),
                                adc_init=wls.adc.reshape(-1)[ok].astype(float), xtol=1e-12)
    assert conv.all()
    np.testing.assert_allclose(fit.adc.reshape(-1)[ok], tight, rtol=1e-8)
