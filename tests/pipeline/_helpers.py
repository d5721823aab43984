"""Small cohorts and pipeline files for the pipeline tests."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from dwi_toolkit.sample_data import generate_cohort

TINY = dict(shape=(24, 20, 12), voxel_size=(6.0, 6.0, 16.0))
PLUGIN = "tests.pipeline._plugin_steps"


def tiny_cohort(root: Path, *, n_good: int = 3, broken: bool = True, clinical: dict | None = None) -> dict:
    """n_good NIfTI subjects (+ one without .bval/.bvec) on a tiny grid; returns the truth."""
    subjects = {}
    for i in range(n_good):
        facts = {"radicular_side": "left", "suspected_levels": ["L5"]}
        if clinical and f"sub-{i + 1:02d}" in clinical:
            facts = clinical[f"sub-{i + 1:02d}"]
        subjects[f"sub-{i + 1:02d}"] = ({("L5", "left"): 1.6e-3} if i % 2 == 0 else {}, "nifti", facts, "")
    if broken:
        subjects[f"sub-{n_good + 1:02d}"] = ({}, "broken", None, "no b-values")
    return generate_cohort(root, subjects=subjects, dicom=False, **TINY)


def pipeline_file(path: Path, *extra_steps: str, name: str = "test", plugins: bool = True) -> Path:
    """A pipeline TOML: load + adc (+ the given step tables, TOML text)."""
    text = 'schema = "dwi_toolkit.pipeline/1"\nname = "%s"\n' % name
    if plugins:
        text += f'plugins = ["{PLUGIN}"]\n'
    text += '\n[[steps]]\nstep = "load"\n\n[[steps]]\nstep = "adc"\nmethod = "wls"\n'
    for s in extra_steps:
        text += "\n[[steps]]\n" + s.strip() + "\n"
    path.write_text(text)
    return path


def tree_hash(root: Path) -> dict[str, str]:
    """SHA-256 of every file under root (relative path → digest), plus the folder list."""
    out = {}
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root).as_posix()
        out[rel] = hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "<dir>"
    return out


def manifest(out: Path) -> dict:
    return json.loads((out / "manifest.json").read_text())


def leftovers(out: Path) -> list[str]:
    """Temporary (hidden) folders left in the output tree."""
    return sorted(p.relative_to(out).as_posix() for p in out.rglob(".*") if p.is_dir())
