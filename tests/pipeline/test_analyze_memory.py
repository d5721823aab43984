"""Issue 21 (front door): chunk_size and --dti/--no-dti reach the fits; memory-lean data paths give
the same numbers as the plain ones (ROI-only decay curves, volume selection, chunked .nii.gz read)."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys

import nibabel as nib
import numpy as np
import pytest

from dwi_toolkit.core import signal as sig
from dwi_toolkit.core.image import DWISeries
from dwi_toolkit.errors import InputDataError
from dwi_toolkit.io.nifti import load_nifti_dwi
from dwi_toolkit.io.rois import save_rois
from dwi_toolkit.phantom import make_lumbar_phantom
from dwi_toolkit.pipeline.analyze import AnalysisOptions, run_analysis
from dwi_toolkit.reporting.figures import roi_decay_curves
from dwi_toolkit.roi.sample import sample_rois


@pytest.fixture(scope="module")
def subject(tmp_path_factory):
    d = tmp_path_factory.mktemp("subj")
    ph = make_lumbar_phantom(shape=(56, 48, 40), voxel_size=(2.5, 2.5, 5.0), n_directions=6, bvals=(0, 800),
                             seed=4)
    ph.series.save(d / "dwi.nii.gz")
    save_rois(sample_rois(ph), d / "rois.json")
    return d


def _rows(rep):
    return sorted((r.level, r.segment, r.parameter, r.value_left, r.value_right, r.rel_diff_pct)
                  for r in rep.comparison.rows)


def test_chunk_size_and_dti_options_reach_the_fits(subject):
    base = AnalysisOptions(figures=False, n_boot=100, symptomatic_side="left")
    default = run_analysis(subject / "dwi.nii.gz", subject / "rois.json", options=base)
    small = run_analysis(subject / "dwi.nii.gz", subject / "rois.json", options=base.replace(chunk_size=256))
    assert {r[2] for r in _rows(default)} == {"adc", "fa", "md"}  # 6 directions: the tensor is fitted
    assert _rows(small) == _rows(default)  # chunking changes memory, not results
    no_dti = run_analysis(subject / "dwi.nii.gz", subject / "rois.json", options=base.replace(dti=False))
    assert {r[2] for r in _rows(no_dti)} == {"adc"}
    assert [r for r in _rows(no_dti)] == [r for r in _rows(default) if r[2] == "adc"]
    with pytest.raises(InputDataError, match="chunk_size"):
        AnalysisOptions(chunk_size=10)


def test_cli_chunk_size_and_no_dti(subject, tmp_path):
    from dwi_toolkit.cli.main import main

    assert main(["analyze", str(subject / "dwi.nii.gz"), "--rois", str(subject / "rois.json"), "--no-dti",
                 "--chunk-size", "512", "--symptomatic-side", "left", "--n-boot", "100", "--no-figures",
                 "-o", str(tmp_path / "out")]) == 0
    params = json.loads((tmp_path / "out" / "report.json").read_text())["provenance"]["parameters"]
    flat = {k: v.get("value") if isinstance(v, dict) else v for k, v in params.items()}
    assert flat["chunk_size"] == 512 and flat["dti"] is False
    assert main(["dti", str(subject / "dwi.nii.gz"), "--chunk-size", "300", "--no-figures",
                 "-o", str(tmp_path / "dti")]) == 0


@pytest.mark.parametrize("order", ["F", "C"])
def test_decay_curves_from_roi_voxels_equal_the_whole_image_trace(order):
    rng = np.random.default_rng(1)
    b = np.r_[0, 0, np.full(12, 400.0), np.full(9, 800.0)]
    g = rng.normal(size=(23, 3))
    g /= np.linalg.norm(g, axis=1, keepdims=True)
    g[:2] = 0
    data = np.asarray(rng.integers(1, 3000, size=(12, 10, 6, b.size)), dtype=np.int16, order=order)
    s = DWISeries(data, np.eye(4), b, g)
    masks = [("a", rng.random((12, 10, 6)) < 0.2), ("b", rng.random((12, 10, 6)) < 0.1)]
    _, trace = s.trace()
    for (_, m), curve in zip(masks, roi_decay_curves(s, masks)):
        vox = trace[m].astype(float)
        np.testing.assert_array_equal(curve.signal, vox.mean(0))
        np.testing.assert_array_equal(curve.sd, vox.std(0, ddof=1))


def test_volume_selection_equals_np_take_on_fortran_data():
    a = np.asfortranarray(np.random.default_rng(2).integers(1, 999, (7, 6, 5, 20)).astype(np.int16))
    b0 = np.zeros(20, bool)
    b0[[0, 3, 4, 9, 10, 11, 12, 13, 14]] = True
    expect = np.take(a, np.flatnonzero(b0), axis=-1).astype(np.float32).mean(axis=-1)
    np.testing.assert_array_equal(sig.mean_b0(a, b0), expect)
    sub = np.take(a, list(range(1, 20)), axis=-1).astype(np.float32)
    np.testing.assert_array_equal(sig.geometric_mean(a, range(1, 20)), np.exp(np.log(sub).mean(-1)))


def _gz(tmp_path, data):
    img = nib.Nifti1Image(data, np.diag([2.0, 2.0, 4.0, 1.0]))
    nib.save(img, tmp_path / "d.nii.gz")
    n = data.shape[3]
    (tmp_path / "d.bval").write_text(" ".join(["0"] + ["800"] * (n - 1)) + "\n")
    vec = np.r_[np.zeros((1, 3)), np.eye(3)[np.arange(n - 1) % 3]].T
    (tmp_path / "d.bvec").write_text("\n".join(" ".join(map(str, r)) for r in vec) + "\n")
    return tmp_path / "d.nii.gz"


def test_gz_series_equals_nibabel_and_truncation_is_reported(tmp_path):
    data = np.random.default_rng(3).integers(0, 4000, (9, 8, 7, 4)).astype(np.int16)
    path = _gz(tmp_path, data)
    s = load_nifti_dwi(path)
    ref = np.asanyarray(nib.load(path).dataobj)
    assert s.data.dtype == ref.dtype and np.array_equal(s.data, ref) and np.array_equal(s.data, data)
    raw = gzip.decompress(path.read_bytes())
    (tmp_path / "t.nii.gz").write_bytes(gzip.compress(raw[:-500]))
    for ext in ("bval", "bvec"):
        (tmp_path / f"t.{ext}").write_text((tmp_path / f"d.{ext}").read_text())
    with pytest.raises(InputDataError, match="truncated|cannot read"):
        load_nifti_dwi(tmp_path / "t.nii.gz")


CHILD = r"""
import resource, sys, json
from dwi_toolkit.io.nifti import load_nifti_dwi
import numpy as np, nibabel  # imported before the baseline
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
s = load_nifti_dwi(sys.argv[1])
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"nbytes": s.data.nbytes, "added": after - before}))
"""


def test_gz_load_peak_is_about_the_data_once(tmp_path):
    data = np.ones((128, 128, 32, 32), dtype=np.int16)  # 32 MiB, compresses fast
    path = _gz(tmp_path, data)
    res = subprocess.run([sys.executable, "-c", CHILD, str(path)], capture_output=True, text=True, check=True)
    r = json.loads(res.stdout.splitlines()[-1])
    assert r["added"] < 1.4 * r["nbytes"], r  # nibabel's one-shot read peaks at 2x
