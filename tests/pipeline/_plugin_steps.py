"""Test-only pipeline steps, registered as a plugin (``plugins = ["tests.pipeline._plugin_steps"]``).

They let the engine be tested without the analysis steps: a step that fails for one subject, one
that interrupts the run (KeyboardInterrupt) or blocks while a marker file exists, and a fake
report writer producing a report.json in the documented schema (docs/report.md §4).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from dwi_toolkit.errors import InputDataError
from dwi_toolkit.pipeline.steps import Param, register_step


@register_step("fail_for", params={"subject": Param(str, ""), "message": Param(str, "bad input")})
def fail_for(ctx, *, subject, message):
    if ctx.subject.key == subject:
        raise InputDataError(f"{subject}: {message}")
    (ctx.out_dir / "partial.txt").write_text("written before the failure check\n")


@register_step("tripwire", params={"subject": Param(str, ""), "marker": Param(str, "")})
def tripwire(ctx, *, subject, marker):
    """Raise KeyboardInterrupt for `subject` while `marker` exists (simulates Ctrl-C / a kill)."""
    (ctx.out_dir / "partial.txt").write_text("half-written output\n")
    if ctx.subject.key == subject and Path(marker).exists():
        raise KeyboardInterrupt


@register_step("block", params={"subject": Param(str, ""), "marker": Param(str, ""),
                                "seconds": Param(float, 60.0)})
def block(ctx, *, subject, marker, seconds):
    """Sleep for `subject` while `marker` exists (the test kills the process meanwhile)."""
    (ctx.out_dir / "partial.txt").write_text("half-written output\n")
    if ctx.subject.key == subject and Path(marker).exists():
        time.sleep(seconds)


@register_step("fake_report", requires=("fit",), params={})
def fake_report(ctx):
    """A report.json in the documented schema from the ADC fit: two 'roots' per level (left/right
    halves of the fitted voxels), the left one scaled by the subject's factor in clinical.json."""
    fit = ctx.data["fit"]
    vals = fit.adc[np.isfinite(fit.adc)]
    clinical = json.loads(Path(ctx.subject.clinical).read_text()) if ctx.subject.clinical else {}
    factor = float(clinical.get("factor", 1.0))
    rows, cmp = [], []
    for i, lev in enumerate(("L4", "L5", "S1")):
        left = float(np.mean(vals[i::3]) * factor)
        right = float(np.mean(vals[i::3]))
        for side, m in (("left", left), ("right", right)):
            rows.append({"level": lev, "side": side, "segment": "ganglion", "parameter": "adc",
                         "unit": "mm^2/s", "n_voxels": int(vals[i::3].size), "mean": m})
        cmp.append({"level": lev, "segment": "ganglion", "parameter": "adc", "unit": "mm^2/s",
                    "symptomatic_side": "left", "xs": left, "xc": right,
                    "rel_diff_pct": 100.0 * (left - right) / right})
    doc = {"schema": "dwi_toolkit.report/1", "subject": ctx.prefix,
           "roi_stats": {"columns": {}, "rows": rows},
           "side_comparison": {"symptomatic_side": "left", "rows": cmp},
           "indication": ({"classification": clinical["indication"], "decisive_rules": ["R-TEST"]}
                          if "indication" in clinical else None),
           "entrapment": {"levels": [{"level": "L5", "segment": "ganglion", "classification": "concordant"}]}}
    out = ctx.path("report", "report.json")
    out.write_text(json.dumps(doc))
    ctx.add_product("report_json", out)
    html = ctx.path("report", "report.html")
    html.write_text("<!DOCTYPE html><title>fake</title>")
    ctx.add_product("report_html", html)


@register_step("fake_roi_csv", requires=("fit",), params={
    "left": Param(float, 1.2e-3), "right": Param(float, 1.0e-3), "parameter": Param(str, "adc"),
    "product": Param(str, "roi_stats_csv")})
def fake_roi_csv(ctx, *, left, right, parameter, product):
    """An ROI statistics CSV (columns of RoiStatsTable.to_csv) with known left/right means at L5."""
    p = ctx.path("dwi", f"{ctx.prefix}_{product}.csv")
    p.write_text("level,side,segment,parameter,unit,n_voxels,mean\n"
                 f"L5,left,ganglion,{parameter},mm^2/s,20,{left!r}\nL5,right,ganglion,{parameter},mm^2/s,20,{right!r}\n")
    ctx.add_product(product, p)
