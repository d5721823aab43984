"""assess_entrapment classes on synthetic comparisons with known truth."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from dwi_toolkit.analysis.compare import compare_sides
from dwi_toolkit.clinical.entrapment import (
    DEFAULT_THRESHOLD_PCT,
    NOT_INDICATED_STATEMENT,
    assess_entrapment,
)
from dwi_toolkit.errors import InputDataError
from tests.analysis._standin import make_row, table

BASE = 1.20e-3  # mm^2/s, contralateral roots
ALTERED = 1.60e-3  # mm^2/s, altered root (dwi_toolkit References §1.1 table, order of magnitude)


def _roots(rng, altered=None, *, n=40, sd=0.06e-3, levels=("L3", "L4", "L5", "S1")):
    """ROI rows for both sides at each level; `altered` maps (level, side) -> ADC."""
    altered = altered or {}
    rows = []
    for lv in levels:
        for side in ("left", "right"):
            m = altered.get((lv, side), BASE)
            rows.append(make_row(lv, side, rng.normal(m, sd, n)))
    return table(*rows)


def _clin(side="left", levels=("L5",)):
    return SimpleNamespace(radicular_side=side, suspected_levels=None if levels is None else list(levels))


@pytest.fixture
def altered_left_l5(rng):
    return compare_sides(_roots(rng, {("L5", "left"): ALTERED}), symptomatic_side="left", n_boot=500, rng=1)


def test_altered_symptomatic_suspected_level_is_concordant(altered_left_l5):
    ent = assess_entrapment(altered_left_l5, _clin("left", ["L5"]))
    l5 = ent.get("L5")
    assert l5.classification == "concordant"
    assert l5.reasons == ("asymmetry_at_suspected_level",)
    assert l5.direction == "higher" and l5.literature_direction == "higher"
    assert l5.matches_literature_direction is True and l5.suspected is True
    assert l5.index_value == pytest.approx(100 * (ALTERED - BASE) / BASE, abs=5)
    # the symmetric roots are never concordant
    for lv in ("L3", "L4", "S1"):
        assert ent.get(lv).classification == "no_asymmetry"
    assert ent.threshold_pct == DEFAULT_THRESHOLD_PCT
    assert any("not a diagnostic cut-off" in c for c in ent.caveats)


def test_asymmetry_at_unsuspected_level_is_discordant(altered_left_l5):
    ent = assess_entrapment(altered_left_l5, _clin("left", ["S1"]))
    assert ent.get("L5").classification == "discordant"
    assert ent.get("L5").reasons == ("asymmetry_at_unsuspected_level",)
    s1 = ent.get("S1")
    assert s1.classification == "discordant" and s1.reasons == ("no_asymmetry_at_suspected_level",)


def test_symmetric_subject_has_no_concordant_level(rng):
    cmp = compare_sides(_roots(rng), symptomatic_side="left", n_boot=500, rng=2)
    ent = assess_entrapment(cmp, _clin("left", ["L5"]))
    assert not ent.by_class("concordant")
    assert ent.get("L5").classification == "discordant"  # suspected, but no asymmetry measured


def test_lower_value_on_symptomatic_side_reported_as_measured(rng):
    cmp = compare_sides(_roots(rng, {("L5", "right"): ALTERED}), symptomatic_side="left", n_boot=500)
    l5 = assess_entrapment(cmp, _clin("left", ["L5"])).get("L5")
    assert l5.classification == "concordant"  # location matches; direction is reported, not decisive
    assert l5.direction == "lower" and l5.matches_literature_direction is False
    assert "lower on the symptomatic side" in l5.statement
    assert "opposite" in l5.statement


def test_ci_spanning_zero_is_indeterminate():
    # 15 % mean difference but a large voxel spread and few voxels: interval includes zero
    spread = np.array([-1.0, 1.0] * 4) * 0.6 * BASE
    t = table(make_row("L5", "left", 1.15 * BASE + spread), make_row("L5", "right", BASE + spread))
    cmp = compare_sides(t, symptomatic_side="left", n_boot=1000, max_cv=10)
    l5 = assess_entrapment(cmp, _clin("left", ["L5"])).get("L5")
    assert l5.index_value >= DEFAULT_THRESHOLD_PCT
    assert l5.difference_ci_low < 0 < l5.difference_ci_high
    assert l5.classification == "indeterminate" and "ci_spans_zero" in l5.reasons


def test_statement_says_what_the_level_could_have_detected(rng):
    """"No asymmetry" is never left to read as "symmetric" when the data could not have shown 10 %."""
    noisy = compare_sides(_roots(rng, n=6, sd=0.25e-3), symptomatic_side="left", n_boot=200, max_cv=10)
    quiet = compare_sides(_roots(rng, n=200, sd=0.02e-3), symptomatic_side="left", n_boot=200)
    for cmp in (noisy, quiet):
        ent = assess_entrapment(cmp, _clin("left", ["L5"]))
        for lv in ("L3", "L4", "S1"):
            a, row = ent.get(lv), next(r for r in cmp.rows if r.level == lv)
            det = row.detectable_pct
            assert np.isfinite(det) and a.classification != "concordant"
            if det > a.threshold_pct:
                assert f"only a difference of {det:.1f} % or more" in a.statement
                assert "could have been missed" in a.statement
            else:
                assert f"A difference of {det:.1f} % or more would have been detected" in a.statement
    assert any(r.detectable_pct > DEFAULT_THRESHOLD_PCT for r in noisy.rows)
    assert all(r.detectable_pct < DEFAULT_THRESHOLD_PCT for r in quiet.rows)


def test_too_small_missing_and_unmeasured_levels_are_indeterminate():
    t = table(make_row("L4", "left", [ALTERED] * 3), make_row("L4", "right", [BASE] * 3),
              make_row("L5", "left", [ALTERED] * 20))
    cmp = compare_sides(t, symptomatic_side="left", n_boot=200, min_voxels=5)
    ent = assess_entrapment(cmp, _clin("left", ["L4", "L5", "S1"]))
    assert ent.get("L4").reasons[0] == "too_small"
    assert ent.get("L5").reasons[0] == "missing_side"
    s1 = ent.get("S1")
    assert s1.classification == "indeterminate" and s1.reasons == ("level_not_measured",)
    assert all(lv.classification == "indeterminate" for lv in ent.levels)


def test_no_symptomatic_side_is_indeterminate_everywhere(rng):
    cmp = compare_sides(_roots(rng, {("L5", "left"): ALTERED}), symptomatic_side=None, n_boot=300)
    ent = assess_entrapment(cmp, _clin(None, ["L5"]))
    assert {lv.classification for lv in ent.levels} == {"indeterminate"}
    assert all("no_symptomatic_side" in lv.reasons for lv in ent.levels)
    assert "absolute asymmetry" in ent.get("L5").statement


def test_suspected_levels_unknown_side_only_concordance(altered_left_l5):
    ent = assess_entrapment(altered_left_l5, _clin("left", None))
    l5 = ent.get("L5")
    assert l5.classification == "concordant" and l5.suspected is None
    assert l5.reasons == ("asymmetry_on_symptomatic_side",)


def test_threshold_is_user_settable(altered_left_l5):
    ent = assess_entrapment(altered_left_l5, _clin("left", ["L5"]), threshold_pct=60.0)
    assert ent.get("L5").classification == "discordant"  # 33 % is below a 60 % threshold
    assert ent.threshold_pct == 60.0
    ai = assess_entrapment(altered_left_l5, _clin("left", ["L5"]), index="asymmetry_index_pct")
    assert ai.get("L5").index_value == pytest.approx(altered_left_l5.get("L5").asymmetry_index_pct)
    with pytest.raises(InputDataError):
        assess_entrapment(altered_left_l5, threshold_pct=0)
    with pytest.raises(InputDataError):
        assess_entrapment(altered_left_l5, index="ratio_pct")


@pytest.mark.parametrize("indication", [
    "inappropriate",
    {"classification": "inappropriate", "decisive_rules": ["R-NONSPEC"]},
    SimpleNamespace(classification="inappropriate"),
])
def test_not_indicated_adds_management_statement(altered_left_l5, indication):
    ent = assess_entrapment(altered_left_l5, _clin("left", ["L5"]), indication=indication)
    assert ent.indication_class == "inappropriate"
    assert NOT_INDICATED_STATEMENT in ent.statements
    assert "rarely change management" in NOT_INDICATED_STATEMENT
    assert "Kovacs2013-EurJRadiol" in ent.references


def test_indicated_has_no_management_statement(altered_left_l5):
    ent = assess_entrapment(altered_left_l5, {"radicular_side": "left", "suspected_levels": ["L5"]},
                            indication={"classification": "appropriate"})
    assert NOT_INDICATED_STATEMENT not in ent.statements


def test_clinical_side_disagreeing_with_comparison_is_noted(altered_left_l5):
    ent = assess_entrapment(altered_left_l5, _clin("right", ["L5"]))
    assert any("clinical record says 'right'" in c for c in ent.caveats)
    with pytest.raises(InputDataError):
        assess_entrapment(altered_left_l5, symptomatic_side="right")


def test_to_dict_is_json_ready(altered_left_l5):
    import json

    d = assess_entrapment(altered_left_l5, _clin()).to_dict()
    assert d["threshold_is_diagnostic"] is False
    json.dumps(d)


# --------------------------------------------------------------------------- several parameters (issue #13)
def _adc_fa(rng, adc_alt=None, fa_alt=None, *, n=40):
    rows = []
    for lv in ("L4", "L5", "S1"):
        for side in ("left", "right"):
            rows.append(make_row(lv, side, rng.normal((adc_alt or {}).get((lv, side), BASE), 0.06e-3, n)))
            rows.append(make_row(lv, side, rng.normal((fa_alt or {}).get((lv, side), 0.30), 0.03, n),
                                 parameter="fa", unit=""))
    return table(*rows)


def _holm_by_hand(p):
    order = sorted(range(len(p)), key=lambda i: p[i])
    out, running = [0.0] * len(p), 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(p) - rank) * p[i]))
        out[i] = running
    return out


def test_combined_adc_fa_uses_holm_and_finds_fa_only_change(rng):
    # FA lower on the compressed root (meta-analyses, dwi_toolkit References §2.2), ADC unchanged
    cmp = compare_sides(_adc_fa(rng, fa_alt={("L5", "left"): 0.22}), symptomatic_side="left")
    single = assess_entrapment(cmp, _clin(levels=["L5"]))
    combined = assess_entrapment(cmp, _clin(levels=["L5"]), parameter=["adc", "fa"])
    assert single.get("L5").classification != "concordant"
    lv = combined.get("L5")
    assert lv.classification == "concordant" and lv.parameter == "adc+fa"
    assert combined.parameter == "adc+fa" and "Holm" in combined.settings["decision"]
    p = [cmp.get("L5", parameter=x).p_value for x in ("adc", "fa")]
    assert lv.p_holm == pytest.approx(min(_holm_by_hand(p)))
    assert len(lv.components) == 2 and "fa:" in lv.components[1]
    assert any("Holm" in s for s in combined.statements)
    assert assess_entrapment(cmp, _clin(levels=["L5"]), parameter="combined").parameter == "adc+fa"


def test_combined_symmetric_roots_are_not_concordant(rng):
    hits = 0
    for _ in range(10):
        cmp = compare_sides(_adc_fa(rng), symptomatic_side="left")
        ent = assess_entrapment(cmp, _clin(levels=["L4", "L5", "S1"]), parameter=["adc", "fa"])
        hits += len(ent.by_class("concordant"))
    assert hits <= 2  # of 30 symmetric levels; family-wise 5 % and the 10 % threshold


def test_combined_parameter_errors(rng):
    cmp = compare_sides(_roots(rng), symptomatic_side="left")
    t2_only = compare_sides(table(make_row("L5", "left", [0.1] * 6, parameter="t2", unit="ms"),
                                  make_row("L5", "right", [0.1] * 6, parameter="t2", unit="ms")))
    with pytest.raises(InputDataError, match="combined"):
        assess_entrapment(t2_only, parameter="combined")
    with pytest.raises(InputDataError, match="distinct"):
        assess_entrapment(cmp, parameter=["adc", "adc"])


def test_statements_follow_display_conventions(rng):
    """ADC in ×10⁻³ mm²/s with 2 decimals, % with 1 decimal, the minus sign "−" (issue #13)."""
    import re

    cmp = compare_sides(_roots(rng, {("L5", "left"): 1.0e-3}), symptomatic_side="left", n_boot=300, rng=2)
    l5 = assess_entrapment(cmp, _clin("left", ["L5"])).get("L5")
    s = l5.statement
    row = cmp.get("L5")
    assert f"{row.xs * 1e3:.2f} ×10⁻³ mm²/s" in s and f"{row.xc * 1e3:.2f} ×10⁻³ mm²/s" in s
    assert not re.search(r"\d\.\d{3} ×10⁻³", s)
    assert f"−{abs(l5.index_value):.1f} %" in s  # a lower value on the symptomatic side: negative index
    assert "CI −" in s and "CI -" not in s and not re.search(r"(?<![a-z])-\d", s)
