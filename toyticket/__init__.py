"""toyticket: lottery tickets in a clause-structured Boolean toy world.

The core of the book: tasks (``tasks``), batched one-hidden-layer networks (``model``), their
training (``training``), how well they compute (``metrics``) and how to read them as
feature-channel codes (``features``). Chapters import this package; heavy work lives here.

Importing it first pins the numerics mode (``toyticket.numerics``): before torch or numba
choose their code paths.
"""

from toyticket import numerics

numerics.pin()

import torch  # noqa: E402

from toyticket.codes import CODE_LEVELS, ROW_ROLES, clause_rows, code_levels, describe_clauses
from toyticket.experiments import dense_study, summarize_checkpoints
from toyticket.features import (
    ReaderConfig,
    aligned,
    aligned_weights,
    channel_ablation,
    channels,
    clause_overlap,
    code_distance,
    crowding,
    crowding_law,
    location_fates,
    proximal,
    readout_weight,
    row_activity,
    selectivity,
    supported,
    unique_witness_inputs,
)
from toyticket.metrics import (
    evaluate,
    linearization_test,
    logistic_baseline,
    trivial_accuracy,
    weight_motion,
)
from toyticket.model import (
    ModelConfig,
    Params,
    apply_masks,
    concat_lanes,
    forward,
    hidden,
    init_params,
    select_lanes,
)
from toyticket.planted import planted_network
from toyticket.precursors import (
    NULLS,
    code_overlap,
    final_codes,
    mask_precursors,
    near,
    precursor_profile,
    sign_reinit_runs,
)
from toyticket.probes import (
    Clauses,
    clauses_from_weights,
    distance_probe,
    locations_mask,
    motion_probe,
    oracle_probe,
    random_row_probe,
)
from toyticket.pruning import (
    SCORING_METHODS,
    mask_from_scores,
    match_degrees,
    score_weights,
    shuffle_rows,
)
from toyticket.stats import (
    ALTERNATIVES,
    CI_METHODS,
    chi_square_test,
    clopper_pearson,
    format_ci,
    format_table,
    grand_mean_ci,
    hierarchical_ci,
    holm,
    holm_reject,
    mean_ci,
    paired_difference,
    sign_flip_test,
    spearman,
    task_t_ci,
    win_rate,
)
from toyticket.store import Store, cached, get_store, stored
from toyticket.summary import summarize
from toyticket.tasks import Clause, Task, TaskConfig, build_task, make_task
from toyticket.tickets import (
    DISCOVERY_METHODS,
    MATCHING_RULES,
    Ladder,
    PruningConfig,
    assess_tickets,
    discover,
    imp,
    imp_ladder,
    match_dense,
    matching_level,
    one_row_per_clause_bound,
    retrain_many,
    sign_preserving_reinit,
    stack_studies,
    ticket_study,
)
from toyticket.training import Run, TrainConfig, loss_and_grads, train

__all__ = [
    "ALTERNATIVES",
    "CI_METHODS",
    "CODE_LEVELS",
    "DISCOVERY_METHODS",
    "MATCHING_RULES",
    "NULLS",
    "ROW_ROLES",
    "SCORING_METHODS",
    "Ladder",
    "PruningConfig",
    "Clause",
    "Clauses",
    "ModelConfig",
    "Params",
    "ReaderConfig",
    "Run",
    "Store",
    "Task",
    "TaskConfig",
    "TrainConfig",
    "aligned",
    "aligned_weights",
    "apply_masks",
    "build_task",
    "cached",
    "channel_ablation",
    "channels",
    "clause_overlap",
    "clause_rows",
    "clauses_from_weights",
    "chi_square_test",
    "clopper_pearson",
    "code_levels",
    "code_distance",
    "code_overlap",
    "concat_lanes",
    "dense_study",
    "distance_probe",
    "crowding",
    "crowding_law",
    "describe_clauses",
    "evaluate",
    "final_codes",
    "forward",
    "format_ci",
    "format_table",
    "get_store",
    "grand_mean_ci",
    "grid_points",
    "hidden",
    "hierarchical_ci",
    "holm",
    "holm_reject",
    "init_params",
    "linearization_test",
    "location_fates",
    "locations_mask",
    "logistic_baseline",
    "loss_and_grads",
    "make_task",
    "match_dense",
    "matching_level",
    "mean_ci",
    "motion_probe",
    "one_row_per_clause_bound",
    "oracle_probe",
    "paired_difference",
    "planted_network",
    "proximal",
    "random_row_probe",
    "readout_weight",
    "row_activity",
    "select_lanes",
    "selectivity",
    "sign_flip_test",
    "sign_preserving_reinit",
    "spearman",
    "stack_studies",
    "stored",
    "summarize",
    "summarize_checkpoints",
    "run_sweep",
    "supported",
    "assess_tickets",
    "discover",
    "imp",
    "imp_ladder",
    "mask_from_scores",
    "mask_precursors",
    "match_degrees",
    "near",
    "precursor_profile",
    "shuffle_rows",
    "sign_reinit_runs",
    "retrain_many",
    "score_weights",
    "task_t_ci",
    "ticket_study",
    "train",
    "trivial_accuracy",
    "unique_witness_inputs",
    "weight_motion",
    "win_rate",
]

# toyticket.sweep is imported on first use, not here: `python -m toyticket.sweep` runs it as
# __main__, and runpy warns (RuntimeWarning) when the package has already imported it.
_LAZY = {"grid_points": "toyticket.sweep", "run_sweep": "toyticket.sweep"}


def __getattr__(name: str) -> object:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'toyticket' has no attribute {name!r}")


# One intra-op thread unless the user set OMP_NUM_THREADS: on a loaded 2-core machine,
# oversubscribed threads made torch more than 20x slower on these tiny matmuls.
import os as _os

if "OMP_NUM_THREADS" not in _os.environ:
    torch.set_num_threads(1)
