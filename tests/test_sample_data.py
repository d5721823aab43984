"""sample_data/ is intact and reproducible from its generator; the phantom's truth holds."""

import hashlib

import pytest

import numpy as np

from dwi_toolkit.models.adc import fit_adc
from dwi_toolkit.phantom import make_lumbar_phantom
from dwi_toolkit.sample_data import checksums, generate


def test_sample_data_checksums_unchanged(sample_dir):
    listed = (sample_dir / "CHECKSUMS.sha256").read_text().split("\n")
    assert listed[:-1], "empty checksum list"
    for line in listed:
        if not line:
            continue
        digest, rel = line.split("  ", 1)
        assert hashlib.sha256((sample_dir / rel).read_bytes()).hexdigest() == digest, rel


def test_generator_reproduces_sample_data(sample_dir, tmp_path):
    generate(tmp_path)
    ours = {ln.split("  ")[1]: ln.split("  ")[0] for ln in checksums(tmp_path).splitlines()}
    shipped = {ln.split("  ")[1]: ln.split("  ")[0]
               for ln in (sample_dir / "CHECKSUMS.sha256").read_text().splitlines()}
    for rel, digest in ours.items():  # newer sample files (ROIs, clinical) may be added elsewhere
        assert shipped.get(rel) == digest, rel


def test_noiseless_phantom_fit_exact():
    ph = make_lumbar_phantom(noise=False, dtype=np.float64)
    fit = fit_adc(ph.series, method="ols", mask=ph.labels > 0)
    tissue = ph.labels > 0
    np.testing.assert_allclose(fit.adc[tissue], ph.adc_true[tissue], rtol=1e-9)
    for (lev, side), adc in ph.root_adc.items():
        m = ph.root_mask(lev, side)
        assert m.sum() > 20
        np.testing.assert_allclose(fit.adc[m], adc, rtol=1e-9)


def test_rotated_phantom_keeps_geometry():
    ph = make_lumbar_phantom(shape=(40, 40, 30), voxel_size=(3, 3, 6), rotation_deg=(0, 0, 12),
                             grid_rotation_deg=(10, 0, 0), noise=False)
    point, normal = ph.midsagittal_plane
    assert abs(np.linalg.norm(normal) - 1) < 1e-12
    assert ph.series.slice_orientation == "axial"  # 10 degrees is the oblique limit
    # left roots lie on the negative side of the mid-sagittal plane (RAS+: +x is patient right)
    for (lev, side), line in ph.centerlines.items():
        s = np.sign((line - point) @ normal)
        assert np.all(s == (-1 if side == "left" else 1)), (lev, side)


@pytest.mark.parametrize("grid_rotation", [(0, 0, 0), (15, 0, 20)])
def test_anisotropic_roots_match_dipy_tensor(grid_rotation):
    """Roots with a tensor along the centre-line: dipy's DTI on the noiseless phantom returns
    the set FA and MD (= root ADC) exactly, and the principal direction follows the root, also
    with oblique slices and a rotated patient (checks the image-frame b-vector convention)."""
    from dwi_toolkit.models.dti import fit_dti

    ph = make_lumbar_phantom(shape=(48, 40, 32), voxel_size=(3, 3, 6), n_directions=12, bvals=(0, 800),
                             root_fa=0.32, altered_fa={("L5", "left"): 0.22}, noise=False,
                             dtype=np.float64, grid_rotation_deg=grid_rotation, rotation_deg=(0, 0, 10))
    fit = fit_dti(ph.series, mask=ph.labels > 0)
    for (lev, side), fa in ph.root_fa.items():
        m = ph.root_mask(lev, side)
        np.testing.assert_allclose(fit.fa[m], fa, atol=1e-9)
        np.testing.assert_allclose(fit.md[m], ph.root_adc[(lev, side)], rtol=1e-9)
    # principal direction (image frame, FSL convention) -> world, vs the centre-line direction
    lin = ph.series.affine[:3, :3]
    axes = lin / np.linalg.norm(lin, axis=0)
    flip = np.diag([-1.0, 1, 1]) if np.linalg.det(lin) > 0 else np.eye(3)
    m = ph.root_mask("L3", "right", "ganglion")
    v = fit.principal_direction[m] @ (axes @ flip).T
    line = ph.centerlines[("L3", "right")]
    seg = (line[3] - line[2]) / np.linalg.norm(line[3] - line[2])
    assert np.median(np.abs(v @ seg)) > 0.99


def test_bids_sample_keeps_its_pipeline_inputs(sample_dir):
    """sample_data/ is a BIDS dataset now (dataset_description.json), and the pipeline still finds
    the subject's ROIs (sub-01/rois/, outside BIDS) and clinical.json there."""
    from dwi_toolkit.pipeline.layout import discover

    ds = discover(sample_dir)
    (sub,) = ds.subjects
    assert ds.kind == "bids" and sub.problem is None
    assert sub.rois == sample_dir / "sub-01" / "rois" / "sub-01_rois.json"
    assert sub.clinical == sample_dir / "sub-01" / "clinical.json"
