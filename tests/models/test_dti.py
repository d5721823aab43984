"""DTI: analytic tensors, equality with dipy (bundled, vendor and noisy data), IWLS, chunking, memory, status."""

from __future__ import annotations

import numpy as np
import pytest

from dwi_toolkit.core.image import DWISeries
from dwi_toolkit.errors import FitError, InputDataError
from dwi_toolkit.models.dti import STATUS_CODES, fit_dti
from tests.conftest import shared_path


def _directions(n, rng):
    v = rng.standard_normal((n, 3))
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _random_tensors(n, rng):
    """Random SPD tensors with eigenvalues in the tissue range (mm²/s)."""
    ev = np.sort(rng.uniform(0.1e-3, 2.5e-3, (n, 3)), axis=1)[:, ::-1]
    q, _ = np.linalg.qr(rng.standard_normal((n, 3, 3)))
    tens = np.einsum("nij,nj,nkj->nik", q, ev, q)
    return tens, ev


def _signal(tens, bvals, bvecs, s0=1000.0):
    adc = np.einsum("mi,nij,mj->nm", bvecs, tens, bvecs)
    return s0 * np.exp(-bvals[None, :] * adc)


def _analytic_scalars(ev):
    """dwi_toolkit References §1.3 formulas."""
    md = ev.mean(1)
    fa = np.sqrt(1.5) * np.sqrt(((ev - md[:, None]) ** 2).sum(1)) / np.sqrt((ev ** 2).sum(1))
    return fa, md, ev[:, 0], ev[:, 1:].mean(1)


@pytest.mark.parametrize("method", ["WLS", "OLS", "iwls", "NLLS"])
def test_noiseless_tensors_exact(method, rng):
    n = 60
    tens, ev = _random_tensors(n, rng)
    bvecs = np.vstack([np.zeros((2, 3)), _directions(30, rng)])
    bvals = np.r_[0.0, 0.0, np.full(30, 1000.0)]
    data = _signal(tens, bvals, bvecs).reshape(n, 1, 1, -1)
    fit = fit_dti(DWISeries(data, np.eye(4), bvals, bvecs), method=method)
    fa, md, ad, rd = _analytic_scalars(ev)
    assert np.all(fit.status == 0)
    np.testing.assert_allclose(fit.fa.ravel(), fa, atol=1e-6)
    np.testing.assert_allclose(fit.md.ravel(), md, rtol=1e-6)
    np.testing.assert_allclose(fit.ad.ravel(), ad, rtol=1e-6)
    np.testing.assert_allclose(fit.rd.ravel(), rd, rtol=1e-6)
    # principal direction parallel to the largest eigenvector of the true tensor
    true_v1 = np.linalg.eigh(tens)[1][:, :, -1]
    cos = np.abs(np.einsum("ni,ni->n", fit.principal_direction.reshape(n, 3), true_v1))
    np.testing.assert_allclose(cos, 1.0, atol=1e-6)


def test_mask_b_range_and_status(rng):
    tens, _ = _random_tensors(4, rng)
    bvecs = np.vstack([np.zeros((1, 3)), _directions(12, rng), _directions(12, rng)])
    bvals = np.r_[0.0, np.full(12, 1000.0), np.full(12, 2500.0)]
    data = _signal(tens, bvals, bvecs).reshape(2, 2, 1, -1)
    data[1, 1, 0, 0] = 0.0  # b=0 <= 0 -> invalid
    mask = np.ones((2, 2, 1), bool)
    mask[0, 0, 0] = False
    s = DWISeries(data, np.eye(4), bvals, bvecs)
    fit = fit_dti(s, b_range=(0, 1000), mask=mask)
    assert fit.bvals_used.max() == 1000.0 and fit.bvals_used.size == 13
    assert fit.status[0, 0, 0] == 1 and fit.status[1, 1, 0] == 2
    assert np.isnan(fit.fa[0, 0, 0]) and np.isnan(fit.md[1, 1, 0])
    assert fit.status[0, 1, 0] == 0 and fit.status[1, 0, 0] == 0
    assert set(STATUS_CODES) == {0, 1, 2, 3}
    assert fit.map("md").unit == "mm^2/s" and fit.map("FA").unit == ""
    assert set(fit.to_maps()) == {"fa", "md", "ad", "rd", "s0", "status"}


def test_too_few_directions_and_bad_options(rng):
    bvecs = np.vstack([np.zeros(3), np.eye(3)])
    s = DWISeries(np.ones((1, 1, 1, 4)), np.eye(4), [0, 1000, 1000, 1000], bvecs)
    with pytest.raises(FitError, match="six non-collinear"):
        fit_dti(s)
    with pytest.raises(InputDataError, match="unknown DTI method"):
        fit_dti(s, method="magic")


def test_principal_direction_ras_undoes_fsl_flip():
    # tensor along voxel axis x; affine with positive determinant: FSL flips bvec x
    bvecs = np.vstack([np.zeros(3), np.eye(3), np.array([[1, 1, 0], [1, 0, 1], [0, 1, 1]]) / np.sqrt(2)])
    bvals = np.r_[0.0, np.full(6, 1000.0)]
    tens = np.diag([1.7e-3, 0.3e-3, 0.3e-3])[None]
    data = _signal(tens, bvals, bvecs).reshape(1, 1, 1, -1)
    affine = np.array([[0, -2.0, 0, 0], [2.0, 0, 0, 0], [0, 0, 3.0, 0], [0, 0, 0, 1]])  # voxel x -> world A
    fit = fit_dti(DWISeries(data, affine, bvals, bvecs))
    v = fit.principal_direction_ras()[0, 0, 0]
    np.testing.assert_allclose(np.abs(v), [0, 1, 0], atol=1e-9)


def test_save(tmp_path, rng):
    nib = pytest.importorskip("nibabel")
    tens, _ = _random_tensors(2, rng)
    bvecs = np.vstack([np.zeros((1, 3)), _directions(10, rng)])
    bvals = np.r_[0.0, np.full(10, 1000.0)]
    fit = fit_dti(DWISeries(_signal(tens, bvals, bvecs).reshape(2, 1, 1, -1), np.eye(4), bvals, bvecs))
    paths = fit.save(tmp_path)
    assert nib.load(str(paths["v1"])).shape == (2, 1, 1, 3)
    np.testing.assert_allclose(np.asarray(nib.load(str(paths["fa"])).dataobj), fit.fa, rtol=1e-6)


def _dipy_reference(series, mask=None):
    from dipy.core.gradients import gradient_table
    from dipy.reconst.dti import TensorModel

    gtab = gradient_table(series.bvals, bvecs=series.bvecs, b0_threshold=series.b0_threshold)
    return TensorModel(gtab, fit_method="WLS").fit(series.data, mask=mask)


def test_equals_dipy_on_bundled_small_64d():
    from dipy.data import get_fnames

    from dwi_toolkit.io.nifti import load_nifti_dwi

    fdata, fbval, fbvec = get_fnames(name="small_64D")
    bvals = np.loadtxt(fbval)
    bvecs = np.loadtxt(fbvec)
    bvecs = bvecs.T if bvecs.shape[0] == 3 else bvecs
    bvecs[bvals == 0] = 0.0  # the bundled file writes NaN for the b=0 direction
    s = load_nifti_dwi(fdata, bvals=bvals, bvecs=bvecs)
    fit = fit_dti(s)
    ref = _dipy_reference(s)
    ok = fit.status == 0
    assert ok.sum() > 0.5 * ok.size
    np.testing.assert_allclose(fit.fa[ok], ref.fa[ok], rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(fit.md[ok], ref.md[ok], rtol=1e-5, atol=1e-12)


VENDOR = [
    ("siemens_b15_mosaic_ep2d_dti_subset", "oracle", "b15_sub_2_ep2d_DTI_20_dir_AP", ".nii.gz", True),
    ("philips_r571_dwi_classic_gz", "oracle", "phdwi_cl_701_DTI_Biobank_2mm_MB3S2_EPI", ".nii.gz", True),
    ("siemens_xa30_enhanced_dwi_with_scanner_adc", "oracle", "xa30_10_10_DWI_dir80_PA", ".nii.gz", True),
    # GE: dcm2niix's oracle folder has no image; the upstream reference conversion has one, but
    # its 7 volumes hold identical pixels (no diffusion contrast), so only equality is checked
    ("ge_mr29_dwi_tensor_r2", "reference", "Ax_DWI_TENSOR_R2_1", ".nii", False),
]


@pytest.mark.needs_shared_data
@pytest.mark.slow
@pytest.mark.parametrize("folder,sub,stem,ext,has_contrast", VENDOR, ids=[v[0].split("_")[0] + "_" + v[0].split("_")[1] for v in VENDOR])
def test_equals_dipy_on_vendor_series(folder, sub, stem, ext, has_contrast):
    from dwi_toolkit.io.nifti import load_nifti_dwi

    base = shared_path("dicom", folder, sub)
    s = load_nifti_dwi(base / f"{stem}{ext}", bvals=base / f"{stem}.bval", bvecs=base / f"{stem}.bvec")
    # central slab keeps the test quick; the fit is voxel-wise so this loses nothing
    z = s.spatial_shape[2]
    s = s.replace(data=s.data[:, :, max(0, z // 2 - 2): z // 2 + 2])
    fit = fit_dti(s)
    ref = _dipy_reference(s)
    ok = fit.status == 0
    assert ok.sum() > 1000
    np.testing.assert_allclose(fit.fa[ok], ref.fa[ok], rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(fit.md[ok], ref.md[ok], rtol=1e-5, atol=1e-12)
    if not has_contrast:
        return
    # plausible tissue values in the brightest quarter of the image
    b0 = s.mean_b0()
    bright = ok & (b0 > np.percentile(b0[ok], 75))
    assert 0.2e-3 < np.median(fit.md[bright]) < 3.5e-3


def test_fa_roi_statistics_exclude_failed_voxels(rng):
    from dwi_toolkit.analysis.roi_stats import roi_stats
    from dwi_toolkit.roi.model import RootROI, Sphere

    tens, _ = _random_tensors(1, rng)
    bvecs = np.vstack([np.zeros((1, 3)), _directions(12, rng)])
    bvals = np.r_[0.0, np.full(12, 1000.0)]
    data = np.tile(_signal(tens, bvals, bvecs)[0], (9, 9, 9, 1))
    data[4, 4, 4, 0] = 0.0  # one invalid voxel inside the ROI
    fit = fit_dti(DWISeries(data, np.eye(4), bvals, bvecs))
    roi = RootROI("L5", "left", shape=Sphere([4, 4, 4], 2))
    row = roi_stats(fit.map("fa", ok_only=True), [roi])[0]
    assert row.parameter == "fa" and row.n_voxels == 32 and row.n_excluded == 1
    ev = np.linalg.eigvalsh(tens[0])
    fa = np.sqrt(1.5) * np.linalg.norm(ev - ev.mean()) / np.linalg.norm(ev)
    assert row.mean == pytest.approx(fa, abs=1e-6)


def _noisy_series(rng, shape=(9, 8, 7), n_dir=20, sigma=25.0):
    tens, _ = _random_tensors(int(np.prod(shape)), rng)
    bvecs = np.vstack([np.zeros((2, 3)), _directions(n_dir, rng), _directions(n_dir, rng)])
    bvals = np.r_[0.0, 0.0, np.full(n_dir, 800.0), np.full(n_dir, 1500.0)]
    clean = _signal(tens, bvals, bvecs)
    noisy = np.abs(clean + rng.normal(0, sigma, clean.shape) + 1j * rng.normal(0, sigma, clean.shape))
    return DWISeries(np.round(noisy).astype(np.int16).reshape(shape + (-1,)), np.eye(4), bvals, bvecs)


@pytest.mark.parametrize("method", ["OLS", "WLS"])
def test_batched_kernel_equals_dipy_on_noisy_int16(method, rng):
    """Our NumPy kernel against dipy's TensorModel on noisy two-shell int16 data (FA/MD 1e-5)."""
    from dipy.core.gradients import gradient_table
    from dipy.reconst.dti import TensorModel

    s = _noisy_series(rng)
    fit = fit_dti(s, method=method.lower(), chunk_size=97)  # odd chunks cross slab boundaries
    ref = TensorModel(gradient_table(s.bvals, bvecs=s.bvecs), fit_method=method).fit(s.data)
    ok = fit.status == 0
    assert ok.all()
    np.testing.assert_allclose(fit.fa, ref.fa, atol=1e-7)
    np.testing.assert_allclose(fit.md, ref.md, rtol=1e-7)
    np.testing.assert_allclose(fit.evals, ref.evals, rtol=1e-6, atol=1e-12)
    np.testing.assert_allclose(fit.s0, ref.S0_hat if ref.S0_hat is not None else fit.s0, rtol=1e-6)
    cos = np.abs(np.einsum("...i,...i->...", fit.principal_direction, ref.evecs[..., :, 0]))
    sep = (ref.evals[..., 0] - ref.evals[..., 1]) > 1e-4  # v1 defined
    np.testing.assert_allclose(cos[sep], 1.0, atol=1e-6)


def test_iwls_is_the_weighted_fixed_point(rng):
    """IWLS with many iterations solves ln S = Xβ with weights exp(2Xβ) at its own solution."""
    from dwi_toolkit.models._tensor import design_matrix

    s = _noisy_series(rng, shape=(3, 1, 1), sigma=40.0)
    fit = fit_dti(s, method="IWLS", iterations=30)
    X = design_matrix(s.bvals, s.bvecs)
    for v in range(3):
        y = np.log(s.data[v, 0, 0].astype(float))
        beta = None
        for _ in range(60):  # scipy-free reference: plain iterated WLS by lstsq
            w = np.ones_like(y) if beta is None else np.exp(X @ beta)
            beta = np.linalg.lstsq(X * w[:, None], w * y, rcond=None)[0]
        lower = beta[:6]
        tens = np.array([[lower[0], lower[1], lower[3]], [lower[1], lower[2], lower[4]],
                         [lower[3], lower[4], lower[5]]])
        np.testing.assert_allclose(fit.evals[v, 0, 0], np.linalg.eigvalsh(tens)[::-1], rtol=1e-6)
        np.testing.assert_allclose(fit.s0[v, 0, 0], np.exp(beta[6]), rtol=1e-6)


def test_chunking_memory_layout_and_method_case(rng):
    s = _noisy_series(rng, shape=(6, 5, 4))
    ref = fit_dti(s)
    fortran = s.replace(data=np.asfortranarray(s.data))
    for fit in (fit_dti(s, chunk_size=1), fit_dti(fortran, chunk_size=7), fit_dti(s, method="wls")):
        np.testing.assert_array_equal(fit.status, ref.status)
        np.testing.assert_allclose(fit.fa, ref.fa, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(fit.evecs[..., :, 0] ** 2, ref.evecs[..., :, 0] ** 2, atol=1e-10)
    with pytest.raises(InputDataError, match="chunk_size"):
        fit_dti(s, chunk_size=0)


def test_refuses_what_cannot_fit_in_memory(rng, monkeypatch):
    from dwi_toolkit.errors import InsufficientMemoryError
    from dwi_toolkit.models import _chunks

    s = _noisy_series(rng, shape=(4, 4, 4))
    monkeypatch.setattr(_chunks, "available_memory", lambda: 1000)
    with pytest.raises(InsufficientMemoryError, match="GiB"):
        fit_dti(s)


def test_closed_form_eigen_matches_lapack(rng):
    from dwi_toolkit.models._tensor import eigh_sym3

    a = rng.standard_normal((500, 3, 3))
    a = a + a.transpose(0, 2, 1)
    a[:3] = [np.eye(3), np.diag([2.0, 1.0, 1.0]), np.diag([1.0, 1.0, 3.0])]  # degenerate cases
    lower = np.stack([a[:, 0, 0], a[:, 0, 1], a[:, 1, 1], a[:, 0, 2], a[:, 1, 2], a[:, 2, 2]])
    vals, vecs = eigh_sym3(lower)
    np.testing.assert_allclose(vals, np.linalg.eigvalsh(a)[:, ::-1], atol=1e-12)
    np.testing.assert_allclose(np.einsum("vij,vj,vkj->vik", vecs, vals, vecs), a, atol=1e-12)
    np.testing.assert_allclose(np.einsum("vji,vjk->vik", vecs, vecs), np.broadcast_to(np.eye(3), a.shape), atol=1e-12)
