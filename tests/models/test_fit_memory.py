"""Peak memory of the whole-volume fits, measured in a fresh subprocess on a proxy series.

The benchmark (benchmarks/bench_models.py) measures the 1.9 GB 512×512×60 × 61 case; here a
96×96×24 × 61-volume int16 series (27 MB) keeps the test to seconds, with ``chunk_size=4096`` so
the per-chunk working set (a fixed few MB) stays small beside the data, as it is beside a real
series. The fit may add at most twice the data on top of it (peak ≤ 3× the loaded data, the
issue's bound), so a whole-array float cast (4× for int16→float64) or a full copy plus float
work arrays would fail.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

CHILD = r"""
import json, resource, sys
import numpy as np
from dwi_toolkit.core.image import DWISeries
which = sys.argv[1]
rng = np.random.default_rng(0)
bvals = np.r_[0.0, np.repeat([10, 20, 50, 100, 200, 400, 600, 800, 1000, 1500.0], 6)]
g = rng.standard_normal((bvals.size, 3)); g /= np.linalg.norm(g, axis=1, keepdims=True); g[0] = 0
shape = (96, 96, 24)
data = np.empty(shape + (bvals.size,), dtype=np.int16)
sig = 900 * (0.9 * np.exp(-bvals * 1.2e-3) + 0.1 * np.exp(-bvals * 20e-3))
for z in range(shape[2]):
    data[:, :, z] = np.abs(sig + rng.normal(0, 15, shape[:2] + (bvals.size,))).astype(np.int16)
series = DWISeries(np.asfortranarray(data) if which.endswith("_f") else data, np.eye(4), bvals, g)
del data
if which.startswith("adc"):
    from dwi_toolkit.models.adc import fit_adc as fit
else:
    from dwi_toolkit.models.dti import fit_dti as fit
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
fit(series, chunk_size=4096)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"data": series.data.nbytes, "before": before, "peak": peak}))
"""


@pytest.mark.slow
@pytest.mark.parametrize("which", ["adc", "adc_f", "dti", "dti_f"])
def test_fit_adds_at_most_twice_the_data(which):
    proc = subprocess.run([sys.executable, "-c", CHILD, which], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    extra = res["peak"] - res["before"]
    assert extra <= 2.0 * res["data"], f"{which}: fit added {extra / res['data']:.2f}x the data"
