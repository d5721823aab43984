"""Interactive tools (matplotlib): the nerve-root ROI editor."""
