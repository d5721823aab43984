"""IVIM fits: noiseless exactness, OSIPI TF2.4 reference signals, status codes, noise handling.

Truth comes from outside the code under test: the analytic bi-exponential (Le Bihan 1988), the
OSIPI TF2.4 ground-truth signals (shared data) and dipy's IvimModel on the same voxels.
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

from dwi_toolkit.core.image import DWISeries
from dwi_toolkit.errors import FitError, InputDataError
from dwi_toolkit.models.ivim import (
    D_FREE_WATER_37C,
    DEFAULT_BOUNDS,
    STATUS_CODES,
    average_directions,
    fit_ivim,
    ivim_full,
    ivim_segmented,
    ivim_signal,
)
from tests.conftest import shared_path

B = np.array([0, 10, 20, 30, 50, 80, 100, 150, 200, 300, 400, 500, 600, 800, 1000.0])

# OSIPI TF2.4 default tolerances (tests/IVIMmodels/unit_tests/test_ivim_fit.py upstream)
OSIPI_RTOL = {"f": 0.1, "D": 0.1, "Dp": 0.1}
OSIPI_ATOL = {"f": 0.2, "D": 5e-4, "Dp": 0.1}


def _rician(y, sigma, rng):
    return np.abs(y + sigma * rng.standard_normal(y.shape) + 1j * sigma * rng.standard_normal(y.shape))


# ------------------------------------------------------------------------------------ analytic
def test_full_fit_recovers_noiseless_parameters_exactly(rng):
    # the whole interior of the default bounds where the two compartments are separable (D* > 2D)
    n = 600
    f = rng.uniform(0.01, 0.9, n)
    d = rng.uniform(0.1e-3, 4.5e-3, n)
    ds = rng.uniform(5.5e-3, 0.29, n)
    keep = ds > 2 * d
    f, d, ds = f[keep], d[keep], ds[keep]
    s0 = rng.uniform(200, 3000, f.size)
    y = ivim_signal(B, s0, f, d, ds)
    r = ivim_full(y, B)
    assert np.all(r.status == 0)
    np.testing.assert_allclose(r.f, f, rtol=1e-6)
    np.testing.assert_allclose(r.d, d, rtol=1e-6)
    np.testing.assert_allclose(r.dstar, ds, rtol=1e-6)
    np.testing.assert_allclose(r.s0, s0, rtol=1e-6)
    np.testing.assert_allclose(r.rsquared, 1.0, atol=1e-9)


def test_segmented_fit_exact_when_perfusion_has_decayed():
    # D* large enough that exp(-b D*) < 1e-9 for b >= 400: step 1 sees pure diffusion
    b = np.array([0, 5, 10, 20, 40, 60, 100, 400, 600, 800, 1000.0])
    y = ivim_signal(b, 1000.0, np.array([0.1, 0.25]), np.array([1.0e-3, 0.6e-3]), np.array([0.06, 0.08]))
    r = ivim_segmented(y, b, b_threshold=400)
    np.testing.assert_allclose(r.d, [1.0e-3, 0.6e-3], rtol=1e-6)
    np.testing.assert_allclose(r.f, [0.1, 0.25], rtol=1e-5)
    np.testing.assert_allclose(r.dstar, [0.06, 0.08], rtol=1e-4)


def test_at_bound_status_and_limits():
    # pure mono-exponential: f must go to its lower bound -> status 5, D exact
    y = 1000.0 * np.exp(-B * 1.2e-3)[None, :]
    r = ivim_full(y, B)
    assert r.status[0] == 5
    assert r.f[0] == pytest.approx(0.0, abs=1e-6)
    assert r.d[0] == pytest.approx(1.2e-3, rel=1e-5)
    lo, hi = DEFAULT_BOUNDS["dstar"]
    assert lo <= r.dstar[0] <= hi


def test_custom_bounds_are_respected(rng):
    y = _rician(ivim_signal(B, 1000.0, np.full(50, 0.2), 1e-3, 0.05), 20.0, rng)
    r = ivim_full(y, B, bounds={"f": (0.0, 0.15), "D*": (0.01, 0.04)})
    assert np.all(r.f <= 0.15 + 1e-12) and np.all(r.dstar <= 0.04 + 1e-12)
    assert np.all(r.dstar >= 0.01 - 1e-12)
    assert np.any(r.status == 5)


def test_invalid_voxels_get_status_2():
    y = ivim_signal(B, 1000.0, np.full(3, 0.1), 1e-3, 0.03)
    y[1, 0] = 0.0  # non-positive b=0
    y[2, 5] = np.nan
    r = ivim_full(y, B)
    assert r.status.tolist() == [0, 2, 2]
    assert np.isnan(r.d[1]) and np.isnan(r.f[2])


def test_bad_protocols_raise():
    with pytest.raises(FitError, match="b_threshold"):
        ivim_full(np.ones((1, 4)), [0, 50, 100, 300], b_threshold=200)
    with pytest.raises(FitError, match="distinct b-values"):
        ivim_full(np.ones((1, 3)), [0, 400, 800])
    with pytest.raises(InputDataError):
        ivim_full(np.ones((1, 4)), [0, 50, 400])
    with pytest.raises(InputDataError, match="unknown IVIM bound"):
        ivim_full(np.ones((1, B.size)), B, bounds={"x": (0, 1)})


def test_status_codes_documented():
    assert set(STATUS_CODES) == {0, 1, 2, 4, 5}


# ------------------------------------------------------------------------------------ series API
def _series(f_map, d=1.1e-3, ds=0.03, s0=900.0, *, directions=False):
    if not directions:
        data = ivim_signal(B, s0, f_map, d, ds)
        return DWISeries(data, np.diag([1.5, 1.5, 4.0, 1.0]), B, np.zeros((B.size, 3)))
    # three orthogonal directions per b>0 with anisotropic D; geometric mean = trace
    dirs = np.eye(3)
    bvals, bvecs, vols = [0.0], [np.zeros(3)], [ivim_signal([0.0], s0, f_map, d, ds)[..., 0]]
    dd = np.array([0.7, 1.0, 1.3]) * d
    for b in B[1:]:
        for k in range(3):
            bvals.append(b)
            bvecs.append(dirs[k])
            vols.append(ivim_signal([b], s0, f_map, dd[k], ds)[..., 0])
    return DWISeries(np.stack(vols, -1), np.eye(4), np.array(bvals), np.array(bvecs))


def test_fit_ivim_series_mask_maps_and_units():
    f_map = np.full((3, 2, 2), 0.15)
    s = _series(f_map)
    mask = np.ones((3, 2, 2), bool)
    mask[0, 0, 0] = False
    fit = fit_ivim(s, method="full", mask=mask)
    assert fit.status[0, 0, 0] == 1 and np.isnan(fit.d[0, 0, 0])
    ok = fit.status == 0
    assert ok.sum() == 11
    np.testing.assert_allclose(fit.d[ok], 1.1e-3, rtol=1e-6)
    np.testing.assert_allclose(fit.f[ok], 0.15, rtol=1e-6)
    maps = fit.to_maps()
    assert set(maps) == {"d", "dstar", "f", "s0", "rsquared", "status"}
    assert fit.map("D*").unit == "mm^2/s" and fit.map("f").unit == ""
    np.testing.assert_array_equal(fit.map("d").affine, s.affine)
    np.testing.assert_allclose(fit.predict()[ok], s.data[ok], rtol=1e-6)
    assert fit.summary()["status_counts"]["ok"] == 11


def test_fit_ivim_direction_average_gives_trace_d():
    f_map = np.full((2, 1, 1), 0.1)
    s = _series(f_map, d=1.0e-3, directions=True)
    fit = fit_ivim(s, method="segmented", b_threshold=200)
    assert fit.bvals_used.tolist() == B.tolist()
    # trace D is the mean of directional D; the geometric-mean signal is not exactly
    # bi-exponential, so allow the small model error
    np.testing.assert_allclose(fit.d, 1.0e-3, rtol=0.02)


def test_average_directions_keeps_low_b_and_uses_geometric_mean():
    data = np.array([[1000.0, 990.0, 980.0, 400.0, 100.0]])
    b, s = average_directions(data, [0, 1, 2, 1000, 1000], np.array([[0, 0, 0], [1, 0, 0], [1, 0, 0],
                                                                     [1, 0, 0], [0, 1, 0]]))
    assert b.tolist() == [0.0, 1.0, 2.0, 1000.0]
    np.testing.assert_allclose(s[0], [1000.0, 990.0, 980.0, 200.0], rtol=1e-6)


def test_fit_ivim_options_validated():
    s = _series(np.full((1, 1, 1), 0.1))
    with pytest.raises(InputDataError, match="unknown IVIM method"):
        fit_ivim(s, method="bayes")
    with pytest.raises(InputDataError, match="needs sigma"):
        fit_ivim(s, noise_correction="rician")
    with pytest.raises(InputDataError, match="mask shape"):
        fit_ivim(s, mask=np.ones((2, 2, 2), bool))


def test_save_writes_nifti_maps(tmp_path):
    nib = pytest.importorskip("nibabel")
    fit = fit_ivim(_series(np.full((2, 2, 1), 0.12)), method="full")
    paths = fit.save(tmp_path / "out")
    assert set(paths) == set(fit.to_maps())
    img = nib.load(str(paths["d"]))
    np.testing.assert_allclose(np.asarray(img.dataobj), fit.d, rtol=1e-6)
    np.testing.assert_array_equal(img.affine, fit.affine)


def test_chunking_does_not_change_results(rng):
    f_map = rng.uniform(0.05, 0.3, (4, 3, 2))
    s = DWISeries(_rician(ivim_signal(B, 1000.0, f_map, 1e-3, 0.03), 15.0, rng), np.eye(4), B,
                  np.zeros((B.size, 3)))
    a = fit_ivim(s, method="full", chunk_size=5)
    b = fit_ivim(s, method="full")
    np.testing.assert_array_equal(a.status, b.status)
    np.testing.assert_allclose(a.d, b.d, rtol=1e-12)


# ------------------------------------------------------------------------------------ noise floor
@pytest.mark.parametrize("method", ["segmented", "full", "map"])
def test_rician_correction_removes_noise_floor_bias_of_d(method):
    rng = np.random.default_rng(7)
    b = np.array([0, 10, 20, 50, 100, 200, 400, 800, 1200, 1600, 2000.0])
    n, sigma = 300, 50.0  # SNR 20 at b=0; at b=2000 the true signal (~16) is below the floor
    truth_d = 2.0e-3
    y = _rician(ivim_signal(b, 1000.0, np.full(n, 0.1), truth_d, 0.03), sigma, rng)
    s = DWISeries(y.reshape(n, 1, 1, -1), np.eye(4), b, np.zeros((b.size, 3)))
    plain = fit_ivim(s, method=method)
    ric = fit_ivim(s, method=method, noise_correction="rician", sigma=sigma)
    bias_plain = np.median(plain.d) / truth_d - 1
    bias_ric = np.median(ric.d) / truth_d - 1
    assert bias_plain < -0.05  # the floor pulls D down
    assert abs(bias_ric) < abs(bias_plain) / 3
    assert abs(bias_ric) < 0.05


def test_exclusion_drops_samples_below_k_sigma():
    # noiseless signal with a constant offset standing in for the floor: excluding the samples
    # below k*sigma leaves a bi-exponential the fit recovers exactly
    b = np.array([0, 10, 20, 50, 100, 200, 400, 800, 1200, 1600, 2000.0])
    y = ivim_signal(b, 1000.0, np.array([0.1]), 2.0e-3, 0.03)
    corrupted = y.copy()
    corrupted[0, b >= 1600] = 55.0  # floor-like samples (true signal is 36 and 16)
    s = DWISeries(corrupted.reshape(1, 1, 1, -1), np.eye(4), b, np.zeros((b.size, 3)))
    plain = fit_ivim(s, method="full")
    excl = fit_ivim(s, method="full", noise_correction="exclude", sigma=20.0, k=3.0)
    assert abs(plain.d[0, 0, 0] / 2e-3 - 1) > 0.03
    assert excl.d[0, 0, 0] == pytest.approx(2.0e-3, rel=1e-6)


# ------------------------------------------------------------------------------------ OSIPI TF2.4
def _osipi_cases():
    cases = []
    base = shared_path("reference", "osipi_tf24_ivim_reference_signals")
    for name in ("generic.json", "generic_brain.json"):
        doc = json.loads((base / name).read_text())
        bvals = np.array(doc["config"]["bvalues"], dtype=float)
        for tissue, entry in doc.items():
            if tissue == "config":
                continue
            cases.append((f"{name}:{tissue}", bvals, entry))
    return cases


def _tolerance_ratios(truth, est):
    """|error| / (atol + rtol·|truth|) per parameter (OSIPI's assert_allclose criterion)."""
    out = {}
    for key, val in (("f", est[0]), ("D", est[1]), ("Dp", est[2])):
        out[key] = abs(val - truth[key]) / (OSIPI_ATOL[key] + OSIPI_RTOL[key] * abs(truth[key]))
    return out


@pytest.mark.needs_shared_data
@pytest.mark.parametrize("method", ["segmented", "full", "map"])
def test_osipi_reference_signals_within_tolerance(method):
    cases = _osipi_cases()
    fns = {"full": ivim_full, "segmented": ivim_segmented,
           "map": lambda y, b: ivim_full(y, b, dstar_prior=True)}
    worst = {"f": 0.0, "D": 0.0, "Dp": 0.0}
    for label, bvals, entry in cases:
        r = fns[method](np.array(entry["data"])[None, :], bvals)
        assert r.status[0] in (0, 5), label
        ratios = _tolerance_ratios(entry, (r.f[0], r.d[0], r.dstar[0]))
        assert ratios["f"] <= 1, (label, ratios)
        if entry["f"] < 0.8:
            assert ratios["D"] <= 1, (label, ratios)
        if entry["f"] > 0.03:
            assert ratios["Dp"] <= 1, (label, ratios)
        for k in worst:
            worst[k] = max(worst[k], ratios[k])
    # "well inside": every parameter uses less than a quarter of OSIPI's tolerance
    assert max(worst.values()) < 0.25, worst


@pytest.mark.needs_shared_data
def test_osipi_full_fit_close_to_truth_in_relative_terms():
    """Stricter than OSIPI: full fit within 2 % (D), 0.01 absolute (f), 10 % (D*)."""
    for label, bvals, entry in _osipi_cases():
        r = ivim_full(np.array(entry["data"])[None, :], bvals)
        assert abs(r.d[0] / entry["D"] - 1) < 0.02, label
        assert abs(r.f[0] - entry["f"]) < 0.01, label
        assert abs(r.dstar[0] / entry["Dp"] - 1) < 0.10, label


# ------------------------------------------------------------------------------------ dipy Monte-Carlo
@pytest.mark.slow
@pytest.mark.parametrize("snr", [20, 50, 200])
def test_monte_carlo_bias_and_spread_vs_dipy(snr):
    from dipy.core.gradients import gradient_table
    from dipy.reconst.ivim import IvimModel

    rng = np.random.default_rng(100 + snr)
    n = 60
    f = rng.uniform(0.05, 0.3, n)
    d = rng.uniform(0.5e-3, 2.0e-3, n)
    ds = rng.uniform(0.01, 0.08, n)
    y = _rician(ivim_signal(B, 1000.0, f, d, ds), 1000.0 / snr, rng)
    bvecs = np.zeros((B.size, 3))
    bvecs[B > 0] = [1.0, 0.0, 0.0]
    gtab = gradient_table(B, bvecs=bvecs, b0_threshold=0)
    # same bounds as ours; dipy orders parameters (S0, f, D*, D)
    model = IvimModel(gtab, fit_method="trr", bounds=([0, 0, 5e-3, 0], [np.inf, 1, 0.3, 5e-3]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        p = model.fit(y).model_params
    ours = ivim_full(y, B)

    def mae(est, truth, rel):
        err = est - truth
        return float(np.median(np.abs(err / truth if rel else err)))

    # accuracy (median absolute error) at least as good as dipy's, with 10 % slack + a floor
    assert mae(ours.f, f, False) <= 1.1 * mae(p[:, 1], f, False) + 0.002
    assert mae(ours.d, d, True) <= 1.1 * mae(p[:, 3], d, True) + 0.005
    # D* is poorly determined for everyone at low SNR; ask for comparable spread
    assert mae(ours.dstar, ds, True) <= 1.25 * mae(p[:, 2], ds, True) + 0.02


@pytest.mark.parametrize("factor", [1e-3, 7.0, 4096.0])
def test_signal_scale_only_changes_s0(factor, rng):
    y = _rician(ivim_signal(B, 1000.0, rng.uniform(0.05, 0.3, 40), 1e-3, 0.03), 25.0, rng)
    a = ivim_full(y, B)
    b = ivim_full(y * factor, B)
    np.testing.assert_array_equal(a.status, b.status)
    np.testing.assert_allclose(b.s0, a.s0 * factor, rtol=1e-6)
    for name in ("f", "d", "dstar"):
        np.testing.assert_allclose(getattr(b, name), getattr(a, name), rtol=1e-6, atol=1e-12)


def test_per_volume_fit_and_sigma_map():
    f_map = np.full((2, 1, 1), 0.1)
    s = _series(f_map, d=1.0e-3, directions=True)
    sigma = np.full((2, 1, 1), 5.0)
    fit = fit_ivim(s, method="full", noise_correction="rician", sigma=sigma)
    # default for the Rician model: every volume is a sample (1 b=0 + 14 b-values x 3 directions)
    assert fit.bvals_used.size == s.n_volumes
    assert np.all(np.isin(fit.status, (0, 5)))
    np.testing.assert_allclose(fit.d, 1.0e-3, rtol=0.03)
    with pytest.raises(InputDataError, match="sigma"):
        fit_ivim(s, noise_correction="rician", sigma=np.zeros((2, 1, 1)))


def test_fortran_int16_mask_and_memory_refusal(rng, monkeypatch):
    """Data as loaded (Fortran order, int16) fit slab by slab like the C-ordered float copy; a fit
    that cannot fit in memory is refused before allocating."""
    from dwi_toolkit.errors import InsufficientMemoryError
    from dwi_toolkit.models import _chunks

    f_map = rng.uniform(0.05, 0.3, (5, 4, 3))
    noisy = np.round(_rician(ivim_signal(B, 1000.0, f_map, 1e-3, 0.03), 15.0, rng))
    s = DWISeries(noisy, np.eye(4), B, np.zeros((B.size, 3)))
    mask = rng.random(f_map.shape) > 0.3
    ref = fit_ivim(s, mask=mask)
    got = fit_ivim(s.replace(data=np.asfortranarray(noisy.astype(np.int16))), mask=mask, chunk_size=7)
    np.testing.assert_array_equal(got.status, ref.status)
    np.testing.assert_allclose(got.f, ref.f, rtol=1e-9)
    with pytest.raises(InputDataError, match="chunk_size"):
        fit_ivim(s, chunk_size=0)
    monkeypatch.setattr(_chunks, "available_memory", lambda: 100)
    with pytest.raises(InsufficientMemoryError):
        fit_ivim(s)


# ------------------------------------------------------------------------------------ OSIPI TF2.4 protocol
# The simulation protocol behind OSIPI TF2.4's published reference_output.csv
# (github.com/OSIPI/TF2.4_IVIM-MRI_CodeCollection, tests/IVIMmodels/unit_tests/test_ivim_synthetic.py
# at commit dfa7c4f): per tissue and SNR a fresh RandomState(42) draws 300 signals
# |S(b) + N(0, 1/SNR)| with S0 = 1 on the 18 b-values of generic.json. "Best" is the smallest
# normalised RMS error of its 19 algorithms in that cell, from the published mean and SD
# (benchmarks/bench_ivim_osipi.py derives the full table).
OSIPI_B = np.array([0, 1, 2, 5, 10, 20, 30, 50, 75, 100, 150, 250, 350, 400, 550, 700, 850, 1000.0])
OSIPI_CELLS = {  # tissue: (f, D, D*), {SNR: best-of-19 normalised RMS error of (D, f, D*)}
    "spinal cord": ((0.178, 0.41e-3, 28.9e-3), {30: (0.1378, 0.1563, 0.2975), 100: (0.0441, 0.0478, 0.1263)}),
    "muscle": ((0.1, 1.37e-3, 26.3e-3), {30: (0.0784, 0.3530, 0.3504), 100: (0.0236, 0.1260, 0.2568)}),
    "Bone Marrow": ((0.145, 0.43e-3, 50e-3), {30: (0.1150, 0.1742, 0.3041), 100: (0.0345, 0.0498, 0.1619)}),
    "pericardium": ((0.07, 3e-3, 10e-3), {30: (0.0683, 0.7932, 0.5851), 100: (0.0220, 0.3489, 0.7499),
                                          200: (0.00898, 0.1725, 0.2639)}),
}


def _osipi_signals(f, d, dstar, snr, repeats=300):
    rng = np.random.RandomState(42)
    clean = f * np.exp(-OSIPI_B * dstar) + (1 - f) * np.exp(-OSIPI_B * d)
    return np.stack([np.abs(clean + rng.normal(0, 1 / snr, clean.shape)) for _ in range(repeats)])


def _nrmse(est, truth):
    return np.sqrt(np.mean((np.where(np.isfinite(est), est, 0.0) - truth) ** 2)) / truth


def test_default_fit_as_accurate_as_best_osipi_algorithm_on_its_protocol():
    """fit_ivim's default ("map") against the best of OSIPI's 19 algorithms, cell by cell.

    Measured ratios (ours / best): D 0.84–1.39, f 0.87–1.58, D* 0.91–2.45 on these cells; the
    limits leave ~15 % margin, and the pericardium-like cells (low f and D*, D* only 3.3× D, the
    field's worst case) are held to issue 21's targets: no cell worse than 2× (D, f) or 3× (D*).
    Without the D* prior ("full") the pericardium-like cell is several times worse for D*, which
    the last assertion checks.
    """
    limits = {"spinal cord": (1.2, 1.2, 1.3), "muscle": (1.2, 1.25, 1.25), "Bone Marrow": (1.2, 1.2, 1.35),
              "pericardium": (2.0, 2.0, 3.0)}
    for tissue, ((f, d, ds), cells) in OSIPI_CELLS.items():
        for snr, best in cells.items():
            y = _osipi_signals(f, d, ds, snr)
            fit = fit_ivim(DWISeries(y[:, None, None, :], np.eye(4), OSIPI_B, np.zeros((OSIPI_B.size, 3))))
            ours = (_nrmse(fit.d, d), _nrmse(fit.f, f), _nrmse(fit.dstar, ds))
            ratio = np.array(ours) / np.array(best)
            assert np.all(ratio <= limits[tissue]), (tissue, snr, ratio.round(2))
    y = _osipi_signals(0.07, 3e-3, 10e-3, 30)
    r_map = ivim_full(y, OSIPI_B, dstar_prior=True)
    r_full = ivim_full(y, OSIPI_B)
    assert _nrmse(r_full.dstar, 10e-3) > 2.5 * _nrmse(r_map.dstar, 10e-3)


@pytest.mark.parametrize("snr", [np.inf, 2000.0])
def test_full_and_map_agree_with_scipy_curve_fit(snr):
    """Noiseless and very high SNR: the bounded joint fit is scipy's least-squares optimum, and
    the prior of "map" (weighted by the noise) moves it by far less than the noise would."""
    from scipy.optimize import curve_fit

    rng = np.random.default_rng(3)
    n = 40
    truth = np.column_stack([rng.uniform(0.05, 0.3, n), rng.uniform(0.5e-3, 2e-3, n), rng.uniform(10e-3, 80e-3, n)])
    y = ivim_signal(B, 1000.0, truth[:, 0], truth[:, 1], truth[:, 2])
    if np.isfinite(snr):
        y = y + rng.normal(0, 1000.0 / snr, y.shape)
    full = ivim_full(y, B)
    map_ = ivim_full(y, B, dstar_prior=True)

    def model(b, s0, f, d, ds):
        return s0 * (f * np.exp(-b * ds) + (1 - f) * np.exp(-b * d))

    lo, hi = [0, 0, 0, 5e-3], [np.inf, 1, 5e-3, 0.3]
    for v in range(n):
        p0 = [1000.0, *truth[v]]
        ref, _ = curve_fit(model, B, y[v], p0=p0, bounds=(lo, hi), x_scale=[1000, 0.1, 1e-3, 1e-2],
                           xtol=1e-14, ftol=1e-14, gtol=1e-14)
        got = np.array([full.f[v], full.d[v], full.dstar[v]])
        np.testing.assert_allclose(got, ref[1:], rtol=1e-5, atol=1e-9)
        got_map = np.array([map_.f[v], map_.d[v], map_.dstar[v]])
        tol = 1e-6 if not np.isfinite(snr) else 2e-2
        np.testing.assert_allclose(got_map, ref[1:], rtol=tol)


# ------------------------------------------------------------------------------------ "map": D limit and D choice
def test_free_water_limit_is_holz_fit_at_37_celsius():
    """D_FREE_WATER_37C is the Speedy–Angell fit of Holz, Heil & Sacco (2000) at 37 °C."""
    d0, ts, gamma = 1.635e-8, 215.05, 2.063  # m²/s, K (Phys Chem Chem Phys 2000;2:4740)
    d_37 = d0 * (310.15 / ts - 1.0) ** gamma * 1e6  # mm²/s
    assert D_FREE_WATER_37C == pytest.approx(d_37, rel=2e-4)


def test_map_bounds_d_by_free_water_unless_overridden():
    y = ivim_signal(OSIPI_B, 1000.0, np.array([0.1, 0.1]), np.array([2.9e-3, 3.5e-3]), 40e-3)
    r = ivim_full(y, OSIPI_B, dstar_prior=True)
    assert r.d[0] == pytest.approx(2.9e-3, rel=1e-6) and r.status[0] == 0  # below the limit: exact
    assert r.d[1] == pytest.approx(D_FREE_WATER_37C, rel=1e-9) and r.status[1] == 5  # above: at the bound
    lifted = ivim_full(y, OSIPI_B, dstar_prior=True, bounds={"d": (0.0, 5e-3)})
    np.testing.assert_allclose(lifted.d, [2.9e-3, 3.5e-3], rtol=1e-6)
    assert ivim_full(y, OSIPI_B).d[1] == pytest.approx(3.5e-3, rel=1e-6)  # least squares: OSIPI's bounds


def test_map_exact_on_noiseless_data_where_d_star_is_close_to_d():
    """Without noise the joint estimate has no variance, so the biased segmented D is never taken."""
    f, d, ds = np.array([0.07, 0.15, 0.3]), np.array([2.9e-3, 1.3e-3, 1.5e-3]), np.array([10e-3, 10e-3, 12e-3])
    r = ivim_full(ivim_signal(OSIPI_B, 1.0, f, d, ds), OSIPI_B, dstar_prior=True)
    np.testing.assert_allclose(r.d, d, rtol=1e-6)
    np.testing.assert_allclose(r.f, f, rtol=1e-5)
    np.testing.assert_allclose(r.dstar, ds, rtol=1e-5)


def _internal(b_mm, s0, f, d, ds):
    """Parameters and b in the fit's internal units (b in ms/µm², D in µm²/ms)."""
    return b_mm * 1e-3, np.array([[s0, f, d * 1e3, ds * 1e3]])


def test_posterior_variance_of_d_is_the_inverse_fisher_information():
    """Laplace approximation against a finite-difference Jacobian and the prior's curvature."""
    from dwi_toolkit.models.ivim import DSTAR_PRIOR, _posterior_var_d

    b, p = _internal(OSIPI_B, 1.0, 0.1, 1.5e-3, 20e-3)
    s = 0.01

    def model(q):
        return q[0] * (q[1] * np.exp(-b * q[3]) + (1 - q[1]) * np.exp(-b * q[2]))

    jac = np.empty((b.size, 4))
    for k in range(4):
        h = np.zeros(4)
        h[k] = 1e-6 * max(abs(p[0, k]), 1.0)
        jac[:, k] = (model(p[0] + h) - model(p[0] - h)) / (2 * h[k])
    info = jac.T @ jac
    info[3, 3] += (s / DSTAR_PRIOR["log_sd"] / p[0, 3]) ** 2  # d²/dD*² of the prior's penalty / 2
    expected = s * s * np.linalg.inv(info)[2, 2]
    got = _posterior_var_d(p, np.ones((1, b.size)), b, np.array([s]))
    np.testing.assert_allclose(got, expected, rtol=1e-6)


def test_segmented_d_error_estimate_matches_the_segmented_fit():
    """The linearised bias of the segmented D (perfusion left above b_threshold) is the bias the
    segmented step actually has on noiseless data, and with noise the variance adds on."""
    from dwi_toolkit.models.ivim import _segmented_d_mse

    f, d, ds = 0.07, 3e-3, 10e-3
    y = ivim_signal(OSIPI_B, 1.0, f, d, ds)[None, :]
    high = OSIPI_B >= 200
    seg = ivim_segmented(y, OSIPI_B)  # its D is the step-1 estimate from b >= 200
    actual_bias = (seg.d[0] - d) * 1e3
    b, p = _internal(OSIPI_B, 1.0, f, d, ds)
    a_seg = np.array([1 - f])  # intercept of the diffusion component
    mse0 = _segmented_d_mse(p, np.ones((1, b.size)), b, high, np.array([d * 1e3]), a_seg, np.array([0.0]))
    assert actual_bias > 0
    assert np.sqrt(mse0[0]) == pytest.approx(actual_bias, rel=0.01)
    mse1 = _segmented_d_mse(p, np.ones((1, b.size)), b, high, np.array([d * 1e3]), a_seg, np.array([0.01]))
    assert mse1[0] > mse0[0]
