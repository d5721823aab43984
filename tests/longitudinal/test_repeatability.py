"""Repeatability statistics (issue 22) against Shrout & Fleiss (1979) and a hand computation."""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest

from dwi_toolkit.analysis.repeatability import icc_anova, repeatability
from dwi_toolkit.cli.main import main
from dwi_toolkit.errors import InputDataError

#: Shrout & Fleiss (1979), Table 2: 6 targets rated by 4 judges; ICC(3,1) = .71.
SF = np.array([[9, 2, 5, 8], [6, 1, 3, 2], [8, 4, 6, 8], [7, 1, 2, 6], [10, 5, 6, 9], [6, 2, 4, 7]], float)


def test_icc_3_1_matches_shrout_fleiss_table():
    out = icc_anova(SF)
    assert round(out["icc"], 2) == 0.71
    # hand computation of the two-way ANOVA (their Table 3: BMS 11.24, JMS 32.49, EMS 1.02)
    assert out["msr"] == pytest.approx(11.24, abs=0.01)
    assert out["msc"] == pytest.approx(32.49, abs=0.01)
    assert out["mse"] == pytest.approx(1.02, abs=0.01)
    assert out["sdc"] == pytest.approx(1.96 * math.sqrt(2) * math.sqrt(out["mse"]))


def test_against_pingouin_when_installed():
    pg = pytest.importorskip("pingouin", reason="pingouin not installed")
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame([{"t": i, "r": j, "v": SF[i, j]} for i in range(6) for j in range(4)])
    ref = pg.intraclass_corr(df, targets="t", raters="r", ratings="v").set_index("Type").loc["ICC3", "ICC"]
    assert icc_anova(SF)["icc"] == pytest.approx(ref)


def _retest_rows(rng, n=40, sd_between=0.1e-3, sd_within=0.03e-3):
    rows = []
    for lev in ("L4", "L5"):
        true = rng.normal(1.3e-3, sd_between, n)
        for i, t in enumerate(true):
            for ses in ("ses-1", "ses-2"):
                rows.append({"subject": f"s{i}", "session": ses, "level": lev, "side": "left",
                             "segment": "ganglion", "parameter": "adc", "mean": t + rng.normal(0, sd_within)})
    return rows


def test_recovers_simulated_within_subject_error(rng):
    tab = repeatability(_retest_rows(rng))
    r = tab.get("L5", "left")
    assert r["n_subjects"] == 40 and r["n_sessions"] == 2
    assert r["sem"] == pytest.approx(0.03e-3, rel=0.3)
    expected_icc = 0.1**2 / (0.1**2 + 0.03**2)
    assert r["icc"] == pytest.approx(expected_icc, abs=0.06)
    assert r["wcv"] == pytest.approx(r["sem"] / r["mean"])
    assert tab.sdc_lookup()[("L5", "left", "ganglion", "adc")] == pytest.approx(r["sdc"])


def test_incomplete_subjects_are_left_out_and_too_few_refused(rng):
    rows = _retest_rows(rng, n=5)
    rows = [r for r in rows if not (r["subject"] == "s0" and r["session"] == "ses-2")]
    assert repeatability(rows).get("L4")["n_subjects"] == 4
    with pytest.raises(InputDataError, match="need >= 2 subjects"):
        repeatability([r for r in rows if r["subject"] in ("s0", "s1")])


def test_cli(tmp_path, rng):
    rows = _retest_rows(rng, n=10)
    path = tmp_path / "retest.csv"
    with path.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    assert main(["repeatability", str(path), "-o", str(tmp_path / "rep.csv")]) == 0
    out = list(csv.DictReader((tmp_path / "rep.csv").read_text().splitlines()))
    assert {r["level"] for r in out} == {"L4", "L5"} and all(float(r["sdc"]) > 0 for r in out)
