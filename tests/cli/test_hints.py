"""Every option a message names exists (issue #18: no hint names an option that does not exist).

The test reads the package's source with :mod:`ast` and collects every option-like token
(``--xxx``) from its string literals — error messages, warnings, log messages, hints, help texts;
docstrings excluded — and checks each against the real argument parser: on the subcommand the
text names (``dwi-toolkit run ... --bvals`` or ``run --bvals``), otherwise on some subcommand.
Options of other programs named in a message (``gdcmconv --raw``) are listed in `EXTERNAL`.
"""

from __future__ import annotations

import argparse
import ast
import re
from pathlib import Path

import pytest

import dwi_toolkit
from dwi_toolkit.cli.main import build_parser

PKG = Path(dwi_toolkit.__file__).parent
OPTION = re.compile(r"(?<![\w-])--[a-z][a-z0-9_]*(?:-[a-z0-9_]+)*")
#: options of other programs: (option, word that must precede it in the same text)
EXTERNAL = {("--raw", "gdcmconv")}


def _parsers() -> dict[str, argparse.ArgumentParser]:
    """Every (sub)command's parser by its name path: ``""``, ``"run"``, ``"roi stats"`` ..."""
    out: dict[str, argparse.ArgumentParser] = {}

    def walk(p: argparse.ArgumentParser, name: str) -> None:
        out[name] = p
        for a in p._actions:
            if isinstance(a, argparse._SubParsersAction):
                for child_name, child in a.choices.items():
                    walk(child, f"{name} {child_name}".strip())

    walk(build_parser(), "")
    return out


def _options(p: argparse.ArgumentParser) -> set[str]:
    return {o for a in p._actions for o in a.option_strings}


def _string_literals(path: Path):
    """(line, text) of every string literal of a module except docstrings (f-strings joined)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstrings = set()  # and the option names of add_argument(...) calls: declarations, not hints
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "add_argument":
            docstrings.update(id(a) for a in node.args)
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and body \
                and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
            docstrings.add(id(body[0].value))
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            yield node.lineno, "".join(v.value if isinstance(v, ast.Constant) else "{}" for v in node.values)
            docstrings.update(id(v) for v in node.values)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            yield node.lineno, node.value


def hints() -> list[tuple[str, int, str, str | None, str]]:
    """(file, line, option, subcommand named before it or None, text) for the whole package."""
    commands = sorted((n for n in _parsers() if n), key=len, reverse=True)
    found = []
    for path in sorted(PKG.rglob("*.py")):
        rel = path.relative_to(PKG.parent).as_posix()
        for line, text in _string_literals(path):
            for m in OPTION.finditer(text):
                before = text[: m.start()]
                clause = re.split(r"[.;:(]\s", before)[-1]  # the sentence/clause holding the option
                named = None
                for cmd in commands:
                    if re.search(rf"(?:dwi-toolkit\s+{re.escape(cmd)}\b|^\s*{re.escape(cmd)}\s+(?:\S+\s+)*$)", clause):
                        named = cmd
                        break
                found.append((rel, line, m.group(), named, text))
    return found


def test_the_walker_finds_the_known_hints():
    found = {(f, o) for f, _, o, _, _ in hints()}
    assert ("dwi_toolkit/io/dicom/selection.py", "--series-uid") in found
    assert ("dwi_toolkit/io/nifti.py", "--bvals") in found
    assert len(found) > 20


def test_the_walker_reads_the_command_a_hint_names():
    parsers = _parsers()
    assert "roi stats" in parsers and "run" in parsers
    text = "the cohort failed; re-run with dwi-toolkit run --bvals b.txt"
    clause = re.split(r"[.;:(]\s", text[: text.index("--bvals")])[-1]
    assert re.search(r"dwi-toolkit\s+run\b", clause)
    assert "--bvals" not in _options(parsers["run"])  # such a hint would fail the test below


def test_every_option_named_in_a_message_exists():
    parsers = _parsers()
    everywhere = set().union(*(_options(p) for p in parsers.values()))
    wrong = []
    for rel, line, opt, named, text in hints():
        if any(opt == o and w in text[: text.find(opt)] for o, w in EXTERNAL):
            continue
        if named is not None:
            if opt not in _options(parsers[named]):
                wrong.append(f"{rel}:{line}: {opt} is not an option of 'dwi-toolkit {named}': {text[:120]!r}")
        elif opt not in everywhere:
            wrong.append(f"{rel}:{line}: {opt} is not an option of any subcommand: {text[:120]!r}")
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("external", sorted(EXTERNAL))
def test_external_options_are_still_named(external):
    opt, word = external
    assert any(o == opt and word in t for _, _, o, _, t in hints()), f"stale EXTERNAL entry {external}"
