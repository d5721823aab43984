"""IVIM accuracy on the OSIPI TF2.4 code collection's simulation protocol, beside its 19 algorithms.

Protocol (github.com/OSIPI/TF2.4_IVIM-MRI_CodeCollection, ``tests/IVIMmodels/unit_tests/
test_ivim_synthetic.py`` and ``utilities/data_simulation/GenerateData.py`` at commit dfa7c4f, the
commit that produced its published ``reference_output.csv``): for each tissue of ``generic.json``
(14 tissues, b = 0–1000 s/mm², 18 b-values) and SNR in {10, 30, 50, 100, 200}, a fresh
``numpy.random.RandomState(42)`` draws 300 signals ``|S(b) + N(0, 1/SNR)|`` with ``S0 = 1``
(Gaussian noise on the real channel only, then the magnitude). We regenerate exactly these signals
and fit them with ``fit_ivim`` (one 300-voxel series per cell).

Metric per cell and parameter: normalised RMS error ``sqrt(mean((x - truth)^2)) / truth``. For each
OSIPI algorithm the same quantity follows from the published per-cell mean and standard deviation
(``sqrt((mu - truth)^2 + sd^2 (n-1)/n) / truth``, n = 300); the comparator of a cell is the
smallest of the 19 algorithms' values there ("best of the field", a different algorithm in
different cells). ``benchmarks/data/osipi_tf24_best.json`` holds that comparator, derived by
``--from-csv reference_output.csv`` (Apache-2.0, OSIPI TF2.4).

Second noise seed (overfitting check): ``--seed 7`` draws the signals with ``RandomState(7)``
instead; the comparator stays OSIPI's seed-42 figures (their algorithms were run on seed 42 only),
so the ratios then also carry the seed-to-seed spread of the cells.

Ablation of the ``"map"`` method: ``--d-max 5e-3`` lifts its physical upper bound of ``D``
(free water at 37 °C) to OSIPI's 5×10⁻³ mm²/s.

Run: ``python benchmarks/bench_ivim_osipi.py [--method map] [--seed 42] [--repeats 300]``.
Prints the per-tissue table (Markdown, ours / best with the best algorithm of each worst cell) and
writes JSON to ``benchmarks/results/``.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import csv  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent
BEST_JSON = HERE / "data" / "osipi_tf24_best.json"
SNRS = (10, 30, 50, 100, 200)
PARAMS = ("D", "f", "Dp")
GENERIC = Path(os.environ.get("DWI_TOOLKIT_SHARED", HERE.parent.parent / "shared")) / (
    "testdata/reference/osipi_tf24_ivim_reference_signals/generic.json")


def load_tissues(path: Path = GENERIC) -> tuple[np.ndarray, dict[str, dict[str, float]]]:
    """b-values (s/mm²) and tissue name -> {"D", "f", "Dp"} (mm²/s) from OSIPI's generic.json."""
    data = json.loads(Path(path).read_text())
    bvals = np.asarray(data.pop("config")["bvalues"], dtype=float)
    return bvals, {k: {p: float(v[p]) for p in PARAMS} for k, v in data.items()}


def osipi_signals(bvals: np.ndarray, truth: dict[str, float], snr: float, repeats: int = 300,
                  seed: int = 42) -> np.ndarray:
    """The (repeats, N) noisy signals OSIPI's test_generated draws for one tissue and SNR (seed 42)."""
    rng = np.random.RandomState(seed)
    clean = truth["f"] * np.exp(-bvals * truth["Dp"]) + (1 - truth["f"]) * np.exp(-bvals * truth["D"])
    out = np.empty((repeats, bvals.size))
    for i in range(repeats):  # one draw per fit, in OSIPI's order
        out[i] = np.abs(clean + rng.normal(0, 1 / snr, clean.shape))
    return out


def nrmse(est: np.ndarray, truth: float) -> float:
    """sqrt(mean((est - truth)^2)) / truth; failed fits (NaN) count as an error of 100 %."""
    est = np.where(np.isfinite(est), est, 0.0)
    return float(np.sqrt(np.mean((est - truth) ** 2)) / truth)


def best_from_csv(csv_path: Path, tissues) -> dict:
    """Per tissue, SNR and parameter: the smallest normalised RMS error of OSIPI's algorithms."""
    best: dict = {}
    with open(csv_path, newline="") as fh:
        for r in csv.DictReader(fh):
            if r["Region"] not in tissues:
                continue
            cell = best.setdefault(r["Region"], {}).setdefault(str(int(r["SNR"])), {})
            for p in PARAMS:
                t, mu, sd, n = float(r[p]), float(r[p + "_mu"]), float(r[p + "_std"]), int(r[p + "_df"]) + 1
                val = float(np.sqrt((mu - t) ** 2 + sd * sd * (n - 1) / n) / t)
                if p not in cell or val < cell[p][0]:
                    cell[p] = [val, r["Algorithm"]]
    return best


def fit_cells(bvals, tissues, method: str, repeats: int, snrs=SNRS, seed: int = 42,
              **kwargs) -> tuple[dict, float, int]:
    """Our normalised RMS errors per tissue/SNR/parameter, CPU seconds and voxels fitted."""
    from dwi_toolkit.core.image import DWISeries
    from dwi_toolkit.models.ivim import fit_ivim

    names = list(tissues)
    ours: dict = {k: {} for k in names}
    cpu, nvox = 0.0, 0
    for snr in snrs:
        sig = np.stack([osipi_signals(bvals, tissues[k], snr, repeats, seed) for k in names])  # (T, R, N)
        series = DWISeries(sig[:, :, None, :], np.eye(4), bvals, np.zeros((bvals.size, 3)))
        t0 = time.process_time()
        fit = fit_ivim(series, method=method, **kwargs)
        cpu += time.process_time() - t0
        nvox += sig.shape[0] * sig.shape[1]
        est = {"D": fit.d[:, :, 0], "f": fit.f[:, :, 0], "Dp": fit.dstar[:, :, 0]}
        for i, k in enumerate(names):
            ours[k][str(snr)] = {p: nrmse(est[p][i], tissues[k][p]) for p in PARAMS}
    return ours, cpu, nvox


def summarise(ours: dict, best: dict, min_snr: int = 30) -> dict:
    """Ratios ours / best per cell; median over cells with SNR >= min_snr, and the worst cell."""
    out = {}
    for p in PARAMS:
        ratios = [(ours[t][s][p] / best[t][s][p][0], t, s) for t in ours for s in ours[t] if int(s) >= min_snr]
        vals = [r[0] for r in ratios]
        worst = max(ratios)
        out[p] = {"median_ratio": statistics.median(vals), "worst_ratio": worst[0],
                  "worst_cell": f"{worst[1]} SNR {worst[2]}", "worst_cell_best": best[worst[1]][worst[2]][p][1],
                  "n_cells": len(vals), "cells_at_or_below_1": sum(v <= 1.0 for v in vals)}
    return out


def table(ours: dict, best: dict, tissues) -> str:
    lines = ["| tissue (f, D, D* ×10⁻³) | SNR | D ours / best | f ours / best | D* ours / best |",
             "|---|---:|---:|---:|---:|"]
    for t in ours:
        tt = tissues[t]
        for s in ours[t]:
            cells = [f"{ours[t][s][p]:.3f} / {best[t][s][p][0]:.3f} ({ours[t][s][p] / best[t][s][p][0]:.2f}×)"
                     for p in PARAMS]
            lines.append(f"| {t} ({tt['f']:g}, {tt['D'] * 1e3:g}, {tt['Dp'] * 1e3:g}) | {s} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--method", default="map")
    ap.add_argument("--repeats", type=int, default=300)
    ap.add_argument("--seed", type=int, default=42, help="noise seed (OSIPI's is 42; others: overfitting check)")
    ap.add_argument("--d-max", type=float, help="upper bound of D, mm^2/s (ablation: 5e-3 lifts the map limit)")
    ap.add_argument("--from-csv", help="rebuild the comparator JSON from OSIPI's reference_output.csv")
    ap.add_argument("--no-table", action="store_true")
    ap.add_argument("--json", help="output JSON (default benchmarks/results/ivim_osipi_<method>_seed<seed>.json)")
    args = ap.parse_args(argv)
    if not GENERIC.exists():
        print(f"skipped: OSIPI generic.json not found at {GENERIC} (set DWI_TOOLKIT_SHARED)")
        return 0
    bvals, tissues = load_tissues()
    if args.from_csv:
        BEST_JSON.parent.mkdir(parents=True, exist_ok=True)
        BEST_JSON.write_text(json.dumps(best_from_csv(Path(args.from_csv), tissues), indent=1))
    best = json.loads(BEST_JSON.read_text())
    kwargs = {} if args.d_max is None else {"bounds": {"d": (0.0, args.d_max)}}
    ours, cpu, nvox = fit_cells(bvals, tissues, args.method, args.repeats, seed=args.seed, **kwargs)
    summ = summarise(ours, best)
    if not args.no_table:
        print(table(ours, best, tissues))
    label = f"method={args.method}, seed={args.seed}" + ("" if args.d_max is None else f", D <= {args.d_max:g}")
    print(f"\n{label}: {nvox} voxels in {cpu:.2f} CPU s ({nvox / cpu:,.0f} voxels/CPU-s; small cells, "
          "see bench_models.py for the speed figure)")
    for p, v in summ.items():
        print(f"{p}: median ratio (SNR >= 30) {v['median_ratio']:.3f}x, worst {v['worst_ratio']:.2f}x "
              f"({v['worst_cell']}, best there: {v['worst_cell_best']}), "
              f"{v['cells_at_or_below_1']}/{v['n_cells']} cells <= 1x")
    out_json = Path(args.json or HERE / "results" / f"ivim_osipi_{args.method}_seed{args.seed}.json")
    out_json.parent.mkdir(parents=True, exist_ok=True)
    out_json.write_text(json.dumps({"method": args.method, "seed": args.seed, "d_max": args.d_max, "ours": ours,
                                    "summary": summ, "cpu_s": cpu, "voxels": nvox}, indent=1))
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(HERE.parent))
    raise SystemExit(main())
