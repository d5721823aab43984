"""Cohort summary of a pipeline output folder: tables, indication shares, figure, HTML index.

:func:`build_cohort` reads ``manifest.json`` and each finished subject's outputs
(``report/report.json``, or the ROI statistics CSV of pipelines without a report) and writes,
atomically, into ``OUTDIR/group/``:

- ``cohort_roi_stats.csv`` — one row per subject × level × side × segment × parameter.
- ``cohort_side_comparison.csv`` — one row per subject × level × segment × parameter with the
  §2.8 indices (from the reports; for report-less pipelines the left/right asymmetry index
  ``100·(L − R)/((L + R)/2)`` computed from the ROI means).
- ``cohort_subjects.csv`` — one row per subject: status, reason, indication class, decisive rules,
  entrapment class per level.
- ``cohort_summary.json`` — counts, indication class shares (like Kovacs 2013, §3.8) and the
  side-difference values per level.
- ``side_differences.png`` — their distribution per level.

and ``OUTDIR/index.html``, a self-contained page linking every subject's ``report.html``.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._version import __version__

__all__ = ["CohortSummary", "build_cohort", "indication_shares"]

logger = logging.getLogger(__name__)

GROUP = "group"
ROI_COLUMNS = ["subject", "session", "level", "side", "segment", "parameter", "unit", "n_voxels", "n_excluded",
               "volume_mm3", "mean", "median", "sd", "iqr", "p5", "p95"]


@dataclass
class CohortSummary:
    """What :func:`build_cohort` found and wrote.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> from dwi_toolkit.sample_data import COHORT, generate_cohort
    >>> tmp = Path(tempfile.mkdtemp())
    >>> _ = generate_cohort(tmp / "in", subjects={k: COHORT[k] for k in ("sub-01", "sub-05")}, dicom=False)
    >>> from dwi_toolkit.pipeline.runner import run_pipeline
    >>> res = run_pipeline(tmp / "in", tmp / "out", pipeline="adc-only", jobs=1)
    >>> summary = res.cohort
    >>> [(r["subject"], r["status"]) for r in summary.subject_rows], summary.side_difference_measure
    ([('sub-01', 'done'), ('sub-05', 'failed')], 'lr_asymmetry_index_pct')
    """

    out_dir: Path
    roi_rows: list[dict[str, Any]] = field(default_factory=list)
    comparison_rows: list[dict[str, Any]] = field(default_factory=list)
    subject_rows: list[dict[str, Any]] = field(default_factory=list)
    indication: dict[str, Any] = field(default_factory=dict)
    side_differences: dict[str, list[float]] = field(default_factory=dict)
    side_difference_measure: str = ""
    files: dict[str, Path] = field(default_factory=dict)

    @property
    def index(self) -> Path:
        return self.files["index.html"]

    def __repr__(self) -> str:
        n = {s: sum(1 for r in self.subject_rows if r.get("status") == s) for s in ("done", "failed")}
        return (f"CohortSummary(subjects={len(self.subject_rows)}, done={n['done']}, failed={n['failed']}, "
                f"indication={self.indication.get('counts', {})}, levels={sorted(self.side_differences)}, "
                f"out_dir={str(self.out_dir)!r})")

    def _repr_html_(self) -> str:
        from ..core._display import esc, html_table

        ind = self.indication or {}
        shares = ind.get("shares_pct", {}) or {}
        counts = ind.get("counts", {}) or {}
        rows = [("output", str(self.out_dir)), ("subjects", str(len(self.subject_rows)))]
        rows += [(f"indication: {k}", f"{v} ({shares.get(k):.0f} %)" if shares.get(k) is not None else str(v))
                 for k, v in counts.items()]
        if self.side_differences:
            rows.append((f"side difference ({self.side_difference_measure}, %)", "median per level: " + ", ".join(
                f"{lv} {sorted(v)[len(v) // 2]:+.1f}" for lv, v in sorted(self.side_differences.items()) if v)))
        facts = html_table("CohortSummary", rows, note="Indices as in dwi_toolkit References §2.8; "
                                                       "indication classes from rule set v1 (§3.10).")
        cols = ("subject", "status", "indication", "entrapment", "reason")
        head = "".join(f"<th style='text-align:left'>{c}</th>" for c in cols)
        body = "".join("<tr>" + "".join(f"<td>{esc(r.get(c) or '')}</td>" for c in cols) + "</tr>"
                       for r in self.subject_rows)
        return f"{facts}<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def indication_shares(classes: Sequence[str | None]) -> dict[str, Any]:
    """Counts and shares (% of assessed subjects) of the indication classes.

    Examples
    --------
    >>> d = indication_shares(["appropriate", "appropriate", "inappropriate", None])
    >>> d["counts"]["appropriate"], round(d["shares_pct"]["appropriate"], 1), d["n_not_assessed"]
    (2, 66.7, 1)
    """
    names = ("appropriate", "uncertain", "inappropriate")
    assessed = [c for c in classes if c in names]
    n = len(assessed)
    counts = {c: assessed.count(c) for c in names}
    return {"counts": counts, "n_assessed": n, "n_not_assessed": len(classes) - n,
            "shares_pct": {c: (100.0 * counts[c] / n if n else None) for c in names},
            "source": "rule set v1, dwi_toolkit References §3.10; presentation as Kovacs 2013 (§3.8)"}


def _num(x: Any) -> float | None:
    if isinstance(x, dict) and "value" in x:
        x = x["value"]
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _read_csv(path: Path) -> list[dict[str, Any]]:
    """Rows of a CSV or BIDS TSV table (``n/a`` read as an empty cell)."""
    tsv = path.suffix == ".tsv"
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t" if tsv else ","))
    return [{k: ("" if v == "n/a" else v) for k, v in r.items()} for r in rows] if tsv else rows


def _csv_text(rows: list[dict[str, Any]], columns: Sequence[str] | None = None) -> str:
    cols = list(columns) if columns else []
    for r in rows:
        cols += [k for k in r if k not in cols]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: ("" if v is None else ";".join(map(str, v)) if isinstance(v, (list, tuple)) else v)
                    for k, v in r.items()})
    return buf.getvalue()


def _indication_class(ind: Any) -> str | None:
    if not isinstance(ind, dict):
        return None
    for k in ("classification", "class", "category"):
        if isinstance(ind.get(k), str):
            return ind[k]
    return None


def _lr_asymmetry(roi_rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Left/right asymmetry index per subject × level × segment × parameter from ROI means."""
    by: dict[tuple, dict[str, float]] = {}
    for r in roi_rows:
        m = _num(r.get("mean"))
        if m is None:
            continue
        k = (r["subject"], r.get("session"), r.get("level"), r.get("segment"), r.get("parameter"), r.get("unit"))
        by.setdefault(k, {})[str(r.get("side"))] = m
    out = []
    for (subj, ses, lev, seg, par, unit), sides in by.items():
        if "left" in sides and "right" in sides and sides["left"] + sides["right"] != 0:
            lft, rgt = sides["left"], sides["right"]
            out.append({"subject": subj, "session": ses, "level": lev, "segment": seg, "parameter": par,
                        "unit": unit, "value_left": lft, "value_right": rgt, "difference": lft - rgt,
                        "lr_asymmetry_index_pct": 100.0 * (lft - rgt) / ((lft + rgt) / 2.0),
                        "source": "roi_stats means (no report)"})
    return out


def build_cohort(out_dir: str | os.PathLike, *, figure: bool = True) -> CohortSummary:
    """Summarise every subject of a pipeline output folder (see the module docstring).

    Parameters
    ----------
    out_dir : path-like
        A folder written by :func:`dwi_toolkit.pipeline.runner.run_pipeline`.
    figure : bool, optional
        Draw the side-difference figure.

    Returns
    -------
    CohortSummary

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> from dwi_toolkit.sample_data import COHORT, generate_cohort
    >>> tmp = Path(tempfile.mkdtemp())
    >>> _ = generate_cohort(tmp / "in", subjects={k: COHORT[k] for k in ("sub-01", "sub-05")}, dicom=False)
    >>> from dwi_toolkit.pipeline.runner import run_pipeline
    >>> res = run_pipeline(tmp / "in", tmp / "out", pipeline="adc-only", jobs=1)
    >>> summary = build_cohort(tmp / "out", figure=False)
    >>> sorted(summary.files)
    ['cohort_roi_stats.csv', 'cohort_side_comparison.csv', 'cohort_subjects.csv', 'cohort_summary.json', 'index.html']
    """
    from .manifest import read_manifest

    out = Path(out_dir)
    manifest = read_manifest(out)
    summary = CohortSummary(out_dir=out)
    classes: list[str | None] = []
    started = str((manifest.get("runs") or [{}])[-1].get("started_utc") or "")
    for key, entry in sorted(manifest.get("subjects", {}).items()):  # subject order, as discovered
        row = _collect_subject(summary, out, key, entry)
        _this_run(row, entry, started)
        if row["status"] == "done":
            classes.append(row["indication"])
        summary.subject_rows.append(row)
    if not summary.comparison_rows and summary.roi_rows:
        summary.comparison_rows = _lr_asymmetry(summary.roi_rows)
    summary.indication = indication_shares(classes)
    _side_differences(summary)
    png = _write_tables_and_figure(summary, out / GROUP, manifest, figure=figure)
    _write_index(summary, out, manifest, png)
    logger.info("cohort summary written to %s", out / "index.html")
    return summary


# ------------------------------------------------------------------------------ steps of build_cohort
def _subject_row(key: str, entry: dict[str, Any]) -> dict[str, Any]:
    return {"key": key, "subject": entry.get("label", key), "session": entry.get("session"),
            "status": entry.get("status"), "reason": entry.get("reason") or entry.get("error") or "",
            "duration_s": entry.get("duration_s"), "indication": None, "decisive_rules": None,
            "entrapment": None, "entrapment_levels": None, "report": None}


def _this_run(row: dict[str, Any], entry: dict[str, Any], started_utc: str) -> None:
    """``this_run``: the latest run's status of the subject (``skipped`` when its outputs are
    older than that run); a skipped subject's time is not this run's, so it is left empty."""
    finished = str(entry.get("finished_utc") or "")
    skipped = row["status"] == "done" and bool(started_utc) and bool(finished) and finished < started_utc
    row["this_run"] = "skipped" if skipped else row["status"]
    if skipped:
        row["duration_s"] = None


def _read_report(sdir: Path, products: dict[str, Any], key: str) -> dict[str, Any] | None:
    if "report_json" in products and (sdir / products["report_json"]).is_file():
        try:
            return json.loads((sdir / products["report_json"]).read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            logger.warning("%s: cannot read report.json (%s)", key, err)
    return None


def _subject_roi_rows(sdir: Path, products: dict[str, Any], doc: dict[str, Any] | None) -> list[dict[str, Any]]:
    """ROI statistics of one subject: from report.json, else its CSVs (every model's)."""
    rois: list[dict[str, Any]] = []
    if doc is not None and isinstance(doc.get("roi_stats"), dict):
        rois = list(doc["roi_stats"].get("rows", []))
    else:
        for name in ("roi_stats_tsv", "roi_stats_csv"):
            if name in products and (sdir / products[name]).is_file():
                rois = _read_csv(sdir / products[name])
                break
    for name in sorted(products):  # other models' ROI statistics (ivim, tensor ...)
        if name.endswith(("_roi_stats_tsv", "_roi_stats_csv")) and (sdir / products[name]).is_file():
            rois = rois + _read_csv(sdir / products[name])
    return rois


def _assessments(row: dict[str, Any], doc: dict[str, Any]) -> None:
    """Fill the indication and entrapment columns of a subject row from its report."""
    ind = doc.get("indication")
    row["indication"] = _indication_class(ind)
    if isinstance(ind, dict):
        row["decisive_rules"] = ind.get("decisive_rules")
    ent = doc.get("entrapment") or {}
    levels = [x for x in ent.get("levels", []) if isinstance(x, dict)]
    fmt = [f"{x.get('level')} {x.get('segment') or ''}".strip() + f": {x.get('classification')}"
           for x in levels]
    notable = [f for f, x in zip(fmt, levels) if x.get("classification") != "no_asymmetry"]
    row["entrapment_levels"] = "; ".join(fmt) or None
    row["entrapment"] = ("; ".join(notable) if notable else
                         "no asymmetry at any measured level" if levels else None)


def _collect_subject(summary: CohortSummary, out: Path, key: str, entry: dict[str, Any]) -> dict[str, Any]:
    """One subject's row; adds its ROI and side-comparison rows to `summary`."""
    row = _subject_row(key, entry)
    if row["status"] != "done":
        return row
    subj, ses = row["subject"], row["session"]
    products = entry.get("products", {}) or {}
    sdir = out / entry.get("output", key)
    doc = _read_report(sdir, products, key)
    if "report_html" in products:
        row["report"] = f"{entry.get('output', key)}/{products['report_html']}"
    elif "adc_summary" in products:
        row["report"] = f"{entry.get('output', key)}/{products['adc_summary']}"
        row["report_label"] = "ADC summary"
    for r in _subject_roi_rows(sdir, products, doc):
        summary.roi_rows.append({"subject": subj, "session": ses, **{k: v for k, v in r.items() if k != "values"}})
    if doc is not None:
        for r in (doc.get("side_comparison") or {}).get("rows", []):
            summary.comparison_rows.append({"subject": subj, "session": ses, **r})
        _assessments(row, doc)
    return row


def _side_differences(summary: CohortSummary) -> None:
    """Side-difference distribution per level: rel_diff_pct when the symptomatic side is known,
    else the (absolute) asymmetry index, else the left/right index from ROI means."""
    for measure in ("rel_diff_pct", "abs_asymmetry_index_pct", "lr_asymmetry_index_pct"):
        vals: dict[str, list[float]] = {}
        for r in summary.comparison_rows:
            if str(r.get("parameter", "adc")).lower() != "adc":
                continue
            v = _num(r.get(measure))
            if v is not None:
                vals.setdefault(str(r.get("level")), []).append(v)
        if vals:
            summary.side_differences, summary.side_difference_measure = vals, measure
            return


_MEASURE_LABELS = {
    "rel_diff_pct": "ADC rel_diff_pct (%)\nsymptomatic vs contralateral",
    "abs_asymmetry_index_pct": "ADC abs_asymmetry_index_pct (%)\nsymptomatic side unknown",
    "lr_asymmetry_index_pct": "ADC asymmetry index (%)\nleft vs right",
}


def _write_tables_and_figure(summary: CohortSummary, grp: Path, manifest: dict[str, Any], *,
                             figure: bool) -> bytes | None:
    """The cohort CSVs, cohort_summary.json and (optionally) the figure; returns the PNG bytes."""
    from ..io._atomic import atomic_write_bytes, atomic_write_text

    files = summary.files
    files["cohort_roi_stats.csv"] = atomic_write_text(grp / "cohort_roi_stats.csv",
                                                      _csv_text(summary.roi_rows, ROI_COLUMNS))
    files["cohort_side_comparison.csv"] = atomic_write_text(grp / "cohort_side_comparison.csv",
                                                            _csv_text(summary.comparison_rows, ["subject", "session"]))
    files["cohort_subjects.csv"] = atomic_write_text(
        grp / "cohort_subjects.csv",
        _csv_text([{k: v for k, v in r.items() if k != "report_label"} for r in summary.subject_rows]))
    png = None
    if figure and summary.side_differences:
        from ..reporting.cohort import figure_png, side_difference_figure

        fig = side_difference_figure(summary.side_differences,
                                     ylabel=_MEASURE_LABELS[summary.side_difference_measure],
                                     title="Side differences of ADC per level")
        png = figure_png(fig)
        files["side_differences.png"] = atomic_write_bytes(grp / "side_differences.png", png)
    doc = {
        "schema": "dwi_toolkit.cohort/1",
        "software": {"name": "dwi_toolkit", "version": __version__},
        "pipeline": manifest.get("pipeline", {}),
        "subjects": {s: sum(1 for r in summary.subject_rows if r["status"] == s)
                     for s in ("done", "failed")},
        "indication": summary.indication,
        "side_differences": {"measure": summary.side_difference_measure, "unit": "%",
                             "values_by_level": summary.side_differences},
    }
    files["cohort_summary.json"] = atomic_write_text(grp / "cohort_summary.json", json.dumps(doc, indent=2) + "\n")
    return png


def _write_index(summary: CohortSummary, out: Path, manifest: dict[str, Any], png: bytes | None) -> None:
    """The cohort's index.html (subjects table, indication shares, figure, file list)."""
    from ..io._atomic import atomic_write_text
    from ..reporting.cohort import cohort_index_html

    label = _MEASURE_LABELS.get(summary.side_difference_measure, "").replace("\n", ", ")
    caption = (f"{label} per level across subjects (all segments); "
               "indices as in dwi_toolkit References §2.8. Box: quartiles; points: subjects.")
    pipe = manifest.get("pipeline", {})
    page = cohort_index_html(
        title=f"dwi_toolkit cohort summary — {manifest.get('dataset', {}).get('name', out.name)}",
        subjects=summary.subject_rows, indication_summary=summary.indication, figure_png_bytes=png,
        figure_caption=caption,
        meta={"dwi_toolkit": __version__, "pipeline": pipe.get("name", "?"),
              "pipeline hash": str(pipe.get("hash", ""))[:12], "subjects": len(summary.subject_rows)},
        files=[(name, f"{GROUP}/{name}") for name in summary.files if name != "index.html"],
    )
    summary.files["index.html"] = atomic_write_text(out / "index.html", page)
