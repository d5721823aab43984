"""Multi-site harmonisation of cohort ROI statistics with ComBat.

ADC differs between scanners by several per cent (e.g. 95 % limits of agreement ≈ 9 % across six
scanners, Moore et al. 2025; off-centre gradient non-linearity bias > 10 %, Malyarenko et al.
2013), so cohorts from several sites must not be pooled raw. ComBat (Johnson, Li & Rabinovic
2007, *Biostatistics* 8:118; for imaging Fortin et al. 2017, *NeuroImage* 161:149 and 2018,
*NeuroImage* 167:104) models every feature ``v`` of subject ``j`` at site ``i`` as

``y_ijv = α_v + X_ij β_v + γ_iv + δ_iv ε_ijv``

(additive site effect γ, multiplicative site effect δ, covariates X kept), estimates γ and δ with
empirical-Bayes shrinkage across features, and returns
``(y − α̂ − Xβ̂ − γ*)/δ* + α̂ + Xβ̂``. This is a NumPy implementation of the parametric
empirical-Bayes ComBat of ``neuroCombat`` (Fortin), validated against it in the tests when it is
installed (``pip install dwi_toolkit[harmonize]``).

The input is the long cohort table (``cohort_roi_stats.csv``: one row per subject × level × side ×
segment × parameter) with a site column added; every feature (level, side, segment, parameter)
is one ComBat feature.
"""

from __future__ import annotations

import html
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ..errors import InputDataError
from ._long import FEATURE_COLUMNS, as_records, feature_name, feature_of, number, require_columns

__all__ = ["HarmonizationResult", "combat", "harmonize", "site_effect"]

logger = logging.getLogger(__name__)


def _design(batch: Sequence[Any], covariates: NDArray | None) -> tuple[NDArray, list[Any]]:
    levels = list(dict.fromkeys(batch))
    onehot = np.array([[1.0 if b == lev else 0.0 for lev in levels] for b in batch])
    x = onehot if covariates is None or covariates.size == 0 else np.column_stack([onehot, covariates])
    return x, levels


def _eb_prior(gamma_hat: NDArray, delta_hat: NDArray) -> tuple[NDArray, NDArray, NDArray, NDArray]:
    """Hyper-parameters per batch: γ̄, τ², and the inverse-gamma a, b of δ² (method of moments)."""
    g_bar = gamma_hat.mean(axis=1)
    t2 = gamma_hat.var(axis=1, ddof=1)
    m = delta_hat.mean(axis=1)
    s2 = delta_hat.var(axis=1, ddof=1)
    return g_bar, t2, (2 * s2 + m**2) / s2, (m * s2 + m**3) / s2


def _solve_eb(s_batch: NDArray, g_hat: NDArray, d_hat: NDArray, prior: tuple[float, float, float, float],
              tol: float = 1e-4) -> tuple[NDArray, NDArray]:
    """Posterior γ*, δ*² of one batch by the iteration of Johnson et al. (2007)."""
    g_bar, t2, a, b = prior
    n = s_batch.shape[1]
    g_old, d_old = g_hat.copy(), d_hat.copy()
    for _ in range(1000):
        g_new = (n * t2 * g_hat + d_old * g_bar) / (n * t2 + d_old)
        sum2 = ((s_batch - g_new[:, None]) ** 2).sum(axis=1)
        d_new = (0.5 * sum2 + b) / (n / 2.0 + a - 1.0)
        change = max(np.max(np.abs(g_new - g_old) / np.abs(g_old).clip(1e-12)),
                     np.max(np.abs(d_new - d_old) / d_old.clip(1e-12)))
        g_old, d_old = g_new, d_new
        if change < tol:
            break
    return g_old, d_old


def combat(data: NDArray, batch: Sequence[Any], covariates: NDArray | None = None, *,
           empirical_bayes: bool = True) -> tuple[NDArray[np.float64], dict[str, Any]]:
    """ComBat on a (features × subjects) matrix.

    Parameters
    ----------
    data : ndarray of shape (P, N)
        P features of N subjects (complete, finite).
    batch : sequence of length N
        Site (batch) of each subject.
    covariates : ndarray of shape (N, C), optional
        Numeric covariates to protect (e.g. disease group as 0/1, age), no intercept column.
    empirical_bayes : bool, optional
        Shrink the site effects across features (needs P ≥ 2); ``False`` uses the per-feature
        estimates (location/scale adjustment).

    Returns
    -------
    (ndarray of shape (P, N), dict)
        Harmonised data and the estimates: ``gamma_star`` and ``delta_star`` (sites × P), ``sites``.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> y = rng.normal(0, 1, (5, 30)); y[:, 15:] += 3.0          # site B is offset by +3
    >>> out, est = combat(y, ["A"] * 15 + ["B"] * 15)
    >>> bool(abs(out[:, :15].mean() - out[:, 15:].mean()) < 0.5), est["sites"]
    (True, ['A', 'B'])
    """
    y = np.asarray(data, dtype=float)
    if y.ndim != 2 or not np.all(np.isfinite(y)):
        raise InputDataError("ComBat needs a complete, finite (features × subjects) matrix.")
    x, sites = _design(list(batch), covariates)
    nb = len(sites)
    n_per = x[:, :nb].sum(axis=0)
    beta = np.linalg.lstsq(x, y.T, rcond=None)[0]  # (B + C, P)
    grand = (n_per / n_per.sum()) @ beta[:nb]
    var_pooled = ((y - (x @ beta).T) ** 2).mean(axis=1)
    var_pooled[var_pooled <= 0] = np.finfo(float).tiny
    x_cov = x.copy()
    x_cov[:, :nb] = 0.0
    stand_mean = grand[:, None] + (x_cov @ beta).T
    s = (y - stand_mean) / np.sqrt(var_pooled)[:, None]
    masks = [x[:, i] > 0 for i in range(nb)]
    gamma_hat = np.array([s[:, m].mean(axis=1) for m in masks])
    delta_hat = np.array([s[:, m].var(axis=1, ddof=1) for m in masks])
    if empirical_bayes and y.shape[0] >= 2:
        prior = _eb_prior(gamma_hat, delta_hat)
        stars = [_solve_eb(s[:, m], gamma_hat[i], delta_hat[i], tuple(p[i] for p in prior))
                 for i, m in enumerate(masks)]
        gamma_star = np.array([g for g, _ in stars])
        delta_star = np.array([d for _, d in stars])
    else:
        gamma_star, delta_star = gamma_hat, delta_hat
    out = s.copy()
    for i, m in enumerate(masks):
        out[:, m] = (s[:, m] - gamma_star[i][:, None]) / np.sqrt(delta_star[i])[:, None]
    out = out * np.sqrt(var_pooled)[:, None] + stand_mean
    return out, {"gamma_star": gamma_star, "delta_star": delta_star, "sites": sites,
                 "empirical_bayes": bool(empirical_bayes and y.shape[0] >= 2)}


def site_effect(values: NDArray, sites: Sequence[Any]) -> dict[str, Any]:
    """Per-site means and tests of a site effect on one feature.

    Parameters
    ----------
    values : ndarray of shape (N,)
    sites : sequence of length N

    Returns
    -------
    dict
        ``means`` (site → mean), ``anova_p`` (one-way ANOVA, scipy ``f_oneway``) and
        ``kruskal_p`` (Kruskal–Wallis).

    Examples
    --------
    >>> eff = site_effect(np.r_[np.zeros(5), np.ones(5)] + np.tile([0.0, 0.1, -0.1, 0.05, -0.05], 2), ["A"] * 5 + ["B"] * 5)
    >>> eff["means"], eff["anova_p"] < 0.001
    ({'A': 0.0, 'B': 1.0}, True)
    """
    from scipy import stats

    v = np.asarray(values, dtype=float)
    labels = list(dict.fromkeys(sites))
    groups = [v[np.array([s == lab for s in sites])] for lab in labels]
    means = {str(lab): round(float(g.mean()), 12) for lab, g in zip(labels, groups)}
    anova = stats.f_oneway(*groups).pvalue if len(groups) > 1 else math.nan
    try:
        kw = stats.kruskal(*groups).pvalue if len(groups) > 1 else math.nan
    except ValueError:  # all values identical
        kw = math.nan
    return {"means": means, "anova_p": float(anova), "kruskal_p": float(kw)}


@dataclass(frozen=True, eq=False)
class HarmonizationResult:
    """Harmonised cohort table with the site effects before and after.

    Attributes
    ----------
    rows : list of dict
        The input rows of harmonised features with the value column replaced by the harmonised
        value and the raw value kept in ``<value>_raw``.
    features : list of str
        Harmonised features (e.g. ``"L5_left_ganglion_adc"``).
    before, after : dict
        Feature → :func:`site_effect` of the raw and the harmonised values.
    skipped : list of str
        Features not harmonised (missing in some subjects); their rows are left out of `rows`.
    estimates : dict
        ComBat's ``gamma_star``/``delta_star`` per site and feature.

    Examples
    --------
    >>> from dwi_toolkit.phantom_sessions import simulate_site_table
    >>> res = harmonize(simulate_site_table(sites={"A": 10, "B": 10}), batch="site", covariates=["group"])
    >>> res.before["L1_left_ganglion_adc"]["anova_p"] < 0.05, res.after["L1_left_ganglion_adc"]["anova_p"] > 0.05
    (True, True)
    """

    rows: list[dict[str, Any]] = field(repr=False)
    features: list[str]
    before: dict[str, dict[str, Any]] = field(repr=False)
    after: dict[str, dict[str, Any]] = field(repr=False)
    skipped: list[str]
    estimates: dict[str, Any] = field(repr=False)
    value: str = "mean"
    batch: str = "site"
    _box: dict[str, Any] = field(default_factory=dict, repr=False)

    def boxplot_data(self, feature: str) -> dict[str, dict[str, list[float]]]:
        """Values per site before and after, for a box plot: ``{"before": {site: [...]}, "after": ...}``.

        Examples
        --------
        >>> from dwi_toolkit.phantom_sessions import simulate_site_table
        >>> res = harmonize(simulate_site_table(sites={"A": 6, "B": 6}), covariates=["group"])
        >>> sorted(res.boxplot_data("L5_left_ganglion_adc")["after"])
        ['A', 'B']
        """
        if feature not in self._box:
            raise InputDataError(f"unknown feature {feature!r}; harmonised features: {self.features}.")
        return self._box[feature]

    def summary(self) -> dict[str, Any]:
        """JSON-ready site-effect summary (ANOVA/Kruskal p before and after, per feature).

        Examples
        --------
        >>> from dwi_toolkit.phantom_sessions import simulate_site_table
        >>> s = harmonize(simulate_site_table(sites={"A": 6, "B": 6}), covariates=["group"]).summary()
        >>> s["method"].startswith("ComBat")
        True
        """
        return {
            "method": "ComBat, parametric empirical Bayes (Johnson 2007; Fortin 2017)",
            "batch": self.batch, "value": self.value, "sites": [str(s) for s in self.estimates["sites"]],
            "features": {f: {"before": self.before[f], "after": self.after[f]} for f in self.features},
            "skipped": self.skipped,
        }

    def __repr__(self) -> str:
        worst_b = min((self.before[f]["anova_p"] for f in self.features), default=math.nan)
        worst_a = min((self.after[f]["anova_p"] for f in self.features), default=math.nan)
        return (f"HarmonizationResult({len(self.features)} features, {len(self.estimates['sites'])} sites, "
                f"min site-effect p before {worst_b:.2g}, after {worst_a:.2g})")

    def _repr_html_(self) -> str:
        rows = "".join(f"<tr><td>{html.escape(f)}</td><td>{self.before[f]['anova_p']:.3g}</td>"
                       f"<td>{self.after[f]['anova_p']:.3g}</td></tr>" for f in self.features)
        return ("<b>ComBat harmonisation</b><table><tr><th>feature</th><th>site p before</th>"
                f"<th>site p after</th></tr>{rows}</table>")


def _covariate_matrix(subjects: list[str], info: dict[str, dict[str, Any]], names: Sequence[str]) -> NDArray:
    cols = []
    for name in names:
        vals = [info[s].get(name) for s in subjects]
        nums = [number(v) for v in vals]
        if all(math.isfinite(v) for v in nums):
            cols.append(np.array(nums))
            continue
        cats = sorted({str(v) for v in vals})
        cols.extend(np.array([1.0 if str(v) == c else 0.0 for v in vals]) for c in cats[1:])
    return np.column_stack(cols) if cols else np.empty((len(subjects), 0))


def _matrix(rows: list[dict[str, Any]], subject: str, value: str, by: Sequence[str]
            ) -> tuple[list[str], list[tuple], NDArray, list[tuple]]:
    subjects = list(dict.fromkeys(str(r[subject]) for r in rows))
    feats = list(dict.fromkeys(feature_of(r, by) for r in rows))
    col = {s: j for j, s in enumerate(subjects)}
    fi = {f: i for i, f in enumerate(feats)}
    y = np.full((len(feats), len(subjects)), np.nan)
    for r in rows:
        y[fi[feature_of(r, by)], col[str(r[subject])]] = number(r.get(value))
    complete = np.all(np.isfinite(y), axis=1)
    kept = [f for f, c in zip(feats, complete) if c]
    return subjects, kept, y[complete], [f for f, c in zip(feats, complete) if not c]


def harmonize(
    table: Any,
    batch: str = "site",
    covariates: Sequence[str] = (),
    *,
    subject: str = "subject",
    value: str = "mean",
    by: Sequence[str] = FEATURE_COLUMNS,
    min_subjects_per_site: int = 4,
    empirical_bayes: bool = True,
) -> HarmonizationResult:
    """Remove site effects from a cohort ROI table with ComBat, keeping covariate effects.

    Parameters
    ----------
    table : list of dict or pandas.DataFrame
        Long format, one row per subject × feature (``cohort_roi_stats.csv`` with a site column).
    batch : str, optional
        Column naming the site / scanner.
    covariates : sequence of str, optional
        Subject-level columns whose effects must be kept (e.g. ``["group", "age"]``); text
        columns are one-hot coded, numeric ones used as they are.
    subject : str, optional
        Subject column (with sessions, give one row per subject per feature, e.g. the baseline).
    value : str, optional
        Column to harmonise (default the ROI ``mean``, in the table's unit, e.g. mm²/s).
    by : sequence of str, optional
        Columns defining a feature.
    min_subjects_per_site : int, optional
        Refuse when any site has fewer subjects.
    empirical_bayes : bool, optional
        See :func:`combat`.

    Returns
    -------
    HarmonizationResult

    Raises
    ------
    InputDataError
        Missing columns, a site with too few subjects, fewer than two sites, or no feature
        measured in every subject.

    Examples
    --------
    >>> from dwi_toolkit.phantom_sessions import simulate_site_table
    >>> res = harmonize(simulate_site_table(sites={"A": 8, "B": 8}), batch="site", covariates=["group"])
    >>> len(res.features), "mean_raw" in res.rows[0]
    (12, True)
    """
    rows = as_records(table)
    require_columns(rows, [subject, batch, value, *covariates])
    info: dict[str, dict[str, Any]] = {}
    for r in rows:
        prev = info.setdefault(str(r[subject]), r)
        if str(prev[batch]) != str(r[batch]):
            raise InputDataError(f"subject {r[subject]} appears at two sites ({prev[batch]}, {r[batch]}); "
                                 "harmonise one session per subject.")
    subjects, feats, y, skipped = _matrix(rows, subject, value, by)
    sites = [str(info[s][batch]) for s in subjects]
    counts = {s: sites.count(s) for s in dict.fromkeys(sites)}
    if len(counts) < 2:
        raise InputDataError(f"harmonisation needs at least two sites in column {batch!r}; found {list(counts)}.")
    small = {s: n for s, n in counts.items() if n < min_subjects_per_site}
    if small:
        raise InputDataError(f"too few subjects at site(s) {small} (need >= {min_subjects_per_site} each for "
                             "ComBat to estimate a site's mean and variance); pool or drop those sites.")
    if not feats:
        raise InputDataError("no feature is measured in every subject; ComBat needs complete features.")
    if skipped:
        logger.warning("harmonize: %d feature(s) missing in some subjects were left out: %s",
                       len(skipped), [feature_name(f) for f in skipped])
    out, est = combat(y, sites, _covariate_matrix(subjects, info, covariates), empirical_bayes=empirical_bayes)
    return _result(rows, subjects, feats, y, out, sites, est, skipped, (subject, value, batch, tuple(by)))


def _result(rows, subjects, feats, y, out, sites, est, skipped, names) -> HarmonizationResult:
    subject, value, batch, by = names
    col = {s: j for j, s in enumerate(subjects)}
    fi = {f: i for i, f in enumerate(feats)}
    new_rows = []
    for r in rows:
        f = feature_of(r, by)
        if f not in fi:
            continue
        nr = dict(r)
        nr[f"{value}_raw"] = r[value]
        nr[value] = float(out[fi[f], col[str(r[subject])]])
        new_rows.append(nr)
    names_f = [feature_name(f) for f in feats]
    before = {n: site_effect(y[i], sites) for i, n in enumerate(names_f)}
    after = {n: site_effect(out[i], sites) for i, n in enumerate(names_f)}
    box = {n: {"before": _by_site(y[i], sites), "after": _by_site(out[i], sites)} for i, n in enumerate(names_f)}
    est = dict(est, features=names_f)
    return HarmonizationResult(rows=new_rows, features=names_f, before=before, after=after,
                               skipped=[feature_name(f) for f in skipped], estimates=est, value=value,
                               batch=batch, _box=box)


def _by_site(values: NDArray, sites: list[str]) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {}
    for v, s in zip(values, sites):
        out.setdefault(s, []).append(float(v))
    return out
