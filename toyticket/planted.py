"""Networks built by hand: one exact code per clause. They compute their task exactly and are
the ground truth the feature-space reader is tested against."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from toyticket.model import Params
from toyticket.tasks import Task
from toyticket.validation import check_float, check_int, check_task, show, wrong_type


def planted_network(
    task: Task, width: int | None = None, rows: Sequence[int] | None = None, gain: float = 4.0
) -> Params:
    """A one-lane ensemble in which clause c is coded on row ``rows[c]`` (default: row c).

    Row r = rows[c] computes relu(sum of aligned literals - (P - 1)), with P the number of
    positive literals: 1 exactly when c holds, else 0. The output logit is
    2 * gain * (number of its clauses that hold) - gain, positive iff one holds. Rows that code
    no clause are left at zero (silent)."""
    check_task("task", task)
    check_float("gain", gain, 0.0, low_open=True)
    m, n = task.n_clauses, task.n_vars
    if rows is not None and (isinstance(rows, str) or not isinstance(rows, Sequence)):
        raise wrong_type("rows", rows, f"a list of {m} rows")
    rows = list(range(m)) if rows is None else [check_int("rows entry", r, 0) for r in rows]
    width = max(rows, default=0) + 1 if width is None else check_int("width", width, 1)
    if len(rows) != m or len(set(rows)) != m or not all(0 <= r < width for r in rows):
        raise ValueError(
            f"rows={show(rows)} is not allowed: allowed {m} distinct rows in [0, {width - 1}]"
        )
    W1, b1 = torch.zeros(width, n), torch.zeros(width)
    W2, b2 = torch.zeros(task.n_outputs, width), torch.full((task.n_outputs,), -gain)
    for c, clause in enumerate(task.clauses):
        r = rows[c]
        W1[r, list(clause.variables)] = torch.tensor(clause.signs, dtype=torch.float32)
        b1[r] = 1.0 - sum(s > 0 for s in clause.signs)
        W2[task.output_of[c], r] = 2.0 * gain
    return {"W1": W1[None], "b1": b1[None], "W2": W2[None], "b2": b2[None]}
