"""Report figures drawn by a second process while the analysis goes on (issue 21: a subject in a second).

On a small series the three figures of a subject report cost about as much as the rest of
``dwi-toolkit analyze``: importing matplotlib (≈ 0.2 s) and drawing with Agg. Inside
:func:`background_figures` a worker process is forked at once; it imports matplotlib and warms
its font caches while the analysis loads and fits, then draws each figure it is sent and returns
the PNG bytes. The analysis sends a figure as soon as its inputs exist (the ADC montage right after
the fit, :func:`figure_job` called early) and takes the PNG when the report is assembled
(:meth:`FigureJob.png`), so on two cores only the figures that need the side comparison are drawn
after it.

A figure is the same function called with the same arguments as in-process (large boolean masks
travel bit-packed, a fitted map as its array and affine), so the PNG has the same bytes either way.
Without a worker — no ``os.fork`` (Windows) or not Linux (macOS cannot fork safely once its
system frameworks are loaded), one usable CPU, a machine whose load average leaves no CPU free
(unless ``DWI_TOOLKIT_FIGURE_PROCESS=1``), ``DWI_TOOLKIT_FIGURE_PROCESS=0``, or a worker that
failed — each figure is drawn in-process when its PNG is asked for, with the usual errors.
"""

from __future__ import annotations

import logging
import os
import pickle
import struct
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["FigureJob", "background_figures", "figure_job", "worker_running"]

logger = logging.getLogger(__name__)

#: Boolean arrays with more elements than this travel to the worker bit-packed (8× smaller).
_PACK_MIN = 4096
_HEADER = struct.Struct("<Q")
_ACTIVE: list["_Worker"] = []


class _Packed:
    """A boolean array sent bit-packed (``np.packbits``) and unpacked by the worker."""

    def __init__(self, arr: Any) -> None:
        import numpy as np

        self.shape, self.bits = arr.shape, np.packbits(arr, axis=None)

    def unpack(self) -> Any:
        import numpy as np

        n = int(np.prod(self.shape))
        return np.unpackbits(self.bits, count=n).astype(bool).reshape(self.shape)


def _map_leaves(obj: Any, leaf: Callable[[Any], Any]) -> Any:
    """`obj` with `leaf` applied to everything that is not a tuple, list or dict inside it."""
    if isinstance(obj, (list, tuple)):
        return type(obj)(_map_leaves(x, leaf) for x in obj)
    if isinstance(obj, dict):
        return {k: _map_leaves(v, leaf) for k, v in obj.items()}
    return leaf(obj)


def _pack(obj: Any) -> Any:
    """`obj` with large boolean arrays (inside tuples, lists and dicts) replaced by :class:`_Packed`."""
    import numpy as np

    def pack(x: Any) -> Any:
        big_mask = isinstance(x, np.ndarray) and x.dtype == bool and x.size > _PACK_MIN
        return _Packed(x) if big_mask else x

    return _map_leaves(obj, pack)


def _unpack(obj: Any) -> Any:
    """`obj` with every :class:`_Packed` array restored."""
    return _map_leaves(obj, lambda x: x.unpack() if isinstance(x, _Packed) else x)


def _slim_map(obj: Any) -> Any:
    """A fitted map (ADCFit or ParameterMap) as the ``(array, affine)`` pair the figures accept."""
    import numpy as np

    for attr in ("adc", "data"):
        if hasattr(obj, attr) and hasattr(obj, "affine") and not isinstance(obj, tuple):
            return np.asarray(getattr(obj, attr)), np.asarray(obj.affine, dtype=float)
    return obj


def _same(a: Any, b: Any) -> bool:
    """The same objects (identity, element by element in lists, tuples and dicts)."""
    if a is b:
        return True
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return False


def _render(func: Callable[..., Any], args: tuple, kwargs: dict, dpi: int) -> bytes:
    from .html import figure_to_png

    return figure_to_png(func(*args, **kwargs), dpi=dpi)


class FigureJob:
    """One report figure: ``func(*args, **kwargs)`` rendered to PNG at `dpi`, here or in the worker.

    Made by :func:`figure_job`; :meth:`png` gives the bytes (drawing the figure in this process
    when no worker has it).

    Examples
    --------
    >>> import numpy as np
    >>> from dwi_toolkit.reporting.figures import DecayCurve, signal_decay_figure
    >>> c = DecayCurve("root", np.array([0., 1000.]), np.array([1000., 332.9]), np.zeros(2), 4,
    ...                1000.0, 1.1e-3, np.array([0., 1000.]))
    >>> figure_job(signal_decay_figure, [c], dpi=40).png()[1:4]
    b'PNG'
    """

    def __init__(self, func: Callable[..., Any], args: tuple, kwargs: dict, dpi: int) -> None:
        self.func, self.args, self.kwargs, self.dpi = func, args, kwargs, dpi
        self._worker: _Worker | None = None
        self._id = -1
        self._png: bytes | None = None

    def matches(self, func: Callable[..., Any], args: tuple, kwargs: dict, dpi: int) -> bool:
        """True when this job draws the same figure (same function, the same argument objects)."""
        return func is self.func and dpi == self.dpi and _same(args, self.args) and _same(kwargs, self.kwargs)

    def png(self) -> bytes:
        """The PNG bytes (waits for the worker; draws in this process when the worker failed)."""
        if self._png is None:
            got = self._worker.result(self._id) if self._worker is not None else None
            self._png = got if got is not None else _render(self.func, self.args, self.kwargs, self.dpi)
            self._worker = None
        return self._png


class _Channel:
    """The parent's end of one worker process: a job pipe fed by a writer thread, a result pipe read by a thread."""

    def __init__(self, pool: "_Worker", jobs_w: int, res_r: int) -> None:
        self.pool, self.out, self.inp = pool, os.fdopen(jobs_w, "wb"), os.fdopen(res_r, "rb")
        self.queue: list[Any] = []
        self.outstanding = 0
        self.threads = [threading.Thread(target=self._write_loop, daemon=True, name="dwi-toolkit-figures-out"),
                        threading.Thread(target=self._read_loop, daemon=True, name="dwi-toolkit-figures-in")]
        for t in self.threads:
            t.start()

    def _write_loop(self) -> None:
        cond = self.pool.cond
        while True:
            with cond:
                cond.wait_for(lambda: self.queue or not self.pool.alive)
                if not self.queue:
                    return
                msg = self.queue.pop(0)
            if msg is None:
                self.out.close()
                return
            try:
                data = pickle.dumps(msg, protocol=pickle.HIGHEST_PROTOCOL)
            except Exception as err:  # not picklable: drawn in this process instead
                self.pool.deliver(self, msg[0], None, f"cannot send the figure's inputs ({err})")
                continue
            try:
                self.out.write(_HEADER.pack(len(data)))
                self.out.write(data)
                self.out.flush()
            except (OSError, ValueError):
                self.pool.stopped()
                return

    def _read_loop(self) -> None:
        try:
            while True:
                head = self.inp.read(_HEADER.size)
                if len(head) < _HEADER.size:
                    break
                job_id, png, err = pickle.loads(self.inp.read(_HEADER.unpack(head)[0]))
                self.pool.deliver(self, job_id, png, err)
        except (OSError, ValueError, EOFError, pickle.UnpicklingError):
            pass
        self.pool.stopped()


class _Worker:
    """The drawing processes (the first forks the second once matplotlib is imported) and their channels."""

    def __init__(self, processes: int = 2) -> None:
        import warnings

        ends = [(*os.pipe(), *os.pipe()) for _ in range(processes)]  # jobs_r, jobs_w, res_r, res_w
        sys.stdout.flush()
        sys.stderr.flush()
        with warnings.catch_warnings():  # Python ≥ 3.12 warns about fork() beside threads (the CLI's progress line)
            warnings.simplefilter("ignore", DeprecationWarning)
            pid = os.fork()
        if pid == 0:  # the workers: never return
            try:
                os.setpgid(0, 0)  # a group of their own, so that close(kill=True) stops the second worker too
            except OSError:
                pass
            for _, jobs_w, res_r, _ in ends:
                os.close(jobs_w)
                os.close(res_r)
            _child_main([(jr, rw) for jr, _, _, rw in ends])
        for jobs_r, _, _, res_w in ends:
            os.close(jobs_r)
            os.close(res_w)
        self.pid = pid
        self.cond = threading.Condition()
        self.alive = True
        self._results: dict[int, tuple[bytes | None, str | None]] = {}
        self._next = 0
        self.sent: list[FigureJob] = []  # kept until the block ends: asked for again, a job is reused
        self.channels = [_Channel(self, jobs_w, res_r) for _, jobs_w, res_r, _ in ends]

    def submit(self, job: FigureJob) -> None:
        func = job.func
        args = job.args
        if getattr(func, "__name__", "") == "adc_montage" and args:
            args = (_slim_map(args[0]), *args[1:])
        msg = (self._next, func, _pack(args), _pack(job.kwargs), job.dpi)
        job._worker, job._id = self, self._next
        self._next += 1
        with self.cond:
            chan = min(self.channels, key=lambda c: c.outstanding)  # the least busy; the first on ties
            chan.outstanding += 1
            chan.queue.append(msg)
            self.cond.notify_all()

    def deliver(self, chan: _Channel, job_id: int, png: bytes | None, err: str | None) -> None:
        with self.cond:
            chan.outstanding -= 1
            self._results[job_id] = (png, err)
            self.cond.notify_all()

    def stopped(self) -> None:
        with self.cond:
            self.alive = False
            self.cond.notify_all()

    def result(self, job_id: int, timeout: float = 600.0) -> bytes | None:
        with self.cond:
            self.cond.wait_for(lambda: job_id in self._results or not self.alive, timeout=timeout)
            png, err = self._results.pop(job_id, (None, "the figure worker stopped"))
        if png is None:
            logger.debug("figure worker: %s; drawing the figure in this process", err)
        return png

    def close(self, kill: bool = False) -> None:
        """Stop the workers (at once with `kill`) and reap them."""
        import signal

        if kill:
            try:
                os.killpg(self.pid, signal.SIGKILL)
            except OSError:
                try:
                    os.kill(self.pid, signal.SIGKILL)
                except OSError:
                    pass
        with self.cond:
            for chan in self.channels:
                chan.queue.append(None)
            self.cond.notify_all()
        for chan in self.channels:
            chan.threads[0].join(timeout=5.0)
        try:
            os.waitpid(self.pid, 0)
        except ChildProcessError:
            pass
        for chan in self.channels:
            chan.threads[1].join(timeout=5.0)
            for f in (chan.out, chan.inp):
                try:
                    f.close()
                except OSError:
                    pass


def _child_main(channels: list[tuple[int, int]]) -> None:
    """The first worker: import matplotlib and warm it up, fork the others, then draw what arrives until EOF."""
    code, pids = 0, []
    try:
        import logging as _logging
        import warnings

        warnings.simplefilter("ignore")
        _logging.disable(_logging.CRITICAL)
        _warm_up()
        mine = channels[0]
        for chan in channels[1:]:  # the others start warm (a fork copies the imported matplotlib)
            pid = os.fork()
            if pid == 0:
                for fd in {fd for other in channels if other is not chan for fd in other}:
                    try:
                        os.close(fd)
                    except OSError:  # closed already (a sibling's, before this fork)
                        pass
                mine, pids = chan, []
                break
            pids.append(pid)
            os.close(chan[0])
            os.close(chan[1])
        _serve(*mine)
    except BaseException:  # noqa: BLE001 - a worker never raises into a copy of the parent
        code = 1
    finally:
        for pid in pids:  # the first worker reaps the others (their CPU time then counts for the parent)
            try:
                os.waitpid(pid, 0)
            except OSError:
                pass
        os._exit(code)


def _serve(jobs_fd: int, results_fd: int) -> None:
    """Draw each figure read from `jobs_fd`; write ``(id, png, error)`` to `results_fd`; return at EOF."""
    inp, out = os.fdopen(jobs_fd, "rb"), os.fdopen(results_fd, "wb")
    while True:
        head = inp.read(_HEADER.size)
        if len(head) < _HEADER.size:
            return
        job_id, func, args, kwargs, dpi = pickle.loads(inp.read(_HEADER.unpack(head)[0]))
        try:
            reply = (job_id, _render(func, _unpack(args), _unpack(kwargs), dpi), None)
        except Exception as err:  # the parent draws this one itself and sees the error
            reply = (job_id, None, f"{type(err).__name__}: {err}")
        data = pickle.dumps(reply, protocol=pickle.HIGHEST_PROTOCOL)
        out.write(_HEADER.pack(len(data)))
        out.write(data)
        out.flush()


def _warm_up() -> None:
    """Import matplotlib's object API and Agg, and load the fonts, the mathtext parser, contour
    and Pillow's PNG writer (first-use costs of the report figures)."""
    from matplotlib.figure import Figure

    from . import figures  # noqa: F401
    from .html import figure_to_png

    fig = Figure(figsize=(1.0, 1.0))
    ax = fig.subplots()
    ax.set_yscale("log")
    ax.plot([1.0, 2.0], [10.0, 1000.0])
    ax.contour([[0.0, 1.0], [1.0, 0.0]], levels=[0.5])
    ax.set_title("warm-up", fontsize=9, fontweight="bold")
    figure_to_png(fig, dpi=20)


def _usable() -> bool:
    """A worker can help: Linux fork, two usable CPUs, and (unless forced) a CPU to spare.

    ``DWI_TOOLKIT_FIGURE_PROCESS=0`` switches the workers off, ``=1`` on whenever fork and two CPUs
    are there; unset, they start only when the 1-minute load average leaves a CPU free (on a
    machine already busy a worker only adds its start-up to the CPU time).
    """
    wanted = os.environ.get("DWI_TOOLKIT_FIGURE_PROCESS", "").strip().lower()
    if wanted in ("0", "false", "no", "off"):
        return False
    if not (hasattr(os, "fork") and sys.platform.startswith("linux")):
        return False
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    if cpus < 2:
        return False
    if wanted in ("1", "true", "yes", "on"):
        return True
    try:
        return os.getloadavg()[0] < cpus - 0.5
    except OSError:
        return True


@contextmanager
def background_figures(enabled: bool = True) -> Iterator[bool]:
    """Draw the report figures made inside the block in a forked worker process, when one can be used.

    Parameters
    ----------
    enabled : bool, optional
        False: figures are drawn in-process as usual (e.g. ``--no-figures``: no worker is started).

    Yields
    ------
    bool
        True when workers run (Linux, at least two usable CPUs, a CPU free or
        ``DWI_TOOLKIT_FIGURE_PROCESS=1``; not with ``=0``); figures are then drawn beside the
        analysis (:func:`figure_job`).

    Examples
    --------
    >>> import numpy as np
    >>> from dwi_toolkit.reporting.figures import DecayCurve, signal_decay_figure
    >>> c = DecayCurve("root", np.array([0., 1000.]), np.array([1000., 332.9]), np.zeros(2), 4,
    ...                1000.0, 1.1e-3, np.array([0., 1000.]))
    >>> with background_figures():
    ...     job = figure_job(signal_decay_figure, [c], dpi=40)
    ...     png = job.png()
    >>> png == figure_job(signal_decay_figure, [c], dpi=40).png()   # the same bytes as in-process
    True
    """
    worker = None
    if enabled and not _ACTIVE and _usable():
        try:
            worker = _Worker()
        except OSError as err:
            logger.debug("no figure worker (%s); figures are drawn in-process", err)
    if worker is None:
        yield False
        return
    _ACTIVE.append(worker)
    failed = True
    try:
        yield True
        failed = False
    finally:
        _ACTIVE.remove(worker)
        worker.close(kill=failed)


def figure_job(func: Callable[..., Any], *args: Any, dpi: int = 110, **kwargs: Any) -> FigureJob:
    """The report figure ``func(*args, **kwargs)`` at `dpi`, sent to the worker when one runs.

    Inside :func:`background_figures` the figure is sent to the worker at once (so it is drawn
    while the caller goes on) unless a job for the same function with the same argument objects
    was already sent, which is then returned (the analysis sends the ADC montage early, the
    report asks for it later). Outside, the figure is drawn in-process by :meth:`FigureJob.png`.

    Parameters
    ----------
    func : callable
        A figure function returning a matplotlib Figure (e.g. from :mod:`dwi_toolkit.reporting.figures`).
    *args, **kwargs
        Its arguments (picklable for the worker; otherwise it is drawn in-process).
    dpi : int, optional
        Resolution of the PNG (the report's figures: 110).

    Returns
    -------
    FigureJob

    Examples
    --------
    >>> import numpy as np
    >>> from dwi_toolkit.reporting.figures import adc_montage
    >>> adc = np.full((8, 8, 3), 1.1e-3)
    >>> figure_job(adc_montage, adc, affine=np.eye(4), dpi=40).png()[1:4]
    b'PNG'
    """
    worker = _ACTIVE[-1] if _ACTIVE else None
    if worker is not None:
        for job in worker.sent:
            if job.matches(func, args, kwargs, dpi):
                return job
    job = FigureJob(func, args, kwargs, dpi)
    if worker is not None:
        worker.submit(job)
        worker.sent.append(job)
    return job


def worker_running() -> bool:
    """True inside :func:`background_figures` when its worker process runs.

    Examples
    --------
    >>> worker_running()
    False
    """
    return bool(_ACTIVE)
