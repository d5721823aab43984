"""Quality control: checks that say whether the data can be trusted before it is analysed.

- :mod:`dwi_toolkit.qc.gradient_check` — is the b-vector table flipped or permuted?
  (:func:`~dwi_toolkit.qc.gradient_check.check_gradients`, after Jeurissen et al. 2014).
"""
