"""Pipeline step ``check_gradients``: the gradient-table check (and fix) before any fit.

The step runs :func:`dwi_toolkit.pipeline.subject_sections.gradient_qc` on the loaded series
(:func:`dwi_toolkit.qc.gradient_check.check_gradients`, as MRtrix3's ``dwigradcheck``) and, with
``fix = true``, replaces the series by the one with the best table before the fits. The record goes
to ``dwi/<prefix>_desc-gradientcheck.json``; the ``report`` step shows it in the QC section (one
line, a flag when the table looks wrong) and the provenance (status, best table, margin, applied).
"""

from __future__ import annotations

from .steps import Param, SubjectContext, _write_json, register_step
from .subject_sections import gradient_qc

__all__: list[str] = []  # the step is used through the registry (get_step("check_gradients"))


@register_step(
    "check_gradients",
    params={
        "fix": Param(bool, False, doc="apply the best table before any fit when the given one looks wrong"),
        "fa_threshold": Param(float, 0.2, min=0.0, max=0.99, doc="FA of streamline seeds and steps"),
        "min_margin": Param(float, 0.1, min=0.0, doc="relative score gain that calls the given table wrong"),
        "fail_if_wrong": Param(bool, False, doc="fail the subject when the table looks wrong and is not fixed"),
    },
    requires=("series",),
    provides=("gradient_check",),
    modules=("dwi_toolkit.qc.gradient_check",),
)
def check_gradients_step(ctx: SubjectContext, *, fix: bool, fa_threshold: float, min_margin: float,
                         fail_if_wrong: bool) -> None:
    """Check the b-vector table for a flipped/permuted axis (and fix it) before the fits."""
    from ..errors import InputDataError

    series, rec = gradient_qc(ctx.data["series"], fix=fix, fa_threshold=fa_threshold, min_margin=min_margin)
    ctx.data["series"], ctx.data["gradient_check"] = series, rec
    p = ctx.path("dwi", f"{ctx.prefix}_desc-gradientcheck.json")
    _write_json(p, rec)
    ctx.add_product("gradient_check", p)
    if fail_if_wrong and rec["status"] == "wrong" and not rec["applied"]:
        raise InputDataError(f"subject {ctx.subject.key}: {rec['message']} Set fix = true in the "
                             "check_gradients step (or --fix-gradients) to apply the best table.")
