"""Containers and pure array math: no files, no plots, no logging configuration."""
