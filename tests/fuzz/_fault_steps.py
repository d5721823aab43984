"""Test-only pipeline steps for fault injection (``plugins = ["tests.fuzz._fault_steps"]``)."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from dwi_toolkit.pipeline.steps import Param, register_step


@register_step("kill_worker", params={"subject": Param(str, ""), "marker": Param(str, "")})
def kill_worker(ctx, *, subject, marker):
    """SIGKILL the process running `subject` while `marker` exists (a killed / OOM-killed worker)."""
    (ctx.out_dir / "partial.txt").write_text("half-written output\n")
    if ctx.subject.key == subject and Path(marker).exists():
        os.kill(os.getpid(), signal.SIGKILL)
