"""Per-subject and batch runs over the public API (layer L6).

- :mod:`~dwi_toolkit.pipeline.spec` — declarative pipeline definitions (TOML), validated up front.
- :mod:`~dwi_toolkit.pipeline.steps` — the registry of named steps (thin adapters over the API);
  :mod:`~dwi_toolkit.pipeline.steps_qc` (``check_gradients``) and
  :mod:`~dwi_toolkit.pipeline.steps_tracts` (``track``) add built-in steps, registered here so
  that every import of the registry sees them.
- :mod:`~dwi_toolkit.pipeline.layout` — finding subjects (folder of subject folders, BIDS).
- :mod:`~dwi_toolkit.pipeline.runner` — running subjects locally or on Dask, resumably.
- :mod:`~dwi_toolkit.pipeline.cohort` — the cohort summary (CSV, indication shares, figure, index);
  :mod:`~dwi_toolkit.pipeline.cohort_trust` — harmonisation across sites and session comparison.
"""

from . import steps_qc, steps_tracts  # noqa: F401  (register the built-in steps beyond steps.py)
