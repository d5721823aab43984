"""Data-quality checks: gradient-table checks and QC flags (layer L3: may import core, models, roi)."""
