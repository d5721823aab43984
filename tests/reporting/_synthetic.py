"""A small synthetic subject (series, fit-like object, ROI masks, stats) for report tests."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from dwi_toolkit.core.image import DWISeries
from tests.analysis._standin import make_row, table

BVALS = np.array([0.0, 0.0, 400.0, 800.0])


def synthetic_subject(seed=0, *, altered=1.6e-3, meta=None):
    """Left L5 root altered; in RAS+ patient left has x < midline (affine x scale > 0)."""
    rng = np.random.default_rng(seed)
    shape = (32, 24, 6)
    adc = np.full(shape, 1.2e-3)
    masks = []
    for lv, z in (("L4", 1), ("L5", 3)):
        for side, x in (("left", 6), ("right", 23)):
            m = np.zeros(shape, bool)
            m[x:x + 3, 10:13, z:z + 2] = True
            masks.append((f"{lv} {side} ganglion", m))
            if lv == "L5" and side == "left":
                adc[m] = altered
    sig = 1000.0 * np.exp(-BVALS * adc[..., None])
    sig = np.abs(sig + rng.normal(0, 15, sig.shape))
    bvecs = np.array([[0, 0, 0], [0, 0, 0], [1, 0, 0], [1, 0, 0]], float)
    series = DWISeries(sig.astype(np.float32), np.diag([1.5, 1.5, 4.0, 1.0]), BVALS, bvecs,
                       meta=meta or {})
    fit_adc = adc + rng.normal(0, 0.04e-3, shape)
    status = np.zeros(shape, np.uint8)
    status[0, 0, 0] = 2
    fit = SimpleNamespace(adc=fit_adc, affine=series.affine, status=status, bvals_used=BVALS,
                          method="wls", b0_threshold=50.0)
    rows = []
    for lab, m in masks:
        lv, side, seg = lab.split()
        rows.append(make_row(lv, side, fit_adc[m], segment=seg))
    return series, fit, masks, table(*rows)
