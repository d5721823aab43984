"""Clinical interpretation: indication and entrapment assessments (layer L4; no file I/O)."""
