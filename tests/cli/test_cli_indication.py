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
