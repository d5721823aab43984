"""The table of DICOM series that ``info`` and ``convert`` print (private to the CLI).

Every series found is listed — number, description, vendor, role, b-values, volumes, the vendor
rule its diffusion encoding was read with, and its SeriesInstanceUID — with the chosen one(s)
marked ``*`` and how to choose another.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def series_rows(infos: Sequence[Any], chosen: Sequence[Any] = ()) -> list[dict[str, Any]]:
    """The table as JSON-ready rows (``chosen``: True for the series used)."""
    picked = {c.series_uid for c in chosen}
    return [{"series_number": s.series_number, "description": s.description, "vendor": s.vendor,
             "role": s.role, "bvals": [float(b) for b in s.bvals], "n_volumes": s.n_volumes,
             "rule": s.rule or None, "series_uid": s.series_uid, "chosen": s.series_uid in picked,
             "folder": os.path.commonpath([str(Path(f).parent) for f in s.files]) if s.files else None}
            for s in infos]


def series_table(infos: Sequence[Any], chosen: Sequence[Any] = (), *, what: str = "used") -> str:
    """The series under a path, one per line, the `chosen` ones marked ``*`` (text)."""
    if not infos:
        return "no DICOM series found"
    records = series_rows(infos, chosen)
    rows = [["", "#", "description", "vendor", "role", "b-values (s/mm^2)", "volumes", "rule", "series UID"]]
    for r in records:
        rows.append(["*" if r["chosen"] else "", "?" if r["series_number"] is None else str(r["series_number"]),
                     r["description"] or "-", r["vendor"], r["role"],
                     ", ".join(f"{b:g}" for b in r["bvals"]) or "-", str(r["n_volumes"]), r["rule"] or "-",
                     r["series_uid"]])
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows]
    n_dwi = sum(s.role == "dwi" for s in infos)
    head = f"{len(infos)} DICOM series found ({n_dwi} raw DWI)"
    uids = Counter(s.series_uid for s in infos)
    if len(uids) < len(infos):  # one series exported twice (e.g. classic and enhanced DICOM)
        twice = sorted({r["folder"] for r in records if uids[r["series_uid"]] > 1 and r["folder"]})
        how = ("its folder as the input path (series that share a UID are one series stored more than "
               "once):\n" + "\n".join(f"  {f}" for f in twice))
    else:
        how = "--series-uid UID"
    foot = (f"* = {what}; choose another series with {how}" if chosen else f"choose one with {how}")
    return "\n".join([head + ":", *lines, foot])
