"""ClinicalInput validation and the clinical.json schema (dwi_toolkit References §3.10–§3.11)."""

from __future__ import annotations

import pytest

from dwi_toolkit.clinical import vocab
from dwi_toolkit.clinical.vocab import ClinicalInput, clinical_json_schema, load_packaged_schema
from dwi_toolkit.errors import ClinicalDataError, InputDataError

# Vocabularies copied by hand from dwi_toolkit References §3.10 ("Vocabularies"), the independent
# truth the module must match exactly.
REF_DECISIVE = """history_of_cancer suspected_cancer unexplained_weight_loss fever
suspected_spinal_infection intravenous_drug_use immunosuppression significant_trauma osteoporosis
prolonged_corticosteroid_use progressive_neurological_deficit severe_neurological_deficit
structural_deformity systemically_unwell widespread_neurological_signs
suspected_spondyloarthritis""".split()
REF_NON_DECISIVE = """age_over_50 age_over_70 age_under_20 night_pain thoracic_pain
no_improvement_after_4_weeks""".split()
REF_CES = """saddle_anaesthesia urinary_retention difficulty_initiating_micturition
impaired_urinary_stream_sensation faecal_incontinence loss_of_rectal_fullness_sensation
bilateral_sciatica bilateral_progressive_leg_weakness anal_sphincter_laxity
new_sexual_dysfunction""".split()
REF_CONDITIONS = """disc_herniation spinal_stenosis radiculopathy_undetermined nonspecific
suspected_malignancy suspected_infection suspected_fracture suspected_spondyloarthritis
cauda_equina_syndrome postoperative_recurrence""".split()
REF_INPUTS = """age sex pain_duration_weeks conservative_treatment_weeks radicular_pain
radicular_side referred_pain suspected_condition red_flags cauda_equina_signs surgery_considered
prior_lumbar_surgery new_or_progressive_symptoms prior_lumbar_mri_months_ago
clinical_change_since_prior_mri setting prescriber_specialty""".split()


def test_vocabularies_match_reference_exactly():
    assert set(vocab.DECISIVE_RED_FLAGS) == set(REF_DECISIVE)
    assert set(vocab.NON_DECISIVE_FEATURES) == set(REF_NON_DECISIVE)
    assert set(vocab.CES_SIGNS) == set(REF_CES)
    assert set(vocab.SUSPECTED_CONDITIONS) == set(REF_CONDITIONS)
    assert set(vocab.RADICULAR_SIDES) == {"left", "right", "bilateral"}
    assert set(vocab.INPUT_FIELDS) == set(REF_INPUTS) | {"suspected_levels"}


def test_all_missing_is_valid_and_lists_keep_null_vs_empty():
    c = ClinicalInput.from_dict({})
    assert all(getattr(c, f) is None for f in vocab.INPUT_FIELDS)
    c2 = ClinicalInput.from_dict({"red_flags": [], "cauda_equina_signs": None})
    assert c2.red_flags == () and c2.cauda_equina_signs is None


@pytest.mark.parametrize(
    "data, key, allowed_example",
    [
        ({"red_flags": ["fever", "feverish"]}, "red_flags", "'fever'"),
        ({"cauda_equina_signs": ["saddle_anesthesia"]}, "cauda_equina_signs", "'saddle_anaesthesia'"),
        ({"suspected_condition": "herniated_disc"}, "suspected_condition", "'disc_herniation'"),
        ({"radicular_side": "both"}, "radicular_side", "'bilateral'"),
        ({"setting": "hospital"}, "setting", "'public'"),
        ({"prescriber_specialty": "gp"}, "prescriber_specialty", "'primary_care'"),
        ({"suspected_levels": ["L6"]}, "suspected_levels", "'S1'"),
        ({"sex": "male"}, "sex", "'M'"),
    ],
)
def test_unknown_vocabulary_names_key_and_allowed_values(data, key, allowed_example):
    with pytest.raises(ClinicalDataError) as exc:
        ClinicalInput.from_dict(data)
    msg = str(exc.value)
    assert repr(key) in msg and allowed_example in msg and "allowed" in msg


def test_unknown_field_is_rejected_with_known_fields():
    with pytest.raises(ClinicalDataError, match=r"unknown clinical field 'pain_weeks'.*pain_duration_weeks"):
        ClinicalInput.from_dict({"pain_weeks": 3})


@pytest.mark.parametrize(
    "data",
    [
        {"age": "45"}, {"age": True}, {"age": -1}, {"age": float("nan")}, {"age": 400},
        {"pain_duration_weeks": float("inf")}, {"radicular_pain": "yes"}, {"radicular_pain": 1},
        {"red_flags": "fever"}, {"suspected_levels": "L5"}, {"schema_version": "2.0"},
        {"schema": "other"}, {"subject_id": ""},
    ],
)
def test_bad_values_raise(data):
    with pytest.raises(ClinicalDataError):
        ClinicalInput.from_dict(data)


def test_error_is_an_input_error_and_value_error():
    with pytest.raises(InputDataError):
        ClinicalInput(age=-3)
    with pytest.raises(ValueError):
        ClinicalInput(age=-3)


def test_frozen_and_replace_validates():
    c = ClinicalInput(age=40)
    with pytest.raises(AttributeError):
        c.age = 41  # type: ignore[misc]
    with pytest.raises(ClinicalDataError):
        c.replace(red_flags=["not_a_flag"])
    assert c.replace(age=41).age == 41 and c.age == 40


def test_round_trip_to_dict_from_dict():
    c = ClinicalInput(age=52.5, sex="F", pain_duration_weeks=0.5, radicular_side="right",
                      suspected_levels=["L5", "S1", "L5"], red_flags=["fever"], subject_id="sub-07",
                      prior_lumbar_mri_months_ago=14)
    d = c.to_dict()
    assert d["suspected_levels"] == ["L5", "S1"]  # a set in meaning; repeat dropped
    assert ClinicalInput.from_dict(d) == c


def test_symptomatic_side_and_unrecorded_fields():
    assert ClinicalInput(radicular_side="left").symptomatic_side == "left"
    assert ClinicalInput(radicular_side="bilateral").symptomatic_side is None
    assert ClinicalInput().symptomatic_side is None
    un = ClinicalInput(age=30).unrecorded_fields
    assert "age" not in un and "red_flags" in un
    # null prior MRI means "no previous MRI" (§3.10), not "not recorded"
    assert "prior_lumbar_mri_months_ago" not in un
    assert "clinical_change_since_prior_mri" not in un
    assert "clinical_change_since_prior_mri" in ClinicalInput(
        prior_lumbar_mri_months_ago=3).unrecorded_fields


def test_from_vignette_drops_labels_and_checks_version():
    v = {"id": "Z", "rule_set_version": "v1", "expected": "appropriate", "decisive_rules": [],
         "policy_sensitive": False, "acr_2021_variant": None, "rationale": "x", "guideline": [],
         "age": 30}
    assert ClinicalInput.from_vignette(v).age == 30
    with pytest.raises(ClinicalDataError, match="rule set 'v3'"):
        ClinicalInput.from_vignette({**v, "rule_set_version": "v3"})
    # from_dict accepts a whole vignette too (labels ignored), so does assess_indication
    assert ClinicalInput.from_dict(v) == ClinicalInput(age=30)
    assert "expected" not in ClinicalInput.from_dict(v).to_dict()


def test_packaged_schema_equals_generated_schema():
    assert load_packaged_schema() == clinical_json_schema()


def test_schema_covers_fields_and_vocabularies():
    s = clinical_json_schema()
    assert set(s["properties"]) == (set(vocab.INPUT_FIELDS) | set(vocab.VIGNETTE_KEYS)
                                    | {"schema", "schema_version", "subject_id"})
    assert s["additionalProperties"] is False
    assert set(s["properties"]["red_flags"]["items"]["enum"]) == set(REF_DECISIVE + REF_NON_DECISIVE)
    assert set(s["properties"]["cauda_equina_signs"]["items"]["enum"]) == set(REF_CES)


def test_schema_agrees_with_python_validation():
    jsonschema = pytest.importorskip("jsonschema")
    schema = clinical_json_schema()
    good = ClinicalInput(age=45, sex="M", radicular_side="left", suspected_levels=["L5"],
                         red_flags=[], cauda_equina_signs=["bilateral_sciatica"],
                         setting="public", prescriber_specialty="neurosurgery").to_dict()
    jsonschema.validate(good, schema)
    for bad in ({"red_flags": ["feverish"]}, {"agee": 3}, {"radicular_side": "both"},
                {"age": -1}, {"schema_version": "2.0"}):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, schema)
        with pytest.raises(ClinicalDataError):
            ClinicalInput.from_dict(bad)
