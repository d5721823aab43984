"""Validation study of the side-to-side statistics (issue #13).

Simulates a lumbar "spine" of nerve-root ROIs (L1–S1, left and right) on a DWI acquisition whose
noise is spatially correlated like a zero-filled/filtered reconstruction, and runs the path a
user runs: ``fit_adc`` (log-linear OLS) → ``roi_stats`` → ``compare_sides`` (noise correlation
estimated from the data) → ``assess_entrapment``.

Data model per scan
-------------------
- Grid 48 × 56 × 8 voxels of 1 × 1 × 4 mm; b = 0 and 800 s/mm² (one trace volume each).
- Tissue S0 = 1000, ADC = 1.2 × 10⁻³ mm²/s; the L5 root on the left is changed by
  ``asym_pct`` (ADC × (1 + asym/100)); every other root is symmetric.
- Noise: complex Gaussian (σ = S0 / SNR per channel) smoothed in-plane (axes i, j) by a Gaussian
  of FWHM ``fwhm`` voxels, rescaled so that σ per voxel is unchanged, then the Rician
  magnitude |S + n| is taken.
- ROIs: the ``roi_n`` voxels nearest to each root centre (compact blobs, 12 per scan).

Measured per condition (FWHM × SNR × ROI size × asymmetry)
---------------------------------------------------------
- coverage: share of 95 % intervals of the difference containing the true difference of
  the *fitted* means — the expectation of the ROI-mean difference, estimated by the mean over
  all symmetric roots (0 for symmetric roots; the L5 truth is taken from the noise-free ADC
  difference plus the mean bias of symmetric roots, i.e. 0 bias);
- power: share of L5 intervals excluding zero when ``asym_pct > 0``;
- false "concordant": share of symmetric levels classed ``concordant`` by ``assess_entrapment``
  (every level declared suspected, symptomatic side left: the most permissive setting).

Run ``python benchmarks/sim_side_stats.py --quick`` (a few minutes) or without ``--quick`` for
the full grid (80 conditions × 150 scans: about 25 CPU-minutes per 10 scans... see
docs/report.md §2.2a; ``--jobs 2`` runs conditions in parallel); it prints a Markdown table with
binomial Monte-Carlo standard errors (used in docs/report.md).
"""

from __future__ import annotations

import argparse
import itertools
import math
import sys
import time

import numpy as np

LEVELS = ("L1", "L2", "L3", "L4", "L5", "S1")
SHAPE = (48, 56, 8)
VOXEL_MM = (1.0, 1.0, 4.0)
BVALS = (0.0, 800.0)
S0 = 1000.0
ADC = 1.2e-3


def _roi_masks(roi_n: int) -> dict[tuple[str, str], np.ndarray]:
    """Compact ROIs of exactly `roi_n` voxels around each root centre."""
    idx = np.indices(SHAPE).reshape(3, -1).T.astype(float)
    out = {}
    for li, level in enumerate(LEVELS):
        for side, x in (("left", 36.0), ("right", 12.0)):  # RAS+: +x is the patient's left
            centre = np.array([x, 6.0 + 9.0 * li, 3.5])
            d = np.sqrt(((idx - centre) ** 2).sum(axis=1)) + 1e-6 * np.arange(idx.shape[0]) / idx.shape[0]
            m = np.zeros(int(np.prod(SHAPE)), bool)
            m[np.argsort(d)[:roi_n]] = True
            out[(level, side)] = m.reshape(SHAPE)
    return out


def _smooth_noise(rng: np.random.Generator, sigma: float, fwhm: float) -> np.ndarray:
    from scipy.ndimage import gaussian_filter

    n = rng.normal(size=SHAPE)
    if fwhm > 0:
        s = fwhm / math.sqrt(8.0 * math.log(2.0))
        n = gaussian_filter(n, sigma=(s, s, 0.0), mode="wrap")
        delta = np.zeros((41, 41, 1))
        delta[20, 20, 0] = 1.0
        k = gaussian_filter(delta, sigma=(s, s, 0.0), mode="constant")
        n = n / math.sqrt(float((k ** 2).sum()))
    return sigma * n


def simulate_scan(rng: np.random.Generator, *, fwhm: float, snr: float, roi_n: int, asym_pct: float,
                  masks: dict | None = None):
    """One simulated scan → RoiStatsTable of the fitted ADC (the user's path)."""
    from dwi_toolkit.analysis.roi_stats import roi_stats
    from dwi_toolkit.core.image import DWISeries
    from dwi_toolkit.models.adc import fit_adc
    from dwi_toolkit.roi.model import RootROI, VoxelMask

    masks = masks or _roi_masks(roi_n)
    adc = np.full(SHAPE, ADC)
    adc[masks[("L5", "left")]] = ADC * (1.0 + asym_pct / 100.0)
    sigma = S0 / snr
    vols = []
    for b in BVALS:
        s = S0 * np.exp(-b * adc)
        vols.append(np.abs(s + _smooth_noise(rng, sigma, fwhm) + 1j * _smooth_noise(rng, sigma, fwhm)))
    affine = np.diag([*VOXEL_MM, 1.0])
    series = DWISeries(np.stack(vols, axis=-1), affine, list(BVALS), np.zeros((len(BVALS), 3)))
    fit = fit_adc(series, method="ols")
    rois = [RootROI(lv, sd, shape=VoxelMask(m, affine)) for (lv, sd), m in masks.items()]
    return roi_stats(fit, rois)


def run_condition(*, fwhm: float, snr: float, roi_n: int, asym_pct: float, n_scans: int, seed: int = 0,
                  interval: str = "effective-n") -> dict:
    """Coverage, power and false-concordant rate over `n_scans` simulated scans."""
    from dwi_toolkit.analysis.compare import compare_sides
    from dwi_toolkit.clinical.entrapment import assess_entrapment

    rng = np.random.default_rng(seed)
    masks = _roi_masks(roi_n)
    sym_diffs, l5 = [], []
    conc = n_sym = 0
    fwhm_est = []
    for _ in range(n_scans):
        stats = simulate_scan(rng, fwhm=fwhm, snr=snr, roi_n=roi_n, asym_pct=asym_pct, masks=masks)
        cmp = compare_sides(stats, symptomatic_side="left", interval=interval, n_boot=500, rng=rng)
        fwhm_est.append(cmp.rows[0].noise_fwhm_i_mm)
        ent = assess_entrapment(cmp, {"radicular_side": "left", "suspected_levels": list(LEVELS)})
        for r in cmp.rows:
            if r.level == "L5" and asym_pct:
                l5.append(r)
            else:
                sym_diffs.append((r.difference_ci_low, r.difference_ci_high, r.detectable_pct))
        for lv in ent.levels:
            if not (lv.level == "L5" and asym_pct):
                n_sym += 1
                conc += lv.classification == "concordant"
    lo, hi, mdd = (np.array(x) for x in zip(*sym_diffs))
    cover = float(np.mean((lo <= 0) & (0 <= hi)))
    # The truth for L5 is the noise-free difference; the fitted ADC's small noise bias is common to
    # both sides (same SNR), so the truth of the difference of means is ADC * asym.
    true_l5 = ADC * asym_pct / 100.0
    cover_l5 = float(np.mean([r.difference_ci_low <= true_l5 <= r.difference_ci_high for r in l5])) if l5 else math.nan
    power = float(np.mean([r.difference_ci_low > 0 for r in l5])) if l5 else math.nan
    return {"fwhm": fwhm, "snr": snr, "roi_n": roi_n, "asym_pct": asym_pct, "n_scans": n_scans,
            "interval": interval, "coverage_sym": cover, "coverage_l5": cover_l5, "power": power,
            "false_concordant": conc / max(n_sym, 1), "n_sym_rows": n_sym,
            "detectable_pct_median": float(np.nanmedian(mdd)),
            "fwhm_est_mm_median": float(np.nanmedian(fwhm_est))}


def _kernel_correlation(fwhm: float) -> np.ndarray:
    """Exact in-plane correlation (lags −20…20) of the simulation's discretised Gaussian smoothing."""
    from scipy.ndimage import gaussian_filter
    from scipy.signal import fftconvolve

    delta = np.zeros((41, 41))
    delta[20, 20] = 1.0
    k = gaussian_filter(delta, fwhm / math.sqrt(8.0 * math.log(2.0)), mode="constant") if fwhm > 0 else delta
    ac = fftconvolve(k, k[::-1, ::-1])[20:61, 20:61]  # lags -20..20 (the full output is 81 x 81)
    ac[np.abs(ac) < 1e-12] = 0.0
    return ac / ac[20, 20]


def oracle(fwhm: float, roi_n: int, *, snr: float = 20.0, asym_pct: float = 15.0) -> dict:
    """Power of the best possible test of the ROI-mean difference, the noise correlation known.

    The variance of each ROI mean is ``σ² 1ᵀR1 / n²`` with ``R`` the exact correlation of the
    simulated noise over the ROI's voxels and ``σ`` the per-voxel ADC SD by the delta method,
    ``(1/b)·sqrt((σ_n/S_b)² + (σ_n/S_0)²)``; the test is a z test (known variance: an upper
    bound for any interval that must estimate σ and the correlation). Also returned: the effective
    voxel counts of the generalised-least-squares (GLS) mean ``1ᵀR⁻¹1`` and the share of its
    voxel weights that are negative.
    """
    from scipy.special import ndtr

    mask = _roi_masks(roi_n)[("L1", "left")]
    c = np.argwhere(mask)
    ac = _kernel_correlation(fwhm)
    d = c[:, None, :] - c[None, :, :]
    r = np.where((d[..., 2] == 0) & (np.abs(d[..., 0]) <= 20) & (np.abs(d[..., 1]) <= 20),
                 ac[np.clip(20 + d[..., 0], 0, 40), np.clip(20 + d[..., 1], 0, 40)], 0.0)
    n = c.shape[0]
    n_eff = n * n / r.sum()
    b = BVALS[1]
    sigma_n = S0 / snr

    def sd(adc: float) -> float:
        return math.hypot(sigma_n / (S0 * math.exp(-b * adc)), sigma_n / S0) / b

    se = math.hypot(sd(ADC * (1 + asym_pct / 100.0)), sd(ADC)) / math.sqrt(n_eff)
    z = ADC * asym_pct / 100.0 / se
    w = np.linalg.solve(r + 1e-9 * np.eye(n), np.ones(n))
    return {"fwhm": fwhm, "roi_n": roi_n, "n_eff_mean": n_eff, "power_mean_known_corr": float(ndtr(z - 1.96) + ndtr(-z - 1.96)),
            "n_eff_gls": float(w.sum()), "gls_negative_weights": float(np.mean(w < 0))}


#: The full grid: symmetric roots over FWHM × SNR × ROI size, and the altered L5 root at SNR 20.
FWHMS = (0.0, 1.5, 2.5, 3.0)
FULL_GRID = ([(f, snr, n, 0.0) for f in FWHMS for snr in (10.0, 20.0, 40.0) for n in (5, 10, 50, 200)]
             + [(f, 20.0, n, a) for f in FWHMS for n in (20, 50, 100, 200) for a in (15.0, 30.0)])
COLUMNS = ("fwhm", "snr", "roi_n", "asym_pct", "n_scans", "n_sym_rows", "coverage_sym", "coverage_l5", "power",
           "false_concordant", "detectable_pct_median", "fwhm_est_mm_median")


def _mc_se(p: float, n: int) -> float:
    """Binomial Monte-Carlo standard error of a proportion `p` from `n` rows."""
    return math.sqrt(p * (1.0 - p) / n) if n and math.isfinite(p) else math.nan


def _run_one(job: tuple) -> dict:
    (f, snr, n, a), scans, seed, interval = job
    t0 = time.process_time()
    res = run_condition(fwhm=f, snr=snr, roi_n=n, asym_pct=a, n_scans=scans, seed=seed, interval=interval)
    res["cpu_s"] = time.process_time() - t0
    return res


def _table(results: list[dict]) -> str:
    head = ("| FWHM (vox) | SNR | ROI voxels | true asym. % | scans | coverage, symmetric % (± MC SE) "
            "| coverage, L5 % | power % (± MC SE) | false concordant % (± MC SE) | detectable % (median) "
            "| est. FWHM mm (median) |\n|" + "---|" * 11 + "\n")
    rows = []
    for r in sorted(results, key=lambda r: (r["asym_pct"] > 0, r["fwhm"], r["snr"], r["roi_n"], r["asym_pct"])):
        m = r["n_sym_rows"]
        pct = (lambda x: "–" if not math.isfinite(x) else f"{100 * x:.1f}")
        rows.append(
            f"| {r['fwhm']:g} | {r['snr']:g} | {r['roi_n']} | {r['asym_pct']:g} | {r['n_scans']} "
            f"| {pct(r['coverage_sym'])} ± {pct(_mc_se(r['coverage_sym'], m))} | {pct(r['coverage_l5'])} "
            f"| {pct(r['power'])}{'' if not math.isfinite(r['power']) else ' ± ' + pct(_mc_se(r['power'], r['n_scans']))} "
            f"| {pct(r['false_concordant'])} ± {pct(_mc_se(r['false_concordant'], m))} "
            f"| {r['detectable_pct_median']:.1f} | {r['fwhm_est_mm_median']:.2f} |")
    return head + "\n".join(rows) + "\n"


def main(argv: list[str] | None = None) -> int:
    import json
    from concurrent.futures import ProcessPoolExecutor

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small grid, fewer scans")
    ap.add_argument("--scans", type=int, default=None, help="scans per condition")
    ap.add_argument("--interval", default="effective-n", choices=("effective-n", "iid-bootstrap"))
    ap.add_argument("--only", action="append", default=None, metavar="FWHM,SNR,ROI_N,ASYM",
                    help="run only this condition (repeatable), e.g. --only 3,10,200,0")
    ap.add_argument("--seed", type=int, default=1000, help="seed of the first condition (condition i: seed + i)")
    ap.add_argument("--jobs", type=int, default=1, help="worker processes (conditions run in parallel)")
    ap.add_argument("--jsonl", default=None, help="also append one JSON line per finished condition here")
    ap.add_argument("--oracle", action="store_true", help="print the known-correlation power bound and exit")
    ap.add_argument("--table-from", default=None, metavar="JSONL", help="print the table of a stored run and exit")
    args = ap.parse_args(argv)
    if args.table_from:
        with open(args.table_from, encoding="utf-8") as fh:
            sys.stdout.write(_table([json.loads(line) for line in fh if line.strip()]))
        return 0
    if args.oracle:
        sys.stdout.write("| FWHM (vox) | ROI voxels | n_eff (mean) | power, 15 % at SNR 20, correlation known % "
                         "| n_eff (GLS) | GLS weights < 0 % |\n|---|---|---|---|---|---|\n")
        for f in FWHMS:
            for n in (20, 50, 100, 200):
                o = oracle(f, n)
                sys.stdout.write(f"| {f:g} | {n} | {o['n_eff_mean']:.1f} | {100 * o['power_mean_known_corr']:.1f} "
                                 f"| {o['n_eff_gls']:.1f} | {100 * o['gls_negative_weights']:.0f} |\n")
        return 0
    if args.only:
        grid = [tuple(float(x) if i != 2 else int(x) for i, x in enumerate(c.split(","))) for c in args.only]
        scans = args.scans or 40
    elif args.quick:
        grid = list(itertools.product((0.0, 1.5, 3.0), (10.0, 20.0), (10, 50), (0.0,)))
        grid += [(2.5, 20.0, n, 15.0) for n in (20, 50, 100)]
        scans = args.scans or 15
    else:
        grid = list(FULL_GRID)
        scans = args.scans or 150
    jobs = [(c, scans, args.seed + i, args.interval) for i, c in enumerate(grid)]
    jobs.sort(key=lambda j: -j[0][2])  # largest ROIs first: better load balance
    sys.stdout.write(f"interval = {args.interval}, {scans} scans × 12 roots per condition, seed {args.seed} + "
                     f"condition index\n\n")
    results = []
    with ProcessPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        for res in pool.map(_run_one, jobs):
            results.append(res)
            if args.jsonl:
                with open(args.jsonl, "a", encoding="utf-8") as fh:
                    fh.write(json.dumps(res) + "\n")
            sys.stderr.write(f"done {len(results)}/{len(jobs)}: {res['fwhm']:g},{res['snr']:g},{res['roi_n']},"
                             f"{res['asym_pct']:g} in {res['cpu_s']:.0f} CPU-s\n")
    sys.stdout.write(_table(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
