"""The ``dwi-toolkit`` command line: a thin layer over the public API."""
