"""Every public callable has a numpydoc docstring with an ``Examples`` section (issue 8).

"Public" means: named in the ``__all__`` of a public module of the package (no underscore in its
dotted path; ``cli.commands`` modules are argparse plumbing documented by docs/cli.md) and
defined there, or exported at the top level through ``dwi_toolkit._LAZY``. The examples run as
doctests (pytest collects them with ``--doctest-modules``), so they cannot rot.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import pkgutil

import pytest

import dwi_toolkit

#: Public callables that cannot have a cheap, self-contained example — keep this list short and
#: say why. Names are ``module.qualname``.
EXEMPT = {
    # an interactive matplotlib window driven by clicks; its headless use is shown in
    # docs/notebooks/02_nerve_root_rois.ipynb (executed by the docs build)
    "dwi_toolkit.viz.roi_editor.RoiEditor": "interactive window",
    # takes the runner's private per-subject task object; run_pipeline's example covers it
    "dwi_toolkit.pipeline.runner.execute_subject": "internal task object",
}


def _public_modules():
    for info in pkgutil.walk_packages(dwi_toolkit.__path__, "dwi_toolkit."):
        parts = info.name.split(".")[1:]
        if any(p.startswith("_") for p in parts) or info.name.startswith("dwi_toolkit.cli.commands"):
            continue
        yield importlib.import_module(info.name)


@functools.lru_cache(maxsize=1)
def public_callables() -> dict[str, object]:
    """``module.qualname`` → object for every public callable (each object once)."""
    out: dict[str, object] = {}
    seen: set[int] = set()

    def add(obj, where):
        if not callable(obj) or id(obj) in seen:
            return
        seen.add(id(obj))
        out[f"{getattr(obj, '__module__', where)}.{getattr(obj, '__qualname__', '?')}"] = obj

    for mod in _public_modules():
        for name in getattr(mod, "__all__", ()):
            obj = getattr(mod, name)
            if getattr(obj, "__module__", None) == mod.__name__:
                add(obj, mod.__name__)
    for name in dwi_toolkit._LAZY:
        add(getattr(dwi_toolkit, name), dwi_toolkit._LAZY[name])
    return out


def test_the_enumeration_finds_the_main_api():
    names = public_callables()
    for expected in ("dwi_toolkit.models.adc.fit_adc", "dwi_toolkit.io.loading.load_dwi",
                     "dwi_toolkit.reporting.report.Report", "dwi_toolkit.pipeline.runner.run_pipeline",
                     "dwi_toolkit.roi.model.RoiSet", "dwi_toolkit.errors.RoiError"):
        assert expected in names
    assert len(names) > 150


def test_exemptions_are_real_and_few():
    names = public_callables()
    assert len(EXEMPT) <= 5
    for name in EXEMPT:
        assert name in names, f"stale exemption {name}"


@pytest.mark.parametrize("name", sorted(public_callables()))
def test_public_callable_has_docstring_with_examples(name):
    if name in EXEMPT:
        pytest.skip(f"exempt: {EXEMPT[name]}")
    obj = public_callables()[name]
    doc = inspect.getdoc(obj) or ""
    assert doc.strip(), f"{name} has no docstring"
    assert "Examples\n--------\n" in doc and ">>>" in doc.split("Examples\n--------\n", 1)[1], (
        f"{name} has no numpydoc 'Examples' section with a doctest; add a cheap, deterministic example "
        "(tiny arrays or make_lumbar_phantom with a tiny shape)")
