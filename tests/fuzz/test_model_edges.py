"""Numerical edge cases in every model: no crash; either the toolkit's own error (e.g. too few
b-values for the model) or a fit whose per-voxel status says why a voxel was not fitted, with no
non-finite value reported as fitted."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from dwi_toolkit.core.image import DWISeries
from dwi_toolkit.errors import DwiToolkitError

B_IVIM = np.array([0, 0, 10, 20, 50, 100, 200, 400, 600, 800, 1000.0])
DIRS = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1], [0.707, 0.707, 0], [0.707, 0, 0.707],
                 [0, 0.707, 0.707]])

SIGNALS = {
    "zeros": lambda shape: np.zeros(shape),
    "constant": lambda shape: np.full(shape, 100.0),
    "negative": lambda shape: np.full(shape, -50.0),
    "huge": lambda shape: np.full(shape, 1e30),
    "denormal": lambda shape: np.full(shape, 1e-310),
    "nan": lambda shape: np.full(shape, np.nan),
    "mixed": lambda shape: np.where(np.indices(shape).sum(0) % 3 == 0, np.nan,
                                    np.where(np.indices(shape).sum(0) % 3 == 1, -1.0, 1e30)),
}
PROTOCOLS = {
    "one_b": (np.array([800.0]), DIRS[1:2]),
    "duplicate_b": (np.array([0, 800, 800, 800.0]), DIRS[[0, 1, 1, 1]]),
    "b0_only": (np.array([0, 0, 0.0]), DIRS[[0, 0, 0]]),
    "dti_shell": (np.array([0, 800, 800, 800, 800, 800, 800.0]), DIRS),
    "ivim": (B_IVIM, np.tile(DIRS[3], (B_IVIM.size, 1)) * (B_IVIM[:, None] > 0)),
}
GRIDS = {"single_voxel": (1, 1, 1), "one_slice": (3, 2, 1)}


def _series(signal, protocol, grid):
    b, v = PROTOCOLS[protocol]
    data = SIGNALS[signal]((*GRIDS[grid], b.size))
    return DWISeries(data, np.eye(4), b, v)


def _fit(model, s):
    if model == "adc_wls":
        from dwi_toolkit.models.adc import fit_adc
        return fit_adc(s, method="wls")
    if model == "adc_nlls":
        from dwi_toolkit.models.adc import fit_adc
        return fit_adc(s, method="nlls")
    if model == "dti":
        from dwi_toolkit.models.dti import fit_dti
        return fit_dti(s)
    from dwi_toolkit.models.ivim import fit_ivim
    return fit_ivim(s)


def _maps(fit):
    names = [n for n in ("adc", "s0", "fa", "md", "f", "d", "dstar") if hasattr(fit, n)]
    return {n: np.asarray(getattr(fit, n), float) for n in names}


#: (model, protocol, signal) combinations that still fail; the models are being rewritten on another
#: branch (faster models/) — listed for the integrator rather than patched here.
KNOWN: dict[tuple[str, str, str], str] = {}


@pytest.mark.parametrize("grid", list(GRIDS))
@pytest.mark.parametrize("protocol", list(PROTOCOLS))
@pytest.mark.parametrize("signal", list(SIGNALS))
@pytest.mark.parametrize("model", ["adc_wls", "adc_nlls", "dti", "ivim"])
def test_model_edge_case(model, signal, protocol, grid):
    if (model, protocol, signal) in KNOWN:
        pytest.xfail(KNOWN[(model, protocol, signal)])
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            s = _series(signal, protocol, grid)
            fit = _fit(model, s)
    except DwiToolkitError:
        return  # the model's own, explained refusal (too few b-values, no b=0, ...)
    status = np.asarray(fit.status)
    assert status.shape == GRIDS[grid]
    ok = status == 0
    for name, arr in _maps(fit).items():
        assert np.all(np.isfinite(arr[ok])), f"{name}: non-finite value in a voxel reported as fitted"
    if signal in ("zeros", "negative", "nan"):
        assert not ok.any(), f"status says fitted for an all-{signal} signal"
