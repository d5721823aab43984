"""Sphinx configuration of the dwi_toolkit documentation site.

Built with ``make docs`` (``sphinx-build -W``: warnings are errors), entirely offline: Markdown
pages through MyST, the API reference from numpydoc docstrings (autodoc + autosummary + napoleon),
and the example notebooks in ``docs/notebooks/`` executed at build time by myst-nb (an error in a
notebook fails the build, and the test suite runs this build).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
os.environ.setdefault("MPLBACKEND", "Agg")
# notebook kernels inherit the environment: make sure they import this checkout's package
os.environ["PYTHONPATH"] = os.pathsep.join(
    [str(HERE.parent), *filter(None, [os.environ.get("PYTHONPATH")])]
)

import dwi_toolkit  # noqa: E402

project = "dwi_toolkit"
author = "dwi_toolkit developers"
copyright = "2026, dwi_toolkit developers"
version = release = dwi_toolkit.__version__

extensions = [
    "myst_nb",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
]
source_suffix = {".rst": "restructuredtext", ".md": "myst-nb", ".ipynb": "myst-nb"}
exclude_patterns = ["_build", "**.ipynb_checkpoints", "images/README.md"]
root_doc = "index"

myst_enable_extensions = ["colon_fence", "dollarmath"]
myst_heading_anchors = 3
suppress_warnings = ["myst.header", "ref.python"]  # "ndarray of shape (X, Y, Z)" is not a cross-reference

# notebooks: executed at build time, from the docs folder, failing the build on any error
nb_execution_mode = "force"
nb_execution_timeout = 600
nb_execution_raise_on_error = True
nb_execution_show_tb = True

autosummary_generate = True
autodoc_default_options = {"members": True, "show-inheritance": False}
autodoc_typehints = "description"
autodoc_member_order = "bysource"
napoleon_google_docstring = False
napoleon_numpy_docstring = True
napoleon_use_rtype = False

html_theme = "furo" if __import__("importlib.util").util.find_spec("furo") else "alabaster"
html_title = f"dwi_toolkit {release}"
html_static_path: list[str] = []
