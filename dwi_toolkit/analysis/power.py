"""Intervals, p-values and the smallest detectable difference of two ROI means.

The difference of two means with standard errors ``se_a``, ``se_b`` and degrees of freedom
``df_a``, ``df_b`` (from :func:`dwi_toolkit.analysis.spatial_noise.roi_variance`, so already
widened for spatially correlated noise) gets a Welch–Satterthwaite t interval (Welch 1947,
Biometrika 34:28): ``se = sqrt(se_a² + se_b²)``, ``df = se⁴ / (se_a⁴/df_a + se_b⁴/df_b)``. When the
noise FWHM behind both standard errors was estimated (one shared estimate), its sampling variance
``v_k`` adds ``Σ_k (∂se²/∂f_k)² v_k / 2`` to the denominator — the same Satterthwaite (1946)
approximation, with the shared estimate's effect on both sides added before squaring.

The ratio ``a/b`` (and so ``rel_diff_pct`` and ``asymmetry_index_pct``, both monotone in it)
gets the delta-method interval on the log scale: ``se(ln a/b)² = (se_a/a)² + (se_b/b)²``.

The smallest detectable difference at power ``1 − β`` with a two-sided test at level ``α`` is
``(t_{1−α/2, df} + t_{1−β, df}) · se`` (the usual normal-approximation power formula with t
quantiles, e.g. Chow, Shao & Wang, *Sample Size Calculations in Clinical Research*, 2nd ed.,
§3.2). It is what the measured noise and ROI sizes could have shown: a smaller true asymmetry is
missed more often than ``β``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["MeanEstimate", "Contrast", "pooled_mean", "contrast", "detectable_difference", "holm"]

#: Power and two-sided level of the smallest detectable difference (issue #13: 80 %, 0.05).
DEFAULT_POWER = 0.8
DEFAULT_ALPHA = 0.05


@dataclass(frozen=True)
class MeanEstimate:
    """A mean with its standard error and degrees of freedom (values' unit).

    Examples
    --------
    >>> MeanEstimate(1.2e-3, 0.05e-3, 19.0).se
    5e-05
    """

    mean: float
    se: float
    df: float
    var_grad: tuple[float, ...] = ()
    fwhm_var: tuple[float, ...] = ()

    @property
    def df_total(self) -> float:
        """Degrees of freedom counting the estimated FWHM's sampling variance too.

        Examples
        --------
        >>> MeanEstimate(1.0, 0.1, 20.0, (0.01,), (0.04,)).df_total < 20.0
        True
        """
        return _welch_df([self], self.fwhm_var)


@dataclass(frozen=True)
class Contrast:
    """Difference and ratio of two means with t intervals, p-value and detectable difference.

    ``difference`` and its bounds are in the values' unit; ``ratio_low``/``ratio_high`` bound
    ``a/b`` (dimensionless); ``detectable`` is the smallest difference detectable at the chosen
    power (values' unit).

    Examples
    --------
    >>> c = contrast(MeanEstimate(1.5, 0.1, 30.0), MeanEstimate(1.2, 0.1, 30.0))
    >>> round(c.difference, 2), round(c.low, 3), round(c.high, 3), round(c.p_value, 4)
    (0.3, 0.017, 0.583, 0.038)
    """

    difference: float
    se: float
    df: float
    low: float
    high: float
    ratio_low: float
    ratio_high: float
    p_value: float
    detectable: float


def _welch_df(parts: Sequence[MeanEstimate], fwhm_var: Sequence[float] = (), scale: float = 1.0) -> float:
    """Welch–Satterthwaite df of ``Σ se²`` (each ``se`` times `scale`), with the shared FWHM term."""
    num = sum((p.se * scale) ** 2 for p in parts) ** 2
    den = sum((p.se * scale) ** 4 / p.df for p in parts if p.df > 0 and p.se > 0)
    for k, v in enumerate(fwhm_var):
        if math.isfinite(v) and v > 0:
            g = sum(p.var_grad[k] * scale * scale for p in parts if len(p.var_grad) > k)
            den += g * g * v / 2.0
    return num / den if den > 0 else math.nan


def _shared_fwhm_var(parts: Sequence[MeanEstimate]) -> tuple[float, ...]:
    return next((p.fwhm_var for p in parts if p.fwhm_var), ())


def pooled_mean(parts: Sequence[MeanEstimate]) -> MeanEstimate:
    """The unweighted average of several independent means (e.g. adjacent levels).

    Examples
    --------
    >>> m = pooled_mean([MeanEstimate(1.0, 0.1, 10.0), MeanEstimate(2.0, 0.1, 10.0)])
    >>> m.mean, round(m.se, 4), round(m.df, 1)
    (1.5, 0.0707, 20.0)
    """
    k = len(parts)
    if k == 0:
        return MeanEstimate(math.nan, math.nan, math.nan)
    if k == 1:
        return parts[0]
    mean = sum(p.mean for p in parts) / k
    se = math.sqrt(sum((p.se / k) ** 2 for p in parts))
    n_grad = max((len(p.var_grad) for p in parts), default=0)
    grad = tuple(sum(p.var_grad[i] for p in parts if len(p.var_grad) > i) / (k * k) for i in range(n_grad))
    return MeanEstimate(mean, se, _welch_df(parts, scale=1.0 / k), grad, _shared_fwhm_var(parts))


def _t_ppf(q: float, df: float) -> float:
    """Student-t quantile; the function ``scipy.stats.t.ppf`` evaluates, without importing
    ``scipy.stats`` (about half a second of start-up for one analysis)."""
    from scipy.special import stdtrit

    return float(stdtrit(df, q))


def _t_sf(x: float, df: float) -> float:
    """Student-t survival function, as ``scipy.stats.t.sf`` (``stdtr(df, -x)``)."""
    from scipy.special import stdtr

    return float(stdtr(df, -x))


def detectable_difference(se: float, df: float, *, power: float = DEFAULT_POWER,
                          alpha: float = DEFAULT_ALPHA) -> float:
    """Smallest true difference detected with probability `power` by a two-sided level-`alpha` test.

    Parameters
    ----------
    se : float
        Standard error of the difference (values' unit, e.g. mm²/s).
    df : float
        Its degrees of freedom (``inf`` for the normal limit).
    power, alpha : float, optional
        Default 0.8 and 0.05.

    Examples
    --------
    >>> round(detectable_difference(1.0, math.inf), 3)      # 1.960 + 0.842
    2.802
    """
    if not (math.isfinite(se) and se > 0 and df > 0):
        return math.nan
    return float((_t_ppf(1 - alpha / 2, df) + _t_ppf(power, df)) * se)


def contrast(a: MeanEstimate, b: MeanEstimate, *, ci: float = 0.95, power: float = DEFAULT_POWER,
             alpha: float = DEFAULT_ALPHA) -> Contrast:
    """Welch t interval of ``a − b``, log-delta interval of ``a/b``, p-value, detectable difference.

    Examples
    --------
    >>> c = contrast(MeanEstimate(1.5, 0.1, 30.0), MeanEstimate(1.2, 0.1, 30.0))
    >>> round(c.ratio_low, 3), round(c.ratio_high, 3), round(c.detectable, 3)
    (1.01, 1.548, 0.403)
    """
    nan = math.nan
    d = a.mean - b.mean
    se = math.hypot(a.se, b.se)
    df = _welch_df([a, b], _shared_fwhm_var([a, b]))
    if se == 0.0 and a.df > 0 and b.df > 0:  # noise-free values: a zero-width interval
        ratio = a.mean / b.mean if a.mean > 0 and b.mean > 0 else nan
        return Contrast(d, 0.0, math.inf, d, d, ratio, ratio, 0.0 if d else 1.0, 0.0)
    if not (math.isfinite(se) and se > 0 and math.isfinite(df) and df > 0):
        return Contrast(d, se, df, nan, nan, nan, nan, nan, nan)
    t = float(_t_ppf(0.5 + ci / 2, df))
    r_lo = r_hi = nan
    if a.mean > 0 and b.mean > 0:
        se_log = math.hypot(a.se / a.mean, b.se / b.mean)
        rel = [MeanEstimate(1.0, p.se / p.mean, p.df, tuple(g / p.mean ** 2 for g in p.var_grad))
               for p in (a, b)]
        df_log = _welch_df(rel, _shared_fwhm_var([a, b]))
        t_log = float(_t_ppf(0.5 + ci / 2, df_log))
        lr = math.log(a.mean / b.mean)
        r_lo, r_hi = (math.exp(x) if x < 709.0 else math.inf for x in (lr - t_log * se_log, lr + t_log * se_log))
    p = float(2.0 * _t_sf(abs(d) / se, df))
    return Contrast(d, se, df, d - t * se, d + t * se, r_lo, r_hi, p,
                    detectable_difference(se, df, power=power, alpha=alpha))


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm step-down adjusted p-values (Holm 1979, Scand J Statist 6:65); NaN stays NaN.

    Reject hypothesis ``k`` at family-wise level ``α`` when ``holm(p)[k] ≤ α``.

    Examples
    --------
    >>> [round(p, 3) for p in holm([0.01, 0.04, 0.03])]
    [0.03, 0.06, 0.06]
    """
    idx = [i for i, p in enumerate(p_values) if math.isfinite(p)]
    m = len(idx)
    out = [math.nan] * len(p_values)
    running = 0.0
    for rank, i in enumerate(sorted(idx, key=lambda i: p_values[i])):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        out[i] = running
    return out
