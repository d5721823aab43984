"""ADC fitting speed: dwi_toolkit vs dipy's TensorModel vs a per-voxel scipy curve_fit loop.

All in one process, on the same synthetic lumbar-sized volume (default 256×256×30 × 10 volumes:
b=0 + 3 shells × 3 directions, float32), with BLAS/OpenMP pinned to one thread. Reported:
median wall time of paired runs, voxels/s, and ratios to the machine's practical limit (read the
data once and take one ``np.log`` of every sample) and to the matching dipy fit.

Run: ``python benchmarks/bench_adc.py [--repeats 5] [--shape 256 256 30] [--json OUT]``.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402


def make_data(shape, seed=0):
    rng = np.random.default_rng(seed)
    dirs = rng.normal(size=(9, 3))
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    bvals = np.array([0.0] + [200.0] * 3 + [500.0] * 3 + [1000.0] * 3)
    bvecs = np.vstack([[0, 0, 0], dirs])
    adc = rng.uniform(0.5e-3, 3.0e-3, size=shape).astype(np.float32)
    s0 = rng.uniform(300, 1000, size=shape).astype(np.float32)
    sig = s0[..., None] * np.exp(-bvals.astype(np.float32) * adc[..., None])
    sigma = 20.0
    noisy = np.sqrt((sig + rng.normal(0, sigma, sig.shape)) ** 2 + rng.normal(0, sigma, sig.shape) ** 2)
    return noisy.astype(np.float32), bvals, bvecs


def timeit(fn, repeats):
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return times


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shape", type=int, nargs=3, default=[256, 256, 30])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--curve-fit-voxels", type=int, default=1000)
    ap.add_argument("--json", default=str(Path(__file__).parent / "results" / "adc.json"))
    ap.add_argument("--skip-dipy-wls", action="store_true")
    args = ap.parse_args(argv)

    from scipy.optimize import curve_fit

    from dwi_toolkit.core.image import DWISeries
    from dwi_toolkit.models.adc import fit_adc

    data, bvals, bvecs = make_data(tuple(args.shape))
    series = DWISeries(data, np.eye(4), bvals, bvecs)
    nvox = int(np.prod(args.shape))
    r = args.repeats

    results: dict[str, dict] = {}

    def record(name, times, voxels=nvox):
        med = statistics.median(times)
        results[name] = {"median_s": med, "voxels": voxels, "voxels_per_s": voxels / med, "runs": len(times)}

    # paired runs: each round times the limit and every fit once, so load changes hit all alike
    rounds: dict[str, list[float]] = {k: [] for k in ("limit", "ols", "wls", "nlls")}
    for _ in range(r):
        rounds["limit"] += timeit(lambda: np.log(data), 1)
        for m in ("ols", "wls", "nlls"):
            rounds[m] += timeit(lambda m=m: fit_adc(series, method=m), 1)
    for k, v in rounds.items():
        record(k if k == "limit" else f"dwi_toolkit {k}", v)

    from dipy.core.gradients import gradient_table
    from dipy.reconst.dti import TensorModel

    gtab = gradient_table(bvals, bvecs=bvecs)
    dipy_ols = TensorModel(gtab, fit_method="OLS")
    record("dipy TensorModel OLS", timeit(lambda: dipy_ols.fit(data), max(1, r // 2)))
    if not args.skip_dipy_wls:
        dipy_wls = TensorModel(gtab, fit_method="WLS")
        record("dipy TensorModel WLS", timeit(lambda: dipy_wls.fit(data), 1))

    # curve_fit loop on a subsample of voxels, on the same trace signal our NLLS fits
    series64 = series.replace(data=data.astype(np.float64))
    bv, tr = series64.trace()
    flat = tr.reshape(-1, bv.size)
    idx = np.random.default_rng(1).choice(flat.shape[0], args.curve_fit_voxels, replace=False)
    weights = np.array([sh.n_volumes for sh in series.shells], dtype=float)

    def cf_loop():
        for i in idx:
            y = flat[i]
            curve_fit(lambda b, s0, d: s0 * np.exp(-b * d), bv, y, p0=[y[0], 1e-3], sigma=1 / np.sqrt(weights))

    record("scipy curve_fit loop", timeit(cf_loop, 1), voxels=idx.size)

    # agreement of our NLLS with curve_fit on those voxels (tight tolerances)
    sub = DWISeries(series64.data.reshape(-1, 1, 1, bvals.size)[idx], np.eye(4), bvals, bvecs)
    ours = fit_adc(sub, method="nlls").adc.reshape(-1)
    worst = 0.0
    for k, i in enumerate(idx):
        y = flat[i]
        p, _ = curve_fit(lambda b, s0, d: s0 * np.exp(-b * d), bv, y, p0=[y[0], 1e-3],
                         sigma=1 / np.sqrt(weights), xtol=1e-15, ftol=1e-15, gtol=1e-15, maxfev=20000)
        if np.isfinite(ours[k]) and p[1] > 0:
            worst = max(worst, abs(ours[k] / p[1] - 1))

    lim = results["limit"]["median_s"]
    rows = []
    for name, res in results.items():
        per_vox = res["median_s"] / res["voxels"]
        rows.append((name, res["median_s"], res["voxels_per_s"], per_vox / (lim / nvox)))
    ratios = {
        "ols_vs_limit": results["dwi_toolkit ols"]["median_s"] / lim,
        "wls_vs_limit": results["dwi_toolkit wls"]["median_s"] / lim,
        "ols_speedup_vs_dipy_ols": results["dipy TensorModel OLS"]["median_s"] / results["dwi_toolkit ols"]["median_s"],
        "nlls_speedup_per_voxel_vs_curve_fit": results["dwi_toolkit nlls"]["voxels_per_s"]
        / results["scipy curve_fit loop"]["voxels_per_s"],
        "nlls_max_rel_diff_vs_curve_fit": worst,
    }
    if "dipy TensorModel WLS" in results:
        ratios["wls_speedup_vs_dipy_wls"] = results["dipy TensorModel WLS"]["median_s"] / results["dwi_toolkit wls"]["median_s"]
        ratios["nlls_speedup_vs_dipy_wls"] = results["dipy TensorModel WLS"]["median_s"] / results["dwi_toolkit nlls"]["median_s"]

    print(f"ADC fits on {tuple(args.shape)} x {bvals.size} volumes float32 ({nvox} voxels), 1 thread, "
          f"median of {r} paired runs\n")
    print("| fit | median time (s) | voxels/s | time per voxel / limit |")
    print("|---|---:|---:|---:|")
    for name, t, vps, rel in rows:
        print(f"| {name} | {t:.4f} | {vps:,.0f} | {rel:.1f}x |")
    print()
    for k, v in ratios.items():
        print(f"- {k}: {v:.3g}")
    out = {
        "machine": {"python": platform.python_version(), "cpu": platform.processor() or platform.machine(),
                    "numpy": np.__version__},
        "shape": args.shape, "bvals": bvals.tolist(), "results": results, "ratios": ratios,
    }
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
