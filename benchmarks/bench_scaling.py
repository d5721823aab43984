"""Batch scaling (issue 21): subjects/min of ``run_pipeline`` with 1 and 2 local processes and on Dask.

Generates N NIfTI subjects of the sample cohort (``generate_cohort``, the 4 healthy kinds repeated;
no broken one) and runs the ``default`` pipeline with ``force=True``, in paired rounds (every
round runs every configuration once, so changes of the machine's load hit them alike):

- ``jobs=1`` (this process), ``jobs=2`` (local process pool);
- ``dask-processes``: a ``LocalCluster(n_workers=2, processes=True, threads_per_worker=1)``
  started (and warmed: ``dwi_toolkit`` imported in each worker) before the round, the
  recommended set-up of docs/dask.md;
- ``dask-threads`` (``--threads``): one worker process with 2 threads, to show what the GIL does.

Before the timed rounds, one untimed warm-up run of every configuration on two subjects puts them
on the same footing as ``jobs=1``, which runs in this already-warm process: the local pool's fork
server has imported the modules a subject needs (``runner.WORKER_PRELOAD``, started once per
process) and the Dask workers have run ``runner.preload_worker``. ``--cold`` skips it.
CPU seconds (this process + its children + the pool's fork server and its workers, from
``/proc``) are reported beside the wall time: on a shared machine they show the overhead even
when the wall-clock speed-up cannot be trusted.

The speed-up is (subjects/min of a configuration) / (subjects/min of jobs=1), the median over
rounds of the per-round ratios. Threads per process are pinned to one (BLAS). Prints Markdown and
writes JSON.

Run: ``python benchmarks/bench_scaling.py [--subjects 16] [--repeats 3] [--threads] [--cold]``.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from datetime import datetime, timezone  # noqa: E402
from pathlib import Path  # noqa: E402

HERE = Path(__file__).resolve().parent


def _warm() -> str:
    from dwi_toolkit.pipeline.runner import preload_worker

    preload_worker()  # the imports a subject needs
    return "ok"


def _cpu() -> float:
    """CPU seconds of this process, its reaped children and the multiprocessing fork server (with its workers)."""
    import resource

    me, ch = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    total = me.ru_utime + me.ru_stime + ch.ru_utime + ch.ru_stime
    try:
        from multiprocessing import forkserver

        pid = forkserver._forkserver._forkserver_pid
        if pid:
            f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += sum(int(x) for x in f[11:15]) / os.sysconf("SC_CLK_TCK")
    except (OSError, AttributeError, ValueError, IndexError):
        pass
    return total


def _cohort(tmp: Path, n: int) -> Path:
    from dwi_toolkit.sample_data import COHORT, generate_cohort

    kinds = [k for k, v in COHORT.items() if v[1] != "broken"]
    subjects = {}
    for i in range(n):
        alt, _, clinical, note = COHORT[kinds[i % len(kinds)]]
        subjects[f"sub-{i + 1:02d}"] = (alt, "nifti", clinical, note)
    generate_cohort(tmp / "in", subjects=subjects, dicom=False)
    return tmp / "in"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--subjects", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", action="store_true", help="also a threaded Dask worker (2 threads)")
    ap.add_argument("--no-dask", action="store_true")
    ap.add_argument("--cold", action="store_true", help="no untimed warm-up run (worker start-up counted)")
    ap.add_argument("--json", default=str(HERE / "results" / "scaling.json"))
    args = ap.parse_args(argv)
    from dwi_toolkit.pipeline.runner import run_pipeline

    out = {"date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
           "machine": f"{platform.machine()} {os.cpu_count()} cores, Python {platform.python_version()}, "
                      f"load average {os.getloadavg()[0]:.1f}", "subjects": args.subjects}
    clusters = {}
    if not args.no_dask:
        from distributed import Client, LocalCluster

        clusters["dask-processes"] = LocalCluster(n_workers=2, processes=True, threads_per_worker=1,
                                                  dashboard_address=None)
        if args.threads:
            clusters["dask-threads"] = LocalCluster(n_workers=1, processes=True, threads_per_worker=2,
                                                    dashboard_address=None)
        clients = {k: Client(c) for k, c in clusters.items()}
        for c in clients.values():
            c.run(_warm)
    configs = {"jobs=1": {"jobs": 1}, "jobs=2": {"jobs": 2}}
    configs.update({k: {"scheduler": clients[k]} for k in clusters})
    walls: dict[str, list[float]] = {k: [] for k in configs}
    cpus: dict[str, list[float]] = {k: [] for k in configs}
    try:
        with tempfile.TemporaryDirectory() as d:
            tmp = Path(d)
            src = _cohort(tmp, args.subjects)
            if not args.cold:
                for k, kw in configs.items():
                    run_pipeline(src, tmp / "warm", force=True, participant_labels=["01", "02"], **kw)
            for _ in range(args.repeats):
                for k, kw in configs.items():
                    t, c = time.perf_counter(), _cpu()
                    res = run_pipeline(src, tmp / f"out-{k.replace('=', '')}", force=True, **kw)
                    walls[k].append(time.perf_counter() - t)
                    cpus[k].append(_cpu() - c)
                    assert res.counts.get("done") == args.subjects, res.counts
    finally:
        for c in clusters.values():
            c.close()
    n = args.subjects
    out["results"] = {k: {"walls_s": v, "median_wall_s": statistics.median(v),
                          "median_cpu_s": statistics.median(cpus[k]),
                          "subjects_per_min": 60 * n / statistics.median(v),
                          "speedup_vs_jobs1": statistics.median(a / b for a, b in zip(walls["jobs=1"], v))}
                      for k, v in walls.items()}
    out["load_average_after"] = os.getloadavg()[0]
    print(f"Scaling, {out['date']}, {out['machine']}, {n} subjects, {args.repeats} paired rounds"
          f"{' (cold)' if args.cold else ''}; load average after {out['load_average_after']:.1f}\n")
    print("| configuration | median wall (s) | subjects/min | speed-up vs jobs=1 (median of rounds) | CPU (s) |")
    print("|---|---:|---:|---:|---:|")
    for k, r in out["results"].items():
        cpu = "—" if k.startswith("dask") else f"{r['median_cpu_s']:.1f}"  # Dask workers: not our children
        print(f"| {k} | {r['median_wall_s']:.1f} | {r['subjects_per_min']:.1f} | {r['speedup_vs_jobs1']:.2f}x | {cpu} |")
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
