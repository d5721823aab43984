"""ComBat harmonisation (issue 22): removes a site offset, keeps the disease effect, matches neuroCombat."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from scipy import stats

from dwi_toolkit.analysis.harmonize import combat, harmonize, site_effect
from dwi_toolkit.cli.main import main
from dwi_toolkit.errors import InputDataError
from dwi_toolkit.phantom_sessions import simulate_site_table

DISEASED = "L5_left_ganglion_adc"


def _l5_left(rows, group):
    return [r["mean"] for r in rows if r["group"] == group and (r["level"], r["side"]) == ("L5", "left")]


def test_site_offset_removed_and_disease_effect_kept():
    rows = simulate_site_table(seed=1)
    res = harmonize(rows, batch="site", covariates=["group"])
    unaffected = [f for f in res.features if f != DISEASED]
    assert max(res.before[f]["anova_p"] for f in unaffected) < 0.001
    assert min(res.after[f]["anova_p"] for f in res.features) > 0.05
    # per-site means agree after harmonisation to well below the simulated 0.12e-3 offset
    means = res.after["L1_left_ganglion_adc"]["means"]
    assert max(means.values()) - min(means.values()) < 0.03e-3
    pat, con = _l5_left(res.rows, "patient"), _l5_left(res.rows, "control")
    effect = np.mean(pat) - np.mean(con)
    assert effect == pytest.approx(0.25e-3, abs=0.05e-3)
    assert stats.ttest_ind(pat, con).pvalue < 1e-6
    # raw values are kept beside the harmonised ones; the input is not modified
    assert all("mean_raw" in r for r in res.rows) and "mean_raw" not in rows[0]


def test_without_the_covariate_the_disease_effect_is_also_kept_when_balanced():
    res = harmonize(simulate_site_table(seed=2), covariates=[])
    pat, con = _l5_left(res.rows, "patient"), _l5_left(res.rows, "control")
    assert np.mean(pat) - np.mean(con) > 0.15e-3


def test_matches_neurocombat():
    nc = pytest.importorskip("neuroCombat", reason="neuroCombat not installed (pip install dwi_toolkit[harmonize])")
    pd = pytest.importorskip("pandas")
    rng = np.random.default_rng(0)
    y = rng.normal(1.3, 0.1, (8, 45))
    batch = ["A"] * 15 + ["B"] * 18 + ["C"] * 12
    group = rng.integers(0, 2, 45)
    y[:, 15:33] = y[:, 15:33] * 1.4 + 0.2
    y[:, 33:] -= 0.1
    y[2] += 0.3 * group
    ref = nc.neuroCombat(dat=y, covars=pd.DataFrame({"site": batch, "group": group}), batch_col="site",
                         categorical_cols=["group"])["data"]
    ours, _ = combat(y, batch, group[:, None].astype(float))
    # both stop the empirical-Bayes iteration at a relative change of 1e-4: agreement ~1e-6
    np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-9)


def test_location_scale_without_empirical_bayes_equalises_site_means_exactly():
    rng = np.random.default_rng(1)
    y = rng.normal(0, 1, (3, 40))
    y[:, 20:] += 2.0
    out, est = combat(y, ["A"] * 20 + ["B"] * 20, empirical_bayes=False)
    assert not est["empirical_bayes"]
    np.testing.assert_allclose(out[:, :20].mean(axis=1), out[:, 20:].mean(axis=1), atol=1e-12)


def test_refuses_too_few_subjects_per_site():
    rows = simulate_site_table(sites={"A": 10, "B": 2})
    with pytest.raises(InputDataError, match="too few subjects at site"):
        harmonize(rows)
    with pytest.raises(InputDataError, match="at least two sites"):
        harmonize(simulate_site_table(sites={"A": 10}))
    with pytest.raises(InputDataError, match="lacks column"):
        harmonize(rows, batch="scanner")


def test_site_effect_and_boxplot_data():
    eff = site_effect(np.r_[np.zeros(6), np.ones(6)] + np.tile([0, 0.1, -0.1], 4), ["A"] * 6 + ["B"] * 6)
    assert eff["anova_p"] < 1e-6 and eff["means"] == {"A": 0.0, "B": 1.0}
    res = harmonize(simulate_site_table(sites={"A": 6, "B": 6}), covariates=["group"])
    box = res.boxplot_data(DISEASED)
    assert sorted(box) == ["after", "before"] and len(box["before"]["A"]) == 6
    json.dumps(res.summary())
    with pytest.raises(InputDataError):
        res.boxplot_data("L9_up")


def test_dataframe_input_and_cli(tmp_path):
    pd = pytest.importorskip("pandas")
    rows = simulate_site_table(sites={"A": 8, "B": 8}, seed=3)
    res_df = harmonize(pd.DataFrame(rows), covariates=["group"])
    assert len(res_df.features) == 12
    path = tmp_path / "cohort.csv"
    with path.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    assert main(["harmonize", str(path), "-o", str(tmp_path / "h"), "--covariates", "group"]) == 0
    out = list(csv.DictReader((tmp_path / "h" / "harmonized.csv").read_text().splitlines()))
    ref = {(r["subject"], r["level"], r["side"]): r["mean"] for r in res_df.rows}
    assert all(float(r["mean"]) == pytest.approx(ref[(r["subject"], r["level"], r["side"])], rel=1e-6) for r in out)
