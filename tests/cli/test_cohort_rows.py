"""The cohort summary lists subjects in subject order with this run's status and times (issue #18)."""

from __future__ import annotations

import csv
import time

from dwi_toolkit.cli.main import main
from tests.pipeline._helpers import pipeline_file, tiny_cohort


def _rows(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_rerun_shows_skipped_subjects_without_earlier_times(tmp_path, capsys):
    tiny_cohort(tmp_path / "in", n_good=2, broken=True)
    out = tmp_path / "out"
    pipe = str(pipeline_file(tmp_path / "p.toml"))  # load + adc on the tiny grid
    assert main(["run", str(tmp_path / "in"), "-o", str(out), "--pipeline", pipe]) == 1  # sub-03 fails
    first = {r["key"]: r for r in _rows(out / "group" / "cohort_subjects.csv")}
    assert [first[k]["this_run"] for k in ("sub-01", "sub-02", "sub-03")] == ["done", "done", "failed"]
    assert float(first["sub-01"]["duration_s"]) > 0
    capsys.readouterr()
    time.sleep(1.1)  # timestamps have one-second resolution
    assert main(["run", str(tmp_path / "in"), "-o", str(out), "--pipeline", pipe]) == 1
    table = capsys.readouterr().out.split("\n\n")[0].splitlines()
    assert [line.split()[0] for line in table[1:]] == ["sub-01", "sub-02", "sub-03"]  # subject order
    assert table[1].split()[1:3] == ["skipped", "-"]  # no time from the earlier run
    rows = _rows(out / "group" / "cohort_subjects.csv")
    assert [r["key"] for r in rows] == ["sub-01", "sub-02", "sub-03"]
    assert [(r["status"], r["this_run"], r["duration_s"]) for r in rows[:2]] == [("done", "skipped", "")] * 2
    assert rows[2]["this_run"] == "failed" and float(rows[2]["duration_s"]) >= 0
    page = (out / "index.html").read_text()
    assert page.index("sub-01") < page.index("sub-02") < page.index("sub-03")
    assert 'class="badge skipped">skipped' in page
