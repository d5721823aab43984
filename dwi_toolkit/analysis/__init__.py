"""Measurement summaries: ROI statistics and side-to-side comparison (layer L3)."""
