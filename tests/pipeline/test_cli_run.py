"""`dwi-toolkit run` in-process: folder form, BIDS-Apps form, dry run, errors, summary table."""

from __future__ import annotations

import json

import pytest

from dwi_toolkit.cli.main import main
from tests.pipeline._helpers import pipeline_file, tiny_cohort


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    tiny_cohort(root / "in", n_good=2, broken=True)
    return root


def test_run_folder_form_summary_and_exit_code(cohort, tmp_path, capsys):
    p = pipeline_file(tmp_path / "p.toml")
    rc = main(["run", str(cohort / "in"), "-o", str(tmp_path / "out"), "--pipeline", str(p), "-j", "2"])
    out = capsys.readouterr().out
    assert rc == 1
    lines = {ln.split()[0]: ln for ln in out.splitlines() if ln.startswith("sub-")}
    assert "done" in lines["sub-01"] and "done" in lines["sub-02"]
    assert "failed" in lines["sub-03"] and "GradientError" in lines["sub-03"]
    assert "done 2, skipped 0, failed 1" in out and "index.html" in out
    rc = main(["run", str(cohort / "in"), "-o", str(tmp_path / "out"), "--pipeline", str(p), "-q"])
    assert rc == 1
    assert (tmp_path / "out" / "manifest.json").is_file()


def test_dry_run_lists_plan(cohort, tmp_path, capsys):
    p = pipeline_file(tmp_path / "p.toml")
    assert main(["run", str(cohort / "in"), "-o", str(tmp_path / "out"), "--pipeline", str(p), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "load -> adc" in out and "3 to run, 0 up to date" in out
    assert not (tmp_path / "out").exists()


def test_bids_apps_form_participant_then_group(cohort, tmp_path, capsys):
    bids = tmp_path / "bids"
    for i in (1, 2):
        src = cohort / "in" / f"sub-0{i}" / "dwi"
        dst = bids / f"sub-0{i}" / "dwi"
        dst.mkdir(parents=True)
        for f in src.iterdir():
            (dst / f.name).write_bytes(f.read_bytes())
    (bids / "dataset_description.json").write_text(json.dumps({"Name": "t", "BIDSVersion": "1.9.0"}))
    out = tmp_path / "deriv"
    p = pipeline_file(tmp_path / "p.toml")
    assert main(["run", str(bids), str(out), "participant", "--participant-label", "01", "--pipeline", str(p)]) == 0
    assert (out / "sub-01" / "provenance.json").is_file() and not (out / "sub-02").exists()
    assert not (out / "index.html").exists()  # the group level builds the summary
    assert main(["run", str(bids), str(out), "group"]) == 0
    assert "cohort summary of 1 subject(s)" in capsys.readouterr().out
    assert (out / "index.html").is_file()
    desc = json.loads((out / "dataset_description.json").read_text())
    assert desc["DatasetType"] == "derivative"


def test_errors_exit_2_with_a_message(cohort, tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text('schema = "dwi_toolkit.pipeline/1"\nname = "x"\n[[steps]]\nstep = "load"\nb0_treshold = 50\n')
    assert main(["run", str(cohort / "in"), "-o", str(tmp_path / "o"), "--pipeline", str(bad)]) == 2
    assert "unknown key 'b0_treshold'" in capsys.readouterr().err
    assert main(["run", str(cohort / "in")]) == 2
    assert "no output folder" in capsys.readouterr().err
    assert main(["run", str(tmp_path / "nothing"), "-o", str(tmp_path / "o")]) == 2
    assert main(["run", str(cohort / "in"), str(tmp_path / "a"), "-o", str(tmp_path / "b")]) == 2
    assert main(["run", str(tmp_path), str(tmp_path / "x"), "group"]) == 2
    assert "participant level first" in capsys.readouterr().err


def test_list_pipelines(capsys):
    assert main(["run", "--list-pipelines"]) == 0
    out = capsys.readouterr().out
    assert {"default", "adc-only", "high-b"} <= {ln.split()[0] for ln in out.splitlines()}


def test_relative_output_folder_products_and_cohort_summary(cohort, tmp_path, monkeypatch, capsys):
    """A relative -o (as in `make demo`): products are recorded relative to each subject's final
    folder (not the temporary one) and the cohort summary finds them."""
    monkeypatch.chdir(tmp_path)
    p = pipeline_file(tmp_path / "p.toml")
    rc = main(["run", str(cohort / "in"), "-o", "rel_out", "--pipeline", str(p), "-q"])
    assert rc == 1
    manifest = json.loads((tmp_path / "rel_out" / "manifest.json").read_text())
    done = {k: v for k, v in manifest["subjects"].items() if v["status"] == "done"}
    assert done
    for key, entry in done.items():
        for rel in entry["products"].values():
            assert not rel.startswith(("rel_out", ".", "/")), rel
            assert (tmp_path / "rel_out" / entry.get("output", key) / rel).is_file(), rel
