"""Outputs for humans and machines: figures, HTML, JSON/CSV reports (layer L5)."""
