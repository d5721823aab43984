"""`dwi-toolkit roi ...` in-process."""

from __future__ import annotations

import csv
import json

import nibabel as nib
import numpy as np
import pytest

from dwi_toolkit.analysis.roi_stats import roi_stats
from dwi_toolkit.cli.main import main
from dwi_toolkit.core.image import ParameterMap
from dwi_toolkit.io.nifti import save_map
from dwi_toolkit.io.rois import load_rois, save_rois
from dwi_toolkit.roi.masks import rasterize
from dwi_toolkit.roi.model import RootROI, RoiSet, Sphere
from tests.roi.synthetic import make_volume


@pytest.fixture
def scene(tmp_path):
    vol, aff, _, _, roots = make_volume(yaw_deg=4.0, noise=0.02, seed=5)
    a, b = roots["left"]
    adc = np.where(vol > 1.0, 1.5e-3, 1.1e-3)
    save_map(ParameterMap(adc, aff, "adc", "mm^2/s"), tmp_path / "adc.nii.gz")
    save_map(ParameterMap(vol, aff, "trace", ""), tmp_path / "trace.nii.gz")
    rois = RoiSet([RootROI("L5", "left", shape=Sphere(a + 0.5 * (b - a), 2.5)),
                   RootROI("L4", "left", "post", Sphere(a + 0.8 * (b - a), 2.0))])
    save_rois(rois, tmp_path / "rois.json")
    return tmp_path, rois, adc, aff, roots


def test_convert_round_trips(scene, capsys):
    d, rois, adc, aff, _ = scene
    assert main(["roi", "convert", str(d / "rois.json"), str(d / "rois.mrk.json")]) == 0
    assert main(["roi", "convert", str(d / "rois.mrk.json"), str(d / "back.json")]) == 0
    assert main(["roi", "convert", str(d / "back.json"), str(d / "roots_dseg.nii.gz"),
                 "--reference", str(d / "adc.nii.gz")]) == 0
    assert main(["roi", "convert", str(d / "roots_dseg.nii.gz"), str(d / "fromlabels.json")]) == 0
    for name in ("back.json", "fromlabels.json"):
        got = load_rois(d / name)
        assert got.names == rois.names
        for r in rois:
            assert np.array_equal(rasterize(got[r.name], adc.shape, aff), rasterize(r, adc.shape, aff))
    assert "wrote 2 ROIs" in capsys.readouterr().out
    assert main(["roi", "convert", str(d / "rois.json"), str(d / "x_dseg.nii.gz")]) == 2
    assert "reference=" in capsys.readouterr().err


def test_stats_on_map(scene, capsys):
    d, rois, adc, aff, _ = scene
    assert main(["roi", "stats", str(d / "adc.nii.gz"), "--rois", str(d / "rois.json"), "-o", str(d / "t.csv")]) == 0
    out = capsys.readouterr().out
    assert "x10^-3 mm^2/s" in out and "L5_left_ganglion" in out
    rows = list(csv.DictReader((d / "t.csv").read_text().splitlines()))
    expect = roi_stats(ParameterMap(adc.astype(np.float32), aff, "adc", "mm^2/s"), rois)
    for row, e in zip(rows, expect):
        assert row["level"] == e.level and int(row["n_voxels"]) == e.n_voxels
        assert float(row["mean"]) == pytest.approx(e.mean, rel=1e-6)
        assert row["unit"] == "mm^2/s"
    # scanner-unit map with --scale
    nib.save(nib.Nifti1Image(np.round(adc * 1e6).astype(np.int16), aff), str(d / "scanner_adc.nii.gz"))
    assert main(["roi", "stats", str(d / "scanner_adc.nii.gz"), "--rois", str(d / "rois.json"),
                 "--parameter", "adc", "--scale", "1e-6", "--json"]) == 0
    recs = json.loads(capsys.readouterr().out)
    assert recs[0]["mean"] == pytest.approx(expect[0].mean, rel=1e-6)


def test_show_and_mirror(scene, capsys):
    d, rois, adc, aff, roots = scene
    assert main(["roi", "show", str(d / "trace.nii.gz"), "--rois", str(d / "rois.json"), "-o", str(d / "f.png")]) == 0
    assert (d / "f.png").read_bytes()[:4] == b"\x89PNG"
    assert main(["roi", "mirror", str(d / "trace.nii.gz"), "--rois", str(d / "rois.json"), "-o", str(d / "m.json")]) == 0
    out = capsys.readouterr().out
    assert "mid-sagittal plane" in out
    m = load_rois(d / "m.json")
    assert set(m.names) == set(rois.names) | {"L5_right_ganglion", "L4_right_postganglionic"}
    ra, rb = roots["right"]
    c = m.get("L5", "right").shape.center
    t = np.clip((c - ra) @ (rb - ra) / ((rb - ra) @ (rb - ra)), 0, 1)
    assert np.linalg.norm(c - (ra + t * (rb - ra))) < 1.5
    assert main(["roi", "mirror", str(d / "trace.nii.gz"), "--rois", str(d / "rois.json"), "-o", str(d / "p.json"),
                 "--plane-points", "0,-20,0", "0,20,0", "--no-snap"]) == 0
    p = load_rois(d / "p.json")
    np.testing.assert_allclose(p.get("L5", "right").shape.center[0], -rois.get("L5", "left").shape.center[0])
    assert main(["roi", "mirror", str(d / "trace.nii.gz"), "--rois", str(d / "rois.json"), "-o", str(d / "l.json"),
                 "--per-level"]) == 0
    out = capsys.readouterr().out
    assert "mid-sagittal plane (L5)" in out and "mid-sagittal plane (L4)" in out
    assert set(load_rois(d / "l.json").names) == set(m.names)


def test_stats_names_truth_adc_map(tmp_path, capsys):
    """A map whose descrip says mm^2/s and whose name contains 'adc' is measured as ADC."""
    from dwi_toolkit.phantom import make_lumbar_phantom
    from dwi_toolkit.roi.sample import sample_rois

    ph = make_lumbar_phantom(noise=False)
    save_map(ParameterMap(ph.adc_true.astype(np.float32), ph.series.affine, "adc", "mm^2/s"),
             tmp_path / "sub-01_adc_true.nii.gz")
    sample_rois(ph).save(tmp_path / "rois.json")
    assert main(["roi", "stats", str(tmp_path / "sub-01_adc_true.nii.gz"), "--rois", str(tmp_path / "rois.json"),
                 "--json"]) == 0
    recs = json.loads(capsys.readouterr().out)
    for r in recs:
        assert r["parameter"] == "adc" and r["unit"] == "mm^2/s"
        assert r["mean"] == pytest.approx(ph.root_adc[(r["level"], r["side"])], rel=1e-6)


def test_draw_needs_interactive_backend(scene, capsys):
    d, *_ = scene
    assert main(["roi", "draw", str(d / "trace.nii.gz"), "-o", str(d / "x.json")]) == 2
    assert "interactive matplotlib backend" in capsys.readouterr().err


def test_bad_roi_file(scene, capsys):
    d, *_ = scene
    (d / "bad.json").write_text('{"schema": "dwi_toolkit.rois/1", "rois": [{"level": "L9", "side": "left"}]}')
    assert main(["roi", "stats", str(d / "adc.nii.gz"), "--rois", str(d / "bad.json")]) == 2
    assert "unknown nerve-root level 'L9'" in capsys.readouterr().err


def test_stats_on_dwi_fits_adc_first(tmp_path, capsys):
    from dwi_toolkit.phantom import make_lumbar_phantom
    from dwi_toolkit.roi.sample import sample_rois

    ph = make_lumbar_phantom(noise=False)
    ph.series.save(tmp_path / "dwi.nii.gz")
    sample_rois(ph).save(tmp_path / "rois.json")
    assert main(["roi", "stats", str(tmp_path / "dwi.nii.gz"), "--rois", str(tmp_path / "rois.json"),
                 "-o", str(tmp_path / "stats.csv")]) == 0
    rows = list(csv.DictReader((tmp_path / "stats.csv").read_text().splitlines()))
    assert len(rows) == 12
    for row in rows:
        assert row["parameter"] == "adc" and row["unit"] == "mm^2/s"
        assert float(row["mean"]) == pytest.approx(ph.root_adc[(row["level"], row["side"])], rel=1e-4)
    assert "x10^-3 mm^2/s" in capsys.readouterr().out
    assert main(["roi", "show", str(tmp_path / "dwi.nii.gz"), "--rois", str(tmp_path / "rois.json"),
                 "-o", str(tmp_path / "b0.png"), "--background", "b0", "--view", "coronal"]) == 0
    assert (tmp_path / "b0.png").exists()
