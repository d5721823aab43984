"""Check our DICOM reader against dcm2niix on public validation series (issue #12).

Walks each folder given on the command line (e.g. the ``In/`` folders of the BSD-licensed
dcm2niix validation repositories ``neurolabusc/dcm_qa_*``, extracted under /tmp), finds every
diffusion series, loads it with our reader and compares it with what dcm2niix writes for the same
files (b-values, world-frame b-vectors, affine, voxels, volume order).

It also runs dcm2niix once on each whole folder and lists the series dcm2niix writes with a
``.bval`` (b > 50 s/mm²) that our reader did not recognise as raw DWI ("not found").

Usage::

    python benchmarks/validate_dicom_public.py /tmp/dcmqa/toshiba /tmp/dcmqa/canon ... [--json out.json]

The data are never part of this repository (fetch them from GitHub; see docs/dicom.md).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path


def _dcm2niix_dwi(root: Path) -> list[dict]:
    """Series dcm2niix writes with diffusion weighting for a whole folder."""
    from dwi_toolkit.io.dicom.dcm2niix import find_dcm2niix

    out = []
    with tempfile.TemporaryDirectory(prefix="dcmqa_") as tmp:
        subprocess.run([find_dcm2niix(), "-z", "n", "-b", "y", "-f", "%s_%d_%j", "-o", tmp, str(root)],
                       capture_output=True, text=True, check=False)
        for bval in sorted(Path(tmp).glob("*.bval")):
            b = [float(x) for x in bval.read_text().split()]
            js = bval.with_suffix(".json")
            meta = json.loads(js.read_text()) if js.exists() else {}
            if b and max(b) > 50:
                out.append({"series_number": meta.get("SeriesNumber"), "description": meta.get("SeriesDescription", ""),
                            "uid": meta.get("SeriesInstanceUID", ""), "n": len(b), "name": bval.stem})
    return out


def _check(info) -> dict:
    from dwi_toolkit.io.dicom import load_dicom_series
    from dwi_toolkit.io.dicom.dcm2niix import verify_files

    row = {"series": f"#{info.series_number} {info.description}", "vendor": info.vendor, "rule": info.rule,
           "uid": info.series_uid, "num": str(info.series_number), "n_files": info.n_files}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            s = load_dicom_series(info)
    except Exception as err:  # report every failure, keep going
        row.update(agree=False, differs=f"refused: {str(err).splitlines()[0][:90]}")
        return row
    try:
        rep = verify_files(s, info.files)
    except Exception as err:
        row.update(agree=False, differs=f"dcm2niix failed: {str(err).splitlines()[0][:80]}")
        return row
    bad = [r[0] for r in rep.rows if not r[5]] + list(rep.notes)
    detail = "; ".join(f"{r[0]} ours {r[1]} vs {r[2]} (diff {r[3]:.3g})" for r in rep.rows if not r[5])
    row.update(agree=rep.ok, differs=", ".join(bad), detail=detail)
    return row


def validate(root: Path) -> list[dict]:
    """Rows for every diffusion series under `root` (+ dcm2niix DWI series we did not find)."""
    from dwi_toolkit.io.dicom import find_dwi_series

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        infos = find_dwi_series(root)
    rows = [dict(_check(i), repo=root.name) for i in infos if i.role == "dwi"]
    ours = {(r["uid"]) for r in rows}
    ours_num = {str(i.series_number) for i in infos if i.role == "dwi"}
    refs = _dcm2niix_dwi(root)
    ref_keys = {r["uid"] for r in refs} | {str(r["series_number"]) for r in refs}
    for r in rows:  # a series we call raw DWI but dcm2niix writes without diffusion weighting
        if r["uid"] not in ref_keys and r["num"] not in ref_keys:
            r.update(agree=False, differs=("not DWI for dcm2niix (no .bval with b > 50); " + r["differs"]).rstrip("; "))
    for ref in refs:
        if (ref["uid"] and ref["uid"] in ours) or (not ref["uid"] and str(ref["series_number"]) in ours_num):
            continue
        cand = [i for i in infos if (ref["uid"] and i.series_uid == ref["uid"])
                or (not ref["uid"] and str(i.series_number) == str(ref["series_number"]))]
        why = ", ".join(sorted({f"{i.role} ({i.rule})" for i in cand})) or "no series"
        # scanner-derived trace/ADC images: dcm2niix writes a .bval, we list them as trace on purpose
        derived = bool(cand) and all(i.role in ("trace", "adc", "fa") for i in cand)
        rows.append({"repo": root.name, "series": f"#{ref['series_number']} {ref['description']}",
                     "vendor": cand[0].vendor if cand else "?", "rule": cand[0].rule if cand else "",
                     "agree": None if derived else False,
                     "differs": f"{'scanner-derived, not raw DWI' if derived else 'not found as DWI'}: "
                                f"ours says {why}; dcm2niix {ref['n']} vols"})
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folders", nargs="+", type=Path)
    ap.add_argument("--json", type=Path, help="write the rows as JSON here")
    args = ap.parse_args(argv)
    rows = []
    t0 = time.perf_counter()
    for root in args.folders:
        rows.extend(validate(root))
    every = list(rows)
    w = max([len(r["repo"]) + len(r["series"]) for r in rows] + [10]) + 1
    print(f"{'repo/series':<{w}} {'vendor':<8} {'rule':<16} {'agree':<6} differs")
    for r in rows:
        mark = "n/a" if r["agree"] is None else "yes" if r["agree"] else "NO"
        print(f"{r['repo'] + '/' + r['series']:<{w}} {r['vendor']:<8} {r['rule']:<16} {mark:<6} {r['differs']}")
    rows = [r for r in rows if r["agree"] is not None]
    per = {}
    for r in rows:
        a, n = per.get(r["vendor"], (0, 0))
        per[r["vendor"]] = (a + bool(r["agree"]), n + 1)
    print(f"\n{sum(bool(r['agree']) for r in rows)} of {len(rows)} series agree with dcm2niix "
          f"({time.perf_counter() - t0:.0f} s)")
    for v, (a, n) in sorted(per.items()):
        print(f"  {v:<8} {a}/{n}")
    for r in rows:
        if r.get("detail"):
            print(f"- {r['repo']}/{r['series']}: {r['detail']}")
    if args.json:
        args.json.write_text(json.dumps(every, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
