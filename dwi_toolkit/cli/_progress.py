"""The command line's progress line on stderr (private to the CLI).

One line, redrawn in place at most ten times a second::

    [#########...................] 3/10 chunk  ADC fit  12.4 s
    | fitting ADC (wls, b range (100.0, 800.0), mask auto)  3.1 s

It shows, from the most to the least specific: the innermost running task reported by the library
through :mod:`dwi_toolkit.core.progress` (a bar when its total is known), else the last INFO log
message of the library (what it is doing now), else the command name; always with the elapsed
time. It appears only after the command has run for `delay` seconds (quick commands draw
nothing), only when stderr is a terminal, and never with ``--quiet``. Log records and whatever
the command prints on the same terminal first erase the line, so nothing is garbled.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from typing import IO, Any

_SPIN = "|/-\\"
#: Seconds a command runs before the line appears (quick commands draw nothing).
DELAY = 1.0
_CURRENT: list["ProgressLine"] = []


def current() -> ProgressLine | None:
    """The progress line of the running command, or None (not a terminal, ``--quiet``)."""
    return _CURRENT[-1] if _CURRENT else None


class ProgressLine:
    """Draws the progress line on `stream` from library progress updates and log records."""

    def __init__(self, stream: IO[str], label: str, *, delay: float = 1.0, width: int = 100,
                 interval: float = 0.1) -> None:
        self.stream, self.label, self.delay, self.width, self.interval = stream, label, delay, width, interval
        self._tasks: dict[int, Any] = {}  # id(task desc, start) -> latest ProgressUpdate, innermost last
        self._message = ""
        self._t0 = time.monotonic()
        self._drawn = False
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._tick = 0

    # -- inputs ----------------------------------------------------------------------------
    def update(self, u) -> None:
        """Listener of :func:`dwi_toolkit.core.progress.listen`."""
        key = hash((u.desc, u.total, u.unit))
        with self._lock:
            if u.finished:
                self._tasks.pop(key, None)
            else:
                self._tasks[key] = u

    def status(self, text: str) -> None:
        """Set the activity text (e.g. the runner's ``sub-02: fit_adc``)."""
        with self._lock:
            self._message = text

    # -- drawing ---------------------------------------------------------------------------
    def text(self) -> str:
        """The line as it would be drawn now (without the carriage return)."""
        elapsed = time.monotonic() - self._t0
        with self._lock:
            task = next(reversed(self._tasks.values()), None)
            message = self._message
        if task is not None and task.fraction is not None:
            fill = int(round(28 * task.fraction))
            head = f"[{'#' * fill}{'.' * (28 - fill)}] {task.done}/{task.total} {task.unit}  {task.desc}"
            if message:
                head += f"  ({message})"
        else:
            what = task.desc if task is not None else message or self.label
            head = f"{_SPIN[self._tick % len(_SPIN)]} {what}"
        tail = f"  {elapsed:.0f} s"
        return head[: self.width - 1 - len(tail)] + tail

    def draw(self) -> None:
        """Redraw the line (once `delay` seconds have passed)."""
        if time.monotonic() - self._t0 < self.delay:
            return
        with self._lock:
            self._tick += 1
            line = self.text()
            try:
                self.stream.write("\r" + line.ljust(self.width - 1))
                self.stream.flush()
            except (OSError, ValueError):  # the terminal went away: stop drawing
                self._stop.set()
                return
            self._drawn = True

    def clear(self) -> None:
        """Erase the line (before other output goes to the terminal)."""
        with self._lock:
            if self._drawn:
                try:
                    self.stream.write("\r" + " " * (self.width - 1) + "\r")
                    self.stream.flush()
                except (OSError, ValueError):
                    pass
                self._drawn = False

    # -- life cycle ------------------------------------------------------------------------
    def start(self) -> ProgressLine:
        """Start redrawing in a background thread."""
        def loop() -> None:
            while not self._stop.wait(self.interval):
                self.draw()

        self._thread = threading.Thread(target=loop, name="dwi-toolkit-progress", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop redrawing and erase the line."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=1.0)
        self.clear()


class _ClearingStream:
    """A text stream wrapper that erases the progress line before each write."""

    def __init__(self, stream: IO[str], line: ProgressLine) -> None:
        self._stream, self._line = stream, line

    def write(self, text: str) -> int:
        self._line.clear()
        return self._stream.write(text)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


class _ActivityHandler(logging.Handler):
    """Shows each INFO record of the library as the activity of the progress line."""

    def __init__(self, line: ProgressLine) -> None:
        super().__init__(logging.INFO)
        self.line = line

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.line.status(record.getMessage().splitlines()[0] if record.getMessage() else "")
        except Exception:  # pragma: no cover - logging must never raise
            self.handleError(record)


def wanted(args: Any, stream: IO[str] | None = None) -> bool:
    """Progress is drawn when stderr is a terminal and neither ``--quiet`` nor ``--debug`` is given."""
    stream = sys.stderr if stream is None else stream
    try:
        tty = bool(stream.isatty())
    except (AttributeError, ValueError):
        tty = False
    return tty and getattr(args, "quiet", 0) == 0 and not getattr(args, "debug", False)


class progress_line:
    """Context manager of the CLI: the progress line for one command (or nothing when not `enabled`).

    While active: library progress goes to the line, library INFO records become its activity
    text, and stdout/stderr writes erase it first. Yields the :class:`ProgressLine` (or None).
    """

    def __init__(self, label: str, *, enabled: bool, delay: float | None = None) -> None:
        self.label, self.enabled, self.delay = label, enabled, delay
        self.line: ProgressLine | None = None

    def __enter__(self) -> ProgressLine | None:
        if not self.enabled:
            return None
        from ..core.progress import listen

        self._saved = (sys.stdout, sys.stderr)
        self.line = ProgressLine(sys.stderr, self.label, delay=DELAY if self.delay is None else self.delay)
        self._listen = listen(self.line.update)
        self._listen.__enter__()
        self._handler = _ActivityHandler(self.line)
        log = logging.getLogger("dwi_toolkit")
        self._level = log.level
        log.addHandler(self._handler)
        if log.getEffectiveLevel() > logging.INFO:
            log.setLevel(logging.INFO)  # the console handler keeps its own (higher) level
        sys.stdout = _ClearingStream(sys.stdout, self.line)  # type: ignore[assignment]
        sys.stderr = _ClearingStream(sys.stderr, self.line)  # type: ignore[assignment]
        self._streams = [(h, h.stream) for h in log.handlers if getattr(h, "_dwi_cli", False)]
        for h, _ in self._streams:  # the CLI's console handler erases the line before a record
            h.stream = sys.stderr
        _CURRENT.append(self.line)
        return self.line.start()

    def __exit__(self, *exc: Any) -> None:
        if self.line is None:
            return
        self.line.stop()
        _CURRENT.remove(self.line)
        sys.stdout, sys.stderr = self._saved
        for h, old in self._streams:
            h.stream = old
        log = logging.getLogger("dwi_toolkit")
        log.removeHandler(self._handler)
        log.setLevel(self._level)
        self._listen.__exit__(None, None, None)
