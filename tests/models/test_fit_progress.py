"""The chunked model fits report their progress through dwi_toolkit.core.progress (issue 21)."""

import numpy as np
import pytest

from dwi_toolkit.core.image import DWISeries
from dwi_toolkit.core.progress import listen
from dwi_toolkit.models.adc import fit_adc
from dwi_toolkit.models.dti import fit_dti
from dwi_toolkit.models.ivim import fit_ivim


def _series(bvals, n_dirs_per_shell=1, shape=(6, 5, 4)):
    rng = np.random.default_rng(0)
    b = np.repeat(np.asarray(bvals, float), [1 if x == 0 else n_dirs_per_shell for x in bvals])
    dirs = rng.normal(size=(b.size, 3))
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    dirs[b == 0] = 0
    sig = 1000.0 * (0.9 * np.exp(-b * 1.1e-3) + 0.1 * np.exp(-b * 20e-3))
    data = np.asfortranarray(np.broadcast_to(sig, (*shape, b.size)) * rng.uniform(0.98, 1.02, (*shape, b.size)))
    return DWISeries(data, np.eye(4), b, dirs)  # Fortran order, as nibabel loads NIfTI: slab by slab


@pytest.mark.parametrize("fit, desc, kwargs, bvals, dirs", [
    (fit_adc, "ADC fit", {"method": "ols"}, [0, 400, 800], 1),
    (fit_dti, "tensor fit", {}, [0, 800], 6),
    (fit_ivim, "IVIM fit", {}, [0, 10, 30, 60, 100, 200, 400, 800], 1),
])
def test_fit_reports_voxels_done_and_finishes(fit, desc, kwargs, bvals, dirs):
    s = _series(bvals, dirs)
    seen = []
    with listen(seen.append):
        fit(s, chunk_size=30, **kwargs)  # 30 voxels per plane: one slab per plane along the last axis
    mine = [u for u in seen if u.desc == desc]
    n = int(np.prod(s.spatial_shape))
    assert mine[0].done == 0 and mine[0].total == n and mine[0].unit == "voxel"
    done = [u.done for u in mine if not u.finished]
    assert done == sorted(done) and len(done) >= 4  # start + one update per plane (4 planes)
    assert mine[-1].finished and mine[-1].done == n


def test_the_task_ends_when_a_fit_fails_midway(monkeypatch):
    from dwi_toolkit.models import adc

    calls = []
    real = adc.AdcModel._fit_block

    def flaky(self, block, dtype):
        calls.append(1)
        if len(calls) == 2:
            raise MemoryError("simulated")
        return real(self, block, dtype)

    monkeypatch.setattr(adc.AdcModel, "_fit_block", flaky)
    seen = []
    with listen(seen.append), pytest.raises(MemoryError):
        fit_adc(_series([0, 400, 800]), chunk_size=30, method="ols")
    assert [u.done for u in seen] == [0, 30, 30] and seen[-1].finished  # no task left running
