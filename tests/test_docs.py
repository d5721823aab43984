"""docs/ stays current with the code."""

import argparse

from dwi_toolkit.cli.main import build_parser

from .conftest import REPO


def _walk(parser, prefix=""):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield f"{prefix}{name}", sub
                yield from _walk(sub, f"{prefix}{name} ")


def test_cli_reference_is_current():
    """Every subcommand and option is in docs/cli.md (regenerate with
    `COLUMNS=100 python -m dwi_toolkit.cli.docgen > docs/cli.md`)."""
    text = (REPO / "docs" / "cli.md").read_text()
    for name, sub in _walk(build_parser()):
        assert f"## dwi-toolkit {name}\n" in text, f"docs/cli.md lacks `dwi-toolkit {name}`"
        for action in sub._actions:
            for opt in action.option_strings:
                assert opt in text, f"docs/cli.md lacks {opt} of `dwi-toolkit {name}`"


def test_docs_pages_exist():
    for page in ("user-guide.md", "cli.md", "file-formats.md", "architecture.md", "benchmarks.md"):
        assert (REPO / "docs" / page).is_file(), page
