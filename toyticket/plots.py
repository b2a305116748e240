"""Small plotting helpers of the book's chapters (matplotlib), kept here so that the chapters
read as text and computation, not as plotting code.

- ``distance_map``: the code distance d(r, c) of every location of one network;
- ``law_bars``: observed fractions with their 95% intervals, bar by bar, against exact or
  approximate laws drawn as markers;
- ``weight_map``: a small weight matrix with its values written in, pruned entries greyed.

Each draws on a given ``matplotlib`` Axes and returns what a colorbar or a legend needs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from toyticket.validation import check_int, wrong_type

__all__ = ["distance_map", "law_bars", "weight_map"]

LAW_STYLES = (("D", "C3"), ("x", "k"), ("o", "C2"), ("s", "C4"))
"""(marker, colour) of the first, second ... law of ``law_bars``."""


def _array(name: str, value: object, ndim: int) -> np.ndarray:
    """``value`` (a tensor, an array or nested lists) as a float array with ``ndim`` axes."""
    try:
        x = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        raise wrong_type(name, value, f"numbers, an array with {ndim} axes") from None
    if x.ndim != ndim:
        raise ValueError(f"{name} has shape {x.shape}: allowed an array with {ndim} axes")
    return x


def distance_map(ax, distance: object, clause_size: int, title: str = ""):
    """Draw the code distance d(r, c) of one network, [rows, clauses], one colour per distance
    from 0 (a code, yellow) to ``clause_size`` (dark). Returns the image (for
    ``fig.colorbar(image, ticks=range(clause_size + 1))``)."""
    import matplotlib

    check_int("clause_size", clause_size, 1)
    d = _array("distance", distance, 2)
    cmap = matplotlib.colormaps["viridis_r"].resampled(clause_size + 1)
    image = ax.imshow(d, cmap=cmap, vmin=-0.5, vmax=clause_size + 0.5, aspect="auto")
    ax.set_xlabel("clause c")
    ax.set_ylabel("row r")
    if title:
        ax.set_title(title)
    return image


def law_bars(
    ax,
    categories: Sequence,
    observed: object,
    low: object,
    high: object,
    laws: Mapping[str, object] | None = None,
    *,
    observed_label: str = "observed, 95% interval",
):
    """Observed fractions as bars with their intervals (``low``, ``high``) as error bars, one
    bar per category, and each law of ``laws`` ({label: probabilities}, one per category) as
    markers on the bars, so that a law inside an interval is seen at once. Returns ``ax``
    (call ``ax.legend()``)."""
    labels = list(categories)
    mean = _array("observed", observed, 1)
    bounds = [_array("low", low, 1), _array("high", high, 1)]
    for name, values in (("observed", mean), ("low", bounds[0]), ("high", bounds[1])):
        if len(values) != len(labels):
            raise ValueError(
                f"{name} has {len(values)} values for {len(labels)} categories: allowed one each"
            )
    laws = dict(laws or {})
    if len(laws) > len(LAW_STYLES):
        raise ValueError(f"laws has {len(laws)} entries: allowed at most {len(LAW_STYLES)}")
    x = np.arange(len(labels))
    error = np.stack([mean - bounds[0], bounds[1] - mean]).clip(min=0)
    ax.bar(x, mean, 0.7, color="C0", alpha=0.55, label=observed_label)
    ax.errorbar(x, mean, yerr=error, fmt="none", ecolor="C0", elinewidth=1.5, capsize=3)
    for (label, values), (marker, colour) in zip(laws.items(), LAW_STYLES, strict=False):
        probs = _array(f"laws[{label!r}]", values, 1)
        if len(probs) != len(labels):
            raise ValueError(
                f"laws[{label!r}] has {len(probs)} values for {len(labels)} categories: "
                "allowed one each"
            )
        ax.scatter(x, probs, marker=marker, color=colour, s=28, zorder=3, label=label)
    ax.set_xticks(x, [str(c) for c in labels])
    return ax


def weight_map(
    ax,
    weights: object,
    mask: object | None = None,
    *,
    xlabels: Sequence[str] | None = None,
    ylabels: Sequence[str] | None = None,
    annotate: bool = True,
    digits: int = 0,
):
    """Draw a small weight matrix [rows, columns] in a diverging colour map (blue positive,
    red negative), entries pruned by ``mask`` (0/1, same shape) in light grey, and, with
    ``annotate``, each surviving nonzero weight written in its cell with ``digits`` decimals.
    Returns the image (for ``fig.colorbar``)."""
    import matplotlib

    check_int("digits", digits, 0, 6)
    w = _array("weights", weights, 2)
    kept = np.ones_like(w, dtype=bool)
    if mask is not None:
        kept = _array("mask", mask, 2) != 0
        if kept.shape != w.shape:
            raise ValueError(f"mask has shape {kept.shape}: allowed the weights' {w.shape}")
    shown = np.where(kept, w, np.nan)
    vmax = float(np.nanmax(np.abs(shown))) if kept.any() else 1.0
    cmap = matplotlib.colormaps["RdBu"].with_extremes(bad="0.88")
    image = ax.imshow(shown, cmap=cmap, vmin=-(vmax or 1.0), vmax=vmax or 1.0, aspect="auto")
    rows, cols = w.shape
    for name, ticks, count, setter in (
        ("xlabels", xlabels, cols, ax.set_xticks),
        ("ylabels", ylabels, rows, ax.set_yticks),
    ):
        if ticks is not None:
            ticks = [str(t) for t in ticks]
            if len(ticks) != count:
                raise ValueError(f"{name} has {len(ticks)} labels: allowed {count}")
            setter(np.arange(count), ticks)
    if annotate:
        for (r, c), value in np.ndenumerate(shown):
            if not np.isnan(value) and value != 0:
                colour = "white" if abs(value) > 0.6 * (vmax or 1.0) else "black"
                text = f"{value:+.{digits}f}"
                ax.text(c, r, text, ha="center", va="center", fontsize=8, color=colour)
    return image
