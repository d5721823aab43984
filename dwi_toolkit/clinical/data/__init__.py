"""Packaged, versioned tables of the clinical package (read through importlib.resources)."""
