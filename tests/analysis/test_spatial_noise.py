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
def test_moment_estimate_recovers_fwhm_from_small_rois(fwhm):
    rng = np.random.default_rng(int(fwhm * 10) + 1)
    field = _gaussian_field(rng, (64, 64, 4), fwhm)
    rois = [(field[x:x + 5, y:y + 5, :2].ravel(), np.argwhere(np.ones((5, 5, 2), bool)))
            for x in range(0, 56, 14) for y in range(0, 56, 14)]
    est = estimate_from_rois(rois, (0.8, 0.8, 4.0))
    assert est.source == "roi-moments" and est.n_values == 16 * 50
    # compare neighbour correlations (an FWHM below ~0.7 voxel means rho1 < 0.06, i.e. none)
    want = NoiseCorrelation.from_fwhm([fwhm, fwhm, 0]).lag1_correlation
    assert est.lag1_correlation[0] == pytest.approx(want[0], abs=0.1)
    assert est.lag1_correlation[1] == pytest.approx(want[1], abs=0.1)
    assert est.lag1_correlation[2] < 0.1
    assert est.fwhm_mm[0] == pytest.approx(0.8 * est.fwhm_vox[0])
    assert all(v >= 0 for v in est.fwhm_var_vox)


def test_centring_correction_removes_the_small_roi_bias():
    """In 4x4 ROIs the plain neighbour correlation of ROI-centred values is biased low (each ROI's mean
    absorbs part of the correlated noise); the centring-corrected estimate is not (mean over 40 fields)."""
    rng = np.random.default_rng(21)
    box = np.argwhere(np.ones((4, 4, 1), bool))
    plain, corrected = [], []
    for _ in range(40):
        field = _gaussian_field(rng, (48, 48, 1), 2.0)
        rois = [(field[x:x + 4, y:y + 4, :].ravel(), box) for x in range(0, 48, 8) for y in range(0, 48, 8)]
        corrected.append(estimate_from_rois(rois).lag1_correlation[0])
        num = sum(float(np.sum((v.reshape(4, 4) - v.mean())[1:] * (v.reshape(4, 4) - v.mean())[:-1])) for v, _ in rois)
        den = sum(float(np.sum((v - v.mean()) ** 2)) * 12 / 16 for v, _ in rois)
        plain.append(num / den)
    truth = math.exp(-2 * math.log(2) / 4.0)  # FWHM 2: rho1 = 0.707
    assert np.mean(plain) < truth - 0.15  # the bias the correction removes
    assert np.mean(corrected) == pytest.approx(truth, abs=0.03)


def test_heavy_tailed_noise_gives_the_variance_of_the_roi_mean():
    """A monotone heavy-tailed transform (sinh) of a FWHM-3 field has a correlation that is a mixture of
    Gaussians (Hermite expansion), like the ADC of a low-SNR scan. The estimate must give the variance of
    an ROI mean (what the intervals need), checked against the Monte Carlo variance of truth-centred means."""
    rng = np.random.default_rng(3)
    s = 3.0 / np.sqrt(8 * np.log(2))
    box = np.argwhere(np.ones((8, 8, 1), bool))
    means, sds, neffs = [], [], []
    for _ in range(12):
        field = gaussian_filter(rng.normal(size=(64, 64, 1)), sigma=(s, s, 0), mode="wrap")
        field = np.sinh(1.5 * field / field.std())  # odd transform: mean 0, heavy tails
        vals = [field[x:x + 8, y:y + 8, :].ravel() for x in range(0, 64, 16) for y in range(0, 64, 16)]
        est = estimate_from_rois([(v, box) for v in vals])
        means += [v.mean() for v in vals]
        sds += [float(np.sqrt(np.mean(v ** 2))) for v in vals]  # truth-centred (mean 0)
        neffs.append(roi_variance(vals[0], box, est).n_eff)
    sigma2 = float(np.mean(np.square(sds)))
    n_eff_mc = sigma2 / float(np.mean(np.square(means)))
    assert np.median(neffs) == pytest.approx(n_eff_mc, rel=0.25)


def test_fwhm_uncertainty_lowers_the_degrees_of_freedom():
    """The sandwich variance of the estimated FWHM tracks its spread over repeated fields, and it lowers
    df_total below the Satterthwaite df of sigma alone; a given FWHM leaves df unchanged."""
    rng = np.random.default_rng(8)
    box = np.argwhere(np.ones((6, 6, 1), bool))
    ests = []
    for _ in range(25):
        field = _gaussian_field(rng, (48, 48, 1), 2.5)
        ests.append(estimate_from_rois([(field[x:x + 6, y:y + 6, :].ravel(), box)
                                        for x in range(0, 48, 12) for y in range(0, 48, 12)]))
    spread = np.var([e.fwhm_vox[0] for e in ests])
    sandwich = np.median([e.fwhm_var_vox[0] for e in ests])
    assert 0.3 * spread < sandwich < 3.0 * spread
    rv = roi_variance(field[:6, :6, :].ravel(), box, ests[-1])
    assert rv.df_total < rv.df and rv.var_grad[0] > 0
    known = roi_variance(field[:6, :6, :].ravel(), box, NoiseCorrelation.from_fwhm(ests[-1].fwhm_vox))
    assert known.df_total == known.df and known.se == pytest.approx(rv.se)


def test_forman_estimator_and_errors():
    rng = np.random.default_rng(5)
    field = _gaussian_field(rng, (64, 64, 6), 3.0)
    est = estimate_fwhm(field)
    assert est.fwhm_vox[0] == pytest.approx(3.0, abs=0.2) and est.lag1_correlation[2] < 0.05
    with pytest.raises(InputDataError):
        estimate_fwhm(np.zeros((3, 3)))
    assert not estimate_from_rois([]).known


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


def test_single_roi_fwhm_variance_unknown_leaves_df():
    rng = np.random.default_rng(4)
    field = _gaussian_field(rng, (32, 32, 1), 2.0)
    box = np.argwhere(np.ones((8, 8, 1), bool))
    est = estimate_from_rois([(field[:8, :8, :].ravel(), box)])
    assert est.known and math.isnan(est.fwhm_var_vox[0])
    rv = roi_variance(field[:8, :8, :].ravel(), box, est)
    assert rv.df_total == rv.df > 0
