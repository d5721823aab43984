"""Entry point of the ``dwi-toolkit`` command.

Subcommands live in :mod:`dwi_toolkit.cli.commands`, one module each, discovered at start-up.
Each module defines ``add_parser(subparsers)`` which registers the subcommand and sets
``func=handler`` on it; a handler takes the parsed arguments and returns an exit code.
Command modules import heavy libraries (dipy, matplotlib, scipy.optimize, pydicom) inside their
handlers, never at module level, so ``--help`` and ``info`` start fast.

Exit codes: 0 success, 1 the run finished but something failed (e.g. a subject in a batch),
2 usage, input or configuration error.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import pkgutil
import sys
from collections.abc import Sequence

from .._version import __version__
from ..errors import DwiToolkitError

__all__ = ["build_parser", "main"]

logger = logging.getLogger("dwi_toolkit.cli")


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
    parser.add_argument("--version", action="version", version=f"dwi_toolkit {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    from . import commands

    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{commands.__name__}.{info.name}")
        module.add_parser(sub, add_common_args)
    return parser


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
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    from ._options import check_required

    missing = check_required(args)
    if missing:
        print(missing, file=sys.stderr)
        return 2
    debug = bool(getattr(args, "debug", False))
    _configure_logging(getattr(args, "verbose", 0) - getattr(args, "quiet", 0), debug)
    import warnings

    warnings.simplefilter("default")
    logging.captureWarnings(True)
    try:
        return int(args.func(args) or 0)
    except DwiToolkitError as err:
        if debug:
            raise
        print(f"dwi-toolkit {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except OSError as err:
        if debug:
            raise
        print(f"dwi-toolkit {args.command}: error: {err}", file=sys.stderr)
        return 2
