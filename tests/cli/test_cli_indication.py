"""``dwi-toolkit indication`` (in-process)."""

from __future__ import annotations

import json

from dwi_toolkit.cli.main import main

CASE = {"age": 68, "pain_duration_weeks": 20, "conservative_treatment_weeks": 8,
        "radicular_pain": True, "radicular_side": "bilateral",
        "suspected_condition": "spinal_stenosis", "red_flags": [], "cauda_equina_signs": [],
        "surgery_considered": True, "prior_lumbar_surgery": False,
        "new_or_progressive_symptoms": False, "setting": "private",
        "prescriber_specialty": "orthopaedic_surgery"}


def _write(tmp_path, data):
    p = tmp_path / "clinical.json"
    p.write_text(json.dumps(data), "utf-8")
    return p


def test_text_output(tmp_path, capsys):
    assert main(["indication", str(_write(tmp_path, CASE))]) == 0
    out = capsys.readouterr().out
    assert "classification:   inappropriate" in out
    assert "R-STEN-12W" in out and "Kovacs2013-EurJRadiol" in out
    assert "kovacs2013 (12 weeks)" in out and "policy-sensitive" in out
    assert "private_practice" in out


def test_policy_switch_and_json(tmp_path, capsys):
    assert main(["indication", str(_write(tmp_path, CASE)), "--stenosis-policy", "acr2021",
                 "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["classification"] == "appropriate"
    assert d["stenosis_policy"] == {"name": "acr2021", "threshold_weeks": 6.0}
    assert d["decisive_rules"] == ["R-STEN-12W"]


def test_missing_fields_printed(tmp_path, capsys):
    assert main(["indication", str(_write(tmp_path, {**CASE, "surgery_considered": None,
                                                     "conservative_treatment_weeks": 14}))]) == 0
    out = capsys.readouterr().out
    assert "R-MISSING" in out and "missing fields:   surgery_considered" in out


def test_bad_vocabulary_exits_2_with_one_line(tmp_path, capsys):
    assert main(["indication", str(_write(tmp_path, {"red_flags": ["feverish"]}))]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "feverish" in err[0] and "allowed" in err[0]


def test_verdict_table_and_what_would_change(tmp_path, capsys):
    assert main(["indication", str(_write(tmp_path, CASE))]) == 0
    out = capsys.readouterr().out
    assert "verdict per guideline:" in out
    for name in ("NICE NG59", "ACP 2011", "ACR 2021", "European 2006"):
        assert name in out
    assert "ACR-V3 variant 3 (Low Back Pain)" in out and "rule set:         v2" in out
    assert main(["indication", str(_write(tmp_path, {**CASE, "conservative_treatment_weeks": None,
                                                     "pain_duration_weeks": 20}))]) == 0
    out = capsys.readouterr().out
    assert "would be appropriate if 12 weeks" in out


def test_child_json_has_paediatric_acr_topic(tmp_path, capsys):
    child = {**CASE, "age": 11, "radicular_pain": False, "suspected_condition": "nonspecific",
             "pain_duration_weeks": 2, "conservative_treatment_weeks": 1}
    assert main(["indication", str(_write(tmp_path, child)), "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    acr = next(v for v in d["guideline_verdicts"] if v["guideline"] == "acr_2021")
    assert (acr["topic"], acr["variant"], acr["verdict"]) == ("Back Pain-Child", 1, "inappropriate")
    assert d["classification"] == "inappropriate" and d["rule_set_version"] == "v2"


def test_audit_writes_summary(tmp_path, capsys):
    rows = ["age,pain_duration_weeks,conservative_treatment_weeks,radicular_pain,red_flags,"
            "cauda_equina_signs,surgery_considered,prior_lumbar_surgery,"
            "new_or_progressive_symptoms,radiologist_assessment"]
    rows += ["35,4,2,no,none,none,no,no,no,inappropriate"] * 3
    rows += ["60,3,0,no,history_of_cancer,none,no,no,no,appropriate"] * 2
    p = tmp_path / "referrals.csv"
    p.write_text("\n".join(rows) + "\n", "utf-8")
    out_dir = tmp_path / "audit"
    assert main(["indication", "--audit", str(p), "-o", str(out_dir), "--no-regression"]) == 0
    out = capsys.readouterr().out
    assert "referrals: 5" in out and "cohen_kappa_radiologist_vs_criteria" in out
    assert (out_dir / "audit_summary.html").exists() and (out_dir / "audit_summary.csv").exists()


def test_clinical_xor_audit(tmp_path, capsys):
    assert main(["indication"]) == 2
    assert "either clinical.json or --audit" in capsys.readouterr().err
