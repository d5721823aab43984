"""`dwi-toolkit analyze` imports only what the run needs (issue 21: start-up time)."""

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SUB = REPO / "sample_data" / "sub-01"


@pytest.mark.parametrize("figures", [False, True])
def test_analyze_imports_no_pydicom_dipy_or_scipy_stats(tmp_path, figures):
    args = [str(SUB / "dwi" / "sub-01_dwi.nii.gz"), "--rois", str(SUB / "rois" / "sub-01_rois.json"),
            "--clinical", str(SUB / "clinical.json"), "-o", str(tmp_path / "out"), "--n-boot", "200"]
    if not figures:
        args.append("--no-figures")
    # matplotlib draws the figures; without them it is not needed either
    unwanted = ["pydicom", "dipy", "scipy.stats", "requests"] + ([] if figures else ["matplotlib"])
    code = (
        "import sys; from dwi_toolkit.cli.main import main; "
        f"code = main(['analyze', *{args!r}]); "
        f"print('IMPORTED=' + ','.join(m for m in {unwanted!r} if m in sys.modules)); sys.exit(code)"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert res.returncode == 0, res.stderr
    imported = [line for line in res.stdout.splitlines() if line.startswith("IMPORTED=")]
    assert imported == ["IMPORTED="], imported
    assert (tmp_path / "out" / "report.json").is_file()
