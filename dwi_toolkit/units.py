"""Units used throughout dwi_toolkit and helpers to display them.

Conventions
-----------
- b-values: s/mm².
- ADC, D, D*, MD, AD, RD: mm²/s. Displayed as ×10⁻³ mm²/s (``1 µm²/ms``), see
  dwi_toolkit References §1.2.
- World coordinates: RAS+ millimetres; affines are 4×4 voxel → RAS+ mm (nibabel convention).
"""

from __future__ import annotations

__all__ = [
    "BVAL_UNIT",
    "DIFFUSIVITY_UNIT",
    "DISPLAY_SCALE",
    "DISPLAY_UNIT",
    "DISPLAY_UNIT_PRETTY",
    "SCANNER_ADC_SCALE",
    "to_display",
    "from_display",
]

#: Unit of b-values.
BVAL_UNIT = "s/mm^2"
#: Unit of diffusivities (ADC, D, D*, MD ...).
DIFFUSIVITY_UNIT = "mm^2/s"
#: Multiply a diffusivity in mm²/s by this to display it in ×10⁻³ mm²/s.
DISPLAY_SCALE = 1e3
#: Display unit of diffusivities (ASCII, for files and terminals).
DISPLAY_UNIT = "x10^-3 mm^2/s"
#: Display unit of diffusivities for figures and HTML.
DISPLAY_UNIT_PRETTY = "×10⁻³ mm²/s"
#: Scanner ADC maps are commonly stored as integers in 10⁻⁶ mm²/s (dwi_toolkit References §1.2).
SCANNER_ADC_SCALE = 1e-6


def to_display(value_mm2_s):
    """Convert a diffusivity in mm²/s to the display unit ×10⁻³ mm²/s.

    Examples
    --------
    >>> to_display(1.1e-3)
    1.1
    """
    return value_mm2_s * DISPLAY_SCALE


def from_display(value_display):
    """Convert a diffusivity in ×10⁻³ mm²/s to mm²/s.

    Examples
    --------
    >>> from_display(3.0)
    0.003
    """
    return value_display / DISPLAY_SCALE
