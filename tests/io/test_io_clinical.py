"""Reading and writing clinical.json (dwi_toolkit.io.clinical)."""

from __future__ import annotations

import json

import pytest

from dwi_toolkit.clinical.vocab import SCHEMA_VERSION, ClinicalInput
from dwi_toolkit.errors import ClinicalDataError
from dwi_toolkit.io.clinical import load_clinical, save_clinical


def test_round_trip(tmp_path):
    c = ClinicalInput(age=45, sex="M", pain_duration_weeks=10, conservative_treatment_weeks=8,
                      radicular_pain=True, radicular_side="left", suspected_levels=["L5"],
                      suspected_condition="disc_herniation", red_flags=[], cauda_equina_signs=None,
                      surgery_considered=True, subject_id="sub-01")
    p = save_clinical(c, tmp_path / "sub" / "clinical.json")
    assert p.exists() and load_clinical(p) == c
    on_disk = json.loads(p.read_text("utf-8"))
    assert on_disk["schema_version"] == SCHEMA_VERSION and on_disk["schema"] == "dwi_toolkit.clinical"
    assert on_disk["red_flags"] == [] and on_disk["cauda_equina_signs"] is None
    assert [x.name for x in p.parent.iterdir()] == ["clinical.json"]  # no temp files left


def test_minimal_file_missing_keys_are_not_recorded(tmp_path):
    p = tmp_path / "c.json"
    p.write_text('{"age": 30}', "utf-8")
    c = load_clinical(p)
    assert c.age == 30 and c.red_flags is None and c.schema_version == SCHEMA_VERSION


def test_load_does_not_modify_the_file(tmp_path):
    p = tmp_path / "c.json"
    text = '{"red_flags": ["fever", "fever"], "age": 40}'
    p.write_text(text, "utf-8")
    assert load_clinical(p).red_flags == ("fever",)
    assert p.read_text("utf-8") == text


@pytest.mark.parametrize(
    "content, pattern",
    [
        ("{not json", r"not valid JSON \(line 1"),
        ("[1, 2]", "must be a JSON object"),
        ('{"red_flags": ["fevr"]}', r"c\.json: clinical field 'red_flags' contains unknown item 'fevr'"),
        ('{"radicular_sid": "left"}', "unknown clinical field 'radicular_sid'"),
        ('{"schema_version": "3.1"}', "not supported"),
    ],
)
def test_errors_name_file_and_problem(tmp_path, content, pattern):
    p = tmp_path / "c.json"
    p.write_text(content, "utf-8")
    with pytest.raises(ClinicalDataError, match=pattern):
        load_clinical(p)


def test_missing_file(tmp_path):
    with pytest.raises(ClinicalDataError, match="not found"):
        load_clinical(tmp_path / "nope.json")


def test_save_rejects_plain_dict(tmp_path):
    with pytest.raises(ClinicalDataError, match="ClinicalInput"):
        save_clinical({"age": 3}, tmp_path / "c.json")  # type: ignore[arg-type]


def test_top_level_lazy_export(tmp_path):
    import dwi_toolkit as dt

    p = save_clinical(ClinicalInput(age=50), tmp_path / "c.json")
    assert dt.load_clinical(p).age == 50
    assert dt.assess_indication(dt.load_clinical(p)).classification == "uncertain"


def test_documented_example_file_loads():
    from pathlib import Path

    p = Path(__file__).resolve().parents[2] / "docs" / "examples" / "clinical.json"
    c = load_clinical(p)
    assert c.symptomatic_side == "left" and c.suspected_levels == ("L5",)


def test_read_referral_table_delimiters_and_errors(tmp_path):
    from dwi_toolkit.io.clinical import read_referral_table

    p = tmp_path / "r.csv"
    p.write_text("age;red_flags\n45;fever|night_pain\n50;\n", encoding="utf-8")
    before = p.read_bytes()
    assert read_referral_table(p) == [{"age": "45", "red_flags": "fever|night_pain"},
                                      {"age": "50", "red_flags": None}]
    assert p.read_bytes() == before  # never modified
    bad = tmp_path / "bad.csv"
    bad.write_text("age,sex\n45,F,extra\n", encoding="utf-8")
    with pytest.raises(ClinicalDataError, match="line 2: more cells"):
        read_referral_table(bad)
    with pytest.raises(ClinicalDataError, match="not found"):
        read_referral_table(tmp_path / "none.csv")
    (tmp_path / "empty.tsv").write_text("", encoding="utf-8")
    with pytest.raises(ClinicalDataError, match="empty"):
        read_referral_table(tmp_path / "empty.tsv")
