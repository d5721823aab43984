"""Entry point of the ``dwi-toolkit`` command.

Subcommands live in :mod:`dwi_toolkit.cli.commands`, one module each, discovered at start-up.
Each module defines ``add_parser(subparsers)`` which registers the subcommand and sets
``func=handler`` on it; a handler takes the parsed arguments and returns an exit code.
Command modules import heavy libraries (dipy, matplotlib, scipy.optimize, pydicom) inside their
handlers, never at module level, so ``--help`` and ``info`` start fast.

Conventions every subcommand follows (documented in ``docs/cli.md``, "Command-line conventions"):

- exit codes (:data:`EXIT_CODES`): 0 success, 1 the command finished but something failed (a
  subject of a batch, a cross-check that disagrees), 2 usage, input or configuration error,
  3 internal error (a bug: one line asking for a report with ``--debug``), 130 interrupted
  (Ctrl-C); a closed output pipe (``| head``) ends quietly with 0;
- results on stdout, messages and progress on stderr; progress only when stderr is a terminal
  and ``--quiet`` is not given (:mod:`dwi_toolkit.cli._progress`);
- ``--version``, ``-v``/``-q`` and ``--debug`` on every subcommand;
- an error is one line naming the values given (``--debug`` shows the traceback).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import pkgutil
import re
import sys
from collections.abc import Sequence
from typing import Any

from .._version import __version__
from ..errors import DwiToolkitError

__all__ = ["build_parser", "main", "EXIT_CODES"]

logger = logging.getLogger("dwi_toolkit.cli")

#: Exit codes of every subcommand (also in each ``--help`` epilog and in docs/cli.md).
EXIT_CODES = {
    0: "success (also when a reader of the output stops early, such as head)",
    1: "finished, but something failed: a subject of a batch, a cross-check that disagrees",
    2: "usage, input or configuration error (one line on stderr; --debug shows the traceback)",
    3: "internal error: a bug in dwi_toolkit (one line on stderr; please report it with the --debug output)",
    130: "interrupted (Ctrl-C)",
}
EPILOG = "exit codes: " + "; ".join(f"{k} {v}" for k, v in EXIT_CODES.items()) + "."
VERSION = f"dwi_toolkit {__version__}"
#: Commands that wait for the user (a window): no progress line while they run.
INTERACTIVE = frozenset({"roi draw"})
#: Commands whose report figures a worker process draws beside the analysis, forked before anything
#: else is imported (:mod:`dwi_toolkit.reporting.figure_worker`; issue 21: ``analyze`` in a second).
FIGURE_WORKER_COMMANDS = frozenset({"analyze"})


def add_common_args(parser: argparse.ArgumentParser) -> None:
    """Flags every subcommand shares: verbosity and debugging."""
    g = parser.add_argument_group("output control")
    g.add_argument("-v", "--verbose", action="count", default=0, help="more log output (repeatable)")
    g.add_argument("-q", "--quiet", action="count", default=0, help="less log output (repeatable)")
    g.add_argument("--debug", action="store_true", help="show tracebacks for errors")


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser (no side effects; used by the docs' CLI reference).

    Examples
    --------
    >>> p = build_parser()
    >>> p.prog, "analyze" in p.format_help()
    ('dwi-toolkit', True)
    """
    parser = argparse.ArgumentParser(
        prog="dwi-toolkit",
        description=(
            "Diffusion-weighted MRI of the lumbar nerve roots (L1-S1): load DICOM/NIfTI, fit ADC, "
            "measure nerve-root ROIs, compare sides and report. Units: b in s/mm^2, ADC in mm^2/s, "
            "coordinates RAS+ mm."
        ),
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    from . import commands

    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{commands.__name__}.{info.name}")
        module.add_parser(sub, add_common_args)
    _conventions(parser)
    return parser


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _conventions(parser: argparse.ArgumentParser) -> None:
    """``--version`` and the exit-code epilog on the top command and every (nested) subcommand."""
    if "--version" not in parser._option_string_actions:
        parser.add_argument("--version", action="version", version=VERSION,
                            help="print the dwi_toolkit version and exit")
    if not parser.epilog:
        parser.epilog = EPILOG
    for child in _subparsers(parser).values():
        _conventions(child)


def _configure_logging(level_offset: int, debug: bool) -> None:
    level = logging.WARNING - 10 * level_offset
    if debug:
        level = logging.DEBUG
    level = min(max(level, logging.DEBUG), logging.CRITICAL)
    root = logging.getLogger("dwi_toolkit")
    root.setLevel(level)
    if not any(getattr(h, "_dwi_cli", False) for h in root.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
        handler._dwi_cli = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    for h in root.handlers:
        if getattr(h, "_dwi_cli", False):
            h.setLevel(level)
            h.stream = sys.stderr  # the current stderr (main() may run several times in one process)


def _command_parser(parser: argparse.ArgumentParser, args: argparse.Namespace) -> argparse.ArgumentParser:
    """The (sub)parser of the command that was run, e.g. the one of ``roi stats``."""
    current = parser
    while True:
        for action in current._actions:
            if isinstance(action, argparse._SubParsersAction):
                child = action.choices.get(getattr(args, action.dest, None) or "")
                if child is not None:
                    current = child
                    break
        else:
            return current


def _shown(value: Any) -> str:
    items = value if isinstance(value, (list, tuple)) else [value]
    return " ".join("-" if v is None else f"{v:g}" if isinstance(v, float) else str(v) for v in items)


def given_values_note(parser: argparse.ArgumentParser, args: argparse.Namespace, message: str) -> str:
    """The options the user gave that `message` talks about, as they were typed.

    Library messages name parameters (``b_range=(700.0, None)``, ``series_uid``); this adds the
    command-line spelling of each one the user set, so an error always shows the values given.

    Examples
    --------
    >>> p = build_parser()
    >>> a = p.parse_args(["analyze", "x.nii.gz", "--rois", "r.json", "-o", "o", "--b-range", "700", "-"])
    >>> given_values_note(p, a, "after b_range=None the series has [800.0]")
    ' (you gave --b-range 700 -)'
    """
    sub = _command_parser(parser, args)
    notes = []
    for action in sub._actions:
        if not action.option_strings or action.help == argparse.SUPPRESS or action.nargs == 0:
            continue  # positionals, hidden aliases and on/off flags carry no value to show
        value = getattr(args, action.dest, None)
        if value is None or value is False or value == action.default:
            continue
        name = action.dest[4:] if action.dest.startswith("opt_") else action.dest
        spelled = [name, *(o.lstrip("-") for o in action.option_strings if len(o) > 2)]
        if any(re.search(rf"(?<![\w.-]){re.escape(w)}(?![\w-])", message) for w in spelled):
            notes.append(f"{action.option_strings[-1]} {_shown(value)}".rstrip())
    return f" (you gave {', '.join(notes)})" if notes else ""


def _stdout_closed() -> bool:
    """True when stdout is a pipe whose reader has gone (``| head``), or cannot be checked."""
    try:
        import select

        fd = sys.stdout.fileno()
        poller = select.poll()
        poller.register(fd, select.POLLOUT)
        return any(ev & (select.POLLERR | select.POLLHUP) for _, ev in poller.poll(0))
    except (AttributeError, ValueError, OSError, ImportError):
        return True


def _silence_stdout() -> None:
    """Point stdout at devnull so the interpreter's final flush cannot fail again (Python docs,
    "Note on SIGPIPE")."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (AttributeError, ValueError, OSError):
        pass


def _run(parser: argparse.ArgumentParser, args: argparse.Namespace, debug: bool) -> int:
    """Run the handler; map errors to exit codes (see :data:`EXIT_CODES`)."""
    from ._progress import progress_line, wanted

    label = " ".join(str(getattr(args, k)) for k in ("command", "roi_command") if getattr(args, k, None))
    try:
        from ..io._outputs import protect_inputs
        from ._options import input_paths

        with protect_inputs(input_paths(args)), \
                progress_line(f"dwi-toolkit {label}", enabled=wanted(args) and label not in INTERACTIVE):
            code = int(args.func(args) or 0)
        sys.stdout.flush()
        return code
    except BrokenPipeError:
        if debug or not _stdout_closed():
            raise
        _silence_stdout()
        return 0
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (DwiToolkitError, OSError) as err:
        if debug:
            raise
        note = given_values_note(parser, args, str(err))
        print(f"dwi-toolkit {label}: error: {err}{note}", file=sys.stderr)
        return 2
    except Exception as err:  # a bug, not the user's input: one line, exit 3 (--debug: traceback)
        if debug:
            raise
        print(f"dwi-toolkit {label}: internal error: {type(err).__name__}: {err} — please report it "
              "with --debug output", file=sys.stderr)
        return 3


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (never calls ``sys.exit`` itself).

    Examples
    --------
    >>> import contextlib, io
    >>> with contextlib.redirect_stdout(io.StringIO()) as out:
    ...     code = main([])                   # no command: prints the usage, exit code 2
    >>> code, out.getvalue().startswith("usage: dwi-toolkit")
    (2, True)
    """
    try:
        return _main(argv)
    except BrokenPipeError:  # --help, usage or an error message into a closed pipe
        _silence_stdout()
        return 0


def _wants_figure_worker(argv: Sequence[str]) -> bool:
    """The command line runs a command of :data:`FIGURE_WORKER_COMMANDS` with figures (no parsing yet)."""
    words = [a for a in argv if not a.startswith("-")]
    skip = {"--no-figures", "--no-figure", "--no-png", "-h", "--help", "--version"}
    return bool(words) and words[0] in FIGURE_WORKER_COMMANDS and not skip.intersection(argv)


def _main(argv: Sequence[str] | None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not _wants_figure_worker(argv):  # every other command: nothing to fork, nothing to import
        return _parse_and_run(argv)
    from ..reporting.figure_worker import background_figures

    with background_figures():
        return _parse_and_run(argv)


def _parse_and_run(argv: Sequence[str]) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    from ._options import check_outputs, check_required

    missing = check_required(args)
    if missing:
        print(missing, file=sys.stderr)
        return 2
    unsafe = check_outputs(args)  # before anything is written
    if unsafe:
        print(f"{parser.prog} {args.command}: error: {unsafe}", file=sys.stderr)
        return 2
    debug = bool(getattr(args, "debug", False))
    _configure_logging(getattr(args, "verbose", 0) - getattr(args, "quiet", 0), debug)
    import warnings

    warnings.simplefilter("default")
    logging.captureWarnings(True)
    return _run(parser, args, debug)
