"""``dwi-toolkit analyze`` front door (issue 21): time on the sample and a lumbar-size subject, peak memory.

- **sample**: the bundled ``sample_data/sub-01`` (2 MB). In paired rounds: the whole command
  in a fresh process (``dwi-toolkit analyze``, imports included; wall and CPU time of the child)
  with and without figures, and ``run_analysis`` in this process (imports already done).
- **lumbar**: a phantom subject of lumbar size, 256×256×30 × 31 volumes (b = 0 and 30
  directions at b = 800 s/mm², so the tensor is fitted too), 12 ganglion ROIs, in-process.
- **memory**: peak RSS of ``run_analysis`` (figures on, tensor fitted) in a fresh subprocess on a
  512×512×60 × 61-volume int16 series (1.9 GB), as a multiple of the loaded data. The series is
  a 64×64×60 phantom (3×3×3.2 mm) repeated 8×8 in-plane onto 0.375×0.375×3.2 mm voxels, written uncompressed
  (``--gz`` for ``.nii.gz``) by a separate generator process, with the phantom's 12 ROIs.

- **critical path** (``--only critical``): on a shared machine the wall time says little, so the
  command is also run once per subject (sample, lumbar) in a subprocess that records the CPU
  time of the analysis process at each step and of the figure workers per figure
  (:mod:`dwi_toolkit.reporting.figure_worker`), and replays them on two idle cores: the
  estimated wall time of ``analyze`` on a quiet 2-core machine (interpreter start-up included,
  the disk assumed warm).

Threads are pinned to one. Times are medians; CPU time (user + system) is robust to other
users' load, wall time is what a user waits for. Prints Markdown and writes JSON.

Run: ``python benchmarks/bench_analyze.py [--repeats 5] [--only sample lumbar critical memory]
[--memory-shape 512 512 60] [--gz] [--base DIR]``; ``--base`` times an older source tree's
whole command (``git archive COMMIT | tar -x -C DIR``) in the same rounds (``cli_base`` rows).
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_var] = "1"
# the figure workers of `analyze` (reporting.figure_worker) start only when the load average leaves a
# CPU free; back-to-back runs raise it, so they are switched on for every run here (=0: measure without)
os.environ.setdefault("DWI_TOOLKIT_FIGURE_PROCESS", "1")

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

HERE = Path(__file__).resolve().parent
SAMPLE = HERE.parent / "sample_data" / "sub-01"


#: The sample's analysis options in ``make demo``.
DEMO = ["--b-range", "100", "-"]


def _cpu() -> float:
    import resource

    ch = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + ch.ru_utime + ch.ru_stime


def _timed(fn) -> tuple[float, float]:
    """(wall, CPU) seconds of one call."""
    w, c = time.perf_counter(), _cpu()
    fn()
    return time.perf_counter() - w, _cpu() - c


#: Source tree of an older dwi_toolkit (``--base``, e.g. ``git archive <commit> | tar -x -C DIR``):
#: its whole ``analyze`` command is timed beside ours in the same rounds.
BASE: str | None = None


def _cli(args: list[str], base: bool = False):
    """A callable running ``dwi-toolkit analyze ARGS`` (with `base`: the ``--base`` tree's code)."""
    env = dict(os.environ, PYTHONPATH=BASE) if base else None
    cmd = [sys.executable, "-m", "dwi_toolkit", "analyze", *args]
    # run from a neutral folder so that the working directory does not shadow PYTHONPATH
    return lambda: subprocess.run(cmd, check=True, capture_output=True, env=env, cwd=tempfile.gettempdir())


def _with_base(fns: dict, name: str, args: list[str]) -> dict:
    if BASE:
        fns[f"{name}_base"] = _cli(args, base=True)
    return fns


def _args(sub: Path, out: Path) -> list[str]:
    return [str(sub / "dwi" / f"{sub.name}_dwi.nii.gz"), "--rois", str(sub / "rois" / f"{sub.name}_rois.json"),
            "--clinical", str(sub / "clinical.json"), "-o", str(out)]


def _med(rounds: dict[str, list[tuple[float, float]]]) -> dict[str, dict[str, float]]:
    return {k: {"wall_s": statistics.median(w for w, _ in v), "cpu_s": statistics.median(c for _, c in v),
                "wall_min_s": min(w for w, _ in v)} for k, v in rounds.items()}


def bench_sample(repeats: int, out: dict, tmp: Path) -> None:
    from dwi_toolkit.pipeline.analyze import AnalysisOptions, run_analysis

    sub = SAMPLE
    paths = (sub / "dwi" / "sub-01_dwi.nii.gz", sub / "rois" / "sub-01_rois.json", sub / "clinical.json")
    run_analysis(*paths, tmp / "warm", options=AnalysisOptions())  # imports and caches
    fns = {
        "cli": _cli([*_args(sub, tmp / "cli"), *DEMO]),
        "cli_no_figures": _cli([*_args(sub, tmp / "clin"), *DEMO, "--no-figures"]),
        "in_process": lambda: run_analysis(*paths, tmp / "ip", options=AnalysisOptions()),
        "in_process_no_figures": lambda: run_analysis(*paths, tmp / "ipn", options=AnalysisOptions(figures=False)),
    }
    _with_base(fns, "cli", _args(sub, tmp / "cli_b"))
    _with_base(fns, "cli_no_figures", [*_args(sub, tmp / "clin_b"), "--no-figures"])
    rounds: dict[str, list] = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            rounds[k].append(_timed(fn))
    out["sample"] = _med(rounds)


def _lumbar_subject(tmp: Path) -> Path:
    """The lumbar-size phantom subject (written once per run): 256×256×30 × 31 volumes, 12 ganglion ROIs."""
    sub = tmp / "lumbar" / "sub-lumbar"
    if not sub.is_dir():
        from dwi_toolkit.phantom import make_lumbar_phantom
        from dwi_toolkit.sample_data import SAMPLE_CLINICAL, write_subject

        ph = make_lumbar_phantom(shape=(256, 256, 30), voxel_size=(0.8, 0.8, 5.0), bvals=(0, 800), n_directions=30)
        write_subject(ph, tmp / "lumbar", "sub-lumbar", clinical=SAMPLE_CLINICAL)
    return sub


def bench_lumbar(repeats: int, out: dict, tmp: Path) -> None:
    from dwi_toolkit.pipeline.analyze import AnalysisOptions, run_analysis

    sub = _lumbar_subject(tmp)
    paths = (sub / "dwi" / "sub-lumbar_dwi.nii.gz", sub / "rois" / "sub-lumbar_rois.json", sub / "clinical.json")
    fns = {"in_process": lambda: run_analysis(*paths, tmp / "lo", options=AnalysisOptions()),
           "in_process_no_figures": lambda: run_analysis(*paths, tmp / "lon", options=AnalysisOptions(figures=False)),
           "cli": _cli(_args(sub, tmp / "lcli"))}
    _with_base(fns, "cli", _args(sub, tmp / "lcli_b"))
    rounds: dict[str, list] = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            rounds[k].append(_timed(fn))
    out["lumbar"] = {"shape": [256, 256, 30, 31], **_med(rounds)}


GENERATE = r"""
import sys, shutil
from pathlib import Path
import numpy as np, nibabel as nib
from dwi_toolkit.phantom import make_lumbar_phantom
from dwi_toolkit.sample_data import SAMPLE_CLINICAL, write_subject
out, X, Y, Z, gz = Path(sys.argv[1]), *map(int, sys.argv[2:5]), sys.argv[5] == "1"
fx, fy, fz = X // 64, Y // 64, Z // 60
ph = make_lumbar_phantom(shape=(64, 64, 60), voxel_size=(3.0, 3.0, 3.2), bvals=(0, 1000), n_directions=60)
write_subject(ph, out, "sub-big", clinical=SAMPLE_CLINICAL)
sub = out / "sub-big"
small = np.clip(np.rint(ph.series.data), 0, 32767).astype(np.int16)
big = np.empty((64 * fx, 64 * fy, 60 * fz, small.shape[3]), dtype=np.int16, order="F")
for v in range(small.shape[3]):  # volume by volume: the generator's peak is the output array
    big[..., v] = np.repeat(np.repeat(np.repeat(small[..., v], fx, 0), fy, 1), fz, 2)
step = np.array([[1 / fx, 0, 0, (1 / fx - 1) / 2], [0, 1 / fy, 0, (1 / fy - 1) / 2],
                 [0, 0, 1 / fz, (1 / fz - 1) / 2], [0, 0, 0, 1]])
img = nib.Nifti1Image(big, ph.series.affine @ step)
img.header.set_xyzt_units("mm", "sec")
name = sub / "dwi" / ("big_dwi.nii.gz" if gz else "big_dwi.nii")
nib.save(img, name)
for ext in (".bval", ".bvec"):
    shutil.copy(sub / "dwi" / f"sub-big_dwi{ext}", sub / "dwi" / f"big_dwi{ext}")
print(name, big.nbytes)
"""

MEASURE = r"""
import json, resource, sys, time
from dwi_toolkit.pipeline.analyze import AnalysisOptions, run_analysis
dwi, rois, clinical, out, data_bytes = sys.argv[1:6]
t = time.perf_counter()
run_analysis(dwi, rois, clinical, out, options=AnalysisOptions())
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"data_bytes": int(data_bytes), "peak_rss": peak, "peak_over_data": peak / int(data_bytes),
                  "wall_s": time.perf_counter() - t, "cpu_s": time.process_time()}))
"""


def bench_memory(out: dict, tmp: Path, shape, gz: bool) -> None:
    gen = subprocess.run([sys.executable, "-c", GENERATE, str(tmp / "big"), *map(str, shape), "1" if gz else "0"],
                         check=True, capture_output=True, text=True)
    dwi, nbytes = gen.stdout.split()[-2:]
    sub = tmp / "big" / "sub-big"
    proc = subprocess.run([sys.executable, "-c", MEASURE, dwi, str(sub / "rois" / "sub-big_rois.json"),
                           str(sub / "clinical.json"), str(tmp / "big_out"), nbytes], capture_output=True, text=True)
    if proc.returncode != 0:
        out["memory"] = {"error": proc.stderr.strip().splitlines()[-1]}
        return
    out["memory"] = {"shape": [*shape, 61], "file": Path(dwi).name, **json.loads(proc.stdout.splitlines()[-1])}
    shutil.rmtree(tmp / "big", ignore_errors=True)


CRITICAL = r"""
import json, os, sys, time
import dwi_toolkit.reporting.figure_worker as W
PARENT, trace, ev = os.getpid(), sys.argv[1], []
cpu = time.process_time
def key(func, kwargs):
    return func.__name__ + repr(sorted((k, v) for k, v in kwargs.items() if isinstance(v, (str, int, float))))
real = {n: getattr(W, n) for n in ("_warm_up", "_render")}
real_submit, real_png, real_init = W._Worker.submit, W.FigureJob.png, W._Worker.__init__
def log(d):
    with open(trace, "a") as f:
        f.write(json.dumps(d) + "\n")
def warm():
    t = cpu(); real["_warm_up"](); log({"warm": cpu() - t})
def render(func, args, kwargs, dpi):
    t = cpu(); r = real["_render"](func, args, kwargs, dpi)
    if os.getpid() != PARENT:
        log({"job": key(func, kwargs), "cpu": cpu() - t, "pid": os.getpid()})
    return r
def submit(self, job):
    ev.append(("submit", key(job.func, job.kwargs), cpu())); real_submit(self, job)
def png(self):
    ev.append(("wait", key(self.func, self.kwargs), cpu())); r = real_png(self); ev.append(("got", None, cpu())); return r
def init(self):
    ev.append(("fork", None, cpu())); real_init(self)
W._warm_up, W._render = warm, render
W._Worker.submit, W.FigureJob.png, W._Worker.__init__ = submit, png, init
from dwi_toolkit.cli.main import main
code = main(sys.argv[2:])
ev.append(("end", None, cpu()))
print(json.dumps({"code": code, "events": ev}))
"""


def _replay(events: list, trace: list[dict]) -> dict:
    """Estimated wall time on two idle cores: the analysis process's CPU timeline, the workers'
    warm-up and figures started when both the worker and the figure's inputs are ready."""
    fork = next((t for kind, _, t in events if kind == "fork"), None)
    end = events[-1][2]
    if fork is None:  # no worker: figures (if any) were drawn in-process
        return {"estimated_wall_s": end, "analysis_cpu_s": end}
    warm = next(d["warm"] for d in trace if "warm" in d)
    jobs = [d for d in trace if "job" in d]
    free = {d["pid"]: fork + warm for d in jobs}  # the second worker is forked once the first is warm
    submitted = [(k, t) for kind, k, t in events if kind == "submit"]
    done: dict[str, list[float]] = {}
    for k, t in submitted:  # a worker draws a figure once it is free and the figure's inputs exist
        rec = next(d for d in jobs if d["job"] == k and not d.get("used"))
        rec["used"] = True
        start = max(free[rec["pid"]], t)
        free[rec["pid"]] = start + rec["cpu"]
        done.setdefault(k, []).append(free[rec["pid"]])
    shift, waited = 0.0, {}
    for kind, k, t in events:
        if kind == "wait":
            ready = done[k].pop(0) if done.get(k) else t + shift
            shift += max(0.0, ready - (t + shift))
            waited[k] = max(0.0, ready - (t + shift))
    return {"estimated_wall_s": end + shift, "analysis_cpu_s": end, "waiting_for_figures_s": shift,
            "worker_warm_up_cpu_s": warm, "worker_figure_cpu_s": sum(d["cpu"] for d in jobs)}


def bench_critical(repeats: int, out: dict, tmp: Path) -> None:
    """Estimated quiet-machine wall time of the whole command (see the module docstring), median of rounds."""
    subjects = {"sample": (SAMPLE, DEMO), "lumbar": (_lumbar_subject(tmp), [])}
    res: dict[str, list[dict]] = {}
    for _ in range(repeats):
        for name, (sub, extra) in subjects.items():
            trace = tmp / f"trace_{name}.jsonl"
            trace.unlink(missing_ok=True)
            proc = subprocess.run([sys.executable, "-c", CRITICAL, str(trace), "analyze", *_args(sub, tmp / f"cp_{name}"),
                                   *extra], capture_output=True, text=True, cwd=tempfile.gettempdir())
            if proc.returncode != 0:
                out.setdefault("critical", {})[name] = {"error": proc.stderr.strip().splitlines()[-1:]}
                continue
            rec = json.loads(proc.stdout.strip().splitlines()[-1])
            lines = [json.loads(x) for x in trace.read_text().splitlines()] if trace.exists() else []
            res.setdefault(name, []).append(_replay(rec["events"], lines))
    out["critical"] = {name: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for name, rs in res.items()}


def report(out: dict) -> None:
    lines = [f"analyze, {out['date']}, {out['machine']}; medians (wall / CPU seconds)", ""]
    for part in ("sample", "lumbar"):
        for k, v in out.get(part, {}).items():
            if isinstance(v, dict):
                lines.append(f"- {part} {k}: wall {v['wall_s']:.2f} s (min {v['wall_min_s']:.2f}), CPU {v['cpu_s']:.2f} s")
    for name, c in out.get("critical", {}).items():
        lines.append(f"- critical path {name}: " + (
            f"estimated wall on 2 idle cores {c['estimated_wall_s']:.2f} s (analysis process {c['analysis_cpu_s']:.2f} "
            f"CPU-s + {c.get('waiting_for_figures_s', 0):.2f} s waiting for figures)" if "error" not in c else str(c)))
    m = out.get("memory")
    if m:
        lines.append(f"- memory {m.get('shape')} {m.get('file')}: " + (
            f"peak RSS {m['peak_over_data']:.2f}x the data ({m['peak_rss'] / 2**30:.2f} GiB), "
            f"{m['wall_s']:.0f} s wall, {m['cpu_s']:.0f} s CPU" if "peak_rss" in m else m["error"]))
    print("\n".join(lines))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--only", nargs="*", default=["sample", "lumbar", "critical", "memory"])
    ap.add_argument("--memory-shape", type=int, nargs=3, default=[512, 512, 60])
    ap.add_argument("--gz", action="store_true", help="memory run on a .nii.gz (default .nii)")
    ap.add_argument("--json", default=str(HERE / "results" / "analyze.json"))
    ap.add_argument("--base", help="source tree of an older dwi_toolkit whose analyze command is timed "
                    "beside ours (e.g. from git archive)")
    args = ap.parse_args(argv)
    global BASE
    BASE = str(Path(args.base).resolve()) if args.base else None
    out = {"date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
           "machine": f"{platform.machine()} {os.cpu_count()} cores, Python {platform.python_version()}, "
                      f"load average {os.getloadavg()[0]:.1f}"}
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        for name in args.only:
            if name == "memory":
                bench_memory(out, tmp, args.memory_shape, args.gz)
            else:
                globals()[f"bench_{name}"](args.repeats, out, tmp)
    out["load_average_after"] = os.getloadavg()[0]
    report(out)
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
