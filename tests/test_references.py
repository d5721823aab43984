"""Every section of the references page cited anywhere exists (docs/references.md, references.SECTIONS)."""

import re
from pathlib import Path

import pytest

from dwi_toolkit.references import SECTIONS, anchor, cite

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "references.md"
#: "clinical-reference.md §2.2, §2.8", "clinical-reference §3.10-3.11", "References §2.8 and §4"
CITATION = re.compile(r"(?:clinical-reference(?:\.md)?`?|References)\s*"
                      r"(§\s*\d+(?:\.\d+)?(?:\s*(?:,|and|–|-)\s*§?\s*\d+(?:\.\d+)?)*)")
NUMBER = re.compile(r"\d+(?:\.\d+)?")


def _cited_sections():
    """(file, section) for every section cited in the package, docs, notebooks and README."""
    files = [ROOT / "README.md", *(ROOT / "docs").rglob("*.md"), *(ROOT / "docs" / "notebooks").glob("*.ipynb"),
             *(ROOT / "sample_data").glob("*.md"), *(ROOT / "pipelines").glob("*.toml"),
             *(p for ext in ("py", "json", "toml", "html") for p in (ROOT / "dwi_toolkit").rglob(f"*.{ext}"))]
    for path in files:
        if "_build" in path.parts or "_autosummary" in path.parts:
            continue
        for match in CITATION.finditer(path.read_text(encoding="utf-8")):
            for num in NUMBER.findall(match.group(1)):
                yield path.relative_to(ROOT).as_posix(), num


def _page_anchors():
    return set(re.findall(r"^\((ref-[\d-]+)\)=$", PAGE.read_text(encoding="utf-8"), flags=re.M))


def test_page_and_index_agree():
    """The section index in code is exactly the anchors and headings of the page, in order."""
    text = PAGE.read_text(encoding="utf-8")
    headings = re.findall(r"^\((ref-[\d-]+)\)=\n#+ §([\d.]+) (.+?)(?: \[.*\])?$", text, flags=re.M)
    assert [(a, n) for a, n, _ in headings] == [(anchor(n), n) for n in SECTIONS]
    for _, num, title in headings:
        assert title == SECTIONS[num], num


def test_every_cited_section_exists():
    cited = list(_cited_sections())
    assert len(cited) > 20, "the citation pattern no longer finds the citations"
    anchors = _page_anchors()
    missing = [(f, n) for f, n in cited if n not in SECTIONS or anchor(n) not in anchors]
    assert not missing, f"cited sections absent from docs/references.md: {missing}"


def test_cite_text_and_unknown_section():
    assert cite("§2.8") == "dwi_toolkit References §2.8 (docs/references.md#ref-2-8)"
    assert anchor("3.10") == "ref-3-10"
    with pytest.raises(KeyError, match="no section §9.9"):
        cite("9.9")
