"""docs/ stays current with the code."""

import argparse
import os
import subprocess
import sys

import pytest

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


def test_every_page_and_notebook_is_in_a_toctree():
    """A page missing from every toctree is unreachable (Sphinx only warns for .md files it builds)."""
    docs = REPO / "docs"
    listed = (docs / "index.md").read_text() + (docs / "notebooks" / "index.md").read_text()
    for page in docs.glob("*.md"):
        if page.stem != "index":
            assert f"\n{page.stem}\n" in listed, f"docs/{page.name} is in no toctree"
    for nb in (docs / "notebooks").glob("*.ipynb"):
        assert f"\n{nb.stem}\n" in listed, f"notebook {nb.name} is in no toctree"


def test_docs_pages_exist():
    for page in ("user-guide.md", "cli.md", "file-formats.md", "architecture.md", "benchmarks.md",
                 "walkthrough.md", "dask.md", "changelog.md"):
        assert (REPO / "docs" / page).is_file(), page


@pytest.mark.slow
def test_docs_site_builds_and_notebooks_run(tmp_path):
    """`make docs`: the Sphinx site builds offline with warnings as errors, executing every
    example notebook (a failing notebook fails this test)."""
    pytest.importorskip("sphinx")
    pytest.importorskip("myst_nb")
    pytest.importorskip("ipykernel")
    env = dict(os.environ, MPLBACKEND="Agg", PYDEVD_DISABLE_FILE_VALIDATION="1")
    res = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html",
         str(REPO / "docs"), str(tmp_path / "html")],
        capture_output=True, text=True, env=env, timeout=1200,
    )
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-4000:]
    notebooks = sorted(p.stem for p in (REPO / "docs" / "notebooks").glob("*.ipynb"))
    assert len(notebooks) >= 5
    for name in notebooks:
        assert (tmp_path / "html" / "notebooks" / f"{name}.html").is_file(), name
    for page in ("walkthrough", "dask", "api", "cli", "changelog"):
        assert (tmp_path / "html" / f"{page}.html").is_file(), page
