"""Streamline files: TCK/TRK/TRX round trips read back unchanged by nibabel and dipy."""

from __future__ import annotations

import json

import numpy as np
import pytest

from dwi_toolkit.io.streamlines import load_root_tracts, load_streamlines, save_root_tracts, save_streamlines

AFFINE = np.array([[-2.0, 0, 0, 50], [0, 2.0, 0, -10], [0, 0, 3.0, -30], [0, 0, 0, 1]])
STREAMS = [np.array([[1.0, 2, 3], [4, 5, 6], [7, 8, 9.5]]), np.array([[-3.0, 0, 0], [-4, 1, 1]])]


@pytest.mark.parametrize("ext", ["tck", "trk", "trx"])
def test_round_trip_and_dipy_reads_them(tmp_path, ext):
    if ext == "trx":
        pytest.importorskip("trx", reason="TRX needs the optional 'tracts' extra (trx-python)")
    p = save_streamlines(tmp_path / f"r.{ext}", STREAMS, AFFINE, (40, 30, 20))
    for a, b in zip(STREAMS, load_streamlines(p)):
        np.testing.assert_allclose(b, a, atol=1e-4)
    if ext in ("tck", "trk"):
        import nibabel as nib

        for a, b in zip(STREAMS, nib.streamlines.load(str(p)).streamlines):
            np.testing.assert_allclose(b, a, atol=1e-4)
    from dipy.io.streamline import load_tractogram

    ref = str(p) if ext != "tck" else _reference(tmp_path)
    sft = load_tractogram(str(p), ref, bbox_valid_check=False)
    for a, b in zip(STREAMS, sft.streamlines):
        np.testing.assert_allclose(b, a, atol=1e-4)


def _reference(tmp_path):
    import nibabel as nib

    path = tmp_path / "ref.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((40, 30, 20), np.uint8), AFFINE), str(path))
    return str(path)


def test_unknown_extension_is_an_input_error(tmp_path):
    from dwi_toolkit.errors import InputDataError

    with pytest.raises(InputDataError, match="unknown streamline format"):
        save_streamlines(tmp_path / "r.vtk", STREAMS, AFFINE, (4, 4, 4))


def test_root_tracts_one_file_per_root_with_index(tmp_path):
    from dwi_toolkit.phantom_roots import make_root_phantom
    from dwi_toolkit.tracts import track_roots

    ph = make_root_phantom(levels=("L5",), voxel_size=2.5, n_directions=12, snr=30)
    tracts = track_roots(ph.series, ph.seeds, mask=ph.body_mask)
    index = save_root_tracts(tracts, tmp_path, fmt="trk")
    doc = json.loads(index.read_text())
    assert {(r["level"], r["side"]) for r in doc["roots"]} == {("L5", "left"), ("L5", "right")}
    back = load_root_tracts(index)
    for b in tracts:
        assert len(back[(b.level, b.side)]) == b.n_kept
        np.testing.assert_allclose(back[(b.level, b.side)][0], b.streamlines[0], atol=1e-3)
