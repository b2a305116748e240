"""One row of numbers per network: what a trained ensemble computes and how it is coded."""

from __future__ import annotations

import torch

from toyticket.codes import CODE_LEVELS, ROW_ROLES, code_levels
from toyticket.features import ReaderConfig, channels, supported
from toyticket.metrics import evaluate, linearization_test, trivial_accuracy, weight_motion
from toyticket.model import Masks, Params, apply_masks
from toyticket.tasks import Task
from toyticket.validation import check_config, check_ensemble, check_params

# The modules whose code determines a trained and summarized ensemble: stored studies list
# them (plus their own) as their code version (see ``toyticket.store``).
SUMMARY_CODE = (
    "toyticket.tasks",
    "toyticket.model",
    "toyticket.training",
    "toyticket.engine",
    "toyticket.metrics",
    "toyticket.features",
    "toyticket.codes",
    "toyticket.summary",
)

# The quantities ``summarize`` returns, in its order: what tables and sweeps may ask for.
SUMMARY_NAMES = (
    "bit_accuracy",
    "balanced_accuracy",
    "exact_outputs",
    "trivial_accuracy",
    "linear_bit_accuracy",
    "linear_exact_outputs",
    "aligned_clauses",
    "serving_clauses",
    "selective_clauses",
    "carried_clauses",
    "supported_clauses",
    "shared_rows",
    "row_selectivity",
    "aligned_firing",
    "row_code_clauses",
    "channel_clauses",
    "partial_clauses",
    "uncoded_clauses",
    "coding_rows",
    "coding_weights",
    "inhibited_clauses",
    "negative_rows",
)
# The summary name of each code level: "<name>_clauses".
LEVEL_NAMES = {
    "row_code": "row_code",
    "channel": "channel",
    "partial": "partial",
    "none": "uncoded",
}
# With ``initial`` (where training started), ``summarize`` adds how far W1 moved.
MOTION_NAMES = ("weight_change", "flipped_signs")


def summarize(
    params: Params,
    task: Task,
    reader: ReaderConfig = ReaderConfig(),
    masks: Masks | None = None,
    initial: Params | None = None,
) -> dict[str, torch.Tensor]:
    """Per-lane scalars [S] of a trained ensemble:

    accuracy (``bit_accuracy``, ``balanced_accuracy``, ``exact_outputs``), the trivial
    predictor (``trivial_accuracy``), the linearization test (``linear_bit_accuracy``,
    ``linear_exact_outputs``), and the fractions of clauses with an aligned code
    (``aligned_clauses``), a serving row (``serving_clauses``), a selective serving row
    (``selective_clauses``) and a channel that carries them (``carried_clauses``), and whose
    code the mask allows on some row (``supported_clauses``; 1 without masks); the fraction
    of rows that serve two or more clauses (``shared_rows``), the mean selectivity of serving
    rows (``row_selectivity``) and the mean firing rate of aligned rows (``aligned_firing``);
    the fractions of clauses at each code level of ``toyticket.codes`` (``row_code_clauses``,
    ``channel_clauses``, ``partial_clauses``, ``uncoded_clauses``; they sum to 1), and what a
    sparse network spends on its clauses: the mean number of rows that code or partially code
    a clause (``coding_rows``), the mean number of aligned surviving weights such a row keeps
    on its clause's variables (``coding_weights``; NaN where no row codes), the fraction of
    clauses with an inhibitory row (``inhibited_clauses``) and the fraction of rows keeping a
    weight of W1 that read out negatively to some output (``negative_rows``). With
    ``initial``, the parameters training started from, also the motion of W1 under the mask
    (``weight_change`` = ||W1_T - W1_0|| / ||W1_0||, ``flipped_signs``; see
    ``toyticket.metrics.weight_motion``).
    """
    check_ensemble(params, task, masks)
    check_config("reader", reader, ReaderConfig)
    if initial is not None:
        lanes, width = params["W1"].shape[:2]
        check_params("initial", initial, task, lanes=lanes, width=width)
    scores = evaluate(params, task, masks)
    linear = linearization_test(params, task, masks)
    ch = channels(params, task, reader, masks)
    S, h = ch["aligned"].shape[:2]
    serving_rows = ch["serving"].any(-1)
    aligned_rows = ch["aligned"].any(-1)
    if masks and "W1" in masks:
        supported_clauses = supported(masks["W1"], task).any(1).float().mean(-1)
    else:
        supported_clauses = torch.ones(S)
    # partial codes keep 2 of k >= 3 weights (1 of 2); a clause of one literal has none
    levels = code_levels(
        params, task, masks, reader, min_partial=max(1, min(2, task.clause_size - 1))
    )
    out = {
        "bit_accuracy": scores["bit_accuracy"],
        "balanced_accuracy": scores["balanced_accuracy"],
        "exact_outputs": scores["exact_outputs"],
        "trivial_accuracy": torch.full((S,), trivial_accuracy(task)),
        "linear_bit_accuracy": linear["linear_bit_accuracy"],
        "linear_exact_outputs": linear["linear_exact_outputs"],
        "aligned_clauses": ch["aligned"].any(1).float().mean(-1),
        "serving_clauses": ch["serving"].any(1).float().mean(-1),
        "selective_clauses": ch["selective"].any(1).float().mean(-1),
        "carried_clauses": ch["carries"].float().mean(-1),
        "supported_clauses": supported_clauses,
        "shared_rows": ch["shared_rows"].float() / h,
        "row_selectivity": _masked_mean(ch["selectivity"], serving_rows),
        "aligned_firing": _masked_mean(ch["firing_rate"], aligned_rows),
        **{f"{LEVEL_NAMES[name]}_clauses": levels[f"fraction_{name}"] for name in CODE_LEVELS},
    }
    role = levels["role"]
    coding = (role == ROW_ROLES.index("code")) | (role == ROW_ROLES.index("partial"))
    aligned_kept = torch.where(coding, levels["agree"].float(), torch.nan)
    kept_rows = apply_masks(params, masks)["W1"].abs().sum(-1) > 0
    negative = (params["W2"] < 0).any(1) & kept_rows
    out["coding_rows"] = coding.sum(1).float().mean(-1)
    out["coding_weights"] = aligned_kept.flatten(1).nanmean(-1)
    out["inhibited_clauses"] = levels["inhibitory"].float().mean(-1)
    out["negative_rows"] = negative.float().sum(-1) / kept_rows.sum(-1)
    if initial is not None:
        mask = masks.get("W1") if masks else None
        motion = weight_motion(initial["W1"], params["W1"], mask)
        out["weight_change"] = motion["relative_change"]
        out["flipped_signs"] = motion["flipped_signs"]
    return out


def _masked_mean(values: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """Mean over the last axis of the kept entries; NaN where none is kept."""
    kept = torch.where(keep, values, torch.zeros_like(values))
    return kept.sum(-1) / keep.sum(-1)  # 0/0 -> NaN on purpose
