"""Root tractography in the pipeline: the ``track`` step, the ``tractography`` pipeline,
``analyze --track`` and the report's tractography section, on the curved-root phantom."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from dwi_toolkit.io.rois import save_rois
from dwi_toolkit.phantom_roots import RootLesion, make_root_phantom
from dwi_toolkit.roi.model import RoiSet, RootROI, Sphere


@pytest.fixture(scope="module")
def root_subject(tmp_path_factory) -> tuple[Path, object]:
    """One subject folder (DWI + sphere ROIs on the L5 ganglia) with a focal lesion on L5 left."""
    root = tmp_path_factory.mktemp("tracts_in")
    ph = make_root_phantom(levels=("L5",), voxel_size=2.5, n_directions=12, snr=30,
                           lesion=RootLesion("L5", "left"))
    sub = root / "sub-01"
    (sub / "dwi").mkdir(parents=True)
    ph.series.save(sub / "dwi" / "sub-01_dwi.nii.gz")
    save_rois(RoiSet([RootROI(lv, sd, shape=Sphere(p, 2.0)) for (lv, sd), p in ph.seeds.items()]),
              sub / "rois.json")
    (sub / "clinical.json").write_text(json.dumps({"radicular_side": "left", "suspected_levels": ["L5"]}))
    return root, ph


def _check_block(block: dict) -> None:
    assert [(r["level"], r["side"]) for r in block["roots"]["rows"]] == [("L5", "left"), ("L5", "right")]
    assert all(r["n_kept"] > 0 for r in block["roots"]["rows"])
    assert block["roots"]["columns"]["centerline_length_mm"] == "mm"
    params = {r["parameter"] for r in block["profile_comparison"]["rows"]}
    assert {"fa", "adc"} <= params
    # the phantom's lesion (FA x 0.65, ADC x 1.3) is on the left root: found there, nowhere else
    assert [(x["level"], x["side"]) for x in block["lesions"]["rows"]] == [("L5", "left")]


def test_tractography_pipeline_end_to_end(root_subject, tmp_path):
    from dwi_toolkit.pipeline.runner import run_pipeline

    root, _ = root_subject
    out = tmp_path / "out"
    run_pipeline(root, out, pipeline="tractography", cohort=False)
    sdir = out / "sub-01"
    doc = json.loads((sdir / "report" / "report.json").read_text())
    _check_block(doc["tractography"])
    # the files the step wrote are on disk and listed relative to the subject folder
    files = doc["tractography"]["files"]
    assert (sdir / files["streamline_index"]).is_file() and (sdir / files["profiles"]).is_file()
    assert (sdir / "tracts" / "streamlines" / "roots_L5_left.tck").is_file()
    with open(sdir / files["profiles"]) as fh:
        rows = list(csv.DictReader(fh))
    assert {r["unit"] for r in rows if r["parameter"] == "adc"} == {"mm^2/s"}
    # report: gradient-check QC line, tractography section with both figures, CSV tables
    assert doc["qc"]["gradient_check"].split(":")[0] in ("ok", "inconclusive")
    assert doc["provenance"]["gradient_check"]["applied"] is False
    assert {"tract_profiles", "tracts_coronal"} <= {p.stem for p in (sdir / "report" / "figures").glob("*.png")}
    html = (sdir / "report" / "report.html").read_text()
    assert "Root tractography and along-root profiles" in html and "Gradient check" in html
    assert (sdir / "report" / "tract_profile_comparison.csv").is_file()
    man = json.loads((out / "manifest.json").read_text())
    entry = next(iter(man["subjects"].values()))
    assert "tracts_streamline_index" in entry["products"]


def test_analyze_track_option(root_subject, tmp_path):
    from dwi_toolkit.cli.main import main

    root, _ = root_subject
    sub = root / "sub-01"
    out = tmp_path / "rep"
    rc = main(["analyze", str(sub / "dwi" / "sub-01_dwi.nii.gz"), "--rois", str(sub / "rois.json"),
               "--clinical", str(sub / "clinical.json"), "-o", str(out), "--track", "--n-boot", "200",
               "--no-figures"])
    assert rc == 0
    doc = json.loads((out / "report.json").read_text())
    _check_block(doc["tractography"])
    assert doc["provenance"]["parameters"]["track"] is True
    assert (out / "tracts" / "along_root_profiles.csv").is_file()
    assert not (out / "figures").exists() or not list((out / "figures").glob("tract*"))
    assert {r["origin"] for r in doc["tractography"]["roots"]["rows"]} == {"dural junction (CSF)"}


def test_analyze_track_origins(root_subject, tmp_path):
    """``analyze --track --track-origins FILE``: the junctions set by hand are the distance origins."""
    from dwi_toolkit.cli.main import main

    root, ph = root_subject
    sub = root / "sub-01"
    junctions = tmp_path / "junctions.json"
    save_rois(RoiSet([RootROI(lv, sd, shape=Sphere(p, 0.5)) for (lv, sd), p in ph.junctions.items()]), junctions)
    out = tmp_path / "rep"
    assert main(["analyze", str(sub / "dwi" / "sub-01_dwi.nii.gz"), "--rois", str(sub / "rois.json"), "-o", str(out),
                 "--track", "--track-origins", str(junctions), "--n-boot", "200", "--no-figures"]) == 0
    doc = json.loads((out / "report.json").read_text())
    assert [(r["origin"], r["origin_sd_mm"]) for r in doc["tractography"]["roots"]["rows"]] == [("user point", 0.0)] * 2
    prov = doc["provenance"]
    assert prov["parameters"]["track_origins"] == "junctions.json"  # the name only: paths may hold identifiers
    assert any(f["role"] == "junctions" and f["name"] == "junctions.json" for f in prov["inputs"])


def test_track_step_uses_earlier_dti_fit(root_subject, tmp_path):
    """A pipeline with dti before track tracks on that fit (one tensor fit per subject)."""
    from dwi_toolkit.pipeline.runner import run_pipeline
    from tests.pipeline._helpers import pipeline_file

    root, ph = root_subject
    spec = pipeline_file(tmp_path / "p.toml", 'step = "roi_stats"', 'step = "dti"',
                         'step = "track"\nformat = "trk"\nseeds_per_root = 10', plugins=False)
    out = tmp_path / "out"
    run_pipeline(root, out, pipeline=spec, cohort=False)
    summary = json.loads((out / "sub-01" / "tracts" / "track_summary.json").read_text())
    assert summary["params"]["seeds_per_root"] == 10
    assert all(r["n_seeds"] == 10 for r in summary["roots"])
    assert (out / "sub-01" / "tracts" / "streamlines" / "roots_L5_right.trk").is_file()
    assert np.isfinite([r["centerline_length_mm"] for r in summary["roots"]]).all()


def test_junction_file_sets_the_origins(root_subject, tmp_path):
    """A subject's ``rois/junctions.mrk.json`` (Slicer points, one per root) is found beside its
    ROIs, is not taken for the ROIs, is checksummed as an input, and sets the distance origins of
    the ``track`` step (no origin uncertainty, no misalignment allowed)."""
    import shutil

    from dwi_toolkit.pipeline.layout import discover, input_checksums
    from dwi_toolkit.pipeline.runner import run_pipeline

    src, ph = root_subject
    root = tmp_path / "in"
    shutil.copytree(src, root)
    (root / "sub-01" / "rois").mkdir()
    save_rois(RoiSet([RootROI(lv, sd, shape=Sphere(p, 0.5)) for (lv, sd), p in ph.junctions.items()]),
              root / "sub-01" / "rois" / "junctions.mrk.json")
    subject = discover(root).subjects[0]
    assert subject.rois.name == "rois.json" and subject.junctions.name == "junctions.mrk.json"
    assert input_checksums(subject)["junctions"]["path"] == "sub-01/rois/junctions.mrk.json"
    out = tmp_path / "out"
    run_pipeline(root, out, pipeline="tractography", cohort=False)
    summary = json.loads((out / "sub-01" / "tracts" / "track_summary.json").read_text())
    assert [(r["origin"], r["origin_sd_mm"]) for r in summary["roots"]] == [("user point", 0.0)] * 2
    with open(out / "sub-01" / "tracts" / "profile_comparison.csv") as fh:
        assert {float(r["max_misalignment_mm"]) for r in csv.DictReader(fh)} == {0.0}
