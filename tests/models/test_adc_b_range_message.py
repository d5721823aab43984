"""fit_adc's b_range error names the range the user gave and the b-values the series has (issue 21)."""

import re

import numpy as np
import pytest

from dwi_toolkit.core.image import DWISeries
from dwi_toolkit.errors import FitError
from dwi_toolkit.models.adc import fit_adc


def _series(bvals):
    b = np.asarray(bvals, float)
    data = np.broadcast_to(1000.0 * np.exp(-b * 1.1e-3), (3, 3, 2, b.size)).copy()
    vecs = np.array([[0, 0, 0] if x == 0 else [1, 0, 0] for x in b], float)
    return DWISeries(data, np.eye(4), b, vecs)


@pytest.mark.parametrize("b_range, left", [((100, None), "only b = 100"), ((500, None), "no b-value"),
                                           ((0, 50), "only b = 0")])
def test_message_names_the_given_range_and_the_available_b_values(b_range, left):
    with pytest.raises(FitError) as err:
        fit_adc(_series([0, 100, 100]), b_range=b_range)
    msg = str(err.value)
    assert f"b_range={b_range}" in msg and left in msg
    assert "[0.0, 100.0] s/mm^2" in msg  # every b-value of the series, not only those kept
    assert "b_range=None" not in msg and re.search(r"widen b_range", msg)


def test_a_range_with_two_shells_still_fits():
    fit = fit_adc(_series([0, 100, 800]), b_range=(100, None), method="ols")
    assert np.allclose(fit.adc[np.isfinite(fit.adc)], 1.1e-3)


def test_one_b_value_without_a_range_says_so():
    with pytest.raises(FitError, match=r"at least two distinct b-values; the series has only \[100.0\]"):
        fit_adc(_series([100, 100]))
