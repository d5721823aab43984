"""Command-line conventions (issue #17): closed pipes, --version everywhere, help from the
registry, exit codes in --help, progress on stderr, errors naming the values given, the DICOM
series listing of info/convert."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
import time
from types import SimpleNamespace

import numpy as np
import pytest

from dwi_toolkit.cli import _progress
from dwi_toolkit.cli.main import EXIT_CODES, build_parser, main

from .test_hints import _parsers


@pytest.fixture
def sample_dwi(sample_dir):
    return sample_dir / "sub-01" / "dwi" / "sub-01_dwi.nii.gz"


# ------------------------------------------------------------------------------ closed pipe
@pytest.mark.parametrize("argv", [["info", "{dwi}"], ["run", "--list-pipelines"], ["convert", "--list", "{dicom}"],
                                  ["indication", "--help"]])
def test_closed_pipe_exits_0_quietly(argv, sample_dwi, two_series):
    """`dwi-toolkit ... | head -n 0`: the reader is gone before the first write."""
    argv = [a.format(dwi=sample_dwi, dicom=two_series) for a in argv]
    read_end, write_end = os.pipe()
    os.close(read_end)  # like `head -n 0`, which exits without reading
    try:
        proc = subprocess.run([sys.executable, "-m", "dwi_toolkit", *argv], stdout=write_end,
                              stderr=subprocess.PIPE, text=True, timeout=120)
    finally:
        os.close(write_end)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""


# ------------------------------------------------------------------------------ --version, --help
def test_version_on_every_subcommand(capsys):
    parsers = _parsers()
    assert len(parsers) > 10
    for name in parsers:
        with pytest.raises(SystemExit) as e:
            main([*name.split(), "--version"])
        assert e.value.code == 0, name
        assert capsys.readouterr().out.startswith("dwi_toolkit "), name


def test_exit_codes_in_every_help():
    for name, p in _parsers().items():
        text = " ".join(p.format_help().split())
        assert "exit codes:" in text, name
        for code in EXIT_CODES:
            assert f"{code} " in text.split("exit codes:")[1], (name, code)


def test_run_help_names_every_builtin_pipeline(capsys):
    from dwi_toolkit.pipeline.spec import builtin_pipelines

    names = sorted(builtin_pipelines())
    assert len(names) >= 5
    assert main(["run", "--list-pipelines"]) == 0
    listed = [line.split()[0] for line in capsys.readouterr().out.splitlines() if line.strip()]
    assert listed == names
    help_text = " ".join(_parsers()["run"].format_help().split())
    assert f"built-in: {', '.join(names)};" in help_text


# ------------------------------------------------------------------------------ errors name the values given
def test_error_names_the_b_range_given(sample_dwi, sample_dir, tmp_path, capsys):
    code = main(["analyze", str(sample_dwi), "--rois", str(sample_dir / "sub-01" / "rois" / "sub-01_rois.json"),
                 "-o", str(tmp_path / "o"), "--b-min", "700", "--no-figures"])
    assert code == 2
    err = capsys.readouterr().err
    assert "error:" in err and "you gave --b-range 700 -" in err


def test_given_values_note_ignores_defaults_and_unrelated_options():
    from dwi_toolkit.cli.main import given_values_note

    p = build_parser()
    a = p.parse_args(["adc", "x.nii.gz", "-o", "o", "--method", "ols"])
    assert given_values_note(p, a, "the b_range is empty") == ""  # --b-range not given
    assert given_values_note(p, a, "method 'ols' failed") == " (you gave --method ols)"


# ------------------------------------------------------------------------------ progress
class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def slow_info(monkeypatch):
    """`info` replaced by a 0.4 s handler that reports 4 chunks through dwi_toolkit.core.progress."""
    from dwi_toolkit.cli.commands import info
    from dwi_toolkit.core.progress import report

    def handler(args):
        logging.getLogger("dwi_toolkit.models.fake").info("fitting the fake model")
        with report(4, "fake fit", unit="chunk") as task:
            for _ in range(4):
                time.sleep(0.1)
                task.advance()
        print("result")
        return 0

    monkeypatch.setattr(info, "run", handler)
    monkeypatch.setattr(_progress, "DELAY", 0.0)


def test_progress_drawn_on_a_terminal(slow_info, monkeypatch, capsys):
    fake = _Tty()
    monkeypatch.setattr(sys, "stderr", fake)
    assert main(["info", "x.nii.gz"]) == 0
    drawn = fake.getvalue()
    assert "\r" in drawn and "fake fit" in drawn and "chunk" in drawn
    assert "/4 chunk" in drawn and "[" in drawn  # a bar: the total is known
    assert drawn.endswith("\r")  # the line is erased at the end
    assert capsys.readouterr().out == "result\n"  # stdout carries only the result


@pytest.mark.parametrize("extra", [["--quiet"], []])
def test_progress_off_with_quiet_or_without_terminal(extra, slow_info, monkeypatch, capsys):
    stream = _Tty() if extra else io.StringIO()  # --quiet on a terminal; no flag off a terminal
    monkeypatch.setattr(sys, "stderr", stream)
    assert main(["info", "x.nii.gz", *extra]) == 0
    assert stream.getvalue() == ""
    assert capsys.readouterr().out == "result\n"


def test_progress_line_text():
    from dwi_toolkit.core.progress import ProgressUpdate

    line = _progress.ProgressLine(io.StringIO(), "dwi-toolkit dti", delay=0.0)
    assert "dwi-toolkit dti" in line.text()
    line.status("fitting ADC")
    assert "fitting ADC" in line.text()
    line.update(ProgressUpdate("IVIM fit", 5, 10, "chunk", 1.0))
    assert "[" + "#" * 14 + "." * 14 + "] 5/10 chunk  IVIM fit" in line.text()
    line.update(ProgressUpdate("IVIM fit", 10, 10, "chunk", 2.0, finished=True))
    assert "IVIM fit" not in line.text()
    assert len(line.text()) < line.width


# ------------------------------------------------------------------------------ series listing
@pytest.fixture
def two_series(tmp_path):
    """Two raw DWI series (#3 'DWI_b800', #5 'DWI_b1000' by GE) in one folder."""
    from dwi_toolkit.core.image import DWISeries
    from dwi_toolkit.io.dicom_write import write_dicom_series

    root = tmp_path / "dicom"
    for number, desc, b, maker in ((3, "DWI_b800", [0.0, 800.0, 800.0], None), (5, "DWI_b1000", [0.0, 1000.0], "GE")):
        b = np.array(b)
        vecs = [[0, 0, 0], [0, 0, 1], [1, 0, 0]][: b.size]
        s = DWISeries(np.full((4, 3, 2, b.size), 100.0) * np.exp(-b * 1e-3), np.diag([2.0, 2.0, 4.0, 1.0]), b, vecs)
        write_dicom_series(s, root / desc, series_number=number, description=desc, manufacturer=maker)
    return root


def _uid_of(listing: str, description: str) -> str:
    return next(line.split()[-1] for line in listing.splitlines() if f" {description} " in line)


def test_info_lists_every_series_and_marks_the_chosen(two_series, capsys):
    assert main(["info", str(two_series)]) == 2  # two raw DWI series: ambiguous
    err = capsys.readouterr().err
    assert "--series-uid" in err and "DWI_b800" in err and "DWI_b1000" in err and "ge" in err
    uid = _uid_of(err, "DWI_b1000")
    assert main(["info", str(two_series), "--series-uid", uid]) == 0
    out = capsys.readouterr().out
    chosen = [line for line in out.splitlines() if line.startswith("* ") and "series UID" not in line and " = " not in line]
    assert len(chosen) == 1 and "DWI_b1000" in chosen[0] and "0, 1000" in chosen[0]
    assert "DWI_b800" in out and "--series-uid" in out
    assert main(["info", str(two_series), "--series-uid", uid, "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["dicom_series"]
    assert [(r["series_number"], r["chosen"], r["n_volumes"]) for r in rows] == [(3, False, 3), (5, True, 2)]
    assert rows[1]["vendor"] == "ge" and rows[1]["bvals"] == [0.0, 1000.0] and rows[1]["rule"]


def test_convert_lists_the_others(two_series, tmp_path, capsys):
    assert main(["convert", "--list", str(two_series)]) == 0
    listing = capsys.readouterr().out
    assert listing.startswith("2 DICOM series found (2 raw DWI):")
    uid = _uid_of(listing, "DWI_b800")
    assert main(["convert", str(two_series), "-o", str(tmp_path / "nii"), "--series-uid", uid]) == 0
    out = capsys.readouterr().out
    assert "* = converted" in out and "--series-uid" in out and "DWI_b1000" in out
    assert [p.name for p in (tmp_path / "nii").glob("*.nii.gz")] == ["3_DWI_b800.nii.gz"]


# ------------------------------------------------------------------------------ run summary order
def test_run_summary_in_subject_order_with_this_runs_times():
    from dwi_toolkit.cli.commands.run import _summary_rows

    def planned(key, reason=""):
        return SimpleNamespace(subject=SimpleNamespace(key=key), reason=reason)

    result = SimpleNamespace(
        plan=[planned("sub-01", "inputs and pipeline unchanged"), planned("sub-02"), planned("sub-03")],
        results=[SimpleNamespace(key="sub-01", status="skipped", duration_s=41.0, reason="x"),  # skipped first,
                 SimpleNamespace(key="sub-03", status="failed", duration_s=0.5, reason="load: bad"),  # then by
                 SimpleNamespace(key="sub-02", status="done", duration_s=2.25, reason="")])  # completion
    rows = _summary_rows(result)
    assert [r[0] for r in rows] == ["sub-01", "sub-02", "sub-03"]
    assert rows[0][1:3] == ["skipped", "-"] and "up to date" in rows[0][3]  # not the earlier run's 41 s
    assert rows[1][1:] == ["done", "2.2", ""] or rows[1][1:] == ["done", "2.3", ""]
    assert rows[2][1:] == ["failed", "0.5", "load: bad"]


def test_given_values_note_skips_flags_and_file_names():
    from dwi_toolkit.cli.main import given_values_note

    p = build_parser()
    a = p.parse_args(["info", "x.nii.gz", "--json", "--series-uid", "1.2.3"])
    assert given_values_note(p, a, "cannot read clinical.json") == ""
    assert given_values_note(p, a, "no series with series_uid 1.2.3") == " (you gave --series-uid 1.2.3)"
    r = p.parse_args(["roi", "stats", "dwi.nii.gz", "--rois", "r.json", "--method", "ols"])
    assert given_values_note(p, r, "method ols needs two b-values") == " (you gave --method ols)"


def test_run_feeds_the_progress_line(monkeypatch):
    """The runner's events become the line: subjects finished / total and the running step."""
    from dwi_toolkit.cli.commands.run import _progress as run_progress

    assert run_progress() is None  # no line (not a terminal): the runner gets no callback
    line = _progress.ProgressLine(io.StringIO(), "dwi-toolkit run", delay=0.0)
    monkeypatch.setattr(_progress, "_CURRENT", [line])
    show = run_progress()
    show(SimpleNamespace(kind="step", total=4, completed=1, key="sub-02", status=None, message="adc"))
    assert "1/4 subjects" in line.text() and "(sub-02: adc)" in line.text()
    show(SimpleNamespace(kind="subject", total=4, completed=2, key="sub-02", status="done", message="1.0 s"))
    assert "2/4 subjects" in line.text() and "sub-02 done" in line.text()
