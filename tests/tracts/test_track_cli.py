"""``dwi-toolkit track``: writes streamlines per root, tube ROIs, profiles, comparison and figures."""

from __future__ import annotations

import csv
import json

import numpy as np

from dwi_toolkit.cli.main import main
from dwi_toolkit.io.rois import load_rois, save_rois
from dwi_toolkit.phantom_roots import RootLesion, make_root_phantom
from dwi_toolkit.roi.model import RootROI, RoiSet, Sphere


def test_track_command_end_to_end(tmp_path, capsys):
    import nibabel as nib

    ph = make_root_phantom(levels=("L5",), voxel_size=2.5, n_directions=12, snr=30, lesion=RootLesion("L5", "left"))
    ph.series.save(tmp_path / "dwi.nii.gz")
    nib.save(nib.Nifti1Image(ph.body_mask.astype(np.uint8), ph.series.affine), str(tmp_path / "mask.nii.gz"))
    save_rois(RoiSet([RootROI(lv, sd, shape=Sphere(p, 2.0)) for (lv, sd), p in ph.seeds.items()]),
              tmp_path / "seeds.json")
    out = tmp_path / "out"
    rc = main(["track", str(tmp_path / "dwi.nii.gz"), "--rois", str(tmp_path / "seeds.json"), "--mask",
               str(tmp_path / "mask.nii.gz"), "-o", str(out), "--format", "tck"])
    assert rc == 0
    assert "L5 left" in capsys.readouterr().out
    summary = json.loads((out / "track_summary.json").read_text())
    assert [(r["level"], r["side"]) for r in summary["roots"]] == [("L5", "left"), ("L5", "right")]
    assert summary["lesions"] and summary["lesions"][0]["side"] == "left"
    assert (out / "streamlines" / "roots_L5_left.tck").exists()
    tubes = load_rois(out / "tract_rois.json")
    assert len(tubes) == 2 and tubes.get("L5", "left").shape.kind == "tube"
    with open(out / "along_root_profiles.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert {r["parameter"] for r in rows} == {"fa", "adc", "md", "ad", "rd"}
    assert {"distance_mm", "ci_low", "ci_high", "n_streamlines"} <= set(rows[0])
    assert (out / "tracts_coronal.png").stat().st_size > 1000 and (out / "profiles.png").exists()


def test_track_command_takes_junctions_set_by_hand(tmp_path):
    """``--origins`` (here Slicer point markups, one per root): distance 0 at those points, no
    origin uncertainty, recorded in the summary."""
    import nibabel as nib

    ph = make_root_phantom(levels=("L5",), voxel_size=2.5, n_directions=12, snr=30)
    ph.series.save(tmp_path / "dwi.nii.gz")
    nib.save(nib.Nifti1Image(ph.body_mask.astype(np.uint8), ph.series.affine), str(tmp_path / "mask.nii.gz"))
    save_rois(RoiSet([RootROI(lv, sd, shape=Sphere(p, 2.0)) for (lv, sd), p in ph.seeds.items()]),
              tmp_path / "seeds.json")
    save_rois(RoiSet([RootROI(lv, sd, shape=Sphere(p, 0.5)) for (lv, sd), p in ph.junctions.items()]),
              tmp_path / "junctions.mrk.json")
    out = tmp_path / "out"
    assert main(["track", str(tmp_path / "dwi.nii.gz"), "--rois", str(tmp_path / "seeds.json"), "--mask",
                 str(tmp_path / "mask.nii.gz"), "--origins", str(tmp_path / "junctions.mrk.json"), "-o", str(out),
                 "--no-figures"]) == 0
    roots = json.loads((out / "track_summary.json").read_text())["roots"]
    assert [(r["origin"], r["origin_sd_mm"]) for r in roots] == [("user point", 0.0)] * 2
    with open(out / "profile_comparison.csv") as fh:
        assert {float(r["max_misalignment_mm"]) for r in csv.DictReader(fh)} == {0.0}
