"""Clinical interpretation, kept separate from measurement.

- :mod:`dwi_toolkit.clinical.vocab` — the per-subject clinical input (:class:`ClinicalInput`), its
  vocabularies and validation (dwi_toolkit References §3.10–§3.11).
- :mod:`dwi_toolkit.clinical.indication` — rule set v1 for whether a lumbar spine MRI was
  indicated by guideline criteria (dwi_toolkit References §3.10).
- :mod:`dwi_toolkit.clinical.entrapment` — whether the measured side-to-side difference matches
  the clinical picture, level by level (never a diagnosis; dwi_toolkit References §2.2, §2.8).

This package reads no user files; :func:`dwi_toolkit.io.clinical.load_clinical` does. It reads
only its own packaged, versioned tables (``data/``) through :mod:`importlib.resources`.
"""

from __future__ import annotations

__all__: list[str] = []
