"""Intervals over seeds: every figure and table of the book reports one."""

from __future__ import annotations

import torch

from toyticket.validation import check_float, check_int


def mean_ci(
    values: torch.Tensor, level: float = 0.95, n_boot: int = 2000, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Mean over the last axis (the seeds) and a percentile-bootstrap interval for it.

    NaNs are ignored. The resampling is seeded, so the same values always give the same
    interval (the book's outputs are regression-tested). Returns (mean, low, high), each shaped
    like ``values`` without its last axis."""
    check_float("level", level, 0.0, 1.0, low_open=True, high_open=True)
    check_int("n_boot", n_boot, 1)
    x = torch.as_tensor(values, dtype=torch.float64)
    if x.shape[-1] == 0:
        raise ValueError("values must hold at least one seed along the last axis")
    g = torch.Generator().manual_seed(seed)
    idx = torch.randint(x.shape[-1], (n_boot, x.shape[-1]), generator=g)
    boots = x[..., idx].nanmean(-1)  # [..., n_boot]
    alpha = (1 - level) / 2
    low = boots.nanquantile(alpha, dim=-1)
    high = boots.nanquantile(1 - alpha, dim=-1)
    return x.nanmean(-1), low, high


def format_ci(values: torch.Tensor, digits: int = 2) -> str:
    """``mean [low, high]`` of one quantity over seeds, for tables."""
    mean, low, high = mean_ci(values)
    return f"{mean.item():.{digits}f} [{low.item():.{digits}f}, {high.item():.{digits}f}]"


def format_table(
    rows: dict[str, dict[str, torch.Tensor]], columns: list[str], digits: int = 2
) -> str:
    """A plain-text table: one row per label, one ``mean [low, high]`` cell per column (the
    95% bootstrap interval over the seeds of that row)."""
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
