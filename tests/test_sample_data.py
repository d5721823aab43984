"""sample_data/ is intact and reproducible from its generator; the phantom's truth holds."""

import hashlib

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
