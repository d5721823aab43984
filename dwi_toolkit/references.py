"""Citations of the clinical and technical references page (``docs/references.md``).

Reports, docstrings and documentation cite the references that ship with the documentation of
the installed version as "dwi_toolkit References §N.M"; every section has the stable anchor
``ref-N-M`` in ``docs/references.md`` (``references.html#ref-N-M`` in the built site). This module
holds the section index (L0: no imports from the package) so that code can cite a section
without reading the documentation, and a test checks that every section cited anywhere exists.
"""

from __future__ import annotations

__all__ = ["SECTIONS", "anchor", "cite"]

#: Section number → title of ``docs/references.md`` (numbers are stable between versions).
SECTIONS: dict[str, str] = {
    "0": "How to read this page",
    "1": "Diffusion physics, units and formulas",
    "1.1": "Signal model and ADC",
    "1.2": "Units",
    "1.3": "DTI scalars",
    "1.4": "Free-water diffusion and temperature",
    "1.5": "Phantom and multi-centre performance",
    "1.6": "Tissue and fluid values",
    "1.7": "IVIM model and fitting",
    "2": "DWI/DTI of the lumbar nerve roots (L1–S1)",
    "2.1": "Reinhold et al. 2015 — not verified",
    "2.2": "Direction of change",
    "2.3": "Individual studies",
    "2.4": "Normal values along the root",
    "2.5": "Acquisition parameters in the literature",
    "2.6": "ROI positions and measurement",
    "2.7": "Reproducibility",
    "2.8": "Asymmetry indices",
    "3": "Indications for lumbar spine MRI",
    "3.1": "Duration definitions",
    "3.2": "Red flags",
    "3.3": "Cauda equina syndrome signs",
    "3.4": "European guidelines 2006 (COST B13)",
    "3.5": "NICE",
    "3.6": "American College of Physicians",
    "3.7": "ACR Appropriateness Criteria, Low Back Pain",
    "3.8": "Kovacs 2013",
    "3.9": "Dybvik 2023",
    "3.10": "Rule set v1 — the indication classifier",
    "3.11": "Vignette schema",
    "4": "Gaps and open questions",
    "5": "Citation keys",
    "6": "Further references",
}


def _number(section: str | float) -> str:
    """Normalise ``"§2.8"``, ``"2.8"`` or ``2.8`` to ``"2.8"``; raise for an unknown section."""
    num = str(section).strip().lstrip("§").strip()
    if num not in SECTIONS:
        raise KeyError(f"no section §{num} in docs/references.md; known sections: {', '.join(SECTIONS)}")
    return num


def anchor(section: str | float) -> str:
    """HTML anchor of a section of ``docs/references.md`` (``references.html#<anchor>``).

    Parameters
    ----------
    section : str or float
        Section number such as ``"2.8"`` or ``"§3.10"`` (use a string for ``3.10``).

    Returns
    -------
    str
        ``"ref-2-8"`` for section 2.8.

    Raises
    ------
    KeyError
        If the section does not exist.

    Examples
    --------
    >>> anchor("§3.10")
    'ref-3-10'
    """
    return "ref-" + _number(section).replace(".", "-")


def cite(section: str | float) -> str:
    """Standard citation text of a section of the references page, for reports and messages.

    Parameters
    ----------
    section : str or float
        Section number such as ``"2.8"`` or ``"§2.8"``.

    Returns
    -------
    str
        ``"dwi_toolkit References §2.8 (docs/references.md#ref-2-8)"``: readable offline and
        pointing at the anchor of the page in the documentation of the installed version.

    Raises
    ------
    KeyError
        If the section does not exist.

    Examples
    --------
    >>> cite("2.8")
    'dwi_toolkit References §2.8 (docs/references.md#ref-2-8)'
    """
    num = _number(section)
    return f"dwi_toolkit References §{num} (docs/references.md#{anchor(num)})"
