"""Shared fixtures. Matplotlib uses the Agg backend so no test needs a display."""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("DWI_TOOLKIT_SHARED", REPO.parent / "shared"))
SHARED_TESTDATA = SHARED / "testdata"


def shared_path(*parts: str) -> Path:
    """Path inside ../shared/testdata; skip the test with a reason when it is absent."""
    p = SHARED_TESTDATA.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"shared test data not found: {p} (set DWI_TOOLKIT_SHARED to the shared/ folder)")
    return p


@pytest.fixture
def rng() -> np.random.Generator:
    """A fixed-seed generator local to the test."""
    return np.random.default_rng(20261124)


@pytest.fixture
def sample_dir() -> Path:
    """The repository's sample_data/ folder."""
    return REPO / "sample_data"
