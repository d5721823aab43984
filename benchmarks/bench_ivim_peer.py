"""IVIM fit speed (and accuracy) against the ``ivim-mri`` package (PyPI) on the same data (issue 21).

``ivim-mri`` (Gustafsson et al., the ``ivim`` Python package) is installed in a virtual
environment of its own (default ``benchmarks/.venvs/ivim-mri``, created on first use with
``python -m venv`` and ``pip install ivim-mri``; ``--peer-venv`` to use another), so its pinned
NumPy never meets ours. When pip cannot install it, the benchmark says so and exits 0 (skipped).

Data: the IVIM phantom of ``bench_models.py`` — 64×64×12 voxels, 15 b-values 0–1000 s/mm²,
f ∈ [0.03, 0.3], D ∈ [0.5, 2]×10⁻³ mm²/s, D* ∈ [10, 60]×10⁻³ mm²/s, S0 = 1000, Rician noise
σ = 20 (SNR 50 at b = 0), float32, written once as an uncompressed NIfTI + ``.bval``.

In paired rounds (each round runs every fit once; the machine may be shared):

- ours: ``fit_ivim(series, method=...)`` for ``map`` (default), ``segmented`` and ``full``, in this
  process (data in memory);
- peer: ``ivim.fit.seg(..., regime="diffusive", bthr=200)`` — its segmented fit with D* — and
  ``regime="no"`` (simplified IVIM: D and f only), each in a fresh process of the peer venv. The
  peer's API reads the NIfTI and writes one ``.nii.gz`` per parameter; its CPU time is split
  into reading, fitting and writing (by wrapping ``ivim.fit.data_from_file`` and
  ``ivim.fit.save_parmaps``), and voxels/s uses the fitting part only, like ours.

Times are CPU seconds (user + system) with one BLAS thread, so figures are per core and robust
to other users' load; voxels/s is the median over rounds. Accuracy beside it: median absolute
relative error of D and f against the truth over all voxels (D* too for the fits that give it).
Prints Markdown and writes JSON.

Run: ``python benchmarks/bench_ivim_peer.py [--repeats 3] [--peer-venv DIR]``.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
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
SHAPE = (64, 64, 12)

#: Runs in the peer's venv: one segmented fit, CPU seconds of reading / fitting / writing, and the maps.
PEER = r"""
import json, sys, time
import numpy as np
import ivim.fit as F
im, bval, regime, out = sys.argv[1:5]
parts = {"read": 0.0, "write": 0.0}
maps = {}
real_read, real_save = F.data_from_file, F.save_parmaps
def read(*a, **k):
    t = time.process_time(); r = real_read(*a, **k); parts["read"] += time.process_time() - t; return r
def save(pars, *a, **k):
    t = time.process_time(); maps.update(pars); real_save(pars, *a, **k); parts["write"] += time.process_time() - t
F.data_from_file, F.save_parmaps = read, save
t = time.process_time()
F.seg(im, bval, regime, bthr=200, outbase=out)
total = time.process_time() - t
np.savez(out + "_maps.npz", **{k: np.asarray(v, dtype=float) for k, v in maps.items()})
import importlib.metadata as md
print(json.dumps({"total_cpu_s": total, "fit_cpu_s": total - parts["read"] - parts["write"], **parts,
                  "version": md.version("ivim-mri")}))
"""


def peer_python(venv: Path) -> Path | None:
    """The peer venv's python with ``ivim-mri`` installed (created on first use), or None (message printed)."""
    py = venv / ("Scripts" if os.name == "nt" else "bin") / "python"
    check = [str(py), "-c", "import ivim.fit"]
    if py.exists() and subprocess.run(check, capture_output=True).returncode == 0:
        return py
    print(f"creating {venv} with ivim-mri (pip) ...", file=sys.stderr)
    try:
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True)
        pip = subprocess.run([str(py), "-m", "pip", "install", "--quiet", "ivim-mri"], capture_output=True, text=True)
    except (OSError, subprocess.CalledProcessError) as err:
        print(f"skipped: cannot create the venv {venv}: {err}", file=sys.stderr)
        return None
    if pip.returncode != 0 or subprocess.run(check, capture_output=True).returncode != 0:
        tail = (pip.stderr or pip.stdout).strip().splitlines()[-1:] or ["?"]
        print(f"skipped: pip could not install ivim-mri into {venv}: {tail[0]}", file=sys.stderr)
        return None
    return py


def phantom(seed: int = 0):
    """(signals (X, Y, Z, N) float32, truth dict) of the IVIM phantom."""
    from dwi_toolkit.models.ivim import ivim_signal

    rng = np.random.default_rng(seed)
    truth = {"f": rng.uniform(0.03, 0.3, SHAPE), "D": rng.uniform(0.5e-3, 2e-3, SHAPE),
             "Dstar": rng.uniform(10e-3, 60e-3, SHAPE)}
    clean = ivim_signal(IVIM_B, 1000.0, truth["f"], truth["D"], truth["Dstar"])
    noisy = np.hypot(clean + rng.normal(0, 20, clean.shape), rng.normal(0, 20, clean.shape))
    return noisy.astype(np.float32), truth


def _err(est: np.ndarray, truth: np.ndarray) -> float:
    est = np.asarray(est, dtype=float).reshape(-1)
    rel = np.abs(est - truth.reshape(-1)) / truth.reshape(-1)
    return float(np.median(np.where(np.isfinite(rel), rel, np.inf)))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--peer-venv", default=str(HERE / ".venvs" / "ivim-mri"))
    ap.add_argument("--json", default=str(HERE / "results" / "ivim_peer.json"))
    args = ap.parse_args(argv)
    import nibabel as nib

    from dwi_toolkit.core.image import DWISeries
    from dwi_toolkit.models.ivim import fit_ivim

    out = {"date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
           "machine": f"{platform.machine()} {os.cpu_count()} cores, Python {platform.python_version()}, "
                      f"load average {os.getloadavg()[0]:.1f}", "shape": [*SHAPE, IVIM_B.size]}
    py = peer_python(Path(args.peer_venv))
    data, truth = phantom()
    n_vox = int(np.prod(SHAPE))
    series = DWISeries(data, np.eye(4), IVIM_B, np.zeros((IVIM_B.size, 3)))
    cpu: dict[str, list[float]] = {}
    acc: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        nib.save(nib.Nifti1Image(data, np.eye(4)), tmp / "ivim.nii")
        (tmp / "ivim.bval").write_text(" ".join(f"{b:g}" for b in IVIM_B) + "\n")
        for r in range(args.repeats):
            for method in ("map", "segmented", "full"):
                t = time.process_time()
                fit = fit_ivim(series, method=method)
                cpu.setdefault(f"ours {method}", []).append(time.process_time() - t)
                if r == 0:
                    acc[f"ours {method}"] = {"D": _err(fit.d, truth["D"]), "f": _err(fit.f, truth["f"]),
                                             "Dstar": _err(fit.dstar, truth["Dstar"])}
            for regime in ("diffusive", "no") if py else ():
                res = subprocess.run([str(py), "-c", PEER, str(tmp / "ivim.nii"), str(tmp / "ivim.bval"), regime,
                                      str(tmp / f"peer_{regime}")], capture_output=True, text=True, cwd=tmp)
                if res.returncode != 0:
                    out.setdefault("peer_errors", {})[regime] = res.stderr.strip().splitlines()[-1:]
                    continue
                rec = json.loads(res.stdout.strip().splitlines()[-1])
                out["peer_version"] = rec["version"]
                key = f"ivim-mri seg {regime}"
                cpu.setdefault(key, []).append(rec["fit_cpu_s"])
                out.setdefault("peer_io_cpu_s", {})[regime] = {"read": rec["read"], "write": rec["write"]}
                if r == 0:
                    maps = np.load(tmp / f"peer_{regime}_maps.npz")
                    acc[key] = {p: _err(maps[p], truth[p]) for p in ("D", "f", "Dstar") if p in maps}
    out["skipped"] = py is None
    out["results"] = {k: {"cpu_s": statistics.median(v), "voxels_per_s": n_vox / statistics.median(v),
                          "median_rel_error": acc.get(k, {})} for k, v in cpu.items()}
    out["load_average_after"] = os.getloadavg()[0]
    report(out)
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(out, indent=2) + "\n")
    return 0


def report(out: dict) -> None:
    print(f"IVIM vs ivim-mri {out.get('peer_version', '(not installed: skipped)')}, {out['date']}, {out['machine']}; "
          f"{out['shape']} float32, CPU seconds (one thread), medians\n")
    print("| fit | CPU (s) | voxels/s | median abs. rel. error D / f / D* |")
    print("|---|---:|---:|---|")
    for k, r in out["results"].items():
        e = r["median_rel_error"]
        errs = " / ".join(f"{e[p]:.3f}" if p in e else "—" for p in ("D", "f", "Dstar"))
        print(f"| {k} | {r['cpu_s']:.2f} | {r['voxels_per_s']:,.0f} | {errs} |")
    for regime, io in out.get("peer_io_cpu_s", {}).items():
        print(f"\nivim-mri {regime}: also {io['read']:.2f} s reading the NIfTI and {io['write']:.2f} s writing its maps "
              "(not in its voxels/s)")


if __name__ == "__main__":
    sys.exit(main())
