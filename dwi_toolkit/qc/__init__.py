"""Data-quality checks: gradient-table checks and QC flags (layer L3: may import core, models, roi)."""
from .flags import QCFlag  # noqa: F401  (QC flags: dwi_toolkit.qc.flags)
