"""`dwi-toolkit analyze` on the repository's sample subject with the real modules.

The sample subject (sample_data/README.md) has its left L5 root altered; the clinical example
(docs/examples/clinical.json) names the left side and L5. Skipped until the ROI, clinical-input
and indication modules are merged.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dwi_toolkit.cli.main import main

REPO = Path(__file__).resolve().parents[2]
DWI = REPO / "sample_data" / "sub-01" / "dwi" / "sub-01_dwi.nii.gz"
ROIS = REPO / "sample_data" / "sub-01" / "truth" / "sub-01_roots_dseg.nii.gz"
CLINICAL = REPO / "docs" / "examples" / "clinical.json"

for _mod in ("dwi_toolkit.io.rois", "dwi_toolkit.analysis.roi_stats", "dwi_toolkit.io.clinical",
             "dwi_toolkit.clinical.indication", "dwi_toolkit.models.adc"):
    pytest.importorskip(_mod, reason=f"{_mod} not merged yet")


def test_analyze_sample_subject(tmp_path, capsys):
    for p in (DWI, ROIS, CLINICAL):
        if not p.exists():
            pytest.skip(f"{p} not present")
    rc = main(["analyze", str(DWI), "--rois", str(ROIS), "--clinical", str(CLINICAL),
               "-o", str(tmp_path), "--b-min", "100", "--n-boot", "500"])
    assert rc == 0, capsys.readouterr().err
    d = json.loads((tmp_path / "report.json").read_text())
    classes = {lv["level"]: lv["classification"] for lv in d["entrapment"]["levels"]}
    assert classes["L5"] == "concordant"
    assert all(c != "concordant" for lv, c in classes.items() if lv != "L5")
    assert d["indication"]["classification"] in ("appropriate", "uncertain", "inappropriate")
    assert d["qc"]["bvals_used"]["value"] == [100.0, 400.0, 800.0]
    assert len(d["figures"]) == 3 and (tmp_path / "report.html").exists()
