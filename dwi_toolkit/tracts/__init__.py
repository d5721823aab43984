"""Nerve-root tractography and along-root profiles (layer L3: may import core, models, roi)."""
