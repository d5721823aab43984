"""Referral audit (Kovacs 2013 design) on a simulated department of 602 requests.

The simulation draws the factors and the class of each request from known proportions and odds
ratios (Kovacs et al., Eur J Radiol 2013;82:1008–1014: 88 % / 1.3 % / 10.6 %; OR 13.75 no referred
pain, 2.25 private practice, 2.50 by specialty), writes referrals whose clinical data give that
class under the criteria, and checks that the audit recovers every known value within its 95 %
interval. κ is compared with an independent implementation.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from dwi_toolkit.clinical.audit import (
    AuditDependencyError,
    audit_referrals,
    cohen_kappa,
    wilson_interval,
    write_audit_summary,
)
from dwi_toolkit.errors import ClinicalDataError

N = 602
P_CLASS = {"appropriate": 0.88, "uncertain": 0.013, "inappropriate": 0.106}
TRUE_OR = {"no_referred_pain": 13.75, "private_practice": 2.25,
           "specialty_ortho_neuro_primary": 2.50}
PREVALENCE = {"no_referred_pain": 0.15, "private_practice": 0.35,
              "specialty_ortho_neuro_primary": 0.6}

COMMON = dict(sex="F", red_flags=[], cauda_equina_signs=[], prior_lumbar_surgery=False,
              new_or_progressive_symptoms=False)
#: One template per class, each decided by a rule of the criteria (A01, A31, A10-like).
TEMPLATES = {
    "appropriate": dict(age=45, pain_duration_weeks=10, conservative_treatment_weeks=8,
                        radicular_pain=True, suspected_condition="disc_herniation",
                        surgery_considered=True),
    "uncertain": dict(age=54, pain_duration_weeks=10, conservative_treatment_weeks=8,
                      radicular_pain=True, suspected_condition="radiculopathy_undetermined",
                      surgery_considered=True),
    "inappropriate": dict(age=35, pain_duration_weeks=4, conservative_treatment_weeks=2,
                          radicular_pain=False, suspected_condition="nonspecific",
                          surgery_considered=False),
}


def _intercept() -> float:
    """Intercept giving a marginal P(inappropriate) of 10.6 % under the true ORs (bisection)."""
    combos = np.array(np.meshgrid([0, 1], [0, 1], [0, 1])).T.reshape(-1, 3)
    prev = np.array([PREVALENCE[k] for k in TRUE_OR])
    w = np.prod(np.where(combos == 1, prev, 1 - prev), axis=1)
    beta = np.log([TRUE_OR[k] for k in TRUE_OR])
    lo, hi = -10.0, 5.0
    for _ in range(80):
        mid = (lo + hi) / 2
        p = np.sum(w / (1 + np.exp(-(mid + combos @ beta))))
        lo, hi = (mid, hi) if p < P_CLASS["inappropriate"] else (lo, mid)
    return (lo + hi) / 2


def _simulate(seed: int = 2013) -> list[dict]:
    rng = np.random.default_rng(seed)
    b0 = _intercept()
    beta = {k: math.log(v) for k, v in TRUE_OR.items()}
    p_unc = P_CLASS["uncertain"] / (P_CLASS["appropriate"] + P_CLASS["uncertain"])
    rows = []
    for i in range(N):
        f = {k: int(rng.random() < PREVALENCE[k]) for k in TRUE_OR}
        eta = b0 + sum(beta[k] * f[k] for k in f)
        if rng.random() < 1 / (1 + math.exp(-eta)):
            klass = "inappropriate"
        else:
            klass = "uncertain" if rng.random() < p_unc else "appropriate"
        # radiologists agree with the criteria 85 % of the time, else pick another class
        rad = klass if rng.random() < 0.85 else str(rng.choice(
            [c for c in P_CLASS if c != klass]))
        rows.append({**COMMON, **TEMPLATES[klass], "id": f"patient-{i}",
                     "referred_pain": not f["no_referred_pain"],
                     "setting": "private" if f["private_practice"] else "public",
                     "prescriber_specialty": ("primary_care" if f["specialty_ortho_neuro_primary"]
                                              else "rheumatology"),
                     "radiologist_assessment": rad})
    return rows


@pytest.fixture(scope="module")
def simulated():
    pytest.importorskip("statsmodels")
    rows = _simulate()
    return rows, audit_referrals(rows)


def test_rates_recover_kovacs_proportions(simulated):
    _, a = simulated
    assert a.n == N and sum(a.counts.values()) == N
    for klass, p in P_CLASS.items():
        r = a.rates[klass]
        assert r.low <= p <= r.high, (klass, r)


def test_odds_ratios_recovered_within_intervals(simulated):
    _, a = simulated
    got = {o.factor: o for o in a.odds_ratios}
    assert set(TRUE_OR) <= set(got)
    for k, true in TRUE_OR.items():
        assert got[k].low <= true <= got[k].high, got[k]
    assert got["no_referred_pain"].odds_ratio > 4  # the dominant factor, as in Kovacs 2013


def test_odds_ratios_equal_independent_fit(simulated):
    """The same model fitted directly with statsmodels on the simulated truth gives equal ORs."""
    sm = pytest.importorskip("statsmodels.api")
    rows, a = simulated
    y = np.array([r["classification"] == "inappropriate" for r in a.referrals], float)
    x = np.column_stack([np.ones(N),
                         [not r["referred_pain"] for r in rows],
                         [r["setting"] == "private" for r in rows],
                         [r["prescriber_specialty"] == "primary_care" for r in rows]]).astype(float)
    ref = np.exp(sm.Logit(y, x).fit(disp=0).params[1:])
    got = {o.factor: o.odds_ratio for o in a.odds_ratios}
    np.testing.assert_allclose([got[k] for k in TRUE_OR], ref, rtol=1e-6)


def test_kappa_equals_reference_implementation(simulated):
    rows, a = simulated
    rad = [r["radiologist_assessment"] for r in rows]
    crit = [r["classification"] for r in a.referrals]
    try:
        from sklearn.metrics import cohen_kappa_score
        ref = cohen_kappa_score(rad, crit)
    except ImportError:
        from statsmodels.stats.inter_rater import cohens_kappa
        labels = list(P_CLASS)
        table = np.zeros((3, 3))
        for r, c in zip(rad, crit):
            table[labels.index(r), labels.index(c)] += 1
        ref = cohens_kappa(table).kappa
    assert a.kappa.kappa == pytest.approx(ref, abs=1e-12)
    assert a.kappa.low < a.kappa.kappa < a.kappa.high and a.kappa.n == N


def test_kappa_hand_computation_published_style_table():
    # 2x2 table of Cohen (1960)-style counts: 40 agree yes, 45 agree no, 15 disagree.
    a = ["y"] * 40 + ["y"] * 5 + ["n"] * 10 + ["n"] * 45
    b = ["y"] * 40 + ["n"] * 5 + ["y"] * 10 + ["n"] * 45
    po, pe = 0.85, 0.45 * 0.50 + 0.55 * 0.50
    assert cohen_kappa(a, b).kappa == pytest.approx((po - pe) / (1 - pe))


def test_wilson_matches_statsmodels():
    pm = pytest.importorskip("statsmodels.stats.proportion")
    for c, n in [(64, 602), (8, 602), (530, 602), (0, 10), (10, 10)]:
        np.testing.assert_allclose(wilson_interval(c, n),
                                   pm.proportion_confint(c, n, method="wilson"), atol=1e-12)


def test_summary_files_html_with_forest_plot_and_no_identifiers(simulated, tmp_path):
    _, a = simulated
    paths = write_audit_summary(a, tmp_path / "audit")
    text = paths["html"].read_text("utf-8")
    assert "data:image/png;base64," in text and "no_referred_pain" in text
    assert paths["forest_png"].read_bytes()[:4] == b"\x89PNG"
    ref_csv = paths["referrals_csv"].read_text("utf-8")
    assert "patient-" not in ref_csv and "patient-" not in text
    assert ref_csv.count("\n") == N + 1
    assert "rate_inappropriate" in paths["summary_csv"].read_text("utf-8")


def test_csv_and_tsv_files_give_the_same_audit(tmp_path):
    header = ("id,age,pain_duration_weeks,conservative_treatment_weeks,radicular_pain,red_flags,"
              "cauda_equina_signs,surgery_considered,prior_lumbar_surgery,"
              "new_or_progressive_symptoms,radiologist_assessment,suspected_condition")
    # "none" = assessed, none present; an empty cell = not recorded (docs/clinical.md)
    lines = ["r1,45,10,8,yes,none,none,yes,no,no,appropriate,disc_herniation",
             "r2,35,4,2,no,none,[],no,no,no,appropriate,",
             "r3,60,5,3,no,unexplained_weight_loss;age_over_50,none,no,no,no,appropriate,"]
    csv_p = tmp_path / "ref.csv"
    csv_p.write_text("\n".join([header, *lines]) + "\n", encoding="utf-8")
    tsv_p = tmp_path / "ref.tsv"
    tsv_p.write_text("\n".join(x.replace(",", "\t") for x in [header, *lines]) + "\n", "utf-8")
    a, b = audit_referrals(csv_p, regression=False), audit_referrals(tsv_p, regression=False)
    assert a.counts == b.counts == {"appropriate": 2, "uncertain": 0, "inappropriate": 1}
    assert a.kappa.observed_agreement == pytest.approx(2 / 3)
    # an empty list cell means "not assessed": red flags unknown leave r2 open (R-MISSING)
    c = audit_referrals([{**dict(zip(header.split(","), lines[1].split(","))), "red_flags": None}],
                        regression=False)
    assert c.referrals[0]["decisive_rules"] == "R-MISSING"


def test_bad_rows_name_row_and_field():
    with pytest.raises(ClinicalDataError, match="row 2.*radicular_pain"):
        audit_referrals([{"age": 40}, {"radicular_pain": "perhaps"}], regression=False)
    with pytest.raises(ClinicalDataError, match="unknown column"):
        audit_referrals([{"agee": 40}], regression=False)
    with pytest.raises(ClinicalDataError, match="radiologist_assessment"):
        audit_referrals([{"radiologist_assessment": "fine"}], regression=False)


def test_missing_statsmodels_gives_clear_message(monkeypatch):
    import builtins
    real = builtins.__import__

    def fake(name, *args, **kw):
        if name.startswith("statsmodels"):
            raise ImportError("no statsmodels")
        return real(name, *args, **kw)

    monkeypatch.setattr(builtins, "__import__", fake)
    rows = _simulate()[:80]
    with pytest.raises(AuditDependencyError, match=r"dwi_toolkit\[audit\]"):
        audit_referrals(rows)


def test_dataframe_input_and_top_level_export():
    pd = pytest.importorskip("pandas")
    import dwi_toolkit as dt

    rows = _simulate()[:40]
    a = dt.audit_referrals(pd.DataFrame(rows), regression=False)
    b = audit_referrals(rows, regression=False)
    assert dt.audit_referrals is audit_referrals and a.counts == b.counts
