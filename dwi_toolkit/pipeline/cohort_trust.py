"""Cohort-level passes after ``dwi-toolkit run``: harmonisation across sites and session comparison.

- :func:`harmonize_cohort` (``run --harmonize-by COLUMN``): ComBat
  (:func:`dwi_toolkit.analysis.harmonize.harmonize`) on the cohort ROI statistics
  (``group/cohort_roi_stats.csv``), the site of each subject taken from a participants table
  (BIDS ``participants.tsv`` or a given TSV/CSV). Writes ``group/harmonized/``: the harmonised table,
  the site effect before/after per feature, box plots and a page. Refused with a clear message
  when a site has too few subjects (``min_subjects_per_site``, default 4).
- :func:`compare_cohort_sessions` (``run --longitudinal``): for every subject with two or more
  ``ses-*`` sessions, :func:`dwi_toolkit.longitudinal.compare_sessions` of each later session with
  the first (baseline ROIs carried over). Writes ``group/longitudinal/<subject>/`` and a
  "what changed" page ``group/longitudinal/index.html``.
"""

from __future__ import annotations

import csv
import json
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..errors import InputDataError

__all__ = ["read_participants", "harmonize_cohort", "compare_cohort_sessions"]

logger = logging.getLogger(__name__)


def read_participants(path: str | os.PathLike) -> dict[str, dict[str, str]]:
    """Subject label (``sub-…``) → columns, from a BIDS ``participants.tsv`` (or a CSV).

    The id column is ``participant_id`` (or ``subject``); labels without ``sub-`` get it.

    Examples
    --------
    >>> import tempfile
    >>> p = Path(tempfile.mkdtemp()) / "participants.tsv"
    >>> _ = p.write_text("participant_id\\tsite\\n01\\tA\\nsub-02\\tB\\n")
    >>> read_participants(p)
    {'sub-01': {'participant_id': '01', 'site': 'A'}, 'sub-02': {'participant_id': 'sub-02', 'site': 'B'}}
    """
    p = Path(path)
    with open(p, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t" if p.suffix == ".tsv" else ","))
    if not rows or not ({"participant_id", "subject"} & set(rows[0])):
        raise InputDataError(f"{p}: needs a 'participant_id' (or 'subject') column and one row per subject.")
    key = "participant_id" if "participant_id" in rows[0] else "subject"
    return {(r[key] if r[key].startswith("sub-") else f"sub-{r[key]}"): r for r in rows}


def _site_rows(rows: list[dict[str, Any]], meta: Mapping[str, Mapping[str, Any]], columns: Sequence[str]
               ) -> list[dict[str, Any]]:
    """Cohort rows with the metadata columns added; one harmonisation unit per subject × session."""
    missing = sorted({r["subject"] for r in rows if r["subject"] not in meta})
    if missing:
        raise InputDataError(f"no participants entry for {', '.join(missing)}; add them to the participants "
                             "table (participant_id plus the site column).")
    out = []
    for r in rows:
        info = meta[r["subject"]]
        absent = [c for c in columns if c not in info or info[c] in ("", "n/a", None)]
        if absent:
            raise InputDataError(f"participants table: {r['subject']} has no value for {', '.join(absent)}; "
                                 f"columns: {', '.join(sorted(info))}.")
        unit = r["subject"] + (f"_{r['session']}" if r.get("session") else "")
        out.append({**r, **{c: info[c] for c in columns}, "subject": unit, "participant": r["subject"]})
    return out


def harmonize_cohort(out_dir: str | os.PathLike, column: str, *, participants: Any, covariates: Sequence[str] = (),
                     min_subjects_per_site: int = 4, figure: bool = True) -> dict[str, Path]:
    """ComBat on ``group/cohort_roi_stats.csv`` of a run, by the participants' `column` (site/scanner).

    Parameters
    ----------
    out_dir : path-like
        Output folder of :func:`dwi_toolkit.pipeline.runner.run_pipeline` (with its cohort summary).
    column : str
        Participants column naming the site or scanner.
    participants : path-like or mapping
        A participants table (:func:`read_participants`) or ``{subject: {column: value}}``.
    covariates : sequence of str, optional
        Participants columns whose effects are kept (e.g. ``["group", "age"]``).
    min_subjects_per_site : int, optional
        Fewer subjects at a site refuse the harmonisation (default 4).
    figure : bool, optional
        Draw the box plots.

    Returns
    -------
    dict
        Name → path of the files written under ``group/harmonized/``.

    Raises
    ------
    InputDataError
        No cohort table, a subject without metadata, one site only or too few subjects at a site.

    Examples
    --------
    >>> import tempfile
    >>> from dwi_toolkit.phantom_sessions import simulate_site_table
    >>> out = Path(tempfile.mkdtemp()); (out / "group").mkdir()
    >>> rows = simulate_site_table(sites={"A": 5, "B": 5})
    >>> from dwi_toolkit.io.tables import format_csv
    >>> _ = (out / "group" / "cohort_roi_stats.csv").write_text(format_csv([
    ...     {k: v for k, v in r.items() if k not in ("site", "group")} for r in rows]))
    >>> meta = {r["subject"]: {"site": r["site"], "group": r["group"]} for r in rows}
    >>> files = harmonize_cohort(out, "site", participants=meta, covariates=["group"], figure=False)
    >>> sorted(files)
    ['cohort_roi_stats_harmonized.csv', 'harmonization.json', 'index.html', 'site_effect.csv']
    """
    from ..analysis.harmonize import harmonize
    from ..io._atomic import atomic_write_bytes, atomic_write_text
    from ..io.tables import format_csv
    from ..reporting.harmonize_section import harmonization_html, site_boxplot_figure, site_effect_rows
    from .cohort import GROUP

    out = Path(out_dir) / GROUP
    table = out / "cohort_roi_stats.csv"
    if not table.is_file():
        raise InputDataError(f"{table} not found: harmonisation needs the cohort summary of a run "
                             "(run without --no-cohort, or 'dwi-toolkit run OUT group').")
    meta = participants if isinstance(participants, Mapping) else read_participants(participants)
    with open(table, newline="", encoding="utf-8") as fh:
        rows = [r for r in csv.DictReader(fh) if r.get("mean") not in ("", None)]
    res = harmonize(_site_rows(rows, meta, [column, *covariates]), batch=column, covariates=list(covariates),
                    min_subjects_per_site=min_subjects_per_site)
    dest = out / "harmonized"
    files = {"cohort_roi_stats_harmonized.csv": atomic_write_text(dest / "cohort_roi_stats_harmonized.csv",
                                                                  format_csv(res.rows)),
             "site_effect.csv": atomic_write_text(dest / "site_effect.csv", format_csv(site_effect_rows(res))),
             "harmonization.json": atomic_write_text(dest / "harmonization.json",
                                                     json.dumps(res.summary(), indent=2, default=float) + "\n")}
    png = None
    if figure and res.features:
        from ..reporting.html import figure_to_png

        png = figure_to_png(site_boxplot_figure(res))
        files["site_boxplots.png"] = atomic_write_bytes(dest / "site_boxplots.png", png)
    files["index.html"] = atomic_write_text(dest / "index.html", harmonization_html(res, png=png, column=column))
    logger.info("harmonised %d feature(s) over %d site(s): %s", len(res.features), len(res.estimates["sites"]), dest)
    return {k: Path(v) for k, v in files.items()}


def compare_cohort_sessions(out_dir: str | os.PathLike, subjects: Sequence[Any], *, retest: Any = None
                            ) -> list[dict[str, Any]]:
    """Compare every later session of a subject with its first one (ROIs of the first carried over).

    Parameters
    ----------
    out_dir : path-like
        Output folder of the run; results go to ``group/longitudinal/``.
    subjects : sequence of Subject
        The run's units (:attr:`RunResult.dataset.subjects`); subjects with fewer than two
        sessions, or whose first session has no ROI file, are skipped (logged).
    retest : float, mapping or RepeatabilityResult, optional
        Test–retest source of the smallest real change (see
        :func:`~dwi_toolkit.longitudinal.compare_sessions`); default: the data's own noise.

    Returns
    -------
    list of dict
        Per comparison: subject, baseline, follow_up, comparison (``to_dict()``), page.

    Examples
    --------
    >>> import tempfile
    >>> compare_cohort_sessions(tempfile.mkdtemp(), [])
    []
    """
    from ..io._atomic import atomic_write_text
    from ..io.loading import load_dwi
    from ..io.rois import load_rois
    from ..longitudinal import compare_sessions
    from ..reporting.longitudinal_section import what_changed_html
    from .cohort import GROUP

    by_label: dict[str, list[Any]] = {}
    for s in subjects:
        if s.session is not None and s.dwi is not None:
            by_label.setdefault(s.label, []).append(s)
    dest = Path(out_dir) / GROUP / "longitudinal"
    items = []
    for label, units in sorted(by_label.items()):
        units = sorted(units, key=lambda u: u.session)
        base = units[0]
        if len(units) < 2 or base.rois is None:
            logger.info("%s: %s; no session comparison", label, "one session" if len(units) < 2 else "no baseline ROIs")
            continue
        b_series = load_dwi(base.dwi, bvals=base.bvals, bvecs=base.bvecs)
        rois = load_rois(base.rois)
        for fu in units[1:]:
            cmp = compare_sessions(b_series, load_dwi(fu.dwi, bvals=fu.bvals, bvecs=fu.bvecs), rois, retest=retest)
            sub_dir = dest / f"{label}_{base.session}_vs_{fu.session}"
            paths = cmp.save(sub_dir)
            items.append({"subject": label, "baseline": base.session, "follow_up": fu.session,
                          "comparison": json.loads(json.dumps(cmp.to_dict(), default=float)),
                          "page": os.path.relpath(paths["html"], dest)})
    if items or by_label:
        atomic_write_text(dest / "index.html", what_changed_html(items))
        atomic_write_text(dest / "longitudinal_summary.json", json.dumps(items, indent=2) + "\n")
    return items


def run_cohort_passes(result: Any, *, harmonize_by: str | None = None, participants: Any = None,
                      covariates: Sequence[str] = (), longitudinal: bool = False) -> dict[str, Path]:
    """The cohort passes chosen on ``dwi-toolkit run`` after the subjects are done.

    Parameters
    ----------
    result : RunResult
        From :func:`~dwi_toolkit.pipeline.runner.run_pipeline` (its output folder and dataset).
    harmonize_by : str, optional
        Participants column of the site/scanner: run :func:`harmonize_cohort`.
    participants : path-like, optional
        Participants table (default: ``participants.tsv`` at the top of the input).
    covariates : sequence of str, optional
        Participants columns kept by the harmonisation.
    longitudinal : bool, optional
        Run :func:`compare_cohort_sessions`.

    Returns
    -------
    dict
        ``"harmonized"`` / ``"longitudinal"`` → page written.

    Examples
    --------
    >>> run_cohort_passes(None)
    {}
    """
    pages: dict[str, Path] = {}
    if result is None:
        return pages
    out = Path(result.out_dir)
    if harmonize_by:
        table = participants if participants is not None else Path(result.dataset.root) / "participants.tsv"
        if not isinstance(table, Mapping) and not Path(table).is_file():
            raise InputDataError(f"--harmonize-by {harmonize_by}: no participants table at {table}; give one with "
                                 "--participants FILE (participant_id + the site column).")
        pages["harmonized"] = harmonize_cohort(out, harmonize_by, participants=table, covariates=covariates)["index.html"]
    if longitudinal:
        from .cohort import GROUP

        compare_cohort_sessions(out, result.dataset.subjects)
        page = out / GROUP / "longitudinal" / "index.html"
        if page.is_file():
            pages["longitudinal"] = page
    return pages
