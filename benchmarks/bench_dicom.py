"""Benchmark DICOM loading: dwi_toolkit vs dcm2niix vs dicom2nifti, same run, medians.

Usage::

    PYTHONPATH=. python benchmarks/bench_dicom.py [--repeats 5] [--shared ../shared/testdata/dicom]

Measures, on a synthetic 300-file classic series (30 slices x 10 volumes, 128x128, written with
pydicom) and on every real set under the shared test data:

- ``load_dwi``: dwi_toolkit in-process (warm imports), median wall time;
- ``convert``: ``python -m dwi_toolkit convert --no-gzip`` as a whole process;
- ``dcm2niix``: ``dcm2niix -z n`` as a whole process (PyPI package ``dcm2niix``);
- ``dicom2nifti``: ``dicom2nifti.convert_directory`` in-process (no gzip, no reorientation).

Prints a Markdown table and writes JSON to benchmarks/results/bench_dicom.json. Gzip-compressed
inputs are decompressed into a scratch folder first (dcm2niix/dicom2nifti cannot read them).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def _median_time(fn, repeats: int) -> tuple[float | None, str, float | None]:
    """Median wall time, note, median CPU time (this process + finished children)."""
    import resource

    def cpu():
        a = resource.getrusage(resource.RUSAGE_SELF)
        b = resource.getrusage(resource.RUSAGE_CHILDREN)
        return a.ru_utime + a.ru_stime + b.ru_utime + b.ru_stime

    times, cpus = [], []
    for _ in range(repeats):
        c0 = cpu()
        t0 = time.perf_counter()
        try:
            fn()
        except Exception as err:  # a converter refusing a data set is a result, not a crash
            return None, f"{type(err).__name__}: {str(err)[:80]}", None
        times.append(time.perf_counter() - t0)
        cpus.append(cpu() - c0)
    return statistics.median(times), "", statistics.median(cpus)


def _dcm2niix_exe() -> str | None:
    exe = shutil.which("dcm2niix") or str(Path(sys.executable).with_name("dcm2niix"))
    return exe if Path(exe).exists() else None


def _prepare_plain(src: Path, scratch: Path) -> Path:
    """Copy of `src` with gzip-compressed files decompressed (only when there are any)."""
    files = [p for p in src.rglob("*") if p.is_file()]
    if not any(p.read_bytes()[:2] == b"\x1f\x8b" for p in files[:5]):
        return src
    dst = scratch / ("plain_" + src.parent.name + "_" + src.name)
    for p in files:
        if p.name.upper() == "DICOMDIR":
            continue
        data = p.read_bytes()
        if data[:2] == b"\x1f\x8b":
            data = gzip.decompress(data)
        out = dst / p.relative_to(src)
        out = out.with_name(out.name[:-3]) if out.name.endswith(".gz") else out
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(data)
    return dst


def bench_one(name: str, folder: Path, scratch: Path, repeats: int) -> dict:
    from dwi_toolkit.io.loading import load_dwi

    plain = _prepare_plain(folder, scratch)
    n_files = sum(1 for p in plain.rglob("*") if p.is_file())
    row: dict = {"name": name, "files": n_files}
    load_dwi(plain)  # warm-up (imports, page cache)
    row["load_dwi_s"], row["load_dwi_note"], row["load_dwi_cpu_s"] = _median_time(lambda: load_dwi(plain), repeats)

    def convert():
        out = scratch / "conv"
        shutil.rmtree(out, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "dwi_toolkit", "convert", str(plain), "-o", str(out),
                        "--no-gzip", "-q"], check=True, capture_output=True, cwd=REPO,
                       env={**os.environ, "PYTHONPATH": str(REPO)})

    row["convert_s"], row["convert_note"], row["convert_cpu_s"] = _median_time(convert, repeats)
    exe = _dcm2niix_exe()
    if exe:
        def d2n():
            out = scratch / "d2n"
            shutil.rmtree(out, ignore_errors=True)
            out.mkdir()
            subprocess.run([exe, "-z", "n", "-b", "y", "-o", str(out), str(plain)], check=True,
                           capture_output=True)

        d2n()
        row["dcm2niix_s"], row["dcm2niix_note"], row["dcm2niix_cpu_s"] = _median_time(d2n, repeats)
    else:
        row["dcm2niix_s"], row["dcm2niix_note"] = None, "not installed"
    try:
        import dicom2nifti
        import dicom2nifti.settings as d2s

        d2s.disable_validate_slice_increment()

        def d2nifti():
            out = scratch / "d2nifti"
            shutil.rmtree(out, ignore_errors=True)
            out.mkdir()
            dicom2nifti.convert_directory(str(plain), str(out), compression=False, reorient=False)
            if not any(out.iterdir()):
                raise RuntimeError("no output")

        row["dicom2nifti_s"], row["dicom2nifti_note"], row["dicom2nifti_cpu_s"] = _median_time(
            d2nifti, max(1, repeats // 2))
    except ImportError:
        row["dicom2nifti_s"], row["dicom2nifti_note"] = None, "not installed"
    for suffix in ("s", "cpu_s"):
        d = row.get(f"dcm2niix_{suffix}")
        tag = "" if suffix == "s" else "_cpu"
        if d:
            row[f"load_dwi_vs_dcm2niix{tag}"] = row[f"load_dwi_{suffix}"] / d if row.get(f"load_dwi_{suffix}") else None
            row[f"convert_vs_dcm2niix{tag}"] = row[f"convert_{suffix}"] / d if row.get(f"convert_{suffix}") else None
    return row


def _fmt(x, digits=3):
    return "—" if x is None else f"{x:.{digits}f}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--shared", default=str(REPO.parent / "shared" / "testdata" / "dicom"))
    ap.add_argument("--no-real", action="store_true", help="only the synthetic series")
    args = ap.parse_args(argv)
    from dwi_toolkit.io.dicom._synthetic import write_series

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp)
        synth = scratch / "synthetic300"
        write_series(synth, rows=128, cols=128, n_slices=30, bvals=(0,) + (1000,) * 9,
                     bvecs_lps=[(0, 0, 0)] + [(1, 0, 0), (0, 1, 0), (0, 0, 1), (0.7071, 0.7071, 0),
                                              (0.7071, 0, 0.7071), (0, 0.7071, 0.7071), (0.577, 0.577, 0.577),
                                              (-0.7071, 0.7071, 0), (0, -0.7071, 0.7071)],
                     manufacturer="SIEMENS", shuffle_names=True)
        rows.append(bench_one("synthetic 300 files", synth, scratch, args.repeats))
        shared = Path(args.shared)
        if not args.no_real and shared.is_dir():
            for d in sorted(p for p in shared.iterdir() if (p / "dicom").is_dir()):
                subs = sorted(q for q in (d / "dicom").iterdir() if q.is_dir())
                if (d / "oracle").is_dir() or not subs:
                    rows.append(bench_one(d.name, d / "dicom", scratch, args.repeats))
                else:  # one export per sub-folder (e.g. Canon classic and enhanced of one series)
                    for q in subs:
                        rows.append(bench_one(f"{d.name}/{q.name}", q, scratch, args.repeats))
    print("Wall time, median of repeats (s):\n")
    print("| data set | files | load_dwi | convert process | dcm2niix process | dicom2nifti "
          "| load_dwi / dcm2niix | convert / dcm2niix |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        note = f" ({r['dicom2nifti_note']})" if r.get("dicom2nifti_note") else ""
        print(f"| {r['name']} | {r['files']} | {_fmt(r['load_dwi_s'])} | {_fmt(r['convert_s'])} | "
              f"{_fmt(r['dcm2niix_s'])} | {_fmt(r['dicom2nifti_s'])}{note} | "
              f"{_fmt(r.get('load_dwi_vs_dcm2niix'), 2)} | {_fmt(r.get('convert_vs_dcm2niix'), 2)} |")
    print("\nCPU time (user+system, incl. child processes), median (s):\n")
    print("| data set | load_dwi | convert process | dcm2niix process | load_dwi / dcm2niix | convert / dcm2niix |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['name']} | {_fmt(r.get('load_dwi_cpu_s'))} | {_fmt(r.get('convert_cpu_s'))} | "
              f"{_fmt(r.get('dcm2niix_cpu_s'))} | {_fmt(r.get('load_dwi_vs_dcm2niix_cpu'), 2)} | "
              f"{_fmt(r.get('convert_vs_dcm2niix_cpu'), 2)} |")
    res_dir = REPO / "benchmarks" / "results"
    res_dir.mkdir(parents=True, exist_ok=True)
    out = {"machine": {"python": platform.python_version(), "platform": platform.platform(),
                       "cpus": os.cpu_count()}, "repeats": args.repeats, "rows": rows,
           "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    (res_dir / "bench_dicom.json").write_text(json.dumps(out, indent=2))
    print(f"\nsaved {res_dir / 'bench_dicom.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
