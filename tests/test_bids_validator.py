"""The bundled sample is a valid BIDS dataset for the official BIDS validator (bids-validator-deno).

The validator is in the ``test`` extra (a Deno bundle; the ``deno`` wheel ships the runtime); the tests
skip with a reason when the executable is absent.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from dwi_toolkit.sample_data import generate

_EXE = shutil.which("bids-validator-deno") or shutil.which("bids-validator-deno", path=str(Path(sys.executable).parent))
pytestmark = pytest.mark.skipif(_EXE is None, reason="the official BIDS validator is not installed "
                                                      "(pip install bids-validator-deno, in the test extra)")


def validate(folder: Path) -> list[dict]:
    """Issues reported by the official validator (offline, JSON output)."""
    run = subprocess.run([_EXE, str(folder), "--format", "json"], capture_output=True, text=True, timeout=300,
                         env={**os.environ, "NO_COLOR": "1"})
    assert run.stdout, f"validator gave no output (exit {run.returncode}): {run.stderr[-2000:]}"
    return json.loads(run.stdout)["issues"]["issues"]


def errors(issues: list[dict]) -> list[tuple]:
    return [(i["code"], i.get("location")) for i in issues if i["severity"] == "error"]


def test_shipped_sample_data_is_valid_bids(sample_dir):
    issues = validate(sample_dir)
    assert errors(issues) == []
    # the DWI itself is recognised as BIDS data (not silently ignored by .bidsignore)
    assert any(i.get("location") == "/sub-01/dwi/sub-01_dwi.nii.gz" for i in issues)


def test_validator_catches_what_the_sample_provides(tmp_path):
    """Without its top-level files the same subject is rejected: the test above is not vacuous."""
    out = generate(tmp_path / "ds")
    for name in ("dataset_description.json", ".bidsignore"):
        (out / name).unlink()
    codes = {code for code, _ in errors(validate(out))}
    assert {"MISSING_DATASET_DESCRIPTION", "NOT_INCLUDED"} <= codes
