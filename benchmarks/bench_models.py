"""Model-fit speed and memory against the peers, in one run, through the public API.

Every figure of issue #21's model part, measured in paired rounds (each round times ours and the
peer once, so load changes hit both alike; the machine may be shared) and reported as the
median of the per-round ratios:

- ADC: ``fit_adc`` OLS/WLS on a whole 256×256×30 × 10-volume **int16** series (no mask) vs the
  practical limit (int16→float32 cast, one ``np.log`` per sample, writing three float32 maps)
  and vs dipy's ``TensorModel`` OLS/WLS on the same array;
- DTI: ``fit_dti`` OLS/WLS/IWLS vs dipy ``TensorModel`` WLS (same data, FA/MD agreement) and
  MRtrix3 ``dwi2tensor -nthreads 1`` (its default 2-iteration IWLS; the command's wall time on
  an uncompressed NIfTI in a temporary folder, so it includes its file I/O) when installed;
- IVIM: ``fit_ivim`` segmented and full, voxels/s;
- Rician ADC refit (``noise_correction="rician"``) per voxel vs WLS;
- memory: peak RSS of each fit in a fresh subprocess on a 512×512×60 × 61-volume int16 series
  (1.9 GB; tissue in an elliptical body outline, zero air outside), as a multiple of the data.

Threads are pinned to one and times are CPU seconds (user + system, children included for
MRtrix3), so figures are per core and robust to other users' load; the memory runs report wall
time too. Prints Markdown and writes JSON.

Run: ``python benchmarks/bench_models.py [--repeats 5] [--skip-memory] [--memory-shape 512 512 60]``.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from datetime import datetime, timezone  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent
IVIM_B = np.array([0, 10, 20, 30, 50, 80, 100, 150, 200, 300, 400, 500, 600, 800, 1000.0])


def _cpu() -> float:
    """CPU seconds (user + system) of this process and its finished children."""
    import resource

    ch = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + ch.ru_utime + ch.ru_stime


def _t(fn) -> float:
    """CPU time of one call: on a shared, loaded machine it varies far less than wall time."""
    t = _cpu()
    fn()
    return _cpu() - t


def paired(fns: dict, repeats: int) -> dict[str, list[float]]:
    """Time every callable once per round, `repeats` rounds."""
    out: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            out[k].append(_t(fn))
    return out


def ratio(times: dict[str, list[float]], num: str, den: str) -> float:
    """Median over rounds of times[num] / times[den]."""
    return statistics.median(a / b for a, b in zip(times[num], times[den]))


def directions(n: int, rng) -> np.ndarray:
    v = rng.standard_normal((n, 3))
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def tensor_series(shape, n_dir=30, seed=0):
    """int16 single-shell tensor data (2 b=0 + n_dir at b=1000), random tissue tensors, Rician noise."""
    rng = np.random.default_rng(seed)
    bvecs = np.vstack([np.zeros((2, 3)), directions(n_dir, rng)])
    bvals = np.r_[0.0, 0.0, np.full(n_dir, 1000.0)]
    n = int(np.prod(shape))
    ev = np.sort(rng.uniform(0.2e-3, 2.2e-3, (n, 3)), axis=1)[:, ::-1]
    q, _ = np.linalg.qr(rng.standard_normal((n, 3, 3)))
    adc = np.einsum("mi,nij,nj,nkj,mk->nm", bvecs, q, ev, q, bvecs, optimize=True)
    clean = 800.0 * np.exp(-bvals * adc)
    noisy = np.abs(clean + rng.normal(0, 20, clean.shape) + 1j * rng.normal(0, 20, clean.shape))
    return np.round(noisy).astype(np.int16).reshape(tuple(shape) + (-1,)), bvals, bvecs


def bench_adc(repeats, out):
    from dipy.core.gradients import gradient_table
    from dipy.reconst.dti import TensorModel

    from bench_adc import make_data
    from dwi_toolkit.core.image import DWISeries
    from dwi_toolkit.models.adc import fit_adc

    data, bvals, bvecs = make_data((256, 256, 30))
    data = np.round(data).astype(np.int16)
    series = DWISeries(data, np.eye(4), bvals, bvecs)
    maps = [np.empty(data.shape[:-1], np.float32) for _ in range(3)]

    def limit():
        x = data.astype(np.float32)
        with np.errstate(divide="ignore"):
            np.log(x, out=x)
        for mp, k in zip(maps, range(3)):
            mp[...] = x[..., k]

    gtab = gradient_table(bvals, bvecs=bvecs)
    times = paired({"limit": limit, "ols": lambda: fit_adc(series, method="ols"),
                    "wls": lambda: fit_adc(series, method="wls"),
                    "dipy_ols": lambda: TensorModel(gtab, fit_method="OLS").fit(data)}, repeats)
    times.update(paired({"wls2": lambda: fit_adc(series, method="wls"),
                         "dipy_wls": lambda: TensorModel(gtab, fit_method="WLS").fit(data)}, max(1, repeats // 2)))
    out["adc"] = {
        "shape": list(data.shape), "dtype": "int16", "median_s": {k: statistics.median(v) for k, v in times.items()},
        "ols_vs_limit": ratio(times, "ols", "limit"), "wls_vs_limit": ratio(times, "wls", "limit"),
        "dipy_ols_over_ols": ratio(times, "dipy_ols", "ols"), "dipy_wls_over_wls": ratio(times, "dipy_wls", "wls2"),
    }


def _mrtrix_runner(data, bvals, bvecs, tmp: Path):
    exe = shutil.which("dwi2tensor")
    if exe is None:
        return None
    import nibabel as nib

    nib.save(nib.Nifti1Image(data, np.eye(4)), str(tmp / "dwi.nii"))
    np.savetxt(tmp / "dwi.bval", bvals[None], fmt="%g")
    np.savetxt(tmp / "dwi.bvec", bvecs.T, fmt="%.8f")

    def run():
        subprocess.run([exe, "-quiet", "-force", "-nthreads", "1", "-fslgrad", str(tmp / "dwi.bvec"),
                        str(tmp / "dwi.bval"), str(tmp / "dwi.nii"), str(tmp / "dt.nii")], check=True)
    return run


def bench_dti(repeats, out, shape=(96, 96, 30)):
    from dipy.core.gradients import gradient_table
    from dipy.reconst.dti import TensorModel

    from dwi_toolkit.core.image import DWISeries
    from dwi_toolkit.models.dti import fit_dti

    data, bvals, bvecs = tensor_series(shape)
    series = DWISeries(data, np.eye(4), bvals, bvecs)
    gtab = gradient_table(bvals, bvecs=bvecs)
    ref = TensorModel(gtab, fit_method="WLS").fit(data)
    ours = fit_dti(series)
    ok = ours.status == 0
    agree = {"fa_max_abs_diff": float(np.nanmax(np.abs(ours.fa[ok] - ref.fa[ok]))),
             "md_max_rel_diff": float(np.nanmax(np.abs(ours.md[ok] / ref.md[ok] - 1)))}
    fns = {m.lower(): (lambda m=m: fit_dti(series, method=m)) for m in ("OLS", "WLS", "IWLS")}
    fns["dipy_wls"] = lambda: TensorModel(gtab, fit_method="WLS").fit(data)
    with tempfile.TemporaryDirectory() as td:
        mrtrix = _mrtrix_runner(data, bvals, bvecs, Path(td))
        if mrtrix is not None:
            fns["mrtrix_iwls"] = mrtrix
        times = paired(fns, repeats)
    nvox = int(np.prod(shape))
    res = {"shape": list(data.shape), "voxels_per_s": {k: nvox / statistics.median(v) for k, v in times.items()},
           "dipy_wls_over_wls": ratio(times, "dipy_wls", "wls"), "agreement_vs_dipy_wls": agree,
           "mrtrix": shutil.which("dwi2tensor") is not None}
    if mrtrix is not None:
        res["mrtrix_over_iwls"] = ratio(times, "mrtrix_iwls", "iwls")
        res["mrtrix_over_wls"] = ratio(times, "mrtrix_iwls", "wls")
    out["dti"] = res


def bench_ivim(repeats, out, shape=(64, 64, 12)):
    from dwi_toolkit.core.image import DWISeries
    from dwi_toolkit.models.ivim import fit_ivim, ivim_signal

    rng = np.random.default_rng(0)
    clean = ivim_signal(IVIM_B, 1000.0, rng.uniform(0.03, 0.3, shape), rng.uniform(0.5e-3, 2e-3, shape),
                        rng.uniform(10e-3, 80e-3, shape))
    noisy = np.abs(clean + rng.normal(0, 20, clean.shape) + 1j * rng.normal(0, 20, clean.shape))
    series = DWISeries(noisy.astype(np.float32), np.eye(4), IVIM_B, np.zeros((IVIM_B.size, 3)))
    times = paired({m: (lambda m=m: fit_ivim(series, method=m)) for m in ("map", "segmented", "full")}, repeats)
    nvox = int(np.prod(shape))
    out["ivim"] = {"shape": list(series.data.shape),
                   "voxels_per_s": {k: nvox / statistics.median(v) for k, v in times.items()}}


def bench_rician(repeats, out, shape=(40, 40, 10)):
    from dwi_toolkit.core.image import DWISeries
    from dwi_toolkit.models.adc import fit_adc

    from bench_adc import make_data

    data, bvals, bvecs = make_data(shape)
    series = DWISeries(data.astype(np.float64), np.eye(4), bvals, bvecs)
    times = paired({"wls": lambda: fit_adc(series, method="wls"),
                    "rician": lambda: fit_adc(series, method="wls", noise_correction="rician", sigma=20.0)}, repeats)
    out["rician"] = {"shape": list(data.shape), "rician_over_wls": ratio(times, "rician", "wls")}


MEMORY_CHILD = r"""
import os, resource, sys, json
import numpy as np
from dwi_toolkit.core.image import DWISeries
X, Y, Z = (int(v) for v in sys.argv[2:5])
rng = np.random.default_rng(0)
bvals = np.r_[0.0, np.repeat([10, 20, 50, 100, 200, 400, 600, 800, 1000, 1500.0], 6)]
g = rng.standard_normal((bvals.size, 3)); g /= np.linalg.norm(g, axis=1, keepdims=True); g[0] = 0
data = np.empty((X, Y, Z, bvals.size), dtype=np.int16)
data.fill(0)  # written, so every page is resident (np.zeros pages would not count in the RSS)
yy, xx = np.mgrid[0:X, 0:Y]
body = ((xx - Y / 2) / (0.45 * Y)) ** 2 + ((yy - X / 2) / (0.3 * X)) ** 2 <= 1.0
sig = (900 * (0.9 * np.exp(-bvals * 1.2e-3) + 0.1 * np.exp(-bvals * 20e-3))).astype(np.float32)
for z in range(Z):  # slab by slab so generating the data does not raise the peak
    noise = rng.normal(0, 15, (int(body.sum()), bvals.size)).astype(np.float32)
    data[:, :, z][body] = np.clip(np.abs(sig + noise), 0, 32767).astype(np.int16)
series = DWISeries(data, np.eye(4), bvals, g)
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
which = sys.argv[1]
if which == "adc":
    from dwi_toolkit.models.adc import fit_adc
    fit = fit_adc(series, method="wls")
elif which == "dti":
    from dwi_toolkit.models.dti import fit_dti
    fit = fit_dti(series)
else:
    from dwi_toolkit.models.ivim import fit_ivim
    fit = fit_ivim(series)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"data_bytes": data.nbytes, "peak_rss": peak, "rss_before_fit": base,
                  "peak_over_data": peak / data.nbytes}))
"""


def bench_memory(out, shape, fits=("adc", "dti", "ivim")):
    res = {}
    for which in fits:
        t = time.perf_counter()
        proc = subprocess.run([sys.executable, "-c", MEMORY_CHILD, which, *map(str, shape)],
                              capture_output=True, text=True, env=dict(os.environ))
        if proc.returncode != 0:
            res[which] = {"error": proc.stderr.strip().splitlines()[-1] if proc.stderr else "failed"}
            continue
        res[which] = json.loads(proc.stdout.strip().splitlines()[-1])
        res[which]["wall_s"] = time.perf_counter() - t
        print(f"memory {which}: {json.dumps(res[which])}", flush=True)
    out["memory"] = {"shape": list(shape) + [61], "fits": res}


def report(out):
    lines = [f"Model fits, {out['date']}, {out['machine']}, 1 thread, CPU time; medians of paired rounds", ""]
    a = out.get("adc")
    if a:
        lines += [f"- ADC {a['shape']} int16: OLS {a['ols_vs_limit']:.2f}x the limit, WLS {a['wls_vs_limit']:.2f}x; "
                  f"dipy OLS / ours OLS {a['dipy_ols_over_ols']:.1f}x, dipy WLS / ours WLS {a['dipy_wls_over_wls']:.1f}x"]
    d = out.get("dti")
    if d:
        vps = ", ".join(f"{k} {v:,.0f}" for k, v in d["voxels_per_s"].items())
        lines += [f"- DTI {d['shape']}: voxels/s {vps}; dipy WLS / ours WLS {d['dipy_wls_over_wls']:.1f}x; "
                  f"agreement {d['agreement_vs_dipy_wls']}"]
        if d.get("mrtrix_over_iwls"):
            lines += [f"  MRtrix3 dwi2tensor / ours IWLS {d['mrtrix_over_iwls']:.1f}x, / ours WLS {d['mrtrix_over_wls']:.1f}x"]
    if out.get("ivim"):
        lines += [f"- IVIM {out['ivim']['shape']}: voxels/s " + ", ".join(f"{k} {v:,.0f}" for k, v in out["ivim"]["voxels_per_s"].items())]
    if out.get("rician"):
        lines += [f"- Rician ADC refit / WLS time: {out['rician']['rician_over_wls']:.0f}x"]
    if out.get("memory"):
        for k, v in out["memory"]["fits"].items():
            lines += [f"- memory {k} on {out['memory']['shape']}: " + (
                f"peak RSS {v['peak_over_data']:.2f}x the data ({v['peak_rss'] / 2**30:.2f} GiB), {v['wall_s']:.0f} s"
                if "peak_over_data" in v else v["error"])]
    print("\n".join(lines))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--only", nargs="*", default=["adc", "dti", "ivim", "rician", "memory"])
    ap.add_argument("--memory-shape", type=int, nargs=3, default=[512, 512, 60])
    ap.add_argument("--memory-fits", nargs="*", default=["adc", "dti", "ivim"])
    ap.add_argument("--json", default=str(HERE / "results" / "models.json"))
    args = ap.parse_args(argv)
    sys.path.insert(0, str(HERE))
    out = {"date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
           "machine": f"{platform.machine()} {os.cpu_count()} cores, Python {platform.python_version()}, "
                      f"numpy {np.__version__}, load average {os.getloadavg()[0]:.1f}"}
    for name in args.only:
        if name == "memory":
            bench_memory(out, args.memory_shape, args.memory_fits)
        else:
            globals()[f"bench_{name}"](args.repeats, out)
    out["load_average_after"] = os.getloadavg()[0]
    report(out)
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
