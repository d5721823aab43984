"""IVIM and DTI speed and accuracy: dwi_toolkit vs dipy on the same data, in one run.

IVIM: a synthetic volume (default 64×64×12 voxels × 15 b-values 0–1000 s/mm², f 0.03–0.3,
D 0.5–2.0×10⁻³, D* 10–80×10⁻³ mm²/s, S0 1000, Rician noise at SNR 50 at b=0). Our segmented
and full fits run on every voxel; dipy's ``IvimModel`` (``fit_method="trr"``, the same bounds)
runs on a random subsample (default 400 voxels) because it fits voxel by voxel; every round times
all three, and the speed-up is the median of the per-round ratios. Accuracy is the
median absolute error against the ground truth **on that same subsample**, for every method.

DTI: ``fit_dti`` (our API: mask/validity checks, status, NaN filling, FA/MD/AD/RD/principal
direction) vs calling dipy's ``TensorModel(gtab).fit(data)`` and reading ``fa``, ``md``, ``ad``,
``rd``, ``evecs`` directly, on the shared Siemens B15 oracle series when present (else a synthetic
96×96×30 × 31-volume tensor volume).

Threads pinned to one; medians of paired runs. Prints Markdown tables and writes JSON.

Run: ``python benchmarks/bench_ivim_dti.py [--repeats 3] [--shape 64 64 12] [--dipy-voxels 400]``.
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
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent
B = np.array([0, 10, 20, 30, 50, 80, 100, 150, 200, 300, 400, 500, 600, 800, 1000.0])
SHARED = Path(os.environ.get("DWI_TOOLKIT_SHARED", HERE.parents[1] / "shared"))


def ivim_data(shape, snr, seed=0):
    from dwi_toolkit.models.ivim import ivim_signal

    rng = np.random.default_rng(seed)
    f = rng.uniform(0.03, 0.3, shape)
    d = rng.uniform(0.5e-3, 2.0e-3, shape)
    ds = rng.uniform(10e-3, 80e-3, shape)
    clean = ivim_signal(B, 1000.0, f, d, ds)
    sigma = 1000.0 / snr
    noisy = np.abs(clean + sigma * rng.standard_normal(clean.shape) + 1j * sigma * rng.standard_normal(clean.shape))
    return noisy.astype(np.float32), {"f": f, "d": d, "dstar": ds}


def med_err(est, truth, rel):
    e = np.asarray(est, float) - truth
    if rel:
        e = e / truth
    e = e[np.isfinite(e)]
    return float(np.median(np.abs(e)))


def bench_ivim(args, results):
    from dipy.core.gradients import gradient_table
    from dipy.reconst.ivim import IvimModel

    from dwi_toolkit.core.image import DWISeries
    from dwi_toolkit.models.ivim import fit_ivim

    data, truth = ivim_data(tuple(args.shape), args.snr)
    series = DWISeries(data, np.eye(4), B, np.zeros((B.size, 3)))
    nvox = int(np.prod(args.shape))
    rng = np.random.default_rng(1)
    sub = rng.choice(nvox, size=min(args.dipy_voxels, nvox), replace=False)
    flat = data.reshape(nvox, -1)
    tsub = {k: v.reshape(-1)[sub] for k, v in truth.items()}
    bvecs = np.zeros((B.size, 3))
    bvecs[B > 0] = [1.0, 0.0, 0.0]
    gtab = gradient_table(B, bvecs=bvecs, b0_threshold=0)
    model = IvimModel(gtab, fit_method="trr", bounds=([0, 0, 5e-3, 0], [np.inf, 1, 0.3, 5e-3]))

    times = {"segmented": [], "full": [], "dipy_trr": []}
    fits = {}
    dipy_params = None
    for _ in range(args.repeats):  # paired rounds: load changes hit every fit alike
        for m in ("segmented", "full"):
            t = time.perf_counter()
            fits[m] = fit_ivim(series, method=m)
            times[m].append(time.perf_counter() - t)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t = time.perf_counter()
            dipy_params = model.fit(flat[sub]).model_params
            times["dipy_trr"].append(time.perf_counter() - t)
    rows = {}
    for m in ("segmented", "full"):
        fit = fits[m]
        est = {"f": fit.f.reshape(-1)[sub], "d": fit.d.reshape(-1)[sub], "dstar": fit.dstar.reshape(-1)[sub]}
        med = statistics.median(times[m])
        rows[f"dwi_toolkit {m}"] = {
            "median_s": med, "voxels": nvox, "voxels_per_s": nvox / med, "runs": len(times[m]),
            "mae_f": med_err(est["f"], tsub["f"], False), "mae_rel_d": med_err(est["d"], tsub["d"], True),
            "mae_rel_dstar": med_err(est["dstar"], tsub["dstar"], True),
            "status_ok_fraction": float(np.mean(fit.status == 0)),
        }
    med = statistics.median(times["dipy_trr"])
    rows["dipy IvimModel trr"] = {
        "median_s": med, "voxels": int(sub.size), "voxels_per_s": sub.size / med, "runs": len(times["dipy_trr"]),
        "mae_f": med_err(dipy_params[:, 1], tsub["f"], False), "mae_rel_d": med_err(dipy_params[:, 3], tsub["d"], True),
        "mae_rel_dstar": med_err(dipy_params[:, 2], tsub["dstar"], True),
    }
    for m in ("segmented", "full"):  # median over rounds of the per-round speed ratio
        ratios = [(nvox / a) / (sub.size / d) for a, d in zip(times[m], times["dipy_trr"])]
        rows[f"dwi_toolkit {m}"]["speedup_vs_dipy"] = statistics.median(ratios)
    results["ivim"] = {"shape": list(args.shape), "n_bvals": int(B.size), "snr": args.snr,
                       "dipy_subsample": int(sub.size), "rows": rows}
    print(f"\n### IVIM ({nvox} voxels × {B.size} b-values, SNR {args.snr}; dipy on {sub.size} of them)\n")
    print("| fit | median time (s) | voxels/s | speed-up vs dipy | median abs err f | median rel err D | median rel err D* |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, r in rows.items():
        sp = f"{r['speedup_vs_dipy']:.0f}×" if "speedup_vs_dipy" in r else "1×"
        print(f"| {name} | {r['median_s']:.3f} | {r['voxels_per_s']:,.0f} | {sp} | {r['mae_f']:.4f} | "
              f"{r['mae_rel_d']:.3f} | {r['mae_rel_dstar']:.3f} |")


def dti_data():
    from dwi_toolkit.core.image import DWISeries

    base = SHARED / "testdata" / "dicom" / "siemens_b15_mosaic_ep2d_dti_subset" / "oracle"
    stem = base / "b15_sub_2_ep2d_DTI_20_dir_AP"
    if Path(f"{stem}.nii.gz").is_file():
        from dwi_toolkit.io.nifti import load_nifti_dwi

        s = load_nifti_dwi(f"{stem}.nii.gz", bvals=f"{stem}.bval", bvecs=f"{stem}.bvec")
        return s, "Siemens B15 oracle (dcm2niix) 102×102×60 × 7"
    rng = np.random.default_rng(2)
    v = rng.standard_normal((30, 3))
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    bvecs = np.vstack([np.zeros(3), v])
    bvals = np.r_[0.0, np.full(30, 1000.0)]
    shape = (96, 96, 30)
    ev = np.array([1.5e-3, 0.5e-3, 0.4e-3])
    adc = (bvecs ** 2) @ ev
    sig = 800.0 * np.exp(-bvals * adc)
    data = np.abs(sig + rng.normal(0, 15, shape + (31,))).astype(np.float32)
    return DWISeries(data, np.eye(4), bvals, bvecs), "synthetic 96×96×30 × 31"


def bench_dti(args, results):
    from dipy.core.gradients import gradient_table
    from dipy.reconst.dti import TensorModel

    from dwi_toolkit.models.dti import fit_dti

    series, label = dti_data()
    gtab = gradient_table(series.bvals, bvecs=series.bvecs, b0_threshold=series.b0_threshold)
    data = series.data

    def dipy_direct():
        tf = TensorModel(gtab, fit_method="WLS").fit(data)
        return tf.fa, tf.md, tf.ad, tf.rd, tf.evecs

    times = {"ours": [], "dipy": []}
    for _ in range(args.repeats):  # paired, alternating order
        for k in (("ours", "dipy") if _ % 2 == 0 else ("dipy", "ours")):
            t = time.perf_counter()
            if k == "ours":
                fit = fit_dti(series)
            else:
                ref = dipy_direct()
            times[k].append(time.perf_counter() - t)
    ok = fit.status == 0
    same = bool(np.array_equal(fit.fa[ok], ref[0][ok]) and np.array_equal(fit.md[ok], ref[1][ok]))
    nvox = int(np.prod(series.spatial_shape))
    ours, dip = statistics.median(times["ours"]), statistics.median(times["dipy"])
    ratio = statistics.median([a / b for a, b in zip(times["ours"], times["dipy"])])
    results["dti"] = {"data": label, "voxels": nvox, "ours_median_s": ours, "dipy_median_s": dip,
                      "ratio": ratio, "identical_fa_md_on_ok_voxels": same, "runs": args.repeats}
    print(f"\n### DTI WLS ({label}, {nvox} voxels)\n")
    print("| path | median time (s) | voxels/s |")
    print("|---|---:|---:|")
    print(f"| dipy TensorModel directly (+fa, md, ad, rd, evecs) | {dip:.3f} | {nvox / dip:,.0f} |")
    print(f"| dwi_toolkit fit_dti | {ours:.3f} | {nvox / ours:,.0f} |")
    print(f"\nour time / dipy time (median of paired ratios): **{ratio:.3f}** (target ≤ 1.10); "
          f"FA/MD identical on ok voxels: {same}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shape", type=int, nargs=3, default=[64, 64, 12])
    ap.add_argument("--snr", type=float, default=50.0)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--dipy-voxels", type=int, default=400)
    ap.add_argument("--skip-dti", action="store_true")
    ap.add_argument("--json", default=str(HERE / "results" / "ivim_dti.json"))
    args = ap.parse_args(argv)
    import dipy

    results = {"machine": platform.platform(), "python": platform.python_version(), "numpy": np.__version__,
               "dipy": dipy.__version__, "threads": 1, "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    bench_ivim(args, results)
    if not args.skip_dti:
        bench_dti(args, results)
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nJSON: {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
