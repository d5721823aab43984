"""compare_sides: §2.8 indices against hand-computed formulas, bootstrap CI behaviour, flags."""

from __future__ import annotations

import math

import numpy as np
import pytest

from dwi_toolkit.analysis.compare import INDEX_NAMES, compare_sides, side_indices
from dwi_toolkit.errors import InputDataError
from tests.analysis._standin import correlated_field_table, make_row, table


def _hand(xs, xc):
    """The formulas of dwi_toolkit References §2.8, written out independently."""
    return {
        "ratio_pct": 100.0 * xs / xc,
        "rel_diff_pct": 100.0 * (xs - xc) / xc,
        "asymmetry_index_pct": 100.0 * (xs - xc) / ((xs + xc) / 2.0),
        "abs_asymmetry_index_pct": 100.0 * abs(xs - xc) / ((xs + xc) / 2.0),
    }


def test_worked_example_of_reference():
    # dwi_toolkit References §2.8: Xs = 1.79, Xc = 1.50 -> 119.3 %, +19.3 %, +17.6 %
    ix = side_indices(1.79e-3, 1.50e-3)
    assert round(ix["ratio_pct"], 1) == 119.3
    assert round(ix["rel_diff_pct"], 1) == 19.3
    assert round(ix["asymmetry_index_pct"], 1) == 17.6
    assert ix["rel_diff_pct"] == pytest.approx(ix["ratio_pct"] - 100.0)


@pytest.mark.parametrize("side", ["left", "right"])
@pytest.mark.parametrize("xs,xc", [(1.79e-3, 1.50e-3), (1.1e-3, 1.6e-3), (0.25, 0.34), (2.0e-3, 2.0e-3)])
def test_indices_match_hand_formulas(side, xs, xc):
    other = "right" if side == "left" else "left"
    rng = np.random.default_rng(3)
    vs = xs + rng.normal(0, 0.01 * xs, 25)
    vc = xc + rng.normal(0, 0.01 * xc, 25)
    vs += xs - vs.mean()  # exact means
    vc += xc - vc.mean()
    cmp = compare_sides(table(make_row("L5", side, vs), make_row("L5", other, vc)),
                        symptomatic_side=side, n_boot=200)
    r = cmp.get("L5")
    want = _hand(xs, xc)
    for name in INDEX_NAMES:
        assert getattr(r, name) == pytest.approx(want[name], rel=1e-9, abs=1e-9), name
    assert r.xs == pytest.approx(xs) and r.xc == pytest.approx(xc)
    assert r.difference == pytest.approx(xs - xc)
    assert (r.n_s, r.n_c) == (25, 25)
    assert r.reference_side == other
    assert r.difference_convention == "symptomatic - contralateral"


def test_unknown_side_reports_absolute_asymmetry_only():
    t = table(make_row("L4", "left", [1.2e-3] * 10), make_row("L4", "right", [1.5e-3] * 10),
              make_row("L5", "left", [1.4e-3] * 10), make_row("L5", "right", [1.4e-3] * 10))
    cmp = compare_sides(t, symptomatic_side=None, n_boot=200)
    assert cmp.symptomatic_side is None and cmp.notes
    for r in cmp.rows:
        assert math.isnan(r.ratio_pct) and math.isnan(r.rel_diff_pct) and math.isnan(r.asymmetry_index_pct)
        assert math.isnan(r.xs) and r.difference_convention == "left - right"
    l4 = cmp.get("L4")
    assert l4.abs_asymmetry_index_pct == pytest.approx(_hand(1.2e-3, 1.5e-3)["abs_asymmetry_index_pct"])
    assert l4.difference == pytest.approx(1.2e-3 - 1.5e-3)
    assert cmp.get("L5").abs_asymmetry_index_pct == pytest.approx(0.0)


def test_bilateral_is_treated_as_unknown_with_note():
    t = table(make_row("L5", "left", [1.2e-3] * 8), make_row("L5", "right", [1.3e-3] * 8))
    cmp = compare_sides(t, symptomatic_side="bilateral", n_boot=200)
    assert cmp.symptomatic_side is None
    assert any("bilateral" in n.lower() for n in cmp.notes)


def test_rows_sorted_and_levels_parameters():
    t = table(make_row("S1", "left", [1.0e-3] * 6), make_row("S1", "right", [1.0e-3] * 6),
              make_row("L4", "left", [1.0e-3] * 6), make_row("L4", "right", [1.0e-3] * 6),
              make_row("L4", "left", [0.3] * 6, parameter="fa", unit=""),
              make_row("L4", "right", [0.3] * 6, parameter="fa", unit=""))
    cmp = compare_sides(t, symptomatic_side="left", n_boot=200)
    assert [r.level for r in cmp.rows] == ["L4", "L4", "S1"]
    assert cmp.parameters == ["adc", "fa"]
    only_adc = compare_sides(t, symptomatic_side="left", parameters=["adc"], n_boot=200)
    assert {r.parameter for r in only_adc.rows} == {"adc"}


def test_flags_too_small_missing_noisy_and_no_values():
    rng = np.random.default_rng(0)
    t = table(
        make_row("L3", "left", [1.1e-3, 1.2e-3]), make_row("L3", "right", np.full(20, 1.1e-3)),
        make_row("L4", "left", np.full(20, 1.1e-3)),
        make_row("L5", "left", np.abs(rng.normal(1.1e-3, 1.0e-3, 30))),
        make_row("L5", "right", np.full(30, 1.1e-3)),
        make_row("S1", "left", np.full(20, 1.1e-3), keep_values=False),
        make_row("S1", "right", np.full(20, 1.2e-3), keep_values=False),
    )
    cmp = compare_sides(t, symptomatic_side="left", n_boot=200, min_voxels=5)
    assert "too_small" in cmp.get("L3").flags and not cmp.get("L3").comparable
    assert "missing_side" in cmp.get("L4").flags and cmp.get("L4").n_c == 0
    assert "noisy" in cmp.get("L5").flags and "too_small" not in cmp.get("L5").flags
    s1 = cmp.get("S1")
    assert "no_voxel_values" in s1.flags and math.isnan(s1.difference_ci_low)
    assert s1.rel_diff_pct == pytest.approx(_hand(1.1e-3, 1.2e-3)["rel_diff_pct"])


def test_bootstrap_ci_agrees_with_scipy_bootstrap():
    from scipy import stats

    rng = np.random.default_rng(11)
    a = rng.normal(1.5e-3, 0.2e-3, 40)
    b = rng.normal(1.3e-3, 0.2e-3, 35)
    cmp = compare_sides(table(make_row("L5", "left", a), make_row("L5", "right", b)),
                        symptomatic_side="left", n_boot=4000, rng=1, interval="iid-bootstrap")
    r = cmp.get("L5")
    res = stats.bootstrap((a, b), lambda x, y, axis=-1: x.mean(axis) - y.mean(axis), n_resamples=4000,
                          method="percentile", confidence_level=0.95, vectorized=True, random_state=2)
    width = res.confidence_interval.high - res.confidence_interval.low
    assert r.difference_ci_low == pytest.approx(res.confidence_interval.low, abs=0.08 * width)
    assert r.difference_ci_high == pytest.approx(res.confidence_interval.high, abs=0.08 * width)
    assert r.ci_excludes_zero is True


def test_bootstrap_ci_coverage_monte_carlo():
    """The 95 % interval covers the true difference at about the nominal rate."""
    rng = np.random.default_rng(20261124)
    n_rep, n = 300, 40
    true_s, true_c, sd = 1.45e-3, 1.30e-3, 0.25e-3
    hits = 0
    for _ in range(n_rep):
        t = table(make_row("L5", "left", rng.normal(true_s, sd, n)),
                  make_row("L5", "right", rng.normal(true_c, sd, n)))
        r = compare_sides(t, symptomatic_side="left", n_boot=600, rng=rng,
                          interval="iid-bootstrap").rows[0]
        hits += r.difference_ci_low <= true_s - true_c <= r.difference_ci_high
    coverage = hits / n_rep
    # binomial SD at p=0.95, n=300 is 1.3 %; the percentile bootstrap runs slightly low for n=40.
    assert 0.90 <= coverage <= 0.99, coverage


def test_same_seed_same_interval_and_default_is_reproducible():
    rng = np.random.default_rng(5)
    t = table(make_row("L5", "left", rng.normal(1.5e-3, 2e-4, 30)),
              make_row("L5", "right", rng.normal(1.3e-3, 2e-4, 30)))
    a = compare_sides(t, symptomatic_side="left", interval="iid-bootstrap").rows[0]
    b = compare_sides(t, symptomatic_side="left", interval="iid-bootstrap").rows[0]
    assert (a.difference_ci_low, a.difference_ci_high) == (b.difference_ci_low, b.difference_ci_high)
    assert a.left_ci_low < a.value_left < a.left_ci_high


def test_errors():
    t = table(make_row("L5", "left", [1e-3] * 6), make_row("L5", "left", [1e-3] * 6))
    with pytest.raises(InputDataError, match="two ROI statistics rows"):
        compare_sides(t, symptomatic_side="left")
    with pytest.raises(InputDataError, match="symptomatic_side"):
        compare_sides(table(), symptomatic_side="up")
    with pytest.raises(InputDataError, match="RoiStatsTable"):
        compare_sides([1, 2, 3])
    with pytest.raises(InputDataError, match="n_boot"):
        compare_sides(table(), n_boot=10)
    with pytest.raises(InputDataError, match="ci"):
        compare_sides(table(), ci=95)


def test_records_and_html_escape():
    t = table(make_row("L5", "left", [1.6e-3] * 6, segment="<b>x</b>"),
              make_row("L5", "right", [1.2e-3] * 6, segment="<b>x</b>"))
    cmp = compare_sides(t, symptomatic_side="left", n_boot=200, interval="iid-bootstrap")
    rec = cmp.to_records()[0]
    assert "values" not in rec and rec["flags"] == "" and rec["unit"] == "mm^2/s"
    html = cmp._repr_html_()
    assert "<b>x</b>" not in html and "&lt;b&gt;x&lt;/b&gt;" in html


from hypothesis import given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_pos = st.floats(min_value=1e-5, max_value=1e3, allow_nan=False, allow_infinity=False)


@given(_pos, _pos)
def test_index_identities(xs, xc):
    """§2.8 identities: rel = ratio − 100; AI antisymmetric under side swap; |AI| < 200 %."""
    a, b = side_indices(xs, xc), side_indices(xc, xs)
    assert a["rel_diff_pct"] == pytest.approx(a["ratio_pct"] - 100.0, rel=1e-9, abs=1e-9)
    assert a["asymmetry_index_pct"] == pytest.approx(-b["asymmetry_index_pct"], rel=1e-9, abs=1e-12)
    assert a["abs_asymmetry_index_pct"] == pytest.approx(abs(a["asymmetry_index_pct"]))
    assert -200.0 < a["asymmetry_index_pct"] < 200.0
    assert np.sign(a["asymmetry_index_pct"]) == np.sign(xs - xc)


# --------------------------------------------------------------------------- issue #13
from dwi_toolkit.analysis.compare import adjacent_levels  # noqa: E402
from dwi_toolkit.analysis.power import detectable_difference, holm  # noqa: E402
from dwi_toolkit.analysis.spatial_noise import NoiseCorrelation  # noqa: E402


def _field_table(rng, fwhm, n_side=4, levels=("L3", "L4", "L5", "S1"), shift=None):
    """ROI rows with voxel positions cut from one correlated-noise field (values in mm^2/s)."""
    return correlated_field_table(rng, fwhm, n_side=n_side, levels=levels, shape=(60, 60, 3), sd=0.1e-3,
                                  y0=5, spacing=12, shift=shift)


def test_every_row_carries_method_noise_neff_and_detectable():
    rng = np.random.default_rng(2)
    cmp = compare_sides(_field_table(rng, 2.5), symptomatic_side="left")
    for r in cmp.rows:
        assert r.interval_method == "effective-n" and r.noise_source == "roi-moments"
        assert 1.5 < r.noise_fwhm_i_mm < 3.5 and r.noise_fwhm_k_mm < 3.2   # < 0.8 voxel of 4 mm: rho1 < 0.12
        assert 1 < r.n_eff_s < r.n_s and 1 < r.n_eff_c < r.n_c            # correlated: fewer than n
        assert r.detectable_pct > 0 and r.detectable_difference > 0
        assert r.difference_ci_low < r.difference < r.difference_ci_high
    rec = cmp.to_records()[0]
    for k in ("interval_method", "noise_fwhm_i_mm", "n_eff_s", "n_eff_c", "detectable_pct", "p_value"):
        assert k in rec
    assert cmp.settings["noise"]["adc"]["source"] == "roi-moments"


def test_effective_n_interval_is_wider_than_iid_on_correlated_noise():
    rng = np.random.default_rng(8)
    t = _field_table(rng, 3.0)
    eff = compare_sides(t, symptomatic_side="left").get("L4")
    iid = compare_sides(t, symptomatic_side="left", interval="iid-bootstrap").get("L4")
    w_eff = eff.difference_ci_high - eff.difference_ci_low
    w_iid = iid.difference_ci_high - iid.difference_ci_low
    assert w_eff > 1.5 * w_iid
    assert iid.interval_method == "iid-bootstrap"


def test_detectable_difference_is_the_power_formula():
    from scipy import stats

    rng = np.random.default_rng(1)
    a, b = rng.normal(1.3e-3, 1e-4, 30), rng.normal(1.2e-3, 1e-4, 30)
    r = compare_sides(table(make_row("L5", "left", a), make_row("L5", "right", b)), symptomatic_side="left",
                      noise=NoiseCorrelation.independent()).get("L5")
    se = math.sqrt(a.var(ddof=1) / 30 + b.var(ddof=1) / 30)
    assert r.difference_se == pytest.approx(se)
    welch = stats.ttest_ind(a, b, equal_var=False)
    assert r.p_value == pytest.approx(welch.pvalue, rel=1e-6)
    want = (stats.t.ppf(0.975, r.difference_df) + stats.t.ppf(0.8, r.difference_df)) * se
    assert r.detectable_difference == pytest.approx(want)
    assert r.detectable_pct == pytest.approx(100 * want / b.mean())
    assert detectable_difference(1.0, math.inf) == pytest.approx(1.959964 + 0.841621, rel=1e-5)


def test_adjacent_reference_rows_and_values():
    rng = np.random.default_rng(3)
    t = _field_table(rng, 0.0, shift={("L4", "left"): 0.2})
    cmp = compare_sides(t, symptomatic_side="bilateral", reference="adjacent",
                        noise=NoiseCorrelation.independent())
    assert {r.reference for r in cmp.rows} == {"adjacent"}
    assert len(cmp.rows) == 8                                   # 4 levels x 2 sides
    l4 = cmp.get("L4", side="left")
    assert l4.reference_levels == "L3;L5"
    left = {r.level: r.mean for r in t.rows if r.side == "left"}
    assert l4.xc == pytest.approx((left["L3"] + left["L5"]) / 2)
    assert l4.xs == pytest.approx(left["L4"])
    assert l4.rel_diff_pct == pytest.approx(100 * (l4.xs / l4.xc - 1))
    assert l4.ci_excludes_zero and l4.rel_diff_pct > 10
    assert cmp.get("S1", side="right").reference_levels == "L5"
    assert adjacent_levels("L1", ["L1", "L2"]) == ["L2"]


def test_rows_without_positions_are_flagged_and_unknown_options_rejected():
    t = table(make_row("L5", "left", [1.1e-3, 1.3e-3, 1.2e-3]), make_row("L5", "right", [1.2e-3, 1.0e-3, 1.1e-3]))
    cmp = compare_sides(t, symptomatic_side="left")
    assert "noise_correlation_unknown" in cmp.rows[0].flags and cmp.notes
    with pytest.raises(InputDataError, match="unknown option"):
        compare_sides(t, n_bootstrap=10)
    with pytest.raises(InputDataError, match="interval"):
        compare_sides(t, interval="block")
    with pytest.raises(InputDataError, match="reference"):
        compare_sides(t, reference="mirror")


def test_holm_matches_statsmodels_definition():
    # Holm 1979 by hand: sorted p (0.01, 0.03, 0.04) * (3, 2, 1) -> 0.03, 0.06, max(0.06, 0.04)
    assert holm([0.04, 0.01, 0.03]) == pytest.approx([0.06, 0.03, 0.06])
    assert math.isnan(holm([math.nan, 0.2])[0]) and holm([math.nan, 0.2])[1] == 0.2


def test_welch_df_counts_the_shared_fwhm_uncertainty_once():
    """Two ROIs whose SEs rest on one estimated FWHM: df = (2 s^2)^2 / (2 s^4/d + (2 g)^2 v / 2), the
    shared term added before squaring; a pooled reference composes to the same three-part formula."""
    from dwi_toolkit.analysis.power import MeanEstimate, contrast, pooled_mean

    s, d, g, v = 0.1, 20.0, 0.004, 0.09
    a = MeanEstimate(1.0, s, d, (g, 0.0, 0.0), (v, 0.0, 0.0))
    c = contrast(a, MeanEstimate(0.9, s, d, (g, 0.0, 0.0), (v, 0.0, 0.0)))
    assert c.df == pytest.approx((2 * s * s) ** 2 / (2 * s ** 4 / d + (2 * g) ** 2 * v / 2))
    assert c.df < contrast(MeanEstimate(1.0, s, d), MeanEstimate(0.9, s, d)).df == pytest.approx(2 * d)
    assert a.df_total == pytest.approx(s ** 4 / (s ** 4 / d + g * g * v / 2))
    b1, b2 = (MeanEstimate(m, s, d, (g, 0.0, 0.0), (v, 0.0, 0.0)) for m in (0.8, 1.0))
    c3 = contrast(a, pooled_mean([b1, b2]))
    se2 = [s * s, s * s / 4, s * s / 4]
    want = sum(se2) ** 2 / (sum(x * x / d for x in se2) + (g + g / 4 + g / 4) ** 2 * v / 2)
    assert c3.se == pytest.approx(math.sqrt(sum(se2))) and c3.df == pytest.approx(want)
