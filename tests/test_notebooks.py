"""Every shipped notebook runs in a fresh Jupyter kernel and shows its figures as images, with no
``%matplotlib`` magic (issue 17: figures used to come out as ``<Figure size ...>`` text)."""

import os
import re
import types
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


def test_inline_figures_registers_png_printer_in_a_kernel(monkeypatch):
    """Fast check of the mechanism (the notebook tests above are slow): in a Jupyter kernel with
    the inline or Agg backend a bare Figure gets a PNG; outside a kernel or with an interactive
    backend nothing is registered."""
    IPython = pytest.importorskip("IPython")
    from IPython.core.formatters import PNGFormatter
    from matplotlib.figure import Figure

    from dwi_toolkit.reporting._display import enable_inline_figures

    png = PNGFormatter()
    shell = types.SimpleNamespace(kernel=object(),
                                  display_formatter=types.SimpleNamespace(formatters={"image/png": png}))
    monkeypatch.setattr(IPython, "get_ipython", lambda: shell)
    fig = Figure(figsize=(1, 1))
    fig.subplots().plot([0, 1])
    monkeypatch.setenv("MPLBACKEND", "module://ipympl.backend_nbagg")
    assert not enable_inline_figures() and png(fig) is None   # interactive widget backend: left alone
    monkeypatch.setenv("MPLBACKEND", "Agg")
    assert enable_inline_figures()
    assert not enable_inline_figures()                         # registered once
    assert png(fig)[:8] == b"\x89PNG\r\n\x1a\n"
    shell.kernel = None                                        # a terminal IPython: nothing to do
    assert not enable_inline_figures()
