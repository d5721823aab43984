"""Per-subject and batch runs over the public API (layer L6)."""
