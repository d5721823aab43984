"""Run a pipeline over every subject of a study: serially, in a local process pool, or on Dask.

Guarantees (see ``docs/pipeline.md``):

- **Inputs are never modified**; the output folder may not lie inside the input (except a BIDS
  dataset's ``derivatives/``).
- **No half-written subject.** Each subject is computed in a temporary folder beside its final
  place (:func:`dwi_toolkit.io._atomic.atomic_dir`) and renamed into place only when every step
  succeeded. Temporary folders left by a killed run are removed at the next start.
- **Resumable.** Each finished subject carries ``provenance.json`` (pipeline hash, input
  SHA-256); a re-run skips subjects whose inputs and pipeline are unchanged (``force=True`` redoes
  them) and runs the rest, so an interrupted run is completed by running it again. Failed
  subjects are always retried.
- **One bad subject never stops the others.** Exceptions are caught at the per-subject boundary
  only, recorded with their reason in ``manifest.json`` and their traceback in
  ``logs/<subject>.log``. ``KeyboardInterrupt``/``SystemExit`` are not caught: they stop the run
  (finished subjects stay finished).
- **Bounded memory.** Workers take one subject at a time, at most ``2 × workers`` subjects are in
  flight, and the ADC fit works in chunks; the parent only holds file paths and small results.

Progress is reported through an optional callback (the library draws nothing).
"""

from __future__ import annotations

import json
import logging
import os
import platform
import re
import socket
import sys
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .._version import __version__
from .._options import with_settings
from ..errors import PipelineError
from .layout import Dataset, Subject, discover, input_checksums
from .manifest import (
    MANIFEST,
    MANIFEST_SCHEMA,
    PROVENANCE,
    PROVENANCE_SCHEMA,
    read_manifest,
    read_provenance,
    write_manifest,
)
from .spec import PipelineSpec, import_plugins, load_pipeline, spec_from_dict

__all__ = [
    "MANIFEST",
    "PROVENANCE",
    "ProgressEvent",
    "SubjectResult",
    "RunResult",
    "preload_worker",
    "WORKER_PRELOAD",
    "PlannedSubject",
    "run_pipeline",
    "RunOptions",
    "execute_subject",
    "read_manifest",
]

logger = logging.getLogger(__name__)

LOCK = ".dwi_toolkit.lock"
BIDS_VERSION = "1.10.0"
_STALE_TMP = re.compile(r"^\.(sub|ses)-[A-Za-z0-9]+\.")


def _utc() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


# ------------------------------------------------------------------------------ data types
@dataclass(frozen=True)
class ProgressEvent:
    """What the runner reports to a progress callback.

    ``kind`` is ``"start"`` (the plan is known: `total` subjects, `n_skip` skipped), ``"subject"``
    (a subject finished: `key`, `status`, `message`; `completed` counts finished ones), or
    ``"step"`` (serial runs only: step `message` of subject `key` started).

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> from dwi_toolkit.sample_data import COHORT, generate_cohort
    >>> tmp = Path(tempfile.mkdtemp())
    >>> _ = generate_cohort(tmp / "in", subjects={k: COHORT[k] for k in ("sub-01", "sub-05")}, dicom=False)
    >>> events = []
    >>> _ = run_pipeline(tmp / "in", tmp / "out", pipeline="adc-only", progress=events.append, cohort=False)
    >>> [(e.kind, e.key, e.status) for e in events if e.kind != "step"]
    [('start', None, None), ('subject', 'sub-01', 'done'), ('subject', 'sub-05', 'failed')]
    """

    kind: str
    total: int
    completed: int = 0
    key: str | None = None
    status: str | None = None
    message: str = ""
    n_skip: int = 0


@dataclass
class SubjectResult:
    """Outcome of one subject: ``status`` is ``done``, ``skipped`` or ``failed``.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> from dwi_toolkit.sample_data import COHORT, generate_cohort
    >>> tmp = Path(tempfile.mkdtemp())
    >>> _ = generate_cohort(tmp / "in", subjects={k: COHORT[k] for k in ("sub-01", "sub-05")}, dicom=False)
    >>> from dwi_toolkit.pipeline.runner import run_pipeline
    >>> res = run_pipeline(tmp / "in", tmp / "out", pipeline="adc-only", jobs=1)
    >>> bad = res.failed[0]
    >>> bad.key, bad.status, bad.reason.split(":")[0]
    ('sub-05', 'failed', 'load')
    """

    key: str
    status: str
    label: str = ""
    session: str | None = None
    source: str = ""
    duration_s: float = 0.0
    error: str | None = None
    error_type: str | None = None
    traceback: str | None = None
    products: dict[str, str] = field(default_factory=dict)
    inputs: dict[str, dict] = field(default_factory=dict)
    steps: list[dict] = field(default_factory=list)
    pipeline_hash: str = ""
    output: str = ""
    finished_utc: str = ""
    reason: str = ""

    def __repr__(self) -> str:
        extra = f", reason={self.reason or self.error!r}" if self.status == "failed" else ""
        return (f"SubjectResult(key={self.key!r}, status={self.status!r}, duration_s={self.duration_s:.2f}, "
                f"products={len(self.products)}{extra})")

    def _repr_html_(self) -> str:
        from ..core._display import html_table

        rows = [("subject", self.key), ("status", self.status), ("duration (s)", f"{self.duration_s:.2f}"),
                ("output", self.output), ("pipeline hash", self.pipeline_hash[:12])]
        if self.status == "failed":
            rows.append(("reason", self.reason or self.error or ""))
        rows += [(f"step {st.get('id')}", f"{st.get('duration_s', 0):.2f} s") for st in self.steps]
        rows += [(f"product {k}", v) for k, v in self.products.items()]
        return html_table("SubjectResult", rows)

    def to_manifest(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("traceback")
        d.pop("key")
        return d


@dataclass(frozen=True)
class PlannedSubject:
    """A subject and what the run will do with it (``run`` or ``skip``) and why.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> from dwi_toolkit.sample_data import COHORT, generate_cohort
    >>> tmp = Path(tempfile.mkdtemp())
    >>> _ = generate_cohort(tmp / "in", subjects={k: COHORT[k] for k in ("sub-01", "sub-05")}, dicom=False)
    >>> plan = run_pipeline(tmp / "in", tmp / "out", dry_run=True).plan
    >>> [(p.subject.key, p.action, p.reason) for p in plan]
    [('sub-01', 'run', 'no finished output'), ('sub-05', 'run', 'no finished output')]
    """

    subject: Subject
    action: str
    reason: str
    inputs: dict[str, dict]

    def __repr__(self) -> str:
        return f"PlannedSubject({self.subject.key!r}, action={self.action!r}, reason={self.reason!r})"


@dataclass
class RunResult:
    """Everything a run did (returned by :func:`run_pipeline`).

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> from dwi_toolkit.sample_data import COHORT, generate_cohort
    >>> tmp = Path(tempfile.mkdtemp())
    >>> _ = generate_cohort(tmp / "in", subjects={k: COHORT[k] for k in ("sub-01", "sub-05")}, dicom=False)
    >>> from dwi_toolkit.pipeline.runner import run_pipeline
    >>> res = run_pipeline(tmp / "in", tmp / "out", pipeline="adc-only", jobs=1)
    >>> res.counts, res.exit_code, res.manifest_path.name
    ({'done': 1, 'skipped': 0, 'failed': 1}, 1, 'manifest.json')
    """

    out_dir: Path
    pipeline: PipelineSpec
    dataset: Dataset
    plan: list[PlannedSubject]
    results: list[SubjectResult] = field(default_factory=list)
    dry_run: bool = False
    duration_s: float = 0.0
    cohort: Any = None

    @property
    def counts(self) -> dict[str, int]:
        c = {"done": 0, "skipped": 0, "failed": 0}
        for r in self.results:
            c[r.status] = c.get(r.status, 0) + 1
        return c

    @property
    def failed(self) -> list[SubjectResult]:
        return [r for r in self.results if r.status == "failed"]

    @property
    def exit_code(self) -> int:
        """0 when no subject failed, 1 otherwise."""
        return 1 if self.failed else 0

    @property
    def manifest_path(self) -> Path:
        return self.out_dir / MANIFEST

    def __repr__(self) -> str:
        c = self.counts
        return (f"RunResult(pipeline={self.pipeline.name!r}, subjects={len(self.plan)}, done={c['done']}, "
                f"skipped={c['skipped']}, failed={c['failed']}, dry_run={self.dry_run}, "
                f"duration_s={self.duration_s:.1f}, out_dir={str(self.out_dir)!r})")

    def _repr_html_(self) -> str:
        from ..core._display import esc, html_table

        c = self.counts
        facts = html_table("RunResult", [
            ("pipeline", f"{self.pipeline.name} (hash {self.pipeline.hash[:12]})"),
            ("input", f"{self.dataset.kind}: {self.dataset.root}"),
            ("output", str(self.out_dir)),
            ("subjects", f"{len(self.plan)}: done {c['done']}, skipped {c['skipped']}, failed {c['failed']}"
                         + (" (dry run)" if self.dry_run else "")),
            ("duration (s)", f"{self.duration_s:.1f}"),
            ("exit code", str(self.exit_code)),
        ])
        if self.results:
            body = "".join(
                f"<tr><td>{esc(r.key)}</td><td>{esc(r.status)}</td><td>{r.duration_s:.2f}</td>"
                f"<td>{esc(r.reason or r.error or '')}</td></tr>" for r in self.results)
        else:
            body = "".join(f"<tr><td>{esc(p.subject.key)}</td><td>{esc(p.action)}</td><td></td>"
                           f"<td>{esc(p.reason)}</td></tr>" for p in self.plan)
        head = "".join(f"<th style='text-align:left'>{h}</th>" for h in ("subject", "status", "time (s)", "reason"))
        return f"{facts}<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


@dataclass(frozen=True)
class _Task:
    subject: Subject
    spec: dict[str, Any]
    spec_hash: str
    out_root: str
    inputs: dict[str, dict]
    source: str


# ------------------------------------------------------------------------------ one subject
def execute_subject(task: _Task, progress: Callable[[str], None] | None = None) -> SubjectResult:
    """Run every step for one subject into a temporary folder, then move it into place.

    This is the per-subject boundary: any :class:`Exception` from a step becomes a ``failed``
    result with its reason and traceback; ``KeyboardInterrupt``/``SystemExit`` propagate (the
    temporary folder is removed either way). Runs in the worker process.
    """
    from ..io._atomic import atomic_dir
    from .steps import STEPS, SubjectContext

    s = task.subject
    t0 = time.perf_counter()
    res = SubjectResult(key=s.key, status="failed", label=s.label, session=s.session, source=s.source,
                        inputs=task.inputs, pipeline_hash=task.spec_hash, output=s.out_relpath)
    current = "setup"
    try:
        import_plugins(task.spec.get("plugins", []))
        spec = spec_from_dict(task.spec, source=task.source)
        if spec.hash != task.spec_hash:
            raise PipelineError(
                f"this worker runs dwi_toolkit {__version__}, whose pipeline hash differs from the "
                "submitting process's; install the same dwi_toolkit version everywhere."
            )
        started = _utc()
        target = Path(task.out_root) / s.out_relpath
        with atomic_dir(target) as tmp:
            ctx = SubjectContext(subject=s, out_dir=Path(tmp), progress=progress)
            for st in spec.steps:
                current = st.id
                if progress is not None:
                    progress(st.id)
                ts = time.perf_counter()
                STEPS[st.step].func(ctx, **st.params)
                res.steps.append({"id": st.id, "step": st.step, "duration_s": round(time.perf_counter() - ts, 4)})
            res.products = dict(ctx.products)
            res.duration_s = round(time.perf_counter() - t0, 4)
            res.finished_utc = _utc()
            prov = {
                "schema": PROVENANCE_SCHEMA,
                "subject": s.label, "session": s.session, "source": s.source,
                "status": "done",
                "software": {"name": "dwi_toolkit", "version": __version__,
                             "python": platform.python_version()},
                "pipeline": {"name": spec.name, "source": spec.source, "hash": spec.hash,
                             "config": spec.to_dict()},
                "inputs": task.inputs,
                "steps": res.steps,
                "products": res.products,
                "started_utc": started, "finished_utc": res.finished_utc,
                "duration_s": res.duration_s,
            }
            (Path(tmp) / PROVENANCE).write_text(json.dumps(prov, indent=2) + "\n", encoding="utf-8")
        res.status = "done"
    except Exception as err:  # the per-subject boundary: one bad subject must not stop the others
        res.status = "failed"
        res.error_type = type(err).__name__
        # paths relative to the input root: outputs name files, not the folders they live in
        res.error = str(err).replace(str(s.root) + os.sep, "")
        res.reason = f"{current}: {type(err).__name__}: {res.error}"
        res.traceback = traceback.format_exc()
        res.duration_s = round(time.perf_counter() - t0, 4)
        res.finished_utc = _utc()
    return res


_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS")


def _worker_init(plugins: Sequence[str], threads: int | None) -> None:  # pragma: no cover - in workers
    if threads:
        for var in _THREAD_VARS:
            os.environ.setdefault(var, str(threads))
    import_plugins(list(plugins))


#: Modules a subject needs, imported once by the pool's fork server so that each worker process
#: starts with them (issue 21: worker start-up was most of the overhead of ``--jobs``).
WORKER_PRELOAD = ("numpy", "nibabel", "scipy.optimize", "matplotlib.figure", "matplotlib.backends.backend_agg",
                  "dwi_toolkit.pipeline.steps", "dwi_toolkit.pipeline.analyze", "dwi_toolkit.reporting.report",
                  "dwi_toolkit.reporting.figures", "dwi_toolkit.models.adc", "dwi_toolkit.models.dti",
                  "dwi_toolkit.analysis.compare", "dwi_toolkit.analysis.roi_stats", "dwi_toolkit.io.loading",
                  "dwi_toolkit.io.rois", "dwi_toolkit.io.tables", "dwi_toolkit.clinical.indication",
                  "dwi_toolkit.clinical.entrapment", "dwi_toolkit.qc.flags", "dwi_toolkit.core.masks",
                  "dwi_toolkit.reporting.first_screen", "dwi_toolkit.reporting.indication_section", "contourpy",
                  "tomllib", "dwi_toolkit.pipeline._preload")


def preload_worker() -> list[str]:
    """Import the modules one subject needs (:data:`WORKER_PRELOAD`); returns those that imported.

    For workers that run many subjects: a Dask cluster can warm its workers before a run with
    ``client.run(preload_worker)`` (docs/dask.md); the local pool's workers start warm already
    (forked from a server that imported these modules once).

    Examples
    --------
    >>> "numpy" in preload_worker()
    True
    """
    import importlib

    done = []
    for name in WORKER_PRELOAD:
        try:
            importlib.import_module(name)
            done.append(name)
        except ImportError:  # an optional part missing here: the subject imports what it needs
            pass
    return done


def _pool_context() -> Any:
    """The start method of the local pool: a fork server that preloaded :data:`WORKER_PRELOAD`
    (POSIX), else spawn (Windows). Both start workers without the parent's threads and locks.

    The fork server is started once per process (later pools, e.g. the next run in a notebook or a
    benchmark round, fork warm workers at once), with one BLAS thread (``OMP_NUM_THREADS=1`` ...
    unless set), since NumPy is imported there and parallelism is across subjects.
    """
    import multiprocessing

    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    from multiprocessing import forkserver

    ctx = multiprocessing.get_context("forkserver")
    saved = {v: os.environ.get(v) for v in _THREAD_VARS}
    try:
        for v in _THREAD_VARS:
            os.environ.setdefault(v, "1")
        ctx.set_forkserver_preload(list(WORKER_PRELOAD))
        forkserver.ensure_running()
    finally:
        for v, old in saved.items():
            if old is None:
                os.environ.pop(v, None)
            else:
                os.environ[v] = old
    return ctx


def _lpt(tasks: list[_Task]) -> list[_Task]:
    """Largest DWI input first (longest-processing-time order): the last subjects to finish on
    parallel workers are then the small ones, so workers idle less at the end of a run."""
    return sorted(tasks, key=lambda t: -int((t.inputs.get("dwi") or {}).get("size_bytes") or 0))


def _dask_slots(client: Any) -> int:
    """Number of Dask worker threads (tasks that can run at once); warns about threaded workers.

    A subject is Python and NumPy work that holds the GIL much of the time (figures, ROI and
    report code, small arrays), so threads of one worker process run subjects largely one after
    the other (issue 21). The recipe is one thread per worker process
    (``processes=True, threads_per_worker=1``; ``dask worker --nthreads 1``), see docs/dask.md.
    """
    workers = client.scheduler_info().get("workers", {})
    threads = [int(w.get("nthreads", 1) or 1) for w in workers.values()]
    if any(t > 1 for t in threads):
        logger.warning("Dask workers with %s threads each: subjects hold the GIL, so threads of one worker "
                       "barely run in parallel; use one thread per worker process (LocalCluster(processes=True, "
                       "threads_per_worker=1), or dask workers started with nthreads 1), see docs/dask.md", max(threads))
    return max(1, sum(threads))


# ------------------------------------------------------------------------------ executors
def _serial(tasks: list[_Task], progress: Callable[[ProgressEvent], None] | None, total: int,
            done0: int) -> Iterator[SubjectResult]:
    for i, t in enumerate(tasks):
        cb = None
        if progress is not None:
            def cb(step: str, key: str = t.subject.key, n: int = done0 + i) -> None:
                progress(ProgressEvent("step", total, n, key, None, step))
        yield execute_subject(t, cb)


def _pool(tasks: list[_Task], jobs: int, plugins: Sequence[str]) -> Iterator[SubjectResult]:
    """Results from a process pool. When a worker process dies (killed, out of memory), the
    subjects it may have been running are run again one at a time; one whose worker dies again
    is recorded as failed with that reason, and the others carry on."""
    queue = list(reversed(tasks))
    suspects: list[_Task] = []
    while queue:  # a fresh pool after each death, for the subjects not started yet
        suspects += yield from _pool_batch(queue, jobs, plugins)
    for t in suspects:
        for lost in (yield from _pool_batch([t], 1, plugins)):
            yield _worker_died(lost)


def _worker_died(t: _Task) -> SubjectResult:
    s = t.subject
    why = ("its worker process died (killed, or out of memory) twice; nothing of it was kept. "
           "Rerun to retry it; check the memory available per worker (--jobs).")
    return SubjectResult(key=s.key, status="failed", label=s.label, session=s.session, source=s.source,
                         inputs=t.inputs, pipeline_hash=t.spec_hash, output=s.out_relpath, error=why,
                         error_type="WorkerDied", reason=f"setup: WorkerDied: {why}", finished_utc=_utc())


def _pool_batch(queue: list[_Task], jobs: int, plugins: Sequence[str]):
    """Run `queue` (consumed from the end) in one pool until it is empty or a worker dies; return
    the tasks lost with the dead worker (the rest stay in `queue`)."""
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    ex = ProcessPoolExecutor(max_workers=jobs, mp_context=_pool_context(), initializer=_worker_init,
                             initargs=(tuple(plugins), 1))
    pending: dict = {}
    lost: list[_Task] = []
    try:
        while (queue and not lost) or pending:
            while queue and not lost and len(pending) < 2 * jobs:
                t = queue.pop()
                pending[ex.submit(execute_subject, t)] = t
            finished, _ = wait(set(pending), return_when=FIRST_COMPLETED)
            for f in finished:
                t = pending.pop(f)
                try:
                    res = f.result()  # re-raises KeyboardInterrupt/SystemExit from a worker
                except BrokenProcessPool:
                    logger.warning("%s: a worker process died; it will be run again on its own", t.subject.key)
                    lost.append(t)
                    continue
                yield res
    finally:
        ex.shutdown(wait=True, cancel_futures=True)
    return lost


def _dask(tasks: list[_Task], scheduler: Any) -> Iterator[SubjectResult]:
    try:
        from distributed import Client, as_completed
    except ImportError as err:
        raise PipelineError(
            "--scheduler needs Dask distributed: pip install 'dwi_toolkit[dask]' (dask[distributed])."
        ) from err
    own = not isinstance(scheduler, Client)
    try:
        client = Client(scheduler, set_as_default=False, timeout="30s") if own else scheduler
    except (OSError, TimeoutError) as err:
        raise PipelineError(f"cannot connect to the Dask scheduler at {scheduler!r}: {err}") from err
    try:
        n_workers = _dask_slots(client)
        queue = list(reversed(tasks))

        def submit(t: _Task) -> Any:
            return client.submit(execute_subject, t, pure=False, key=f"dwi_toolkit-{t.subject.key}-{time.time_ns()}")

        first = [submit(queue.pop()) for _ in range(min(len(queue), 2 * n_workers))]
        if not first:
            return
        ac = as_completed(first, loop=client.loop)
        try:
            for fut in ac:
                res = fut.result()  # re-raises KeyboardInterrupt/SystemExit from a task
                fut.release()
                if queue:
                    ac.add(submit(queue.pop()))
                yield res
        finally:
            for fut in list(ac.futures):
                fut.cancel()
    finally:
        if own:
            client.close()


# ------------------------------------------------------------------------------ helpers
def _is_inside(child: Path, parent: Path) -> bool:
    try:
        child.resolve().relative_to(parent.resolve())
        return True
    except ValueError:
        return False


class _Lock:
    """An exclusive lock file in the output folder (one run at a time per output folder)."""

    def __init__(self, out_dir: Path) -> None:
        self.path = out_dir / LOCK
        self.held = False

    def __enter__(self) -> _Lock:
        me = f"{os.getpid()} {socket.gethostname()}"
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                try:
                    pid_s, host = self.path.read_text().split()[:2]
                    alive = host != socket.gethostname() or _pid_alive(int(pid_s))
                except (OSError, ValueError):
                    alive = False
                if alive:
                    raise PipelineError(
                        f"another dwi-toolkit run (pid {pid_s} on {host}) is writing to {self.path.parent}; "
                        f"wait for it, or delete {self.path} if that run is gone."
                    ) from None
                logger.info("removing stale lock %s", self.path)
                self.path.unlink(missing_ok=True)
                continue
            with os.fdopen(fd, "w") as fh:
                fh.write(me + "\n")
            self.held = True
            return self
        raise PipelineError(f"cannot take the lock {self.path}")

    def __exit__(self, *exc: Any) -> None:
        if self.held:
            self.path.unlink(missing_ok=True)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove_stale_temp(out_dir: Path) -> None:
    """Temporary subject folders a killed run left behind (we hold the lock, so none is live)."""
    import shutil

    for base in [out_dir, *[p for p in out_dir.glob("sub-*") if p.is_dir()]]:
        for p in base.iterdir():
            if p.is_dir() and _STALE_TMP.match(p.name):
                logger.info("removing incomplete output %s left by an interrupted run", p)
                shutil.rmtree(p, ignore_errors=True)


#: Files of a run that BIDS 1.11 does not define, declared to the validator (shipped as ``.bidsignore``).
BIDSIGNORE = (
    "index.html", "manifest.json", "pipeline.toml", "logs", "group", "**/report", "**/provenance.json",
    "**/*_desc-roistats.tsv", "**/*_desc-roistats.json", "**/*_desc-roistats.csv",
    "**/*_dwimap.nii.gz", "**/*_dwimap.json", "**/*.csv",
)
_README_HEAD = "# dwi_toolkit derivatives"


def _code_url() -> str | None:
    """The project's source URL from the installed package metadata (None when it declares none)."""
    from importlib import metadata

    try:
        urls = metadata.metadata("dwi_toolkit").get_all("Project-URL") or []
    except metadata.PackageNotFoundError:
        return None
    found = dict(u.split(", ", 1) for u in urls if ", " in u)
    return next((found[k] for k in ("Source", "Repository", "Homepage") if k in found), None)


def _dataset_description(spec: PipelineSpec, dataset: Dataset) -> dict[str, Any]:
    gen = {"Name": "dwi_toolkit", "Version": __version__,
           "Description": f"pipeline '{spec.name}' ({spec.source}), hash {spec.hash[:12]}"}
    url = _code_url()
    if url:
        gen["CodeURL"] = url
    return {
        "Name": f"dwi_toolkit '{spec.name}' outputs for {dataset.name}",
        "BIDSVersion": BIDS_VERSION,
        "DatasetType": "derivative",
        "GeneratedBy": [gen],
        # a relative file: URI (RFC 8089) naming the input folder, never its absolute path
        "SourceDatasets": [{"URL": f"file:{_uri_path(dataset.name)}"}],
    }


def _uri_path(name: str) -> str:
    from urllib.parse import quote

    return quote(name, safe="-._~")


def _readme(spec: PipelineSpec, dataset: Dataset) -> str:
    """README.md of the output folder (rewritten at each run unless the user edited it)."""
    return f"""{_README_HEAD}

Outputs of dwi_toolkit {__version__}, pipeline `{spec.name}` (hash `{spec.hash[:12]}`), for the input
dataset `{dataset.name}` ({dataset.kind} layout). This folder is a BIDS derivatives dataset
(`dataset_description.json`, `DatasetType: derivative`).

- `sub-<label>/[ses-<label>/]dwi/`: maps with BIDS 1.11 names where one exists (`_ADC`, `_S0map`,
  `_desc-dti_FA`, `_desc-dti_ADC` = mean diffusivity, fit status as `_desc-<model>fit_dseg` with its
  `.tsv` of labels), each with a JSON sidecar; maps without a BIDS suffix (R², IVIM D, f, D*, AD, RD)
  keep the draft BEP016 name `_model-<model>_param-<name>_dwimap`; ROI statistics in
  `_desc-roistats.tsv` with a JSON data dictionary.
- `sub-<label>/report/`: the subject report (report.json, CSV tables, report.html).
- `group/`: cohort tables and summary; `index.html`: the cohort page.
- `manifest.json`, `pipeline.toml`, `provenance.json`, `logs/`: run records.

Files BIDS does not define are listed in `.bidsignore`. Units: ADC and diffusivities in mm²/s,
b-values in s/mm². See the dwi_toolkit documentation, page "Pipeline", section "Outputs".
"""


# ------------------------------------------------------------------------------ planning
def _plan(dataset: Dataset, spec: PipelineSpec, out_dir: Path, force: bool) -> list[PlannedSubject]:
    subjects = list(dataset.subjects)
    with ThreadPoolExecutor(max_workers=min(4, len(subjects))) as ex:
        sums = list(ex.map(input_checksums, subjects))
    plan = []
    for s, inputs in zip(subjects, sums):
        prov = read_provenance(out_dir / s.out_relpath / PROVENANCE)
        if force:
            action, reason = "run", "--force"
        elif prov is None:
            action, reason = "run", "no finished output"
        elif prov.get("pipeline", {}).get("hash") != spec.hash:
            action, reason = "run", "pipeline or dwi_toolkit version changed"
        elif prov.get("inputs") != inputs:
            action, reason = "run", "inputs changed"
        else:
            action, reason = "skip", "inputs and pipeline unchanged"
        plan.append(PlannedSubject(s, action, reason, inputs))
    return plan


@dataclass(frozen=True)
class RunOptions:
    """How :func:`run_pipeline` runs (``dwi-toolkit run`` builds one from its arguments).

    Attributes
    ----------
    jobs : int
        Local worker processes (1 = in this process, the default; 0 = one per CPU).
    scheduler : str or distributed.Client, optional
        Dask scheduler address (``tcp://host:8786``) or client; overrides `jobs`.
    force : bool
        Redo subjects whose outputs are up to date.
    dry_run : bool
        Only plan: validate, discover and decide run/skip; write nothing.
    participant_labels : sequence of str, optional
        Only these subjects.
    derivatives : sequence of path-like
        BIDS: extra folders with ROIs / clinical.json.
    cohort : bool
        Build the cohort summary (:func:`dwi_toolkit.pipeline.cohort.build_cohort`) at the end
        (default True).

    Examples
    --------
    >>> RunOptions(jobs=2, cohort=False).jobs
    2
    """

    jobs: int = 1
    scheduler: Any = None
    force: bool = False
    dry_run: bool = False
    participant_labels: Sequence[str] | None = None
    derivatives: Sequence[str | os.PathLike] = ()
    cohort: bool = True


def run_pipeline(
    input_path: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    pipeline: str | os.PathLike | PipelineSpec = "default",
    progress: Callable[[ProgressEvent], None] | None = None,
    options: RunOptions | None = None,
    **settings: Any,
) -> RunResult:
    """Run a pipeline on every subject found under `input_path`, writing into `out_dir`.

    Parameters
    ----------
    input_path : path-like
        A folder of subject folders or a BIDS dataset (:func:`dwi_toolkit.pipeline.layout.discover`).
    out_dir : path-like
        Output folder (BIDS-derivatives layout); created. Must not lie inside `input_path`
        (a BIDS dataset's ``derivatives/`` excepted).
    pipeline : str, path-like or PipelineSpec, optional
        Built-in name (``default``, ``adc-only``, ``high-b``) or a TOML file.
    progress : callable, optional
        Called with a :class:`ProgressEvent` at the start, after each subject, and (serial runs)
        at each step.
    options : RunOptions, optional
        How to run: ``jobs``, ``scheduler``, ``force``, ``dry_run``, ``participant_labels``,
        ``derivatives``, ``cohort`` (see :class:`RunOptions`).
    **settings
        Any :class:`RunOptions` field by name (``jobs=2``, ``dry_run=True`` ...), applied on top of
        `options`; an unknown name raises :class:`~dwi_toolkit.errors.InputDataError`.

    Returns
    -------
    RunResult
        ``exit_code`` is 1 when any subject failed.

    Raises
    ------
    PipelineError
        Invalid pipeline, input or output folder (before any work starts).

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> from dwi_toolkit.sample_data import COHORT, generate_cohort
    >>> tmp = Path(tempfile.mkdtemp())
    >>> _ = generate_cohort(tmp / "in", subjects={k: COHORT[k] for k in ("sub-01", "sub-05")}, dicom=False)
    >>> from dwi_toolkit.pipeline.runner import run_pipeline
    >>> res = run_pipeline(tmp / "in", tmp / "out", pipeline="adc-only", jobs=1)
    >>> res
    RunResult(pipeline='adc-only', subjects=2, done=1, skipped=0, failed=1, dry_run=False, duration_s=..., out_dir=...)
    >>> run_pipeline(tmp / "in", tmp / "out", pipeline="adc-only").counts    # resumable: sub-01 is skipped
    {'done': 0, 'skipped': 1, 'failed': 1}
    """
    t0 = time.perf_counter()
    opt = with_settings(RunOptions, options, settings, where="run_pipeline")
    scheduler, dry_run, cohort = opt.scheduler, opt.dry_run, opt.cohort
    spec = load_pipeline(pipeline)
    spec.check_available()
    src, out = Path(input_path), Path(out_dir)
    jobs = _check_run_options(src, out, opt.jobs)
    dataset = discover(src, participant_labels=opt.participant_labels, derivatives=opt.derivatives)
    dataset, external = _check_output_place(out, dataset)
    plan = _plan(dataset, spec, out, opt.force)
    result = RunResult(out_dir=out, pipeline=spec, dataset=dataset, plan=plan, dry_run=dry_run)
    if dry_run:
        result.duration_s = time.perf_counter() - t0
        return result
    _check_writable(out)
    with _Lock(out):
        _remove_stale_temp(out)
        _write_dataset_files(out, spec, dataset)
        manifest, run_rec = _start_manifest(out, spec, dataset, jobs=jobs, scheduler=scheduler)
        n_skip = _record_skipped(plan, spec, out, manifest["subjects"], result)
        if progress is not None:
            progress(ProgressEvent("start", len(plan), n_skip, n_skip=n_skip))
        tasks = [_Task(p.subject, spec.to_dict(), spec.hash, str(out), p.inputs, spec.source)
                 for p in plan if p.action == "run"]
        results = _results(tasks, spec, jobs=jobs, scheduler=scheduler, progress=progress,
                           total=len(plan), n_skip=n_skip)
        try:
            _collect(results, out, spec, manifest, result, progress=progress, total=len(plan), n_skip=n_skip)
            run_rec["status"] = "completed"
        except BaseException:
            run_rec["status"] = "interrupted"
            raise
        finally:
            run_rec["finished_utc"] = _utc()
            run_rec["counts"] = result.counts
            for key in external:
                if key in manifest["subjects"]:
                    manifest["subjects"][key]["data_outside_input"] = True
            write_manifest(out, manifest)
        if cohort and any(r.status in ("done", "skipped") for r in result.results):
            result.cohort = _build_cohort(out)
    result.duration_s = time.perf_counter() - t0
    return result


# ------------------------------------------------------------------------------ steps of a run
def _within(child: Path, parent: Path) -> bool:
    """`child` is `parent` or below it (paths compared as given, already resolved or absolute)."""
    return child == parent or parent in child.parents


def _lexically_inside(child: Path, parent: Path) -> bool:
    """Inside as written (``..`` collapsed, symlinks *not* followed): ``in/link/out`` is inside ``in``."""
    return _within(Path(os.path.abspath(child)), Path(os.path.abspath(parent)))


def _data_places(s: Subject) -> set[Path]:
    """Resolved folders holding a subject's data (its folder, and the folders of its input files)."""
    places = {(s.root / s.source).resolve()}
    for p in (s.dwi, s.rois, s.clinical):
        if p is not None:
            r = p.resolve()
            places.add(r if r.is_dir() else r.parent)
    return places


def _check_output_place(out: Path, dataset: Dataset) -> tuple[Dataset, list[str]]:
    """Refuse an output inside any subject's data (symlinks followed); drop "subjects" that are the
    output folder itself; return the dataset and the keys of subjects whose data lies outside the input."""
    import dataclasses

    out_r, root_r = out.resolve(), dataset.root.resolve()
    keep, external = [], []
    for s in dataset.subjects:
        folder_r = (s.root / s.source).resolve()
        if s.dwi is None and _within(folder_r, out_r):  # the output folder, linked into the input
            logger.info("%s is the output folder %s (or inside it): not a subject", s.source, out)
            continue
        places = _data_places(s)
        if any(_within(out_r, p) for p in places):
            raise PipelineError(
                f"the output folder {out} lies inside the data of subject {s.key} ({s.source} -> "
                f"{folder_r}); inputs are never modified, so choose an output folder outside every input."
            )
        if not all(_within(p, root_r) for p in places):
            logger.warning("%s: its data lives outside the input folder %s (symlink); recorded in the manifest",
                           s.key, dataset.root)
            external.append(s.key)
        keep.append(s)
    if not keep:
        raise PipelineError(f"no subjects left in {dataset.root} once the output folder {out} is set aside.")
    return dataclasses.replace(dataset, subjects=tuple(keep)), external


def _check_writable(out: Path) -> None:
    """Create `out` and prove a file can be written in it (read-only or full file systems fail here,
    before any work starts)."""
    import tempfile

    try:
        out.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-test.", dir=out)
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        raise PipelineError(f"cannot write in the output folder {out} ({err.strerror or err}); "
                            "choose a writable folder with free space.") from err


def _check_run_options(src: Path, out: Path, jobs: int) -> int:
    """Refuse an output inside the input (as written or with symlinks resolved), a file as output,
    negative jobs; return the worker count. Nothing is written before these checks."""
    if src.is_dir() and (_is_inside(out, src) or _lexically_inside(out, src)):
        bids = (src / "dataset_description.json").is_file()
        deriv = src / "derivatives"
        if not (bids and (_is_inside(out, deriv) or _lexically_inside(out, deriv))):
            raise PipelineError(
                f"the output folder {out} lies inside the input {src}; inputs are never modified, so "
                "choose an output folder outside it (BIDS datasets: under derivatives/)."
            )
    if out.exists() and not out.is_dir():
        raise PipelineError(f"output path {out} exists and is not a folder.")
    if jobs < 0:
        raise PipelineError(f"jobs must be >= 0, got {jobs}.")
    return jobs or (os.cpu_count() or 1)


def _write_dataset_files(out: Path, spec: PipelineSpec, dataset: Dataset) -> None:
    """``dataset_description.json``, ``README.md``, ``.bidsignore`` and the resolved ``pipeline.toml``."""
    from ..io._atomic import atomic_write_text

    atomic_write_text(out / "dataset_description.json",
                      json.dumps(_dataset_description(spec, dataset), indent=2) + "\n")
    atomic_write_text(out / "pipeline.toml", spec.to_toml())
    atomic_write_text(out / ".bidsignore", "\n".join(BIDSIGNORE) + "\n")
    readme = out / "README.md"
    if not readme.is_file() or readme.read_text(encoding="utf-8").startswith(_README_HEAD):
        atomic_write_text(readme, _readme(spec, dataset))


def _start_manifest(out: Path, spec: PipelineSpec, dataset: Dataset, *, jobs: int,
                    scheduler: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """The manifest continued from the previous run, with a new run record (returned too)."""
    previous = read_manifest(out)
    manifest = {
        "schema": MANIFEST_SCHEMA,
        "software": {"name": "dwi_toolkit", "version": __version__, "python": platform.python_version()},
        "dataset": {"kind": dataset.kind, "name": dataset.name},
        "pipeline": {"name": spec.name, "source": spec.source, "hash": spec.hash, "config": "pipeline.toml"},
        "subjects": previous.get("subjects", {}),
        "runs": previous.get("runs", []),
    }
    for rec in manifest["runs"]:
        if rec.get("status") == "running":  # that run's process ended before it could finish
            rec["status"] = "killed"

    run_rec = {"started_utc": _utc(), "finished_utc": None, "status": "running", "pipeline_hash": spec.hash,
               "jobs": None if scheduler is not None else jobs,
               "scheduler": None if scheduler is None else str(getattr(scheduler, "scheduler_address", scheduler)),
               "argv": [os.path.basename(sys.argv[0])], "counts": {}}
    manifest["runs"] = [*manifest["runs"], run_rec][-50:]
    return manifest, run_rec


def _record_skipped(plan: list[PlannedSubject], spec: PipelineSpec, out: Path,
                    subjects_doc: dict[str, Any], result: RunResult) -> int:
    """Results (from their provenance) of the subjects that are up to date; returns their number."""
    n_skip = 0
    for p in plan:
        if p.action != "skip":
            continue
        n_skip += 1
        prev = subjects_doc.get(p.subject.key, {})
        prov = read_provenance(out / p.subject.out_relpath / PROVENANCE) or {}
        r = SubjectResult(
            key=p.subject.key, status="skipped", label=p.subject.label, session=p.subject.session,
            source=p.subject.source, inputs=p.inputs, pipeline_hash=spec.hash,
            output=p.subject.out_relpath, products=prov.get("products", prev.get("products", {})),
            duration_s=prov.get("duration_s", 0.0), finished_utc=prov.get("finished_utc", ""),
            steps=prov.get("steps", []), reason=p.reason)
        result.results.append(r)
        subjects_doc[p.subject.key] = {**r.to_manifest(), "status": "done", "reason": ""}
    return n_skip


def _results(tasks: list[_Task], spec: PipelineSpec, *, jobs: int, scheduler: Any,
             progress: Callable[[ProgressEvent], None] | None, total: int, n_skip: int) -> Iterator[SubjectResult]:
    """Subject results as they finish: on Dask, in a local process pool, or in this process."""
    if scheduler is not None:
        return _dask(_lpt(tasks), scheduler)
    if jobs > 1 and len(tasks) > 1:
        return _pool(_lpt(tasks), min(jobs, len(tasks)), spec.plugins)
    return _serial(tasks, progress, total, n_skip)


def _collect(results: Iterator[SubjectResult], out: Path, spec: PipelineSpec, manifest: dict[str, Any],
             result: RunResult, *, progress: Callable[[ProgressEvent], None] | None, total: int,
             n_skip: int) -> None:
    """Record each finished subject (log file, manifest entry at most once a second, progress)."""
    completed = n_skip
    last_write = 0.0
    for r in results:
        completed += 1
        manifest["subjects"][r.key] = _log_result(r, out, spec)
        result.results.append(r)
        if time.monotonic() - last_write > 1.0:
            write_manifest(out, manifest)
            last_write = time.monotonic()
        if progress is not None:
            progress(ProgressEvent("subject", total, completed, r.key, r.status,
                                   r.reason if r.status == "failed" else f"{r.duration_s:.1f} s",
                                   n_skip=n_skip))


def _log_result(r: SubjectResult, out: Path, spec: PipelineSpec) -> dict[str, Any]:
    """Write (failed) or remove (done) the subject's log file; return its manifest entry."""
    from ..io._atomic import atomic_write_text

    log = out / "logs" / f"{r.key}.log"
    entry = r.to_manifest()
    if r.status == "failed":
        atomic_write_text(log, f"subject {r.key} ({r.source}) failed at {r.finished_utc}\n"
                          f"dwi_toolkit {__version__}, pipeline {spec.name} {spec.hash}\n\n"
                          f"{r.traceback}")
        logger.info("%s failed: %s", r.key, r.reason)  # the caller reports failures
        entry["log"] = f"logs/{r.key}.log"
    else:
        log.unlink(missing_ok=True)
        logger.info("%s done in %.1f s", r.key, r.duration_s)
    return entry


def _build_cohort(out: Path) -> Any:
    """The cohort summary of the output folder, or None (logged) when it cannot be written."""
    from .cohort import build_cohort

    try:
        return build_cohort(out)
    except (OSError, ValueError) as err:
        logger.warning("cohort summary not written: %s", err)
        return None
