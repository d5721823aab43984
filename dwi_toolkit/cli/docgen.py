"""Generate the Markdown CLI reference (docs/cli.md) from the argument parser."""

from __future__ import annotations

import argparse

from .main import build_parser

HEADER = r"""# Command-line reference

Generated from the argument parser by `python -m dwi_toolkit.cli.docgen > docs/cli.md`
(a test checks it is current). Exit codes: 0 success, 1 finished with failures (e.g. a subject of a
batch), 2 usage, input or configuration error (one line on stderr; `--debug` shows the traceback).
Units: b-values s/mm², ADC mm²/s (figures in ×10⁻³ mm²/s), coordinates RAS+ mm.

One spelling for one idea in every subcommand (declared once, in `dwi_toolkit/cli/_options.py`):

| idea | option |
|---|---|
| output folder or file | `-o/--out` |
| skip figures | `--no-figures` |
| analysis mask | `--mask auto\|none\|otsu\|PATH` (default `auto`: the body above the background on the mean b=0 image; recorded in the outputs) |
| b-value range | `--b-range B_MIN B_MAX` in s/mm² (`-` for an open end) |
| fit method | `--method` (case-insensitive) |
| input series | `PATH`, `--bvals`, `--bvecs`, `--series-uid`, `--b0-threshold` |

Old spellings (`--out-dir`, `--outdir`, `--output`, `--no-figure`, `--no-png`, `--b-min`,
`--b-max`, `--auto-mask`) still work for this release, hidden from `--help`, with a deprecation
message on stderr.
"""


def _subparsers(parser: argparse.ArgumentParser):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action.choices
    return {}


def render() -> str:
    """The whole CLI reference as Markdown."""
    parser = build_parser()
    parts = [HEADER, "## dwi-toolkit\n", "```text\n" + parser.format_help() + "```\n"]
    for name, sub in _subparsers(parser).items():
        parts.append(f"## dwi-toolkit {name}\n")
        parts.append("```text\n" + sub.format_help() + "```\n")
        for sname, ssub in _subparsers(sub).items():
            parts.append(f"### dwi-toolkit {name} {sname}\n")
            parts.append("```text\n" + ssub.format_help() + "```\n")
    return "\n".join(parts)


if __name__ == "__main__":  # pragma: no cover
    import sys

    sys.stdout.write(render())
