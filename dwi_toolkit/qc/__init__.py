"""Quality control: checks that say whether the data can be trusted before it is analysed.

- :mod:`dwi_toolkit.qc.gradient_check` — is the b-vector table flipped or permuted?
  (:func:`~dwi_toolkit.qc.gradient_check.check_gradients`, after Jeurissen et al. 2014).
- :mod:`dwi_toolkit.qc.flags` — QC flags of one analysis, each with its measured value, limit and
  advice (:class:`~dwi_toolkit.qc.flags.QCFlag`).

Layer L3: may import core, models and roi.
"""
from .flags import QCFlag  # noqa: F401  (QC flags: dwi_toolkit.qc.flags)
