"""Generate the Markdown CLI reference (docs/cli.md) from the argument parser."""

from __future__ import annotations

from .main import _subparsers, build_parser

HEADER = r"""# Command-line reference

Generated from the argument parser by `python -m dwi_toolkit.cli.docgen > docs/cli.md`
(a test checks it is current). Units: b-values s/mm², ADC mm²/s (figures in ×10⁻³ mm²/s),
coordinates RAS+ mm.

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


CONVENTIONS = """## Command-line conventions

Every subcommand follows these rules (`dwi_toolkit/cli/main.py`; tests in `tests/cli/`).

**Exit codes** (also at the end of every `--help`):

| code | meaning |
|---|---|
{exit_rows}

**Output streams.** Results go to stdout, so `dwi-toolkit info x.nii.gz --json | jq .shells`
and `dwi-toolkit convert --list DIR | head` work; a reader that stops early (`| head -n 0`) ends
the command quietly with exit code 0. Messages, warnings and progress go to stderr.

**Errors** are one line, `dwi-toolkit COMMAND: error: ...`, saying what was wrong and what to
do, and naming the values you gave (`(you gave --b-range 700 -)`); `--debug` shows the traceback.
Every option a message suggests exists on the command it names (a test walks every message of
the package against this parser).

**Progress.** A command that runs longer than about a second draws one line on stderr — a bar
when the library reports how far it is (`[#####....] 3/10 chunk  ADC fit  12 s`), else a
spinner with the current step and the elapsed time. It is drawn only when stderr is a terminal,
never with `-q/--quiet` or `--debug`, and is erased before any other output, so logs, pipes and
redirected output never contain it. `run` shows subjects done / total and the running step.

**Every subcommand** takes `--version`, `-v/--verbose`, `-q/--quiet` (twice: also no summary
table from `run`) and `--debug`.

**DICOM folders with several series.** `info` and `convert` list every series found — number,
description, vendor, role (raw DWI, trace, ADC, FA), b-values, volumes, the vendor rule the
diffusion encoding was read with, and the SeriesInstanceUID — mark the one used with `*`, and
say how to choose another (`--series-uid UID`; `convert --all` converts every raw DWI series).

**Study folders.** `run` follows symlinked subject folders and symlinked `dwi/` or DICOM folders
inside a subject; a link that leads back into a folder already visited (a loop) is not followed
again and is reported as a warning.
"""


def conventions() -> str:
    """The "Command-line conventions" section (exit codes from :data:`~dwi_toolkit.cli.main.EXIT_CODES`)."""
    from .main import EXIT_CODES

    rows = "\n".join(f"| {code} | {text} |" for code, text in EXIT_CODES.items())
    return CONVENTIONS.format(exit_rows=rows)


def render() -> str:
    """The whole CLI reference as Markdown."""
    parser = build_parser()
    parts = [HEADER, conventions(), "## dwi-toolkit\n", "```text\n" + parser.format_help() + "```\n"]
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
