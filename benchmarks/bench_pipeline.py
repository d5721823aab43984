"""Batch pipeline throughput: subjects per minute on the sample cohort with 1 and 2 workers.

Generates the sample cohort (``dwi_toolkit.sample_data.generate_cohort``: 5 subjects, 2 of them
DICOM, one deliberately broken) into a temporary folder and runs the ``default`` pipeline (when
this build has every step; otherwise a load + ADC pipeline, reported as such) with ``--force``
so every subject is recomputed, with 1 and 2 local worker processes. Reported: median wall time
of the whole run (discovery, checksums, subjects, manifest, cohort summary) and subjects per
minute counting every processed subject (the broken one fails fast), plus the median time per
successful subject. BLAS/OpenMP threads are pinned to one per process.

Run: ``python benchmarks/bench_pipeline.py [--repeats 3] [--jobs 1 2] [--copies 1] [--json OUT]``.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

def _cpu() -> float:
    """User + system CPU seconds of this process and its finished children (the workers)."""
    import resource

    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


FALLBACK = """schema = "dwi_toolkit.pipeline/1"
name = "load-adc"
[[steps]]
step = "load"
[[steps]]
step = "adc"
"""


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--jobs", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--pipeline", default="default")
    ap.add_argument("--copies", type=int, default=1,
                    help="replicate the sample cohort (different noise seeds) to amortise worker start-up")
    ap.add_argument("--json", default=str(Path(__file__).parent / "results" / "pipeline.json"))
    args = ap.parse_args(argv)

    from dwi_toolkit.errors import PipelineError
    from dwi_toolkit.pipeline.runner import run_pipeline
    from dwi_toolkit.pipeline.spec import load_pipeline
    from dwi_toolkit.sample_data import COHORT, COHORT_SHAPE, generate_cohort

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        t = time.perf_counter()
        subjects = {f"{k}c{c}" if args.copies > 1 else k: v for c in range(args.copies) for k, v in COHORT.items()}
        generate_cohort(tmp / "in", subjects=subjects)
        gen_s = time.perf_counter() - t
        pipeline: str | Path = args.pipeline
        try:
            load_pipeline(pipeline).check_available()
        except PipelineError as err:
            print(f"pipeline {pipeline!r} not runnable in this build ({err}); using load + adc")
            pipeline = tmp / "fallback.toml"
            pipeline.write_text(FALLBACK)
        spec = load_pipeline(pipeline)
        results = {}
        for jobs in args.jobs:
            walls, cpus, per_subject, statuses = [], [], [], None
            for rep in range(args.repeats):
                t = time.perf_counter()
                c0 = _cpu()
                res = run_pipeline(tmp / "in", tmp / f"out{jobs}", pipeline=pipeline, jobs=jobs, force=True)
                walls.append(time.perf_counter() - t)
                cpus.append(_cpu() - c0)
                per_subject += [r.duration_s for r in res.results if r.status == "done"]
                statuses = res.counts
            n = sum(statuses.values())
            med = statistics.median(walls)
            results[f"jobs={jobs}"] = {
                "median_wall_s": med, "walls_s": walls, "subjects": n, "counts": statuses,
                "subjects_per_minute": 60.0 * n / med,
                "successful_subjects_per_minute": 60.0 * statuses["done"] / med,
                "median_s_per_successful_subject": statistics.median(per_subject),
                "median_cpu_s": statistics.median(cpus),
                "load_average_after": os.getloadavg(),
            }
    print(f"Pipeline '{spec.name}' on the sample cohort ({n} subjects, grid {COHORT_SHAPE}, "
          f"generated in {gen_s:.1f} s), median of {args.repeats} runs with --force\n")
    print("| workers | wall time (s) | subjects/min (all) | successful subjects/min | s per subject (in worker) "
          "| CPU time, all processes (s) | load average after |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for k, r in results.items():
        print(f"| {k.split('=')[1]} | {r['median_wall_s']:.2f} | {r['subjects_per_minute']:.1f} | "
              f"{r['successful_subjects_per_minute']:.1f} | {r['median_s_per_successful_subject']:.2f} | "
              f"{r['median_cpu_s']:.1f} | {r['load_average_after'][0]:.1f} |")
    if len(results) >= 2:
        ks = list(results)
        print(f"\nspeed-up {ks[-1]} vs {ks[0]}: "
              f"{results[ks[0]]['median_wall_s'] / results[ks[-1]]['median_wall_s']:.2f}x")
    out = {"machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                       "load_average": os.getloadavg()}, "copies": args.copies,
           "pipeline": spec.name, "hash": spec.hash, "results": results}
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
