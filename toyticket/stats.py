"""Intervals, paired comparisons and tests: every figure and table of the book reports one.

Two layouts. ``mean_ci`` and the tables work on values indexed [..., seeds]. The claims
chapters work on results indexed [..., tasks, seeds] (several task draws x network seeds); their
estimand is the *grand mean*, the mean of the per-task means (every task counts equally, however
many of its seeds are NaN). Its intervals:

- ``hierarchical_ci``: a two-level percentile bootstrap (resample tasks, then seeds within each
  resampled task), seeded and deterministic;
- ``task_t_ci``: a Student t-interval over the per-task means (tasks - 1 degrees of freedom);
  with a single task, a t-interval over its seeds.

With few tasks the percentile bootstrap undercovers: it cannot know that 5 task means leave 4
degrees of freedom. On a normal design with 5 tasks x 16 seeds and task spread equal to seed
spread, nominal 95% intervals covered 87% (hierarchical, 2000 replications) and 94.5% (t, 3000);
with 20 tasks the bootstrap covered 94%; with a task spread a tenth of the seed spread it
overcovers (98%: resampling seeds within resampled tasks counts seed noise twice) while t stays
at 95% (``tests/test_stats.py`` checks a smaller version). The t-interval is therefore the
default of ``grand_mean_ci`` and ``paired_difference``.

Paired comparisons (same task, same seed, same initialization) use the difference A - B:
``paired_difference`` for its interval, ``sign_flip_test`` for a p-value, ``holm`` for a
family of them, ``win_rate`` for "often" (the fraction of cells where A beats B). Observed
frequencies against a law: ``chi_square_test``.

The t and binomial quantiles come from the regularized incomplete beta function, computed here
(the project does not depend on scipy).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch

from toyticket.validation import (
    check_choice,
    check_choices,
    check_float,
    check_int,
    check_seed,
    check_tensor,
    wrong_type,
)

CI_METHODS = ("hierarchical", "t")  # intervals of a grand mean [..., tasks, seeds]
MEAN_CI_METHODS = ("percentile", "t")  # intervals of a mean over seeds [..., seeds]
ALTERNATIVES = ("two-sided", "greater", "less")
FLIP_UNITS = ("task", "pair")


def mean_ci(
    values: torch.Tensor,
    level: float = 0.95,
    n_boot: int = 2000,
    seed: int = 0,
    method: str = "percentile",
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Mean over the last axis (the seeds) and an interval for it: a percentile bootstrap
    (``method="percentile"``, the default) or a Student t-interval (``"t"``).

    NaNs are ignored. The resampling is seeded, so the same values always give the same
    interval (the book's outputs are regression-tested). Returns (mean, low, high), each shaped
    like ``values`` without its last axis."""
    check_float("level", level, 0.0, 1.0, low_open=True, high_open=True)
    check_int("n_boot", n_boot, 1)
    check_choice("method", method, MEAN_CI_METHODS)
    seed = check_seed("seed", seed)
    x = _values(values)
    if method == "t":
        return _t_interval(x, level)
    g = torch.Generator().manual_seed(seed)
    idx = torch.randint(x.shape[-1], (n_boot, x.shape[-1]), generator=g)
    boots = x[..., idx].nanmean(-1)  # [..., n_boot]
    alpha = (1 - level) / 2
    low = boots.nanquantile(alpha, dim=-1)
    high = boots.nanquantile(1 - alpha, dim=-1)
    return x.nanmean(-1), low, high


def format_ci(values: torch.Tensor, digits: int = 2) -> str:
    """``mean [low, high]`` of one quantity over seeds, for tables."""
    check_int("digits", digits, 0, 12)
    x = _values(values)
    if x.ndim != 1:
        raise ValueError(
            f"values has shape {tuple(x.shape)}: allowed one quantity over seeds, shape (seeds,)"
        )
    mean, low, high = mean_ci(x)
    return f"{mean.item():.{digits}f} [{low.item():.{digits}f}, {high.item():.{digits}f}]"


def format_table(
    rows: dict[str, dict[str, torch.Tensor]], columns: list[str], digits: int = 2
) -> str:
    """A plain-text table: one row per label, one ``mean [low, high]`` cell per column (the
    95% bootstrap interval over the seeds of that row)."""
    if not isinstance(rows, Mapping):
        raise wrong_type("rows", rows, "a dict {label: {quantity: values over seeds}}")
    if not rows:
        raise ValueError("rows={} is empty: allowed at least one row")
    for label, values in rows.items():
        if not isinstance(values, Mapping):
            raise wrong_type(f"rows[{label!r}]", values, "a dict {quantity: values over seeds}")
    shared = [name for name in next(iter(rows.values())) if all(name in r for r in rows.values())]
    columns = list(check_choices("columns", columns, shared))
    header = ["", *columns]
    body = [
        [label, *(format_ci(values[c], digits) for c in columns)] for label, values in rows.items()
    ]
    widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip()
        for line in [header, *body]
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


# ---------------------------------------------------------------- grand means [..., tasks, seeds]


def hierarchical_ci(
    values: torch.Tensor, level: float = 0.95, n_boot: int = 2000, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The grand mean of ``values`` [..., tasks, seeds] (mean of the per-task means over seeds,
    NaNs ignored) and a two-level percentile-bootstrap interval: each replicate draws tasks
    with replacement, then seeds with replacement within each drawn task. Seeded and
    deterministic; every leading entry uses the same draws. Returns (mean, low, high) shaped
    like ``values`` without its last two axes. With one task it is the bootstrap over seeds."""
    level, x = _check_grand(values, level)
    check_int("n_boot", n_boot, 1)
    check_int("seed", seed, 0)
    T, S = x.shape[-2:]
    g = torch.Generator().manual_seed(seed)
    tasks = torch.randint(T, (n_boot, T, 1), generator=g)
    seeds = torch.randint(S, (n_boot, T, S), generator=g)
    boots = x[..., tasks, seeds].nanmean(-1).nanmean(-1)  # [..., n_boot]
    alpha = (1 - level) / 2
    low = boots.nanquantile(alpha, dim=-1)
    high = boots.nanquantile(1 - alpha, dim=-1)
    return _grand_mean(x), low, high


def task_t_ci(
    values: torch.Tensor, level: float = 0.95
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The grand mean of ``values`` [..., tasks, seeds] and a Student t-interval over the
    per-task means (t with tasks - 1 degrees of freedom, tasks whose seeds are all NaN left
    out). With one task along the axis, a t-interval over its seeds instead. Returns
    (mean, low, high); the bounds are NaN where fewer than two units have values."""
    level, x = _check_grand(values, level)
    units = x[..., 0, :] if x.shape[-2] == 1 else x.nanmean(-1)
    mean, low, high = _t_interval(units, level)
    return _grand_mean(x), low, high


def grand_mean_ci(
    values: torch.Tensor,
    method: str = "t",
    level: float = 0.95,
    n_boot: int = 2000,
    seed: int = 0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``task_t_ci`` (``method="t"``, the default) or ``hierarchical_ci``
    (``"hierarchical"``) of ``values`` [..., tasks, seeds]: (mean, low, high)."""
    check_choice("method", method, CI_METHODS)
    if method == "t":
        return task_t_ci(values, level)
    return hierarchical_ci(values, level, n_boot, seed)


def paired_difference(
    a: torch.Tensor,
    b: torch.Tensor,
    method: str = "t",
    level: float = 0.95,
    n_boot: int = 2000,
    seed: int = 0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The mean paired difference A - B of results [..., tasks, seeds] (entry by entry: same
    task, same seed) with its interval, by ``grand_mean_ci``: (mean, low, high)."""
    diff = _paired(a, b)
    return grand_mean_ci(diff, method, level, n_boot, seed)


# ---------------------------------------------------------------- tests


def sign_flip_test(
    a: torch.Tensor,
    b: torch.Tensor,
    alternative: str = "two-sided",
    unit: str = "task",
    max_exact: int = 20,
    n_flips: int = 100_000,
    seed: int = 0,
) -> torch.Tensor:
    """p-value of the mean paired difference A - B of results [..., tasks, seeds] under the
    null that each unit's difference is symmetric about 0 (A and B exchangeable).

    Units: ``unit="task"`` the per-task mean differences (a test that generalizes over task
    draws; with one task along the axis its seeds are the units), ``"pair"`` every
    (task, seed) pair (conditional on the drawn tasks). NaN units are left out. The statistic is
    the mean of the unit differences; its null distribution flips the sign of every unit:
    exactly over all 2^units flips when units <= ``max_exact``, else over ``n_flips`` seeded
    random flips (p = (1 + hits) / (1 + n_flips), a valid Monte Carlo p-value).
    ``alternative``: "two-sided" (|mean| as large), "greater" (A > B), "less" (A < B).
    Returns p-values [...] (NaN where no unit has a value)."""
    check_choice("alternative", alternative, ALTERNATIVES)
    check_choice("unit", unit, FLIP_UNITS)
    check_int("max_exact", max_exact, 0, 24)
    check_int("n_flips", n_flips, 1)
    check_int("seed", seed, 0)
    diff = _paired(a, b)
    if unit == "pair":
        units = diff.flatten(-2)
    else:
        units = diff[..., 0, :] if diff.shape[-2] == 1 else diff.nanmean(-1)
    flat = units.reshape(-1, units.shape[-1])
    g = torch.Generator().manual_seed(seed)
    p = torch.tensor(
        [_flip_p(row[~row.isnan()], alternative, max_exact, n_flips, g) for row in flat]
    )
    return p.reshape(units.shape[:-1]).to(torch.float64)


def holm(pvalues: torch.Tensor) -> torch.Tensor:
    """Holm's step-down adjusted p-values of one family (all entries of ``pvalues``, any
    shape): sorted ascending, p_(i) becomes max over j <= i of min(1, (m - j + 1) p_(j)).
    Monotone in the raw p-values, capped at 1, returned in the input's order and shape."""
    p = _check_pvalues(pvalues)
    flat = p.flatten()
    m = flat.numel()
    order = flat.argsort(stable=True)
    factors = torch.arange(m, 0, -1, dtype=torch.float64)
    stepped = (flat[order] * factors).clamp(max=1.0).cummax(0).values
    adjusted = torch.empty_like(flat)
    adjusted[order] = stepped
    return adjusted.reshape(p.shape)


def holm_reject(pvalues: torch.Tensor, alpha: float = 0.05) -> torch.Tensor:
    """Bool, shaped like ``pvalues``: the hypotheses Holm's procedure rejects at family-wise
    level ``alpha`` (adjusted p-value <= alpha)."""
    check_float("alpha", alpha, 0.0, 1.0, low_open=True, high_open=True)
    return holm(pvalues) <= alpha


def clopper_pearson(successes: int, trials: int, level: float = 0.95) -> tuple[float, float]:
    """The exact (Clopper-Pearson) interval of a binomial proportion: (low, high). Low is 0
    with no success, high 1 with no failure."""
    check_int("trials", trials, 1)
    check_int("successes", successes, 0, trials)
    check_float("level", level, 0.0, 1.0, low_open=True, high_open=True)
    alpha = (1 - level) / 2
    x, n = successes, trials
    low = 0.0 if x == 0 else _beta_ppf(alpha, x, n - x + 1)
    high = 1.0 if x == n else _beta_ppf(1 - alpha, x + 1, n - x)
    return low, high


def chi_square_test(counts: object, probs: object) -> dict[str, float]:
    """Pearson's goodness-of-fit test of ``counts`` (how many of a number of independent trials
    fell in each category) against a law ``probs`` (one probability per category, summing to
    1): the statistic sum (O - E)^2 / E over the categories the law allows (E > 0), its degrees
    of freedom (those categories - 1; no parameter is fitted) and the p-value
    P(chi^2_df >= statistic). A count in a category the law forbids refutes it: statistic inf,
    p-value 0. Returns ``statistic``, ``df`` and ``p``."""
    observed = _values(counts)
    law = _values(probs)
    if observed.ndim != 1 or law.shape != observed.shape:
        raise ValueError(
            f"counts {tuple(observed.shape)} and probs {tuple(law.shape)}: allowed two 1-D "
            "tensors of the same length (one entry per category)"
        )
    if (observed < 0).any() or (observed != observed.round()).any() or observed.sum() == 0:
        raise ValueError("counts must be whole numbers >= 0, at least one of them positive")
    if (law < 0).any() or abs(law.sum().item() - 1) > 1e-6:
        raise ValueError(f"probs must be >= 0 and sum to 1, got sum {law.sum().item():.6g}")
    expected = law * observed.sum()
    allowed = expected > 0
    df = int(allowed.sum()) - 1
    if (observed[~allowed] > 0).any():
        return {"statistic": math.inf, "df": df, "p": 0.0}
    statistic = ((observed - expected)[allowed] ** 2 / expected[allowed]).sum()
    if df == 0:
        return {"statistic": 0.0, "df": 0, "p": 1.0}
    p = torch.special.gammaincc(torch.tensor(df / 2, dtype=torch.float64), statistic / 2)
    return {"statistic": statistic.item(), "df": df, "p": p.item()}


def spearman(x: torch.Tensor, y: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Spearman's rank correlation of x and y along ``dim`` (average ranks for ties), pairs
    with a NaN left out; NaN where fewer than 3 pairs remain or either side is constant.
    Returns float64 shaped like x without ``dim``."""
    x, y = check_tensor("x", x), check_tensor("y", y)
    if x.shape != y.shape:
        raise ValueError(
            f"x and y have shapes {tuple(x.shape)} and {tuple(y.shape)}: allowed equal"
        )
    x, y = x.movedim(dim, -1).double(), y.movedim(dim, -1).double()
    flat_x, flat_y = x.reshape(-1, x.shape[-1]), y.reshape(-1, y.shape[-1])
    out = torch.full((len(flat_x),), math.nan, dtype=torch.float64)
    for i, (a, b) in enumerate(zip(flat_x, flat_y, strict=True)):
        keep = ~(a.isnan() | b.isnan())
        if keep.sum() < 3:
            continue
        ra, rb = _average_ranks(a[keep]), _average_ranks(b[keep])
        ra, rb = ra - ra.mean(), rb - rb.mean()
        denom = (ra.norm() * rb.norm()).item()
        if denom > 0:
            out[i] = (ra @ rb).item() / denom
    return out.reshape(x.shape[:-1])


def _average_ranks(x: torch.Tensor) -> torch.Tensor:
    """0-based ranks of a 1-D tensor, ties sharing their mean rank."""
    below = (x[:, None] > x[None, :]).sum(1).double()
    ties = (x[:, None] == x[None, :]).sum(1).double() - 1
    return below + ties / 2


def win_rate(a: torch.Tensor, b: torch.Tensor, level: float = 0.95) -> dict[str, float]:
    """ "Often" as a number: over the cells of A and B [..., seeds] (every leading entry is a
    cell, for example a (sparsity, task) pair), the fraction of cells where A beats B, that is
    where the mean paired difference over seeds is > 0 (ties do not count as wins; cells with
    no value are left out), with its Clopper-Pearson interval. The interval treats cells as
    independent trials: descriptive where cells share a task. Returns ``fraction``, ``low``,
    ``high``, ``wins`` and ``cells``."""
    check_float("level", level, 0.0, 1.0, low_open=True, high_open=True)
    diff = _paired(a, b, min_dims=1).nanmean(-1)
    valid = ~diff.isnan()
    cells, wins = int(valid.sum()), int((diff[valid] > 0).sum())
    if cells == 0:
        raise ValueError("a and b have no cell with a value")
    low, high = clopper_pearson(wins, cells, level)
    return {"fraction": wins / cells, "low": low, "high": high, "wins": wins, "cells": cells}


# ---------------------------------------------------------------- helpers


def _check_grand(values: torch.Tensor, level: float) -> tuple[float, torch.Tensor]:
    check_float("level", level, 0.0, 1.0, low_open=True, high_open=True)
    x = torch.as_tensor(values, dtype=torch.float64)
    if x.ndim < 2 or x.shape[-1] == 0 or x.shape[-2] == 0:
        raise ValueError(
            f"values must be indexed [..., tasks, seeds] with at least one of each, "
            f"got shape {tuple(x.shape)}"
        )
    return level, x


def _grand_mean(x: torch.Tensor) -> torch.Tensor:
    return x.nanmean(-1).nanmean(-1)


def _paired(a: torch.Tensor, b: torch.Tensor, min_dims: int = 2) -> torch.Tensor:
    """A - B in float64, after checking that both have the same shape with ``min_dims`` axes."""
    a = torch.as_tensor(a, dtype=torch.float64)
    b = torch.as_tensor(b, dtype=torch.float64)
    if a.shape != b.shape:
        raise ValueError(
            f"b must have the shape of a for paired differences: {tuple(b.shape)} != "
            f"{tuple(a.shape)}"
        )
    if a.ndim < min_dims or 0 in a.shape:
        axes = "[..., tasks, seeds]" if min_dims == 2 else "[..., seeds]"
        raise ValueError(f"a must be indexed {axes} with no empty axis, got {tuple(a.shape)}")
    return a - b


def _t_interval(x: torch.Tensor, level: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Mean over the last axis with a Student t-interval, NaNs left out; NaN bounds where
    fewer than two values remain."""
    count = (~x.isnan()).sum(-1)
    mean = x.nanmean(-1)
    var = ((x - mean[..., None]) ** 2).nansum(-1) / (count - 1).clamp_min(1)
    quantiles = {int(n): _t_ppf(0.5 + level / 2, int(n) - 1) for n in count.unique() if n >= 2}
    q = torch.full_like(mean, float("nan"))
    for n, value in quantiles.items():
        q[count == n] = value
    half = q * (var / count.clamp_min(1)).sqrt()
    return mean, mean - half, mean + half


def _flip_p(
    d: torch.Tensor, alternative: str, max_exact: int, n_flips: int, g: torch.Generator
) -> float:
    """The sign-flip p-value of the sum of ``d`` (1-D, no NaN)."""
    U = d.numel()
    if U == 0:
        return float("nan")
    observed = float(d.sum())
    eps = 1e-9 * float(d.abs().sum())  # rounding: sums that equal the observed one count
    if U <= max_exact:
        sums = torch.zeros(1, dtype=torch.float64)
        for value in d:  # all 2^U signed sums, doubling once per unit
            sums = torch.cat([sums + value, sums - value])
        return _hits(sums, observed, eps, alternative) / sums.numel()
    hits, chunk = 0, max(1, 2**20 // U)
    for lo in range(0, n_flips, chunk):
        signs = torch.randint(2, (min(chunk, n_flips - lo), U), generator=g) * 2 - 1
        hits += _hits(signs.to(torch.float64) @ d, observed, eps, alternative)
    return (1 + hits) / (1 + n_flips)


def _hits(sums: torch.Tensor, observed: float, eps: float, alternative: str) -> int:
    if alternative == "greater":
        return int((sums >= observed - eps).sum())
    if alternative == "less":
        return int((sums <= observed + eps).sum())
    return int((sums.abs() >= abs(observed) - eps).sum())


def _check_pvalues(pvalues: torch.Tensor) -> torch.Tensor:
    p = torch.as_tensor(pvalues, dtype=torch.float64)
    if p.numel() == 0:
        raise ValueError("pvalues must hold at least one p-value")
    if p.isnan().any() or (p < 0).any() or (p > 1).any():
        raise ValueError("pvalues must all lie in [0, 1] (no NaN)")
    return p


def _betainc(a: float, b: float, x: float) -> float:
    """The regularized incomplete beta function I_x(a, b) (continued fraction, modified Lentz;
    Numerical Recipes 6.4), to about 1e-14."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    if x > (a + 1) / (a + b + 2):  # the fraction converges fast on this side only
        return 1.0 - _betainc(b, a, 1.0 - x)
    log_front = (
        math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    )
    tiny = 1e-300
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    f = d
    for i in range(1, 1000):
        for numerator in (
            i * (b - i) * x / ((a + 2 * i - 1) * (a + 2 * i)),
            -(a + i) * (a + b + i) * x / ((a + 2 * i) * (a + 2 * i + 1)),
        ):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + numerator / c
            c = c if abs(c) > tiny else tiny
            f *= c * d
        if abs(c * d - 1.0) < 1e-15:
            break
    return math.exp(log_front) * f / a


def _beta_ppf(p: float, a: float, b: float) -> float:
    """The p-quantile of Beta(a, b), by bisection on I_x(a, b)."""
    lo, hi = 0.0, 1.0
    for _ in range(100):
        mid = (lo + hi) / 2
        if _betainc(a, b, mid) < p:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def _t_ppf(p: float, df: int) -> float:
    """The p-quantile of Student's t with ``df`` degrees of freedom: with q = min(p, 1 - p),
    2q = I_x(df/2, 1/2) at x = df / (df + t^2)."""
    if p == 0.5:
        return 0.0
    x = _beta_ppf(2 * min(p, 1 - p), df / 2, 0.5)
    t = math.sqrt(df * (1 - x) / x)
    return t if p > 0.5 else -t


def _values(values: object) -> torch.Tensor:
    """Numbers over seeds (last axis, at least one) as a float64 tensor."""
    try:
        x = torch.as_tensor(values, dtype=torch.float64)
    except (TypeError, ValueError, RuntimeError):
        raise wrong_type("values", values, "a tensor of numbers, seeds on the last axis") from None
    if x.ndim == 0 or x.shape[-1] == 0:
        raise ValueError(
            f"values has shape {tuple(x.shape)}: allowed at least one seed along the last axis"
        )
    return x
