"""Noise estimation, SNR, noise-floor flags and the Rician expected magnitude."""

from __future__ import annotations

import numpy as np
import pytest

from dwi_toolkit.errors import InputDataError
from dwi_toolkit.models.noise import (
    RAYLEIGH_MEAN_FACTOR,
    estimate_sigma_background,
    estimate_sigma_dipy,
    estimate_sigma_repeated,
    noise_floor_mask,
    rician_exclusion_weights,
    rician_expected_magnitude,
    rician_expected_magnitude_derivative,
    roi_snr,
)


def _rician(a, sigma, rng, size=None):
    a = np.asarray(a, float) if size is None else np.full(size, a, float)
    return np.abs(a + sigma * rng.standard_normal(a.shape) + 1j * sigma * rng.standard_normal(a.shape))


@pytest.mark.parametrize("a", [0.0, 0.5, 1.0, 2.0, 5.0, 20.0])
def test_expected_magnitude_matches_monte_carlo(a, rng):
    sigma = 1.7
    m = _rician(a * sigma, sigma, rng, size=400_000)
    assert rician_expected_magnitude(a * sigma, sigma) == pytest.approx(m.mean(), rel=3e-3)


def test_expected_magnitude_limits_and_derivative():
    assert rician_expected_magnitude(0.0, 2.0) == pytest.approx(2.0 * RAYLEIGH_MEAN_FACTOR)
    a = np.linspace(0.0, 30.0, 61)
    h = 1e-6
    num = (rician_expected_magnitude(a + h, 1.3) - rician_expected_magnitude(np.maximum(a - h, 0), 1.3)) / (
        a + h - np.maximum(a - h, 0)
    )
    np.testing.assert_allclose(rician_expected_magnitude_derivative(a, 1.3), num, atol=1e-6)
    assert rician_expected_magnitude(1e4, 1.0) == pytest.approx(1e4, rel=1e-8)


def test_sigma_from_background(rng):
    sigma = 7.0
    img = _rician(np.zeros((60, 60, 4, 3)), sigma, rng)
    img[20:40, 20:40] += 500.0  # object in the middle, corners stay background
    assert estimate_sigma_background(img) == pytest.approx(sigma, rel=0.03)
    with pytest.raises(InputDataError, match="background"):
        estimate_sigma_background(np.zeros((5, 5, 1)))


def test_sigma_from_repeated_b0(rng):
    sigma = 4.0
    b0 = _rician(np.full((30, 30, 3, 8), 300.0), sigma, rng)
    assert estimate_sigma_repeated(b0) == pytest.approx(sigma, rel=0.03)
    with pytest.raises(InputDataError, match="R >= 2"):
        estimate_sigma_repeated(b0[..., :1])


def test_sigma_with_dipy_estimate_sigma(rng):
    sigma = 10.0
    # high-SNR object: Gaussian regime, no coil correction (dipy's N=0)
    data = _rician(np.full((24, 24, 6, 4), 400.0), sigma, rng)
    assert estimate_sigma_dipy(data, n_coils=0) == pytest.approx(sigma, rel=0.1)
    # signal-free background: dipy's N=1 factor corrects the Rayleigh variance
    bg = _rician(np.zeros((24, 24, 6, 4)), sigma, rng)
    assert estimate_sigma_dipy(bg, n_coils=1) == pytest.approx(sigma, rel=0.1)
    with pytest.raises(InputDataError, match="unknown sigma method"):
        estimate_sigma_dipy(data, method="guess")


def test_sigma_with_dipy_piesno(rng):
    sigma = 8.0
    a = np.zeros((40, 40, 4, 20))
    a[10:30, 10:30] = 300.0  # object in the middle, background around it
    data = _rician(a, sigma, rng)
    assert estimate_sigma_dipy(data, method="piesno") == pytest.approx(sigma, rel=0.05)


def test_roi_snr():
    b0 = np.zeros((4, 4, 1))
    b0[1:3, 1:3] = 250.0
    mask = b0 > 0
    assert roi_snr(b0, mask, 5.0) == pytest.approx(50.0)
    assert np.isnan(roi_snr(b0, np.zeros_like(mask), 5.0))
    with pytest.raises(InputDataError):
        roi_snr(b0, mask, 0.0)


def test_noise_floor_mask_and_exclusion_weights():
    sig = np.array([[1000.0, 500.0, 200.0], [1000.0, 100.0, 25.0]])
    bvals = [0, 500, 1000]
    assert noise_floor_mask(sig, 10.0, k=3, bvals=bvals).tolist() == [False, True]
    assert noise_floor_mask(sig, np.array([10.0, 5.0]), k=3, bvals=bvals).tolist() == [False, False]
    w = rician_exclusion_weights(sig, 10.0, k=3)
    assert w.tolist() == [[1, 1, 1], [1, 1, 0]]
    with pytest.raises(InputDataError):
        noise_floor_mask(sig, 10.0, bvals=[0, 500])


def test_tabulated_rician_mean_matches_bessel_form():
    """The table used by the Rician ADC refit against the exact Bessel expressions."""
    from dwi_toolkit.models.noise import (
        rician_expected_magnitude,
        rician_expected_magnitude_derivative,
        rician_mean_and_derivative,
    )

    a = np.concatenate([np.linspace(0.0, 120.0, 20001), np.geomspace(1e-6, 1e5, 500)])
    sigma = np.full_like(a, 3.0)
    val, der = rician_mean_and_derivative(a, sigma)
    np.testing.assert_allclose(val, rician_expected_magnitude(a, sigma), rtol=1e-11)
    np.testing.assert_allclose(der, rician_expected_magnitude_derivative(a, sigma), atol=1e-8)
    # second derivative against central differences of the exact first derivative
    h = 1e-4
    _, _, der2 = rician_mean_and_derivative(a[1:-1:50], sigma[1:-1:50], second=True)
    fd = (rician_expected_magnitude_derivative(a[1:-1:50] + h, 3.0)
          - rician_expected_magnitude_derivative(a[1:-1:50] - h, 3.0)) / (2 * h)
    np.testing.assert_allclose(der2, fd, atol=1e-6)
    nan_val, _ = rician_mean_and_derivative(np.array([np.nan, 1.0]), np.array([1.0, 1.0]))
    assert np.isnan(nan_val[0]) and np.isfinite(nan_val[1])
