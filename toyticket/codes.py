"""What a code is, at three levels (claims.md section 1), reported side by side.

- *Row code* (strict, static): all k aligned weights of (r, c) positive and a positive readout
  to c's output (``toyticket.features.aligned``).
- *Partial code* (static): a row whose surviving weights on c's variables (unmasked, |w| > tau)
  are all aligned but that keeps fewer than k of them (at least ``min_partial``), with a
  positive readout; often beside *inhibitory* rows, which read out negatively to c's output
  and fire when one of c's literals fails (a surviving weight of the wrong sign).
- *Channel* (functional): the rows that serve c: row codes and partial codes of c that fire on
  at least ``min_recall`` of the inputs where c holds. It *carries* c when silencing all of them
  costs at least ``min_ablation_drop`` accuracy on the inputs where c alone makes its output
  true (``toyticket.features.channel_ablation``). A *multi-row channel* carries c with two or
  more rows.

In dense networks (no weight exactly zero, tau = 0) every weight on c's variables is either
aligned or not, so partial codes only appear in sparse networks, where the strict reader would
call such clauses lost.

Each clause gets one level, the strictest that describes it, in this precedence:
row code > multi-row channel > partial code > none. So "channel" means: no single row holds a
complete code, but several rows carry c together; "partial": no complete code and no carrying
multi-row channel, but a partial code (which may carry c alone, possibly with inhibitory rows
beside it, or not carry it at all: see ``carried``). The non-exclusive flags are returned too.
"""

from __future__ import annotations

import torch

from toyticket.features import (
    ReaderConfig,
    aligned,
    aligned_weights,
    channel_ablation,
    readout_weight,
    row_activity,
)
from toyticket.model import Masks, Params, apply_masks
from toyticket.tasks import Task
from toyticket.validation import check_float, check_int

CODE_LEVELS = ("row_code", "channel", "partial", "none")
ROW_ROLES = ("absent", "code", "partial", "inhibitory", "other")


def clause_rows(
    params: Params,
    task: Task,
    masks: Masks | None = None,
    tau: float = 0.0,
    min_partial: int = 2,
) -> dict[str, torch.Tensor]:
    """How each row touches each clause, [S, h, m], in the masked network:

    - ``agree`` / ``against``: how many of c's k variables have a surviving weight on row r
      (|w| > tau) of the clause's polarity / of the opposite one;
    - ``readout``: the weight from r to c's output;
    - ``role``: an index into ``ROW_ROLES``: "code" (a row code), "partial" (a partial code:
      ``min_partial`` <= agree < k, against = 0, readout > 0), "inhibitory" (readout < 0 and
      against >= 1: it fires when a literal of c fails and pushes c's output down), "other"
      (some surviving weight on c's variables, none of the above), "absent" (none)."""
    check_float("tau", tau, 0.0)
    check_int("min_partial", min_partial, 1, max(1, task.clause_size - 1))
    p = apply_masks(params, masks)
    a = aligned_weights(p["W1"], task)  # [S, h, m, k]
    agree, against = (a > tau).sum(-1), (a < -tau).sum(-1)
    readout = readout_weight(p["W2"], task)
    k = task.clause_size
    partial = (agree >= min_partial) & (agree < k) & (against == 0) & (readout > 0)
    role = torch.where(agree + against > 0, ROW_ROLES.index("other"), ROW_ROLES.index("absent"))
    role[(readout < 0) & (against > 0)] = ROW_ROLES.index("inhibitory")
    role[partial] = ROW_ROLES.index("partial")
    role[aligned(p, task, tau)] = ROW_ROLES.index("code")
    return {"agree": agree, "against": against, "readout": readout, "role": role}


def code_levels(
    params: Params,
    task: Task,
    masks: Masks | None = None,
    reader: ReaderConfig = ReaderConfig(),
    min_partial: int = 2,
) -> dict[str, torch.Tensor]:
    """Which level describes each clause of each lane (module docstring: definitions and
    precedence). Returns:

    - ``level`` [S, m]: an index into ``CODE_LEVELS`` (row_code, channel, partial, none);
    - ``fraction_<level>`` [S]: the fraction of clauses at each level (they sum to 1);
    - non-exclusive flags [S, m]: ``row_code`` (some row code), ``partial`` (some partial
      code), ``carried`` (the serving rows carry c), ``multi_row`` (carried by >= 2 rows),
      ``inhibitory`` (some inhibitory row);
    - ``serving`` [S, h, m] (the channel's rows), ``channel_size`` [S, m], and ``role`` and
      ``agree`` [S, h, m] from ``clause_rows``."""
    rows = clause_rows(params, task, masks, reader.tau, min_partial)
    p = apply_masks(params, masks)
    role = rows["role"]
    is_code, is_partial = role == ROW_ROLES.index("code"), role == ROW_ROLES.index("partial")
    recall = row_activity(p, task)["recall"]
    serving = (is_code | is_partial) & (recall >= reader.min_recall)
    ablation = channel_ablation(p, task, serving)
    drop = (ablation["before"] - ablation["after"]).nan_to_num(0.0)
    size = serving.sum(1)
    carried = (size > 0) & (drop >= reader.min_ablation_drop)
    row_code, partial = is_code.any(1), is_partial.any(1)
    multi_row = carried & (size >= 2)
    level = torch.full_like(size, CODE_LEVELS.index("none"))
    for name, present in reversed(
        [("row_code", row_code), ("channel", multi_row), ("partial", partial)]
    ):
        level[present] = CODE_LEVELS.index(name)  # the strictest level is written last
    fractions = {
        f"fraction_{name}": (level == i).float().mean(-1) for i, name in enumerate(CODE_LEVELS)
    }
    return {
        "level": level,
        **fractions,
        "row_code": row_code,
        "partial": partial,
        "carried": carried,
        "multi_row": multi_row,
        "inhibitory": (role == ROW_ROLES.index("inhibitory")).any(1),
        "serving": serving,
        "channel_size": size,
        "role": role,
        "agree": rows["agree"],
    }


def describe_clauses(
    params: Params,
    task: Task,
    masks: Masks | None = None,
    lane: int = 0,
    reader: ReaderConfig = ReaderConfig(),
    min_partial: int = 2,
) -> str:
    """What one network computes, clause by clause: its level, whether its channel carries it,
    and the rows that code, partially code or inhibit it, each with its counts of aligned (+)
    and opposed (-) surviving weights on the clause's variables and its readout to the clause's
    output; rows of role "other" are counted. Meant for sparse tickets, whose rows are few."""
    n_lanes = params["W1"].shape[0]
    check_int("lane", lane, 0, n_lanes - 1)
    levels = code_levels(params, task, masks, reader, min_partial)
    rows = clause_rows(params, task, masks, reader.tau, min_partial)
    lines = []
    for c, clause in enumerate(task.clauses):
        level = CODE_LEVELS[int(levels["level"][lane, c])]
        carried = "carried" if levels["carried"][lane, c] else "not carried"
        role = rows["role"][lane, :, c]
        parts = []
        for r in torch.nonzero(role != ROW_ROLES.index("absent")).flatten().tolist():
            name = ROW_ROLES[int(role[r])]
            if name != "other":
                agree, against = int(rows["agree"][lane, r, c]), int(rows["against"][lane, r, c])
                readout = float(rows["readout"][lane, r, c])
                parts.append(f"r{r} {name} {agree}+/{against}- readout {readout:+.2f}")
        others = int((role == ROW_ROLES.index("other")).sum())
        if others:
            parts.append(f"{others} other row{'s' if others > 1 else ''}")
        body = "; ".join(parts) if parts else "no row"
        output = int(task.output_of[c])
        lines.append(f"c{c} ({clause}) -> y{output}: {level}, {carried}; {body}")
    return "\n".join(lines)
