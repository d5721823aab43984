"""Progress of long library operations, reported to listeners — the library never draws or prints.

Library code announces a loop with :func:`report` (or wraps an iterable with :func:`track`) and
advances it; whoever wants to show progress installs a listener with :func:`listen` (the
``dwi-toolkit`` command line draws a one-line bar on stderr; a notebook may draw a widget; a test
may collect the updates). With no listener and no `callback`, reporting costs a list lookup per
update, so loops may report every chunk.

Protocol: a listener is a callable taking one :class:`ProgressUpdate`. It receives one update
when a task starts (``done=0``), one per :meth:`Task.advance`, and one with ``finished=True``
when the task ends (normally or by an exception). A `callback` given to :func:`report` receives
the same updates as the listeners (for library functions that accept a ``progress=`` keyword and
pass it on). Listeners must be quick and must not raise; an exception from a listener is logged
and the listener is not called again for that task.

How library code reports (e.g. a chunked model fit)::

    from ..core.progress import report

    def fit(self, series, *, progress=None):
        chunks = ...
        with report(len(chunks), "IVIM fit", unit="chunk", callback=progress) as task:
            for chunk in chunks:
                ...                       # fit one chunk
                task.advance()

No dependency: tqdm or any other bar is the listener's business.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TypeVar

__all__ = ["ProgressUpdate", "Task", "report", "track", "listen"]

logger = logging.getLogger(__name__)
T = TypeVar("T")

_LISTENERS: list[Callable[["ProgressUpdate"], None]] = []
_LOCK = threading.Lock()


@dataclass(frozen=True)
class ProgressUpdate:
    """One progress message: task `desc` has done `done` of `total` `unit`s after `elapsed_s` seconds.

    Attributes
    ----------
    desc : str
        What is running, e.g. ``"IVIM fit"``.
    done : int
        Units finished so far.
    total : int or None
        Units in all; None when unknown (draw a spinner).
    unit : str
        What one unit is (``"chunk"``, ``"subject"``, ``"slice"`` ...).
    elapsed_s : float
        Seconds since the task started.
    finished : bool
        True on the last update of the task.

    Examples
    --------
    >>> u = ProgressUpdate("ADC fit", 3, 12, "chunk", 1.5)
    >>> u.fraction
    0.25
    """

    desc: str
    done: int
    total: int | None
    unit: str = "item"
    elapsed_s: float = 0.0
    finished: bool = False

    @property
    def fraction(self) -> float | None:
        """``done / total`` in [0, 1], or None when the total is unknown."""
        if not self.total:
            return None
        return min(1.0, max(0.0, self.done / self.total))


class Task:
    """A running task handed out by :func:`report`; call :meth:`advance` as work completes.

    Examples
    --------
    >>> seen = []
    >>> with report(2, "demo", callback=seen.append) as task:
    ...     task.advance()
    ...     task.advance()
    >>> [(u.done, u.finished) for u in seen]
    [(0, False), (1, False), (2, False), (2, True)]
    """

    def __init__(self, desc: str, total: int | None, unit: str,
                 callback: Callable[[ProgressUpdate], None] | None) -> None:
        self.desc, self.total, self.unit = desc, total, unit
        self.done = 0
        self._t0 = time.perf_counter()
        self._sinks = ([callback] if callback is not None else []) + list(_LISTENERS)

    def _emit(self, finished: bool = False) -> None:
        if not self._sinks:
            return
        update = ProgressUpdate(self.desc, self.done, self.total, self.unit,
                                time.perf_counter() - self._t0, finished)
        for sink in list(self._sinks):
            try:
                sink(update)
            except Exception:  # a broken display must never break a computation
                logger.exception("progress listener %r failed; not calling it again for %r", sink, self.desc)
                self._sinks.remove(sink)

    def advance(self, n: int = 1) -> None:
        """Mark `n` more units done and tell the listeners."""
        self.done += n
        self._emit()


@contextmanager
def report(total: int | None, desc: str, *, unit: str = "item",
           callback: Callable[[ProgressUpdate], None] | None = None) -> Iterator[Task]:
    """Report the progress of a task of `total` units (None: unknown) to the listeners.

    Parameters
    ----------
    total : int or None
        Number of units (chunks, slices, subjects); None when unknown.
    desc : str
        Short description shown to the user, e.g. ``"ADC fit"``.
    unit : str, optional
        Name of one unit.
    callback : callable, optional
        Also called with every :class:`ProgressUpdate` (the ``progress=`` keyword of a library
        function, passed on).

    Yields
    ------
    Task
        Call ``task.advance()`` after each unit.

    Examples
    --------
    >>> seen = []
    >>> with listen(seen.append):
    ...     with report(3, "fit", unit="chunk") as task:
    ...         for _ in range(3):
    ...             task.advance()
    >>> [u.done for u in seen], seen[-1].finished
    ([0, 1, 2, 3, 3], True)
    """
    task = Task(desc, total, unit, callback)
    task._emit()
    try:
        yield task
    finally:
        task._emit(finished=True)


def track(iterable: Iterable[T], desc: str, *, total: int | None = None, unit: str = "item",
          callback: Callable[[ProgressUpdate], None] | None = None) -> Iterator[T]:
    """Yield the items of `iterable`, reporting one unit of progress after each.

    Parameters
    ----------
    iterable : iterable
    desc, unit, callback
        As in :func:`report`.
    total : int, optional
        Number of items (default: ``len(iterable)`` when it has one).

    Examples
    --------
    >>> seen = []
    >>> with listen(seen.append):
    ...     squares = [i * i for i in track(range(4), "squares")]
    >>> squares, seen[-2].done, seen[-2].total
    ([0, 1, 4, 9], 4, 4)
    """
    if total is None:
        try:
            total = len(iterable)  # type: ignore[arg-type]
        except TypeError:
            total = None
    with report(total, desc, unit=unit, callback=callback) as task:
        for item in iterable:
            yield item
            task.advance()


@contextmanager
def listen(listener: Callable[[ProgressUpdate], None]) -> Iterator[None]:
    """Send the updates of every task started inside the block to `listener`.

    Parameters
    ----------
    listener : callable
        Takes one :class:`ProgressUpdate`; quick, never raising.

    Examples
    --------
    >>> seen = []
    >>> with listen(seen.append):
    ...     with report(None, "loading") as task:
    ...         pass
    >>> [(u.desc, u.total, u.finished) for u in seen]
    [('loading', None, False), ('loading', None, True)]
    """
    with _LOCK:
        _LISTENERS.append(listener)
    try:
        yield
    finally:
        with _LOCK:
            if listener in _LISTENERS:
                _LISTENERS.remove(listener)
