"""Rule set v1 (dwi_toolkit References §3.10): vignettes, hand-written cases, outputs."""

from __future__ import annotations

import json

import pytest

from dwi_toolkit.clinical.indication import (
    CLASSES,
    DEFAULT_STENOSIS_POLICY,
    IndicationAssessment,
    assess_indication,
    load_rule_table,
)
from dwi_toolkit.clinical.vocab import DECISIVE_RED_FLAGS, ClinicalInput
from dwi_toolkit.errors import ClinicalDataError
from tests.conftest import SHARED_TESTDATA

VIGNETTE_FILE = SHARED_TESTDATA / "indication_vignettes.json"


def _vignettes():
    if not VIGNETTE_FILE.exists():
        return [pytest.param(None, marks=pytest.mark.skip(
            reason=f"shared test data not found: {VIGNETTE_FILE} (set DWI_TOOLKIT_SHARED)"))]
    return [pytest.param(v, id=v["id"]) for v in json.loads(VIGNETTE_FILE.read_text("utf-8"))]


# ------------------------------------------------------------------------------------------
# Shared vignettes (dwi_toolkit References §3.11)
# ------------------------------------------------------------------------------------------
@pytest.mark.needs_shared_data
@pytest.mark.parametrize("vignette", _vignettes())
def test_vignette_class_and_decisive_rules(vignette):
    a = assess_indication(ClinicalInput.from_vignette(vignette))
    assert a.classification == vignette["expected"], a.explanation
    if vignette.get("decisive_rules"):
        assert list(a.decisive_rules) == vignette["decisive_rules"], a.explanation
    # the raw vignette mapping is accepted as it stands (labels ignored)
    assert assess_indication(vignette).to_dict() == a.to_dict()


@pytest.mark.needs_shared_data
@pytest.mark.parametrize("vignette", _vignettes())
def test_vignette_policy_sensitivity(vignette):
    """`policy_sensitive` is v2's "the per-guideline verdicts differ" (issue #19).

    Four file labels (written for v1) are superseded, each by guideline text:
    """
    a = assess_indication(ClinicalInput.from_vignette(vignette))
    expected = V2_POLICY_SENSITIVE.get(vignette["id"], vignette["policy_sensitive"])
    assert a.policy_sensitive == expected, [v.to_dict() for v in a.guideline_verdicts]


#: Vignettes whose v1 ``policy_sensitive`` label changes in v2, with the guideline passage.
V2_POLICY_SENSITIVE = {
    # age > 50 is a weaker cancer risk factor with or without sciatica: ACP 2011 Table 2
    # "defer imaging after a trial of therapy: radiography +/- ESR" (10 weeks, no surgery).
    "A03": True,
    # ACP 2007 rec 4 / ACP 2011 Table 2: MRI for radiculopathy in surgical candidates after a
    # trial of about 1 month (5 weeks here) vs 6 weeks in ACR 2021 V3 and Kovacs 2013.
    "A05": True,
    # ACP 2011 Table 2 fracture risk (age > 65 in men) after the 1-month trial: radiography first;
    # European 2006 red flag "onset > 55 years" - with or without sciatica.
    "A09": True,
    # Radiculopathy of undetermined cause, 8 weeks, surgery considered: NG59 1.1.6, ACP (1 month),
    # ACR 2021 V3 (6 weeks) support MRI; Kovacs 2013's 12-week stenosis threshold leaves it open.
    "A31": True,
}


@pytest.mark.needs_shared_data
@pytest.mark.parametrize("vignette", _vignettes())
def test_vignette_acr_variant(vignette, request):
    if vignette["id"] == "A31":
        # The variant is informational (§3.11). A31 (radicular pain, cause undetermined, surgery
        # considered after 8 weeks of failed care) matches the text of ACR 2021 variant 3 ("surgery
        # or intervention candidate ... after 6 weeks"), as A07 (stenosis, 8 weeks) does in the
        # same file; the file gives null. We encode the variant text, not the label.
        request.applymarker(pytest.mark.xfail(strict=True, reason="file label differs from V3 text"))
    a = assess_indication(ClinicalInput.from_vignette(vignette))
    if vignette["id"] == "A22":
        # Radicular pain unknown, surgery considered after 8 weeks: ACR 2021 V3 reads "with or
        # without radiculopathy", so the variant does not depend on the unknown field (v2 takes
        # the variant from the ACR criteria; the v1 label null assumed V3 needs radicular pain).
        assert a.acr_2021_variant == 3 and vignette["acr_2021_variant"] is None
        return
    assert a.acr_2021_variant == vignette["acr_2021_variant"]


@pytest.mark.needs_shared_data
def test_vignette_citations_use_section5_keys():
    keys = set(load_rule_table()["references"])
    for p in _vignettes():
        v = p.values[0]
        if v is None:
            pytest.skip("no vignettes")
        a = assess_indication(ClinicalInput.from_vignette(v))
        assert a.citations and all(c.split(" ")[0] in keys for c in a.citations)
        assert set(a.references) == {c.split(" ")[0] for c in a.citations}


# ------------------------------------------------------------------------------------------
# Hand-written cases written from the text of §3.10 (no shared data needed)
# ------------------------------------------------------------------------------------------
BASE = dict(age=45, sex="F", pain_duration_weeks=20, conservative_treatment_weeks=16,
            radicular_pain=True, radicular_side="left", referred_pain=True,
            suspected_condition="disc_herniation", red_flags=[], cauda_equina_signs=[],
            surgery_considered=True, prior_lumbar_surgery=False,
            new_or_progressive_symptoms=False, prior_lumbar_mri_months_ago=None,
            clinical_change_since_prior_mri=None, setting="public",
            prescriber_specialty="neurosurgery")

CASES = [
    # (id, changes to BASE, expected class, expected decisive rules)
    ("disc-met", {}, "appropriate", ["R-DISC-6W"]),
    ("disc-exactly-6w", dict(pain_duration_weeks=6, conservative_treatment_weeks=6),
     "appropriate", ["R-DISC-6W"]),
    ("disc-5.9w", dict(pain_duration_weeks=8, conservative_treatment_weeks=5.9),
     "inappropriate", ["R-DISC-6W"]),
    ("disc-no-surgery", dict(surgery_considered=False), "inappropriate", ["R-DISC-6W"]),
    ("stenosis-11w", dict(suspected_condition="spinal_stenosis", conservative_treatment_weeks=11),
     "inappropriate", ["R-STEN-12W"]),
    ("stenosis-12w", dict(suspected_condition="spinal_stenosis", conservative_treatment_weeks=12),
     "appropriate", ["R-STEN-12W"]),
    ("unknown-cause-4w", dict(suspected_condition=None, conservative_treatment_weeks=4),
     "inappropriate", ["R-RAD-UNK"]),
    ("unknown-cause-7w", dict(suspected_condition="postoperative_recurrence",
                              conservative_treatment_weeks=7), "uncertain", ["R-RAD-UNK"]),
    ("unknown-cause-12w", dict(suspected_condition="radiculopathy_undetermined",
                               conservative_treatment_weeks=12), "appropriate", ["R-RAD-UNK"]),
    ("unknown-cause-no-surgery", dict(suspected_condition="radiculopathy_undetermined",
                                      surgery_considered=False), "inappropriate", ["R-RAD-UNK"]),
    ("ces-before-scope", dict(age=12, cauda_equina_signs=["faecal_incontinence"]),
     "appropriate", ["R-CES"]),
    ("red-flag-child", dict(age=14, red_flags=["fever"]), "appropriate", ["R-RF"]),
    ("child-no-flags", dict(age=15.9), "uncertain", ["R-SCOPE"]),
    ("sixteen-is-adult", dict(age=16), "appropriate", ["R-DISC-6W"]),
    ("postop", dict(prior_lumbar_surgery=True, new_or_progressive_symptoms=True,
                    conservative_treatment_weeks=0), "appropriate", ["R-POSTOP"]),
    ("postop-stable", dict(prior_lumbar_surgery=True, conservative_treatment_weeks=1),
     "inappropriate", ["R-DISC-6W"]),
    ("inconsistent", dict(pain_duration_weeks=4, conservative_treatment_weeks=5),
     "uncertain", ["R-INCONSISTENT"]),
    ("repeat-11.9m", dict(prior_lumbar_mri_months_ago=11.9, clinical_change_since_prior_mri=False),
     "inappropriate", ["R-REPEAT"]),
    ("repeat-12m-does-not-apply", dict(prior_lumbar_mri_months_ago=12,
                                       clinical_change_since_prior_mri=False),
     "appropriate", ["R-DISC-6W"]),
    ("repeat-with-change", dict(prior_lumbar_mri_months_ago=3, clinical_change_since_prior_mri=True),
     "appropriate", ["R-DISC-6W"]),
    ("repeat-beats-red-flag?-no", dict(prior_lumbar_mri_months_ago=3,
                                      clinical_change_since_prior_mri=False,
                                      red_flags=["history_of_cancer"]), "appropriate", ["R-RF"]),
    ("nonradicular-malignancy-label-only", dict(radicular_pain=False,
                                                suspected_condition="suspected_malignancy"),
     "inappropriate", ["R-NONSPEC"]),
    ("nonradicular-two-age-features-count-once", dict(radicular_pain=False, age=75,
                                                      red_flags=["age_over_50", "age_over_70"]),
     "inappropriate", ["R-NONSPEC"]),
    ("nonradicular-two-weak", dict(radicular_pain=False, red_flags=["thoracic_pain", "night_pain"]),
     "uncertain", ["R-WEAK"]),
    # v2 (issue #19): weak features count with sciatica too (ACP 2011 Table 2; European 2006)
    ("radicular-counts-weak", dict(red_flags=["thoracic_pain", "night_pain"],
                                   conservative_treatment_weeks=2), "uncertain", ["R-WEAK"]),
    ("radicular-one-weak", dict(red_flags=["night_pain"], conservative_treatment_weeks=2),
     "inappropriate", ["R-DISC-6W"]),
    ("bilateral-is-not-ces", dict(radicular_side="bilateral", suspected_condition="spinal_stenosis",
                                  conservative_treatment_weeks=8), "inappropriate", ["R-STEN-12W"]),
    # §3.10 worked examples of missing data
    ("unknown-surgery-2w", dict(surgery_considered=None, conservative_treatment_weeks=2),
     "inappropriate", ["R-DISC-6W"]),
    ("unknown-flags-stenosis-met", dict(red_flags=None, suspected_condition="spinal_stenosis"),
     "appropriate", ["R-STEN-12W"]),
    ("unknown-surgery-10w", dict(surgery_considered=None, conservative_treatment_weeks=10),
     "uncertain", ["R-MISSING"]),
    ("unknown-treatment-pain-4w", dict(conservative_treatment_weeks=None, pain_duration_weeks=4),
     "inappropriate", ["R-DISC-6W"]),
    ("unknown-treatment-pain-9w", dict(conservative_treatment_weeks=None, pain_duration_weeks=9),
     "uncertain", ["R-MISSING"]),
    ("unknown-ces-otherwise-inappropriate", dict(cauda_equina_signs=None,
                                                 conservative_treatment_weeks=1),
     "uncertain", ["R-MISSING"]),
    ("unknown-change-recent-mri", dict(prior_lumbar_mri_months_ago=2,
                                       clinical_change_since_prior_mri=None),
     "uncertain", ["R-MISSING"]),
    ("unknown-age-adult-flag", dict(age=None, red_flags=["age_over_50"]), "appropriate",
     ["R-DISC-6W"]),
    ("unknown-age", dict(age=None), "uncertain", ["R-MISSING"]),
    ("unknown-pain-duration", dict(pain_duration_weeks=None), "appropriate", ["R-DISC-6W"]),
    ("unknown-radicular-both-inappropriate", dict(radicular_pain=None, conservative_treatment_weeks=2),
     "inappropriate", ["R-NONSPEC", "R-DISC-6W"]),
    ("inconsistent-by-half-a-week", dict(pain_duration_weeks=4, conservative_treatment_weeks=4.5),
     "uncertain", ["R-INCONSISTENT"]),
    ("unknown-treatment-pain-exactly-6w", dict(conservative_treatment_weeks=None,
                                              pain_duration_weeks=6), "uncertain", ["R-MISSING"]),
    ("unknown-treatment-stenosis-pain-exactly-12w", dict(
        conservative_treatment_weeks=None, pain_duration_weeks=12,
        suspected_condition="spinal_stenosis"), "uncertain", ["R-MISSING"]),
    ("unknown-treatment-stenosis-pain-11w", dict(
        conservative_treatment_weeks=None, pain_duration_weeks=11.5,
        suspected_condition="spinal_stenosis"), "inappropriate", ["R-STEN-12W"]),
    ("inconsistent-with-unknown-surgery", dict(pain_duration_weeks=4, conservative_treatment_weeks=5,
                                               surgery_considered=None),
     "uncertain", ["R-INCONSISTENT"]),
]


@pytest.mark.parametrize("case_id, changes, expected, rules", CASES, ids=[c[0] for c in CASES])
def test_hand_written_case(case_id, changes, expected, rules):
    a = assess_indication(ClinicalInput(**{**BASE, **changes}))
    assert a.classification == expected, a.explanation
    assert list(a.decisive_rules) == rules, a.explanation


def test_missing_fields_that_mattered_are_named():
    a = assess_indication(ClinicalInput(**{**BASE, "surgery_considered": None,
                                            "conservative_treatment_weeks": 10,
                                            "sex": None, "setting": None}))
    assert a.decisive_rules == ("R-MISSING",)
    assert a.missing_fields == ("surgery_considered",)
    assert {"sex", "setting", "surgery_considered"} <= set(a.unrecorded_fields)
    assert a.possible_classes == ("appropriate", "inappropriate")
    assert "surgery_considered" in a.explanation
    two = assess_indication(ClinicalInput(**{**BASE, "surgery_considered": None,
                                              "conservative_treatment_weeks": None,
                                              "pain_duration_weeks": 30}))
    assert set(two.missing_fields) == {"surgery_considered", "conservative_treatment_weeks"}


def test_unknown_cause_uncertain_names_suspected_condition():
    a = assess_indication(ClinicalInput(**{**BASE, "suspected_condition": None,
                                            "conservative_treatment_weeks": 8}))
    assert a.classification == "uncertain" and a.missing_fields == ("suspected_condition",)


def test_stenosis_policy_switch():
    case = ClinicalInput(**{**BASE, "suspected_condition": "spinal_stenosis",
                            "conservative_treatment_weeks": 8})
    k = assess_indication(case)
    acr = assess_indication(case, stenosis_policy="acr2021")
    assert DEFAULT_STENOSIS_POLICY == "kovacs2013" and k.stenosis_policy == "kovacs2013"
    assert (k.classification, k.stenosis_threshold_weeks) == ("inappropriate", 12)
    assert (acr.classification, acr.stenosis_threshold_weeks) == ("appropriate", 6)
    # Kovacs 2013 (12 weeks) disagrees with NG59/ACP/ACR/European; with the ACR policy all agree
    assert k.policy_sensitive and not acr.policy_sensitive
    assert acr.to_dict()["stenosis_policy"] == {"name": "acr2021", "threshold_weeks": 6}
    assert "ACR-AC-LowBackPain-2021 V3" in acr.citations
    assert "Kovacs2011-Spine-stenosis-review" in k.citations
    # the disc threshold does not depend on the stenosis policy
    disc = ClinicalInput(**{**BASE, "conservative_treatment_weeks": 5, "pain_duration_weeks": 5})
    assert assess_indication(disc, stenosis_policy="acr2021").classification == "inappropriate"
    # unknown cause: with one 6-week threshold the disc/stenosis disagreement disappears
    unk = ClinicalInput(**{**BASE, "suspected_condition": None, "conservative_treatment_weeks": 8})
    assert assess_indication(unk, stenosis_policy="acr2021").classification == "appropriate"
    with pytest.raises(ClinicalDataError, match="stenosis_policy"):
        assess_indication(case, stenosis_policy="nice")  # type: ignore[arg-type]


def test_kovacs_risk_factors_reported_never_deciding():
    a = assess_indication(ClinicalInput(**{**BASE, "referred_pain": False, "setting": "private",
                                            "prescriber_specialty": "primary_care"}))
    b = assess_indication(ClinicalInput(**{**BASE, "referred_pain": True, "setting": "public",
                                            "prescriber_specialty": "rheumatology"}))
    assert a.classification == b.classification == "appropriate"
    assert set(a.kovacs_risk_factors_present) == {
        "no_referred_pain", "private_practice",
        "prescriber_orthopaedic_neurosurgery_or_primary_care"}
    assert b.kovacs_risk_factors_present == ()
    ors = {r.name: r.odds_ratio for r in a.kovacs_risk_factors}
    assert ors == {"no_referred_pain": 13.75, "private_practice": 2.25,
                   "prescriber_orthopaedic_neurosurgery_or_primary_care": 2.50}  # §3.8
    unknown = assess_indication(ClinicalInput(**{**BASE, "setting": None}))
    assert {r.name: r.status for r in unknown.kovacs_risk_factors}["private_practice"] == "unknown"


def test_red_flag_citations_follow_the_flag():
    a = assess_indication(ClinicalInput(**{**BASE, "red_flags": ["progressive_neurological_deficit"]}))
    assert "ACP-APS-Chou2007 rec 3" in a.citations
    b = assess_indication(ClinicalInput(**{**BASE, "cauda_equina_signs": ["saddle_anaesthesia"]}))
    assert "NICE-CKS-CES-redflags-2018" in b.citations and b.acr_2021_variant == 4


def test_every_decisive_flag_has_table_entry():
    table = load_rule_table()
    assert set(table["red_flags"]) == set(DECISIVE_RED_FLAGS)
    assert [r["order"] for r in table["rules"]] == sorted(r["order"] for r in table["rules"])
    assert table["rule_set_version"] == "v2" and table["default_stenosis_policy"] == "kovacs2013"


def test_outputs_to_dict_repr_html_and_mapping_input():
    a = assess_indication(dict(BASE))
    assert isinstance(a, IndicationAssessment) and a.classification in CLASSES
    d = a.to_dict()
    json.dumps(d)  # JSON-ready
    for key in ("classification", "decisive_rules", "citations", "missing_fields",
                "kovacs2013_risk_factors", "acr_2021_variant", "explanation", "stenosis_policy",
                "rule_set_version", "research_use_notice"):
        assert key in d
    assert "appropriate" in repr(a) and "R-DISC-6W" in repr(a)
    h = a._repr_html_()
    assert h.startswith("<div") and "R-DISC-6W" in h and "Research use only" in h
    assert "<script" not in h
    assert [r for r, s in a.rule_trace if s == "yes"] == ["R-DISC-6W"]


def test_notes_flag_inconsistent_age_features():
    a = assess_indication(ClinicalInput(**{**BASE, "age": 30, "red_flags": ["age_over_50"]}))
    assert any("age_over_50" in n for n in a.notes)
