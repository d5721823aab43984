"""Noise-correlation estimates and effective voxel counts against analytic truth."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from dwi_toolkit.analysis.spatial_noise import (
    NoiseCorrelation,
    estimate_from_rois,
    estimate_fwhm,
    fwhm_from_matrix,
    noise_from_metadata,
    roi_variance,
)
from dwi_toolkit.errors import InputDataError


def _gaussian_field(rng, shape, fwhm):
    """White noise smoothed in-plane by a Gaussian of the given FWHM (voxels), unit variance."""
    s = fwhm / math.sqrt(8 * math.log(2))
    f = gaussian_filter(rng.normal(size=shape), sigma=(s, s, 0), mode="wrap")
    return f / f.std()


def test_fwhm_rho_round_trip_and_forman_formula():
    # Forman 1995: FWHM = sqrt(-2 ln2 / ln rho1); rho1 = 0.5 -> sqrt(2) voxels
    nc = NoiseCorrelation.from_fwhm([math.sqrt(2), 0, 0])
    assert nc.lag1_correlation[0] == pytest.approx(0.5)
    assert nc.lag1_correlation[1] == 0.0


def test_zero_filling_matches_sinc_correlation():
    # factor-2 zero filling: neighbour correlation sinc(1/2) = 2/pi
    f = fwhm_from_matrix(96, 192)
    rho = math.exp(-2 * math.log(2) / f ** 2)
    assert rho == pytest.approx(2 / math.pi, rel=1e-3)
    assert fwhm_from_matrix(192, 192) == 0.0
    with pytest.raises(InputDataError):
        fwhm_from_matrix(0, 192)
    nc = noise_from_metadata({"AcquisitionMatrixPE": 96, "ReconMatrixPE": 192, "PhaseEncodingDirection": "i"})
    assert nc.fwhm_vox[0] == pytest.approx(f) and nc.fwhm_vox[1:] == (0.0, 0.0)


def test_roi_variance_independent_is_classical():
    v = np.array([1.0, 2.0, 4.0, 7.0, 3.0])
    rv = roi_variance(v, None, NoiseCorrelation.independent())
    assert rv.n_eff == 5 and rv.df == 4
    assert rv.se == pytest.approx(v.std(ddof=1) / math.sqrt(5))


def test_roi_variance_matches_exact_quadratic_form():
    """Var(mean) = sigma^2 1'R1/n^2 and E[SS] = sigma^2 (n - 1'R1/n), checked by Monte Carlo."""
    rng = np.random.default_rng(3)
    coords = np.argwhere(np.ones((4, 3, 2), bool))
    nc = NoiseCorrelation.from_fwhm([2.0, 2.0, 0.0])
    d2 = (coords[:, None, :] - coords[None, :, :]) ** 2
    r = np.exp(-2 * math.log(2) * (d2[..., 0] + d2[..., 1]) / 4.0) * (d2[..., 2] == 0)
    chol = np.linalg.cholesky(r + 1e-12 * np.eye(len(coords)))
    draws = (chol @ rng.normal(size=(len(coords), 20000))).T
    var_mean = draws.mean(axis=1).var()
    rv = roi_variance(draws[0], coords, nc)
    assert rv.n_eff == pytest.approx(len(coords) ** 2 / r.sum())
    assert var_mean == pytest.approx(r.sum() / len(coords) ** 2, rel=0.05)
    ses = np.array([roi_variance(d, coords, nc).se for d in draws[:3000]])
    assert np.mean(ses ** 2) == pytest.approx(var_mean, rel=0.08)  # unbiased variance of the mean


@pytest.mark.parametrize("fwhm", [0.0, 2.0, 3.0])
def test_reml_recovers_fwhm_from_small_rois(fwhm):
    rng = np.random.default_rng(int(fwhm * 10) + 1)
    field = _gaussian_field(rng, (64, 64, 4), fwhm)
    rois = [(field[x:x + 5, y:y + 5, :2].ravel(), np.argwhere(np.ones((5, 5, 2), bool)))
            for x in range(0, 56, 14) for y in range(0, 56, 14)]
    est = estimate_from_rois(rois, (0.8, 0.8, 4.0))
    assert est.source == "roi-reml" and est.n_values == 16 * 50
    # compare neighbour correlations (an FWHM below ~0.7 voxel means rho1 < 0.06, i.e. none)
    want = NoiseCorrelation.from_fwhm([fwhm, fwhm, 0]).lag1_correlation
    assert est.lag1_correlation[0] == pytest.approx(want[0], abs=0.08)
    assert est.lag1_correlation[1] == pytest.approx(want[1], abs=0.08)
    assert est.lag1_correlation[2] < 0.08
    assert est.fwhm_mm[0] == pytest.approx(0.8 * est.fwhm_vox[0])


def test_forman_estimator_and_errors():
    rng = np.random.default_rng(5)
    field = _gaussian_field(rng, (64, 64, 6), 3.0)
    est = estimate_fwhm(field)
    assert est.fwhm_vox[0] == pytest.approx(3.0, abs=0.2) and est.lag1_correlation[2] < 0.05
    with pytest.raises(InputDataError):
        estimate_fwhm(np.zeros((3, 3)))
    assert not estimate_from_rois([]).known


def test_moment_estimate_guards_against_heavy_tailed_noise():
    """Heavy-tailed noise on a Gaussian-correlated field (FWHM 3 voxels): the estimate is the larger of
    REML and the pooled lag-1 moment estimate, so it is never below the moment estimate (issue #13)."""
    from scipy.ndimage import gaussian_filter

    from dwi_toolkit.analysis.spatial_noise import _lag1_moments, _sq_dists, estimate_from_rois

    rng = np.random.default_rng(3)
    s = 3.0 / np.sqrt(8 * np.log(2))
    field = gaussian_filter(rng.normal(size=(64, 64, 2)), sigma=(s, s, 0), mode="wrap")
    field = np.sinh(1.5 * field / field.std())  # monotone, heavy tails
    box = np.argwhere(np.ones((12, 12, 1), bool))
    rois = [(field[x:x + 12, y:y + 12, :1].ravel(), box) for x in range(0, 52, 13) for y in range(0, 52, 13)]
    est = estimate_from_rois(rois)
    groups = [((v - v.mean()) / v.std(), _sq_dists(box.astype(float))) for v, _ in rois]
    rho_m = _lag1_moments(groups, [0, 1])
    fwhm_m = [np.sqrt(-2 * np.log(2) / np.log(r)) for r in rho_m]
    assert est.fwhm_vox[0] >= fwhm_m[0] - 1e-3 and est.fwhm_vox[1] >= fwhm_m[1] - 1e-3
    assert 2.0 < est.fwhm_vox[0] < 4.0


def test_noise_from_option_fixed_and_metadata():
    from types import SimpleNamespace as R

    from dwi_toolkit.analysis.compare import noise_from_option
    from dwi_toolkit.analysis.spatial_noise import fwhm_from_matrix

    st = R(rows=[R(parameter="adc", voxel_size_mm=(0.8, 0.8, 4.0))])
    assert noise_from_option(None, st) is None and noise_from_option("roi", st) is None
    nc = noise_from_option(2.0, st)
    assert nc.fwhm_mm == pytest.approx((1.6, 1.6, 0.0))
    meta = {"AcquisitionMatrixPE": 80, "ReconMatrixPE": 160, "PhaseEncodingDirection": "j-"}
    nc = noise_from_option("metadata", st, meta)
    assert nc.fwhm_vox == pytest.approx((0.0, fwhm_from_matrix(80, 160), 0.0))
    assert noise_from_option("metadata", st, {}) is None  # falls back to the ROI estimate
    with pytest.raises(InputDataError):
        noise_from_option("wide", st)
