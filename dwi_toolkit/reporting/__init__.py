"""Outputs for humans and machines: figures (matplotlib object API), HTML, JSON and CSV."""
