"""Per-guideline verdicts (rule set v2) on cases written from each guideline's text.

Each case cites the passage it was written from (keys of dwi_toolkit References §5; full references
in ``rules_v2.json``). Verdicts: appropriate / uncertain (another first step, or judgement) /
inappropriate / not_covered (outside the guideline's scope).
"""

from __future__ import annotations

import pytest

from dwi_toolkit.clinical.guidelines import VERDICTS, load_guideline_table
from dwi_toolkit.clinical.indication import assess_indication

ADULT = dict(age=45, sex="F", pain_duration_weeks=10, conservative_treatment_weeks=8,
             radicular_pain=True, radicular_side="left", referred_pain=True,
             suspected_condition="disc_herniation", red_flags=[], cauda_equina_signs=[],
             surgery_considered=True, prior_lumbar_surgery=False,
             new_or_progressive_symptoms=False, prior_lumbar_mri_months_ago=None,
             clinical_change_since_prior_mri=None)
CHILD = {**ADULT, "age": 11, "pain_duration_weeks": 2, "conservative_treatment_weeks": 1,
         "radicular_pain": False, "radicular_side": None, "suspected_condition": "nonspecific",
         "surgery_considered": False}


def _verdicts(case):
    a = assess_indication(case)
    return a, {v.guideline: v for v in a.guideline_verdicts}


# (id, changes to ADULT, passage, expected verdicts, expected combined class, policy_sensitive)
CASES = [
    # ACR Back Pain-Child V1: "Child. Back pain. No clinical red flags. Initial imaging": MRI
    # usually not appropriate. NG59 scope: 16 and over; ACP and European: adults.
    ("child-no-red-flag", CHILD, "ACR-AC-BackPainChild V1; NICE-NG59 scope",
     {"acr_2021": "inappropriate", "nice_ng59": "not_covered", "acp_2011": "not_covered",
      "european_2006": "not_covered"}, "inappropriate", False),
    # ACR Back Pain-Child V2: at least one clinical red flag (night pain): radiography usually
    # appropriate, MRI may be appropriate.
    ("child-night-pain", {**CHILD, "red_flags": ["night_pain"]}, "ACR-AC-BackPainChild V2",
     {"acr_2021": "uncertain"}, "uncertain", False),
    ("child-pain-over-4-weeks", {**CHILD, "pain_duration_weeks": 6},
     "ACR-AC-BackPainChild V2 (pain lasting > 4 weeks)", {"acr_2021": "uncertain"},
     "uncertain", False),
    # 17-year-old: inside NG59 (16 and over) but under the ACR child topic (< 18); radicular
    # pain is a child red flag (V2) -> guidelines differ.
    ("age-17-radicular", {"age": 17}, "NICE-NG59 1.1.6; ACR-AC-BackPainChild V2",
     {"nice_ng59": "appropriate", "acr_2021": "uncertain", "acp_2011": "not_covered"},
     "appropriate", True),
    # ACP 2011 Table 2: weaker cancer risk factors (age > 50) "defer imaging ... radiography
    # +/- ESR" - with or without radiculopathy; European 2006: onset > 55 and night pain.
    ("weak-with-sciatica", {"age": 60, "surgery_considered": False,
                            "red_flags": ["age_over_50", "night_pain"]},
     "ACP-Chou2011 Table 2; European-guidelines-2006 red flags",
     {"acp_2011": "uncertain", "european_2006": "uncertain", "nice_ng59": "inappropriate"},
     "uncertain", True),
    ("weak-without-sciatica", {"age": 60, "surgery_considered": False, "radicular_pain": False,
                               "radicular_side": None, "suspected_condition": "nonspecific",
                               "red_flags": ["age_over_50", "night_pain"]},
     "ACP-Chou2011 Table 2; European-guidelines-2006 red flags",
     {"acp_2011": "uncertain", "european_2006": "uncertain"}, "uncertain", True),
    ("one-weak-with-sciatica", {"age": 52, "surgery_considered": False,
                                "red_flags": ["age_over_50"]},
     "ACP-Chou2011 Table 2 (age > 50 weaker cancer factor)",
     {"acp_2011": "uncertain", "european_2006": "inappropriate"}, "inappropriate", True),
    # ACP 2011 Table 2, immediate imaging: "radiography plus ESR" for multiple cancer risk
    # factors or strong suspicion; MRI first for a history of cancer.
    ("suspected-cancer", {"red_flags": ["suspected_cancer"], "surgery_considered": False},
     "ACP-Chou2011 Table 2; ACR-AC-LowBackPain-2021 V7",
     {"acp_2011": "uncertain", "acr_2021": "appropriate", "nice_ng59": "appropriate"},
     "appropriate", True),
    ("history-of-cancer", {"red_flags": ["history_of_cancer"], "surgery_considered": False},
     "ACP-Chou2011 Table 2 (immediate MRI); ACR 2021 V7; NG59 1.1.1",
     {"acp_2011": "appropriate", "acr_2021": "appropriate", "nice_ng59": "appropriate",
      "european_2006": "appropriate"}, "appropriate", False),
    # European 2006 (Airaksinen, chapter 4): plain radiography for structural deformity.
    ("structural-deformity", {"red_flags": ["structural_deformity"], "surgery_considered": False},
     "European-guidelines-2006 chapter 4", {"european_2006": "uncertain",
                                            "nice_ng59": "appropriate"}, "appropriate", True),
    # ACP 2007 rec 4 / 2011: MRI after a trial of about one month in surgical candidates;
    # ACR 2021 V3 and Kovacs 2013: 6 weeks.
    ("five-weeks-disc", {"conservative_treatment_weeks": 5, "pain_duration_weeks": 6},
     "ACP-APS-Chou2007 rec 4; ACR-AC-LowBackPain-2021 V3",
     {"acp_2011": "appropriate", "acr_2021": "inappropriate"}, "inappropriate", True),
    # NICE CG88 1.1.4: MRI for non-specific LBP only within a referral for a fusion opinion;
    # NG59 (replaces CG88) does not routinely image; ACR 2021 V3 "with or without radiculopathy".
    ("fusion-opinion", {"radicular_pain": False, "radicular_side": None,
                        "suspected_condition": "nonspecific", "pain_duration_weeks": 30,
                        "conservative_treatment_weeks": 26},
     "NICE-CG88-2009 1.1.4; NICE-NG59 1.1.4; ACR 2021 V3",
     {"nice_cg88": "appropriate", "nice_ng59": "inappropriate", "acr_2021": "appropriate"},
     "inappropriate", True),
    # ACP 2011 "no imaging: previous spinal imaging with no change"; Dybvik 2023; ACR variants
    # are initial imaging only.
    ("repeat-within-year", {"suspected_condition": "spinal_stenosis", "pain_duration_weeks": 30,
                            "conservative_treatment_weeks": 20, "prior_lumbar_mri_months_ago": 5,
                            "clinical_change_since_prior_mri": False},
     "ACP-Chou2011 Table 2; Dybvik2023-IJSS",
     {"acp_2011": "inappropriate", "nice_ng59": "inappropriate", "acr_2021": "not_covered",
      "european_2006": "not_covered"}, "inappropriate", False),
    # ACR 2021 V5: prior lumbar surgery with new or progressing symptoms.
    ("post-operative", {"prior_lumbar_surgery": True, "new_or_progressive_symptoms": True,
                        "conservative_treatment_weeks": 1, "pain_duration_weeks": 3},
     "ACR-AC-LowBackPain-2021 V5", {"acr_2021": "appropriate", "acp_2011": "not_covered"},
     "appropriate", False),
]


@pytest.mark.parametrize("cid,changes,passage,expected,combined,sensitive", CASES,
                         ids=[c[0] for c in CASES])
def test_guideline_verdicts_from_text(cid, changes, passage, expected, combined, sensitive):
    a, v = _verdicts({**ADULT, **changes})
    for g, verdict in expected.items():
        assert v[g].verdict == verdict, (cid, passage, v[g].to_dict())
        assert v[g].citation and v[g].criterion and v[g].effective_date
    assert a.classification == combined, a.explanation
    assert a.policy_sensitive is sensitive


def test_acr_variant_and_topic_reported():
    _, v = _verdicts({**CHILD, "red_flags": ["night_pain"]})
    assert (v["acr_2021"].topic, v["acr_2021"].variant) == ("Back Pain-Child", 2)
    assert v["acr_2021"].first_step.startswith("radiography")
    _, v = _verdicts(ADULT)
    assert (v["acr_2021"].topic, v["acr_2021"].variant, v["acr_2021"].criterion) == (
        "Low Back Pain", 3, "ACR-V3")


def test_cg88_listed_only_where_it_differs():
    _, v = _verdicts(ADULT)  # radicular: CG88 (non-specific LBP) does not cover it
    assert "nice_cg88" not in v


def test_policy_sensitive_exactly_when_determined_verdicts_differ():
    for _, changes, *_ in CASES:
        a, v = _verdicts({**ADULT, **changes})
        decided = {x.verdict for x in v.values() if x.verdict != "not_covered"}
        assert a.policy_sensitive == (len(decided | {a.classification}) > 1)


def test_missing_data_lists_what_would_change():
    a, v = _verdicts({**ADULT, "conservative_treatment_weeks": None, "pain_duration_weeks": 20})
    assert a.classification == "uncertain" and a.missing_fields == ("conservative_treatment_weeks",)
    assert a.what_would_change == ("inappropriate if conservative_treatment_weeks < 6 weeks",
                                   "appropriate if 6 weeks \u2264 conservative_treatment_weeks")
    assert v["acp_2011"].verdict == "uncertain" and v["acp_2011"].criterion == "MISSING"
    assert set(v["acp_2011"].possible) == {"appropriate", "inappropriate"}
    # unknown surgical intent with enough treatment: named with the class each value gives
    a = assess_indication({**ADULT, "surgery_considered": None})
    assert a.what_would_change == ("inappropriate if surgery_considered = false",
                                   "appropriate if surgery_considered = true")
    # an unknown field that cannot change the class is not listed
    a = assess_indication({**ADULT, "surgery_considered": None, "conservative_treatment_weeks": 2})
    assert a.classification == "inappropriate" and a.what_would_change == ()


def test_unknown_age_uses_paediatric_and_adult_bands():
    # no red flag: a child (ACR child V1) and an adult (R-NONSPEC) are both inappropriate
    a = assess_indication({**CHILD, "age": None})
    assert a.classification == "inappropriate" and "age" not in a.missing_fields
    # night pain: a child red flag (V2 -> uncertain), a single weak feature in an adult
    a = assess_indication({**CHILD, "age": None, "red_flags": ["night_pain"]})
    assert a.decisive_rules == ("R-MISSING",) and a.missing_fields == ("age",)
    assert a.what_would_change == ("uncertain if age < 16 years",
                                   "inappropriate if 16 years \u2264 age")
    assert a.to_dict()["rule_set_version"] == "v2"


def test_every_criterion_is_data_with_citation_and_date():
    t = load_guideline_table()
    assert t["rule_set_version"] == "v2" and t["file_version"]
    for g in t["guidelines"]:
        assert g["effective_date"][:2] in ("19", "20") and g["reference"]
        assert g["criteria"][-1]["when"] == {}, g["id"]  # a final catch-all criterion
        for c in g["criteria"]:
            assert c["verdict"] in VERDICTS and c["citation"] and c["text"], c["id"]


def test_json_output_carries_verdicts():
    d = assess_indication(ADULT).to_dict()
    assert {v["guideline"] for v in d["guideline_verdicts"]} >= {
        "nice_ng59", "acp_2011", "acr_2021", "european_2006"}
    assert d["guidelines_file_version"] == load_guideline_table()["file_version"]


def test_report_shows_the_verdict_table():
    from dwi_toolkit.reporting.report import Report, make_provenance

    a = assess_indication({**ADULT, "conservative_treatment_weeks": 5, "pain_duration_weeks": 6})
    html = Report(provenance=make_provenance(), acquisition={}, indication=a).to_html()
    assert "guideline-verdicts" in html and "ACP-RADICULOPATHY" in html
    assert "ACR-AC-LowBackPain-2021 V3" in html and "the guidelines disagree" in html
    assert "ACP 2011" in a._repr_html_()


def test_docs_list_every_criterion_with_its_source():
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "clinical.md").read_text("utf-8")
    for g in load_guideline_table()["guidelines"]:
        for c in g["criteria"]:
            line = next((x for x in doc.splitlines() if f"`{c['id']}`" in x and "|" in x), None)
            assert line is not None and c["citation"] in line, c["id"]


def test_child_unknown_pain_duration_names_the_4_week_red_flag():
    # ACR Back Pain-Child V2 red flag "pain lasting > 4 weeks": unknown duration leaves it open
    a = assess_indication({**CHILD, "pain_duration_weeks": None, "conservative_treatment_weeks": 0})
    assert a.decisive_rules == ("R-MISSING",) and a.missing_fields == ("pain_duration_weeks",)
    assert a.what_would_change == ("inappropriate if pain_duration_weeks \u2264 4 weeks",
                                   "uncertain if pain_duration_weeks > 4 weeks")
