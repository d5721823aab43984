"""``dwi-toolkit run INPUT -o OUTDIR``: run a pipeline over a study (folder of subjects or BIDS).

Also the BIDS-Apps form ``dwi-toolkit run BIDS_DIR OUTDIR participant|group``.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(sub, add_common) -> None:
    from ...pipeline.spec import builtin_pipelines
    from .._options import add_out

    names = ", ".join(sorted(builtin_pipelines()))  # the registry --list-pipelines shows
    p = sub.add_parser(
        "run",
        help="run a pipeline over every subject of a study (folder of subject folders or BIDS dataset)",
        description=(
            f"Run a declarative pipeline (built-in: {names}; or a TOML file) on every "
            "subject found in INPUT: a folder of subject folders (DICOM at any depth or NIfTI + "
            ".bval/.bvec, optional rois.json / *.mrk.json / *_dseg.nii.gz and clinical.json) or a BIDS "
            "dataset (ROIs and clinical.json from derivatives/). Outputs follow BIDS-derivatives naming; "
            "manifest.json records every subject; re-running skips finished subjects whose inputs and "
            "pipeline are unchanged. BIDS-Apps form: run BIDS_DIR OUTDIR participant|group. Exit code 1 "
            "when any subject failed."
        ),
    )
    p.add_argument("input", nargs="?", help="folder of subject folders, or a BIDS dataset")
    p.add_argument("output_dir", nargs="?", help="output folder (BIDS-Apps form; or use -o)")
    p.add_argument("analysis_level", nargs="?", choices=("participant", "group"),
                   help="BIDS-Apps level: 'participant' runs subjects, 'group' builds the cohort summary")
    add_out(p, required=False, help="output folder (created)", old=("--out-dir", "--outdir", "--output"))
    from .._options import add_scrub_text

    add_scrub_text(p)
    p.add_argument("--pipeline", default="default",
                   help=f"built-in pipeline name ({names}; --list-pipelines describes them) or a "
                   "pipeline .toml file (default: default)")
    p.add_argument("--jobs", "-j", type=int, default=1,
                   help="local worker processes (default 1; 0 = one per CPU)")
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="run on a Dask distributed cluster, e.g. tcp://host:8786 (needs dwi_toolkit[dask])")
    p.add_argument("--force", action="store_true", help="redo subjects even when their outputs are up to date")
    p.add_argument("--dry-run", action="store_true", help="list what would run or be skipped, write nothing")
    p.add_argument("--participant-label", "--participant_label", nargs="+", metavar="LABEL",
                   help="only these subjects (with or without 'sub-')")
    p.add_argument("--derivatives", nargs="+", metavar="DIR", default=[],
                   help="BIDS: extra derivatives folders holding ROIs / clinical.json per subject")
    p.add_argument("--no-cohort", action="store_true", help="skip the cohort summary after the run")
    p.add_argument("--list-pipelines", action="store_true", help="list the built-in pipelines and exit")
    g = p.add_argument_group("cohort passes (after the subjects; see docs/trust.md)")
    g.add_argument("--harmonize-by", metavar="COLUMN", help="ComBat-harmonise the cohort ROI table across the "
                   "sites/scanners named in this participants column (writes group/harmonized/)")
    g.add_argument("--participants", metavar="FILE", help="participants table (TSV/CSV with participant_id; "
                   "default INPUT/participants.tsv)")
    g.add_argument("--covariates", nargs="+", default=[], metavar="COLUMN",
                   help="participants columns whose effects the harmonisation keeps (e.g. group age)")
    g.add_argument("--longitudinal", action="store_true", help="compare each later ses-* session of a subject "
                   "with its first (ROIs of the first carried over; writes group/longitudinal/)")
    add_common(p)
    p.set_defaults(func=run)


def _progress():
    """A runner progress callback feeding the command's progress line (None when there is none)."""
    from ...core.progress import ProgressUpdate
    from .._progress import current

    line = current()
    if line is None:
        return None

    def show(ev) -> None:
        line.update(ProgressUpdate("finished", ev.completed, ev.total, "subjects"))
        if ev.kind == "step":
            line.status(f"{ev.key}: {ev.message}")
        elif ev.kind == "subject":
            line.status(f"{ev.key} {ev.status}")

    return show


def _summary_rows(result) -> list[list[str]]:
    """One row per subject in subject order, with this run's status and time."""
    by_key = {r.key: r for r in result.results}
    rows = []
    for p in result.plan:
        r = by_key.get(p.subject.key)
        if r is None:
            continue
        if r.status == "skipped":  # its outputs (and their time) are from an earlier run
            rows.append([r.key, "skipped", "-", f"up to date ({p.reason})" if p.reason else "up to date"])
        else:
            rows.append([r.key, r.status, f"{r.duration_s:.1f}", r.reason if r.status != "done" else ""])
    return rows


def _table(rows, header) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths[:-1]) + "  {}"
    return "\n".join(fmt.format(*map(str, r)) for r in [header, *rows])


def _scrub_spec(args: argparse.Namespace):
    """The pipeline with its load step's ``scrub_text`` set by ``--scrub-text/--no-scrub-text`` (when given)."""
    if args.scrub_text is None:
        return args.pipeline
    from ...pipeline.spec import load_pipeline, spec_from_dict

    spec = load_pipeline(args.pipeline)
    doc = spec.to_dict()
    for step in doc["steps"]:
        if step["step"] == "load":
            step["scrub_text"] = args.scrub_text
    return spec_from_dict(doc, source=spec.source)


def run(args: argparse.Namespace) -> int:
    from ...errors import PipelineError
    from ...pipeline.spec import builtin_pipelines, load_pipeline

    if args.list_pipelines:
        for name, path in sorted(builtin_pipelines().items()):
            print(f"{name:<10} {load_pipeline(name).description}")
        return 0
    if not args.input:
        raise PipelineError("no INPUT folder given: dwi-toolkit run INPUT -o OUTDIR.")
    if args.output_dir and args.out and Path(args.output_dir) != Path(args.out):
        raise PipelineError(f"two output folders given ({args.output_dir} and -o {args.out}); give one.")
    out = args.output_dir or args.out
    if not out:
        raise PipelineError("no output folder: give -o OUTDIR (or the BIDS-Apps form: run BIDS_DIR OUTDIR participant).")

    if args.analysis_level == "group":
        from ...pipeline.cohort import build_cohort
        from ...pipeline.runner import MANIFEST

        if not (Path(out) / MANIFEST).is_file():
            raise PipelineError(f"{out} holds no {MANIFEST}: run the participant level first.")
        summary = build_cohort(out)
        done = sum(1 for r in summary.subject_rows if r["status"] == "done")
        print(f"cohort summary of {done} subject(s): {summary.index}")
        return 0

    from ...pipeline.runner import RunOptions, run_pipeline

    options = RunOptions(jobs=args.jobs, scheduler=args.scheduler, force=args.force, dry_run=args.dry_run,
                         participant_labels=args.participant_label, derivatives=args.derivatives,
                         cohort=not args.no_cohort and args.analysis_level != "participant")
    result = run_pipeline(args.input, out, pipeline=_scrub_spec(args), progress=_progress(), options=options)
    spec = result.pipeline
    if args.dry_run:
        print(f"pipeline {spec.name} ({spec.source}), hash {spec.hash[:12]}: "
              + " -> ".join(s.id for s in spec.steps))
        rows = []
        for p in result.plan:
            s = p.subject
            rois = s.rois.name if s.rois else "-"
            clin = s.clinical.name if s.clinical else "-"
            dwi = (s.dwi.relative_to(s.root).as_posix() + ("/ (DICOM)" if s.kind == "dicom" else "")) if s.dwi else "-"
            rows.append([s.key, p.action, p.reason if not s.problem else f"{p.reason}; will fail: {s.problem}",
                         dwi, rois, clin])
        print(_table(rows, ["subject", "action", "why", "dwi", "rois", "clinical"]))
        n_run = sum(p.action == "run" for p in result.plan)
        print(f"{n_run} to run, {len(result.plan) - n_run} up to date ({result.dataset.kind} layout: {result.dataset.root})")
        return 0
    if args.quiet < 2:
        print(_table(_summary_rows(result), ["subject", "status", "time (s)", "reason"]))
        c = result.counts
        print(f"\ndone {c['done']}, skipped {c['skipped']}, failed {c['failed']} in {result.duration_s:.1f} s "
              f"(pipeline {spec.name}, hash {spec.hash[:12]})")
        print(f"outputs:  {out}\nmanifest: {result.manifest_path}")
        if result.failed:
            print(f"logs:     {Path(out) / 'logs'} (tracebacks of failed subjects)")
        if result.cohort is not None:
            print(f"cohort:   {result.cohort.index}")
    if args.harmonize_by or args.longitudinal:
        from ...pipeline.cohort_trust import run_cohort_passes

        for name, page in run_cohort_passes(result, harmonize_by=args.harmonize_by, participants=args.participants,
                                            covariates=args.covariates, longitudinal=args.longitudinal).items():
            print(f"{name}: {page}")
    return result.exit_code
