"""Outputs for humans and machines: figures, tables, HTML reports."""
