"""Every shipped notebook runs in a fresh Jupyter kernel and shows its figures as images, with no
``%matplotlib`` magic (issue 17: figures used to come out as ``<Figure size ...>`` text)."""

import os
import re
from pathlib import Path

import pytest

from .conftest import REPO

NOTEBOOKS = sorted((REPO / "docs" / "notebooks").glob("*.ipynb"))
FIGURE_TEXT = re.compile(r"^<(?:matplotlib\.figure\.)?Figure size [\d.]+x[\d.]+ with \d+ Axes>$")


def _figure_outputs(nb):
    """(images, figures shown as text only) among the outputs of an executed notebook."""
    images = text_only = 0
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            if "image/png" in data or "image/svg+xml" in data:
                images += 1
            elif FIGURE_TEXT.match(str(data.get("text/plain", "")).strip()):
                text_only += 1
    return images, text_only


def _expected_figures(nb) -> int:
    """Figures a notebook makes: code cells whose last line shows a figure or image (a figure
    function, a ``fig`` or ``.figure`` expression, or ``Image(...)``)."""
    shown = re.compile(r"(montage|_figure|Image)\(|^(fig|ed\.figure)$")
    count = 0
    for cell in nb.cells:
        lines = [ln for ln in cell.source.strip().splitlines() if ln and not ln.startswith((" ", "#"))]
        if cell.cell_type == "code" and lines and shown.search(lines[-1].split("#")[0].strip()):
            count += 1
    return count


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_and_shows_every_figure(path: Path, tmp_path, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    monkeypatch.delenv("MPLBACKEND", raising=False)  # the kernel's own default, as for a user
    monkeypatch.setenv("PYDEVD_DISABLE_FILE_VALIDATION", "1")
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert "%matplotlib" not in cell.source, f"{path.name}: the notebooks must not need magic"
    nbclient.NotebookClient(nb, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}}).execute()
    images, text_only = _figure_outputs(nb)
    assert text_only == 0, f"{path.name}: {text_only} figure(s) shown as text instead of an image"
    assert images == _expected_figures(nb) > 0, f"{path.name}: {images} images"
