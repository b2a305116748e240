"""Intervals over seeds: every figure and table of the book reports one."""

from __future__ import annotations

from collections.abc import Mapping

import torch

from toyticket.validation import check_choices, check_float, check_int, check_seed, wrong_type


def mean_ci(
    values: torch.Tensor, level: float = 0.95, n_boot: int = 2000, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Mean over the last axis (the seeds) and a percentile-bootstrap interval for it.

    NaNs are ignored. The resampling is seeded, so the same values always give the same
    interval (the book's outputs are regression-tested). Returns (mean, low, high), each shaped
    like ``values`` without its last axis."""
    check_float("level", level, 0.0, 1.0, low_open=True, high_open=True)
    check_int("n_boot", n_boot, 1)
    seed = check_seed("seed", seed)
    x = _values(values)
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
