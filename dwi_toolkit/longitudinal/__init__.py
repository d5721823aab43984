"""Longitudinal comparison of sessions and repeatability (layer L4: may import L0–L3, io, clinical)."""
